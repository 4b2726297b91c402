//! The signed-in person of a request: [`Session`] for pages, [`FormPost`] for forms
//! (the session plus a form body whose CSRF token and origin were checked). A handler
//! that takes either cannot run for someone who is not signed in.

use crate::WebState;
use crate::error::WebError;
use crate::i18n::{Lang, Tr};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aion_services::authz::Caller;
use aion_services::identity::User;
use aion_services::web_sessions::{self, WebSession};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// Cookie holding the session secret.
pub const SESSION_COOKIE: &str = "aion_session";
/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// A signed-in person and what every page needs about them.
pub struct Session {
    /// The caller, with current roles: pages call the same domain functions as the API.
    pub caller: Caller,
    /// The person.
    pub user: User,
    /// The session row.
    pub web: WebSession,
    /// Texts in the person's language.
    pub t: Tr,
    /// Path and query of this request (to come back to after a form or a language change).
    pub path: String,
}

impl Session {
    /// The token forms of this session carry.
    pub fn csrf(&self) -> &str {
        &self.web.csrf_token
    }

    /// Name to show for the person.
    pub fn display_name(&self) -> String {
        self.user
            .display_name
            .clone()
            .or_else(|| self.user.email.clone())
            .unwrap_or_else(|| self.user.subject.clone())
    }
}

/// The request id set by the tracing middleware.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

fn state(req: &HttpRequest) -> Result<web::Data<WebState>, WebError> {
    req.app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| aion_services::Error::Internal("web state missing".into()).into())
}

fn path_of(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    }
}

async fn load(req: HttpRequest) -> Result<Session, WebError> {
    let state = state(&req)?;
    let path = path_of(&req);
    let not_signed_in = || WebError::NotSignedIn {
        return_to: if req.method() == actix_web::http::Method::GET {
            path.clone()
        } else {
            "/console".into()
        },
    };
    let secret = req.cookie(SESSION_COOKIE).ok_or_else(not_signed_in)?;
    let svc = &state.services;
    let web = web_sessions::resolve(svc, state.config.sessions, secret.value())
        .await?
        .ok_or_else(not_signed_in)?;
    let request_id = request_id(&req);
    let caller = web_sessions::caller(svc, &web, &request_id).await?;
    let user = aion_services::identity::me(svc, &caller)
        .await?
        .user
        .ok_or(aion_services::Error::NotFound("user"))?;
    tracing::Span::current().record("actor", caller.actor.key());
    Ok(Session {
        caller,
        user,
        web,
        t: Tr {
            lang: Lang::of(&req),
        },
        path,
    })
}

impl FromRequest for Session {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(load(req.clone()))
    }
}

/// A form posted by a signed-in person: the session and the parsed body `T`, after
/// checking the body's `csrf` field against the session and the `Origin` header (when
/// the browser sends one) against this site.
pub struct FormPost<T> {
    /// The person.
    pub session: Session,
    /// The form's fields.
    pub form: T,
}

/// Whether the `Origin` of a request, if any, is this site: the configured public URL
/// (the site as browsers see it behind a proxy) or the `Host` the request was sent to.
fn same_origin(req: &HttpRequest, public_url: &url::Url) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let public = public_url.origin().ascii_serialization();
    if origin.eq_ignore_ascii_case(&public) {
        return true;
    }
    let host = req.connection_info().host().to_owned();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host))
}

/// The value of `name` in a urlencoded body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Compares secrets without stopping at the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl<T: DeserializeOwned + 'static> FromRequest for FormPost<T> {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body
                .await
                .map_err(|e| WebError::BadRequest(format!("unreadable form: {e}")))?;
            if body.len() > MAX_FORM_BYTES {
                return Err(WebError::BadRequest("the form is too large".into()));
            }
            let session = load(req.clone()).await?;
            let public_url = state(&req)?.config.public_url.clone();
            let token = form_field(&body, "csrf").unwrap_or_default();
            if !same_origin(&req, &public_url) || !constant_time_eq(&token, session.csrf()) {
                return Err(WebError::Csrf);
            }
            let form = serde_urlencoded::from_bytes::<T>(&body)
                .map_err(|e| WebError::BadRequest(format!("invalid form: {e}")))?;
            Ok(FormPost { session, form })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_read_from_urlencoded_bodies() {
        assert_eq!(
            form_field(b"a=1&csrf=x%2By&b=2", "csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1", "csrf"), None);
    }

    #[test]
    fn forms_are_accepted_from_the_public_site_or_the_host_they_were_sent_to() {
        let public = url::Url::parse("https://aion.example.eu").unwrap();
        let with = |origin: &str| {
            actix_web::test::TestRequest::post()
                .insert_header((header::HOST, "10.0.0.5:8080"))
                .insert_header((header::ORIGIN, origin))
                .to_http_request()
        };
        assert!(same_origin(&with("https://aion.example.eu"), &public));
        assert!(same_origin(&with("http://10.0.0.5:8080"), &public));
        assert!(!same_origin(&with("https://evil.example"), &public));
        assert!(!same_origin(
            &with("https://aion.example.eu.evil.example"),
            &public
        ));
        assert!(!same_origin(&with("null"), &public));
        let none = actix_web::test::TestRequest::post().to_http_request();
        assert!(
            same_origin(&none, &public),
            "browsers may omit Origin: the token decides"
        );
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }
}
