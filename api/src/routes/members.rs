//! Members of organisations and projects: `/v1/{organizations|projects}/{id}/members`.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use aion_api_types::{Member, MemberAdd, MemberList, MemberUpdate, Problem};
use aion_services::members::{self, MemberRef};
use aion_services::scope::Scope;
use uuid::Uuid;

async fn add(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    idem: &IdemKey,
    body: &MemberAdd,
) -> Result<HttpResponse, ApiError> {
    let who = MemberRef::parse(
        body.user_id,
        body.issuer.as_deref(),
        body.subject.as_deref(),
        body.email.as_deref(),
    )?;
    let member = members::add(&state.services, caller, scope, who, &body.role, idem.get()).await?;
    Ok(HttpResponse::Created().json(convert::member(member)))
}

async fn list(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    q: &ListQuery,
) -> Result<HttpResponse, ApiError> {
    let page = members::list(&state.services, caller, scope, &q.page()?).await?;
    Ok(HttpResponse::Ok().json(MemberList {
        items: page.items.into_iter().map(convert::member).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn update(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    user: Uuid,
    body: &MemberUpdate,
) -> Result<HttpResponse, ApiError> {
    let member = members::set_role(&state.services, caller, scope, user.into(), &body.role).await?;
    Ok(HttpResponse::Ok().json(convert::member(member)))
}

async fn remove(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    user: Uuid,
) -> Result<HttpResponse, ApiError> {
    members::remove(&state.services, caller, scope, user.into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a member to an organisation (organisation admins).
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = MemberAdd, responses((status = 201, body = Member), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/organizations/{id}/members")]
pub async fn add_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<MemberAdd>,
) -> Result<HttpResponse, ApiError> {
    add(
        &state,
        &caller,
        Scope::Organization(id.into_inner().into()),
        &idem,
        &body,
    )
    .await
}

/// Lists an organisation's members.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = MemberList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/organizations/{id}/members")]
pub async fn list_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    list(
        &state,
        &caller,
        Scope::Organization(id.into_inner().into()),
        &q,
    )
    .await
}

/// Changes an organisation member's role.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = MemberUpdate, responses((status = 200, body = Member), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[patch("/v1/organizations/{id}/members/{user_id}")]
pub async fn update_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<MemberUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    update(&state, &caller, Scope::Organization(id.into()), user, &body).await
}

/// Removes an organisation member.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[delete("/v1/organizations/{id}/members/{user_id}")]
pub async fn remove_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    remove(&state, &caller, Scope::Organization(id.into()), user).await
}

/// Adds a member to a project (project leads, organisation admins).
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = MemberAdd, responses((status = 201, body = Member), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/projects/{id}/members")]
pub async fn add_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<MemberAdd>,
) -> Result<HttpResponse, ApiError> {
    add(
        &state,
        &caller,
        Scope::Project(id.into_inner().into()),
        &idem,
        &body,
    )
    .await
}

/// Lists a project's members.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = MemberList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/projects/{id}/members")]
pub async fn list_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    list(&state, &caller, Scope::Project(id.into_inner().into()), &q).await
}

/// Changes a project member's role.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = MemberUpdate, responses((status = 200, body = Member), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[patch("/v1/projects/{id}/members/{user_id}")]
pub async fn update_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<MemberUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    update(&state, &caller, Scope::Project(id.into()), user, &body).await
}

/// Removes a project member.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[delete("/v1/projects/{id}/members/{user_id}")]
pub async fn remove_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    remove(&state, &caller, Scope::Project(id.into()), user).await
}
