//! `/v1/organizations/{id}/projects` and `/v1/projects/{id}`.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey, IfMatch, etag};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use aion_api_types::{Problem, Project, ProjectCreate, ProjectList, ProjectUpdate};
use aion_services::projects::{self, NewProject, ProjectPatch};
use uuid::Uuid;

/// Creates a project (organisation admins).
#[utoipa::path(tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Organisation"), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ProjectCreate,
    responses(
        (status = 201, body = Project),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/organizations/{id}/projects")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    org: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<ProjectCreate>,
) -> Result<HttpResponse, ApiError> {
    let cmd = NewProject::parse(&body.slug, &body.name, body.description.as_deref())?;
    let project = projects::create(
        &state.services,
        &caller,
        org.into_inner().into(),
        cmd,
        idem.get(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(etag(&project.version()))
        .json(convert::project(project)))
}

/// Lists an organisation's projects visible to the caller.
#[utoipa::path(tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, body = ProjectList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations/{id}/projects")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    org: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = projects::list(
        &state.services,
        &caller,
        org.into_inner().into(),
        &q.page()?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(ProjectList {
        items: page.items.into_iter().map(convert::project).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads a project.
#[utoipa::path(tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Project, headers(("ETag" = String))),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/projects/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = projects::get(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&project.version()))
        .json(convert::project(project)))
}

/// Changes a project (project leads, organisation admins).
#[utoipa::path(tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = ProjectUpdate,
    responses(
        (status = 200, body = Project),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[patch("/v1/projects/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    body: web::Json<ProjectUpdate>,
) -> Result<HttpResponse, ApiError> {
    let patch = ProjectPatch::parse(body.name.as_deref(), body.description.as_deref())?;
    let project = projects::update(
        &state.services,
        &caller,
        id.into_inner().into(),
        patch,
        if_match.0.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&project.version()))
        .json(convert::project(project)))
}

/// Deletes a project with its memberships and tokens (organisation admins).
#[utoipa::path(tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/projects/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    projects::delete(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::NoContent().finish())
}
