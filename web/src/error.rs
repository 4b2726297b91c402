//! The one error type of the web console, rendered as a readable HTML page (never JSON
//! or a stack trace), or as a redirect to sign in.

use crate::i18n::{Lang, Tr};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

/// Everything a page can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No session: the browser is sent to sign in, then back to `return_to`.
    #[error("not signed in")]
    NotSignedIn {
        /// Where to come back after signing in.
        return_to: String,
    },
    /// A domain error (not found, forbidden, invalid input…).
    #[error(transparent)]
    Service(#[from] aion_services::Error),
    /// A form that does not carry this session's CSRF token, or comes from another site.
    #[error("this form expired or did not come from this site; reload the page and try again")]
    Csrf,
    /// A malformed request (a form field that does not parse…).
    #[error("{0}")]
    BadRequest(String),
    /// Signing in failed (provider error, invalid ID token…): the message says why.
    #[error("{0}")]
    Login(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        use aion_services::Error as E;
        match self {
            WebError::NotSignedIn { .. } => StatusCode::SEE_OTHER,
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Login(_) => StatusCode::UNAUTHORIZED,
            WebError::Service(e) => match e {
                E::NotFound(_) => StatusCode::NOT_FOUND,
                E::Conflict(_) | E::PreconditionFailed | E::IdempotencyMismatch => {
                    StatusCode::CONFLICT
                }
                E::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                E::Forbidden(_) => StatusCode::FORBIDDEN,
                E::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                E::QuotaExceeded(_) | E::BudgetExhausted(_) => StatusCode::UNPROCESSABLE_ENTITY,
                E::NotPriced(_) => StatusCode::NOT_FOUND,
                E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The message shown to the person: internal details stay in the log.
    pub fn message(&self) -> String {
        match self {
            WebError::Service(aion_services::Error::Internal(_)) => {
                "Something went wrong on our side. It was logged; please try again later.".into()
            }
            other => other.to_string(),
        }
    }
}

/// Result of a page handler.
pub type WebResult<T> = Result<T, WebError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: Tr,
    status: u16,
    title: &'a str,
    message: &'a str,
    reference: &'a str,
}

/// What [`localize_errors`] needs to draw an error page again in the reader's language.
#[derive(Clone, Debug)]
struct ErrorPageData {
    status: u16,
    title: &'static str,
    message: String,
}

fn render(t: Tr, d: &ErrorPageData, reference: &str) -> String {
    ErrorPage {
        t,
        status: d.status,
        title: d.title,
        message: &d.message,
        reference,
    }
    .render()
    .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".into())
}

/// Middleware: error pages are drawn again in the language of the request and carry
/// the request id as a reference (an error response does not see its request).
pub async fn localize_errors(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let lang = Lang::of(req.request());
    let reference = crate::session::request_id(req.request());
    let console = crate::headers::is_console(req.path());
    let res = next.call(req).await?.map_into_boxed_body();
    let mut data = res.response().extensions().get::<ErrorPageData>().cloned();
    if data.is_none() && console && is_problem(&res) {
        // An extractor shared with the API (a path or query that does not parse) answered
        // with a problem: a console page shows it as a page, like its own errors.
        let status = res.status();
        let (req, response) = res.into_parts();
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "The address or its query is malformed.".to_owned());
        let page = ErrorPageData {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: detail,
        };
        let html = HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(render(Tr { lang }, &page, &reference));
        return Ok(actix_web::dev::ServiceResponse::new(req, html));
    }
    let Some(data) = data.take() else {
        return Ok(res);
    };
    let body = render(Tr { lang }, &data, &reference);
    Ok(res.map_body(|_, _| actix_web::body::BoxBody::new(body)))
}

fn is_problem(res: &actix_web::dev::ServiceResponse<actix_web::body::BoxBody>) -> bool {
    res.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let WebError::NotSignedIn { return_to } = self {
            let target = format!(
                "/auth/login?{}",
                serde_urlencoded::to_string([("return_to", return_to.as_str())])
                    .unwrap_or_default()
            );
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "page failed");
        }
        // English here; `localize_errors` draws it again in the request's language.
        let data = ErrorPageData {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.message(),
        };
        let body = render(Tr { lang: Lang::En }, &data, "");
        let mut response = HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body);
        response.extensions_mut().insert(data);
        response
    }
}
