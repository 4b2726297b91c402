//! `/v1/projects/{id}/leases` and `/v1/leases/{id}`.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, delete, get, post, web};
use aion_api_types::{Lease, LeaseCreate, LeaseList, Problem};
use aion_services::lease_state::LeaseState;
use aion_services::leases::{self, NewLease};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Requests MIG slices; quota and budget are checked and held at once.
#[utoipa::path(tag = "leases", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project"), ("Idempotency-Key" = Option<String>, Header)),
    request_body = LeaseCreate,
    responses(
        (status = 201, body = Lease),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/projects/{id}/leases")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    project: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<LeaseCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cmd = NewLease::parse(
        &b.profile,
        b.count,
        b.gpu_model.as_deref(),
        b.site.as_deref(),
        b.same_node,
        b.preemptible,
        b.duration_s,
    )?;
    let lease = leases::create(
        &state.services,
        &caller,
        project.into_inner().into(),
        cmd,
        idem.get(),
    )
    .await?;
    Ok(HttpResponse::Created().json(convert::lease(lease)))
}

/// `?state=&limit=&cursor=` of the lease list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaseListQuery {
    /// Only leases in this state.
    pub state: Option<String>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists a project's leases, newest first.
#[utoipa::path(tag = "leases", security(("bearer" = [])), params(("id" = Uuid, Path), LeaseListQuery), responses(
    (status = 200, body = LeaseList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/projects/{id}/leases")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    project: web::Path<Uuid>,
    q: web::Query<LeaseListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let filter = q
        .state
        .as_deref()
        .map(|s| LeaseState::parse("state", s))
        .transpose()?;
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let page = leases::list(
        &state.services,
        &caller,
        project.into_inner().into(),
        filter,
        &page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(LeaseList {
        items: page.items.into_iter().map(convert::lease).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `?wait=` of a lease read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Long-poll up to this many seconds (max 60) while the lease is pending or scheduled.
    pub wait: Option<u64>,
}

/// Reads a lease, optionally waiting for it to leave `pending`/`scheduled`.
#[utoipa::path(tag = "leases", security(("bearer" = [])), params(("id" = Uuid, Path), WaitQuery), responses(
    (status = 200, body = Lease),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/leases/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let lease = leases::get(
        &state.services,
        &caller,
        id.into_inner().into(),
        q.wait.unwrap_or(0),
    )
    .await?;
    Ok(HttpResponse::Ok().json(convert::lease(lease)))
}

/// Releases a lease (harmless when already ended).
#[utoipa::path(tag = "leases", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Lease),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/leases/{id}")]
pub async fn release(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let lease = leases::release(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(convert::lease(lease)))
}
