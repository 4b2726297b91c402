//! `/v1/organizations/{id}/quota` and `/v1/projects/{id}/quota`.

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IfMatch, etag};
use actix_web::{HttpResponse, get, put, web};
use aion_api_types::{Problem, Quota, QuotaUpdate};
use aion_services::quota_settings;
use aion_services::quotas::{self, QuotaLimits};
use uuid::Uuid;

fn ok(q: quotas::Quota) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(etag(&q.version()))
        .json(convert::quota(q))
}

fn limits(body: QuotaUpdate) -> Result<QuotaLimits, aion_services::Error> {
    QuotaLimits::parse(
        body.max_compute_slices,
        body.max_preemptible_compute_slices,
        body.per_profile.unwrap_or_default(),
        body.per_site.unwrap_or_default(),
    )
}

/// Reads an organisation's quota (its kind's default until one is set).
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Quota, headers(("ETag" = String))),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations/{id}/quota")]
pub async fn get_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(quota_settings::get_org(
        &state.services,
        &caller,
        id.into_inner().into(),
    )
    .await?))
}

/// Sets an organisation's quota (platform admins).
#[utoipa::path(tag = "quotas", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = QuotaUpdate,
    responses(
        (status = 200, body = Quota),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[put("/v1/organizations/{id}/quota")]
pub async fn put_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    body: web::Json<QuotaUpdate>,
) -> Result<HttpResponse, ApiError> {
    let limits = limits(body.into_inner())?;
    Ok(ok(quota_settings::set_org(
        &state.services,
        &caller,
        id.into_inner().into(),
        limits,
        if_match.0.as_deref(),
    )
    .await?))
}

/// Reads a project's quota (its organisation's until one is set).
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Quota, headers(("ETag" = String))),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/projects/{id}/quota")]
pub async fn get_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(quota_settings::get_project(
        &state.services,
        &caller,
        id.into_inner().into(),
    )
    .await?))
}

/// Sets a project's quota (organisation admins), within the organisation's.
#[utoipa::path(tag = "quotas", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = QuotaUpdate,
    responses(
        (status = 200, body = Quota),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[put("/v1/projects/{id}/quota")]
pub async fn put_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    body: web::Json<QuotaUpdate>,
) -> Result<HttpResponse, ApiError> {
    let limits = limits(body.into_inner())?;
    Ok(ok(quota_settings::set_project(
        &state.services,
        &caller,
        id.into_inner().into(),
        limits,
        if_match.0.as_deref(),
    )
    .await?))
}
