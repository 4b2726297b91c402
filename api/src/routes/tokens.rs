//! API tokens of organisations and projects: `/v1/{organizations|projects}/{id}/tokens`.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, delete, get, post, web};
use aion_api_types::{ApiToken, ApiTokenList, CreatedToken, Problem, TokenCreate};
use aion_services::scope::Scope;
use aion_services::tokens::{self, NewToken};
use uuid::Uuid;

async fn create(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    idem: &IdemKey,
    body: &TokenCreate,
) -> Result<HttpResponse, ApiError> {
    let cmd = NewToken::parse(&body.name, &body.role, body.expires_at)?;
    let created = tokens::create(&state.services, caller, scope, cmd, idem.get()).await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        token: convert::token(created.token),
        secret: created.secret,
    }))
}

async fn list(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    q: &ListQuery,
) -> Result<HttpResponse, ApiError> {
    let page = tokens::list(&state.services, caller, scope, &q.page()?).await?;
    Ok(HttpResponse::Ok().json(ApiTokenList {
        items: page.items.into_iter().map(convert::token).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn revoke(
    state: &AppState,
    caller: &Authenticated,
    scope: Scope,
    token: Uuid,
) -> Result<HttpResponse, ApiError> {
    let token = tokens::revoke(&state.services, caller, scope, token.into()).await?;
    Ok(HttpResponse::Ok().json(convert::token(token)))
}

/// Creates an organisation token; the secret is in this answer only.
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = TokenCreate, responses((status = 201, body = CreatedToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/organizations/{id}/tokens")]
pub async fn create_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<TokenCreate>,
) -> Result<HttpResponse, ApiError> {
    create(
        &state,
        &caller,
        Scope::Organization(id.into_inner().into()),
        &idem,
        &body,
    )
    .await
}

/// Lists an organisation's tokens (organisation admins).
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = ApiTokenList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/organizations/{id}/tokens")]
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

/// Revokes an organisation token.
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 200, body = ApiToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[delete("/v1/organizations/{id}/tokens/{token_id}")]
pub async fn revoke_org(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, token) = path.into_inner();
    revoke(&state, &caller, Scope::Organization(id.into()), token).await
}

/// Creates a project token; the secret is in this answer only.
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = TokenCreate, responses((status = 201, body = CreatedToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/projects/{id}/tokens")]
pub async fn create_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<TokenCreate>,
) -> Result<HttpResponse, ApiError> {
    create(
        &state,
        &caller,
        Scope::Project(id.into_inner().into()),
        &idem,
        &body,
    )
    .await
}

/// Lists a project's tokens (project leads, organisation admins).
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery),
    responses((status = 200, body = ApiTokenList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/projects/{id}/tokens")]
pub async fn list_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    list(&state, &caller, Scope::Project(id.into_inner().into()), &q).await
}

/// Revokes a project token.
#[utoipa::path(tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 200, body = ApiToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[delete("/v1/projects/{id}/tokens/{token_id}")]
pub async fn revoke_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, token) = path.into_inner();
    revoke(&state, &caller, Scope::Project(id.into()), token).await
}
