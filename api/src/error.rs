//! The one place where domain errors become `application/problem+json` answers.
//!
//! Handlers return [`ApiError`]; its response carries the [`Problem`] in the response
//! extensions, and the [`finish_problems`] middleware writes the body with the request id
//! and path, which only the middleware knows.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use aion_api_types::Problem;
use aion_services::Error;
use std::collections::BTreeMap;

/// Base of the `type` URIs; each code has its own stable URI under it.
pub const PROBLEM_BASE: &str = "https://docs.aion.eu/problems/";

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: BTreeMap<String, String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.detail)
    }
}

impl ApiError {
    /// A problem with explicit parts (for errors that do not come from `services`).
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: BTreeMap::new(),
        }
    }

    /// 400 for a request the server cannot read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad request",
            detail,
        )
    }

    /// 401 with a reason.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::from(Error::Unauthenticated(detail.into()))
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let (status, title) = match &err {
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Error::Validation(_) => (StatusCode::BAD_REQUEST, "Invalid input"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
            Error::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Idempotency key reused")
            }
            Error::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "Precondition failed"),
            Error::QuotaExceeded(_) => (StatusCode::CONFLICT, "Quota exceeded"),
            Error::BudgetExhausted(_) => (StatusCode::CONFLICT, "Budget exhausted"),
            Error::NotPriced(_) => (StatusCode::NOT_FOUND, "No price list"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        let detail = match &err {
            Error::Internal(cause) => {
                // The cause is logged, never shown: it may hold SQL or paths.
                tracing::error!(cause = %cause, "internal error");
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            Error::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "dependency unavailable");
                "a dependency is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let code = err.code();
        let errors = match err {
            Error::Validation(fields) => fields,
            _ => BTreeMap::new(),
        };
        Self {
            status,
            code,
            title,
            detail,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = Problem {
            type_uri: format!("{PROBLEM_BASE}{}", self.code.replace('_', "-")),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: None,
            code: self.code.to_owned(),
            request_id: None,
            errors: self.errors.clone(),
        };
        let mut res = HttpResponse::build(self.status);
        res.content_type("application/problem+json");
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((header::RETRY_AFTER, "5"));
        }
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let mut res = res.body(body);
        res.extensions_mut().insert(problem);
        res
    }
}

/// Completes problem bodies with the request id and path, and sets `x-request-id` on
/// every answer.
pub async fn finish_problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string());
    let path = req.path().to_owned();
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(id) = request_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), id);
    }
    let problem = res.response().extensions().get::<Problem>().cloned();
    let Some(mut problem) = problem else {
        return Ok(res);
    };
    problem.request_id = request_id;
    problem.instance = Some(path);
    let body = serde_json::to_string(&problem).unwrap_or_default();
    Ok(res.map_body(|_, _| BoxBody::new(body)))
}
