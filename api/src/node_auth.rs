//! Extractors of the agent API. [`NodeAuthenticated`] admits only a valid node credential
//! (`aionnode_…`) and gives the node it belongs to; it is not a `Caller`, so no user
//! route accepts it, and user tokens are refused here. [`JoinBearer`] carries the join
//! token presented to `POST /v1/agent/register`, checked by the registration itself.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::request_id;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use aion_services::agent::{self, NodeAuth};
use futures::future::{LocalBoxFuture, Ready, ready};

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer header"))?
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer")
                && !token.trim().is_empty()
                && token.len() <= 1024 =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthenticated(
            "expected Authorization: Bearer <token>",
        )),
    }
}

/// The node of an agent request authenticated by its node credential.
pub struct NodeAuthenticated {
    /// The node and the credential used.
    pub auth: NodeAuth,
    /// The request id.
    pub request_id: String,
}

impl FromRequest for NodeAuthenticated {
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
            let auth = agent::authenticate(&state.services, &token?).await?;
            tracing::Span::current().record("actor", format!("node:{}", auth.node_id));
            Ok(NodeAuthenticated { auth, request_id })
        })
    }
}

/// The bearer secret of a registration (a join token, checked when consumed).
pub struct JoinBearer {
    /// The presented secret.
    pub secret: String,
    /// The request id.
    pub request_id: String,
}

impl FromRequest for JoinBearer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(bearer(req).map(|secret| JoinBearer {
            secret,
            request_id: request_id(req),
        }))
    }
}
