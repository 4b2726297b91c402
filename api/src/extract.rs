//! Request extractors: the authenticated caller, `Idempotency-Key` and `If-Match`.
//! A handler that takes [`Authenticated`] cannot run for an unauthenticated request.

use crate::AppState;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use aion_services::authz::Caller;
use aion_services::idempotency::IdempotencyKey;
use futures::future::{LocalBoxFuture, Ready, ready};
use std::ops::Deref;

/// The caller of an authenticated request.
pub struct Authenticated(pub Caller);

impl Deref for Authenticated {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthenticated("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() || token.len() > 16 * 1024
    {
        return Err(ApiError::unauthenticated(
            "expected Authorization: Bearer <token>",
        ));
    }
    Ok(token.trim().to_owned())
}

/// The request id set by the tracing middleware (also in problems and logs).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let request_id = request_id(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::from(aion_services::Error::Internal("app state missing".into()))
            })?;
            let token = token?;
            let caller =
                aion_services::identity::authenticate(&state.services, &token, &request_id).await?;
            tracing::Span::current().record("actor", caller.actor.key());
            Ok(Authenticated(caller))
        })
    }
}

/// The optional `Idempotency-Key` header of a create.
pub struct IdemKey(pub Option<IdempotencyKey>);

impl IdemKey {
    /// The key, if the client sent one.
    pub fn get(&self) -> Option<&IdempotencyKey> {
        self.0.as_ref()
    }
}

impl FromRequest for IdemKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get("idempotency-key") {
            None => Ok(IdemKey(None)),
            Some(raw) => raw
                .to_str()
                .map_err(|_| {
                    aion_services::Error::invalid("Idempotency-Key", "must be visible ASCII")
                })
                .and_then(IdempotencyKey::parse)
                .map(|k| IdemKey(Some(k)))
                .map_err(ApiError::from),
        };
        ready(parsed)
    }
}

/// The optional `If-Match` header, as the bare version (quotes and `W/` removed).
pub struct IfMatch(pub Option<String>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(raw) => match raw.to_str() {
                Ok("*") => Ok(IfMatch(None)),
                Ok(v) => Ok(IfMatch(Some(
                    v.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_owned(),
                ))),
                Err(_) => Err(ApiError::bad_request("malformed If-Match header")),
            },
        };
        ready(parsed)
    }
}

/// Quotes a version as an `ETag` value.
pub fn etag(version: &str) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}
