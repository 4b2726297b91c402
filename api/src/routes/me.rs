//! `GET /v1/me`: who the caller is and which roles it holds.

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpResponse, get, web};
use aion_api_types::{Me, Problem};

/// Describes the caller.
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/me")]
pub async fn get_me(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let me = aion_services::identity::me(&state.services, &caller).await?;
    Ok(HttpResponse::Ok().json(convert::me(&caller.actor, me)))
}
