//! `/v1/grants` and `/v1/projects/{id}/grants`: budgets of GPU-hours.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, get, post, web};
use aion_api_types::{
    AdjustmentCreate, Grant, GrantCreate, GrantList, LedgerEntry, LedgerList, Problem,
};
use aion_services::grants::{self, NewContractGrant};
use aion_services::ledger::{self, NewAdjustment};
use uuid::Uuid;

/// Creates a commercial-contract grant (platform admins).
#[utoipa::path(tag = "allocation", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = GrantCreate,
    responses(
        (status = 201, body = Grant),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/grants")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<GrantCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cmd = NewContractGrant::parse(
        b.project_id,
        &b.gpu_model,
        b.gpu_hours,
        b.valid_from,
        b.valid_until,
        &b.reference,
    )?;
    let grant = grants::create_contract(&state.services, &caller, cmd, idem.get()).await?;
    Ok(HttpResponse::Created().json(convert::budget_grant(grant)))
}

/// Reads a grant.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Grant),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/grants/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let grant = grants::get(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(convert::budget_grant(grant)))
}

/// Lists a project's grants.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, body = GrantList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/projects/{id}/grants")]
pub async fn list_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    project: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = grants::list_for_project(
        &state.services,
        &caller,
        project.into_inner().into(),
        &q.page()?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(GrantList {
        items: page.items.into_iter().map(convert::budget_grant).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Lists a grant's budget ledger, oldest entry first (the project's members and the
/// allocators who fund it).
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, body = LedgerList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/grants/{id}/ledger")]
pub async fn list_ledger(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = ledger::list(&state.services, &caller, id.into_inner().into(), &q.page()?).await?;
    Ok(HttpResponse::Ok().json(LedgerList {
        items: page.items.into_iter().map(convert::ledger_entry).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Adjusts a grant's budget by hand, with a reason (platform admins, and allocators of
/// the organisation that funds a call grant). Taking back more than is left overdraws
/// the grant: its leases end after the configured grace.
#[utoipa::path(tag = "allocation", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AdjustmentCreate,
    responses(
        (status = 201, body = LedgerEntry),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/grants/{id}/adjustments")]
pub async fn adjust(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<AdjustmentCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cmd = NewAdjustment::parse(b.slice_seconds, &b.reason)?;
    let entry = ledger::adjust(
        &state.services,
        &caller,
        id.into_inner().into(),
        cmd,
        idem.get(),
    )
    .await?;
    Ok(HttpResponse::Created().json(convert::ledger_entry(entry)))
}
