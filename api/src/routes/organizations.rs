//! `/v1/organizations`.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey, IfMatch, etag};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use aion_api_types::{
    Organization, OrganizationCreate, OrganizationList, OrganizationUpdate, Problem,
};
use aion_services::organizations::{self as orgs, NewOrganization, OrganizationPatch};
use uuid::Uuid;

/// Creates an organisation (platform admins).
#[utoipa::path(tag = "organizations", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same body")),
    request_body = OrganizationCreate,
    responses(
        (status = 201, body = Organization),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/organizations")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<OrganizationCreate>,
) -> Result<HttpResponse, ApiError> {
    let cmd = NewOrganization::parse(&body.slug, &body.name, &body.kind, body.country.as_deref())?;
    let org = orgs::create(&state.services, &caller, cmd, idem.get()).await?;
    Ok(HttpResponse::Created()
        .insert_header(etag(&org.version()))
        .json(convert::organization(org)))
}

/// Lists the organisations the caller may see.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = OrganizationList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = orgs::list(&state.services, &caller, &q.page()?).await?;
    Ok(HttpResponse::Ok().json(OrganizationList {
        items: page.items.into_iter().map(convert::organization).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads an organisation.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Organization, headers(("ETag" = String))),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org = orgs::get(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&org.version()))
        .json(convert::organization(org)))
}

/// Changes an organisation; `If-Match` with the `ETag` guards against lost updates.
#[utoipa::path(tag = "organizations", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = OrganizationUpdate,
    responses(
        (status = 200, body = Organization),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[patch("/v1/organizations/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    body: web::Json<OrganizationUpdate>,
) -> Result<HttpResponse, ApiError> {
    let patch = OrganizationPatch::parse(
        body.name.as_deref(),
        body.kind.as_deref(),
        body.country.as_deref(),
    )?;
    let org = orgs::update(
        &state.services,
        &caller,
        id.into_inner().into(),
        patch,
        if_match.0.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&org.version()))
        .json(convert::organization(org)))
}

/// Deletes an organisation without projects (platform admins).
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/organizations/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    orgs::delete(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::NoContent().finish())
}
