//! What every page shares: the header (who is signed in, the panels they may open, the
//! language switch, sign-out), notices after a form, static files and the language cookie.

use crate::i18n::{LANG_COOKIE, Lang, Tr};
use crate::session::Session;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aion_services::authz::{Grant, OrgRole};
use aion_services::web_sessions::safe_return_to;

/// The page frame's data, handed to every page template as `c`.
pub struct Chrome {
    /// Texts.
    pub t: Tr,
    /// Who is signed in.
    pub user_name: String,
    /// The session's CSRF token, for every form.
    pub csrf: String,
    /// This page's path and query (language links come back here).
    pub path: String,
    /// The person reviews calls of an allocator organisation.
    pub is_allocator: bool,
    /// The person is an operator (platform admin) or an auditor.
    pub is_operator: bool,
    /// A confirmation to show (text key), after a form was handled.
    pub notice: Option<&'static str>,
    /// Which top-level section is open: `console`, `allocations` or `admin`.
    pub section: &'static str,
}

impl Chrome {
    /// The frame of a page of `section` for this session.
    pub fn new(s: &Session, section: &'static str) -> Self {
        let is_allocator = s
            .caller
            .grants
            .iter()
            .any(|g| matches!(g, Grant::Organization(_, OrgRole::Allocator)));
        Self {
            t: s.t,
            user_name: s.display_name(),
            csrf: s.csrf().to_owned(),
            path: s.path.clone(),
            is_allocator: is_allocator || s.caller.is_platform_admin(),
            is_operator: s.caller.reads_everything(),
            notice: None,
            section,
        }
    }

    /// Shows the notice named by a `?notice=` key, if it is one of `allowed`.
    pub fn with_notice(mut self, raw: Option<&str>, allowed: &[&'static str]) -> Self {
        self.notice = raw.and_then(|r| allowed.iter().copied().find(|a| *a == r));
        self
    }

    /// The link that switches this page to `code`.
    pub fn lang_link(&self, code: &str) -> String {
        format!(
            "/lang/{code}?{}",
            serde_urlencoded::to_string([("return_to", self.path.as_str())]).unwrap_or_default()
        )
    }
}

/// A redirect after a successful form (post-redirect-get), with a notice key.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// Renders a template as an HTML page.
pub fn html(body: Result<String, askama::Error>) -> Result<HttpResponse, crate::error::WebError> {
    let body = body.map_err(|e| aion_services::Error::Internal(format!("template failed: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// `GET /lang/{code}?return_to=`: remembers the language for a year and goes back.
pub async fn set_language(
    req: HttpRequest,
    code: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    let back = safe_return_to(query.get("return_to").map(String::as_str));
    let Some(lang) = Lang::parse(&code) else {
        return see_other(&back);
    };
    let secure = req
        .app_data::<web::Data<crate::WebState>>()
        .is_some_and(|s| s.config.secure_cookies());
    let cookie = Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, back))
        .cookie(cookie)
        .finish()
}

const CSS: &str = include_str!("../static/aion.css");
const LIVE_JS: &str = include_str!("../static/live.js");

/// `GET /static/{file}`: the console's own stylesheet and script (no third-party code).
pub async fn static_file(file: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match file.as_str() {
        "aion.css" => (CSS, "text/css; charset=utf-8"),
        "live.js" => (LIVE_JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
