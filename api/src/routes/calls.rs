//! `/v1/calls`: calls for allocation requests, run by allocating organisations.

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey, IfMatch, etag};
use actix_web::{HttpResponse, get, patch, post, web};
use aion_api_types::{Call, CallCreate, CallList, CallUpdate, Problem};
use aion_services::call_input::{CallFields, CallPatch, CallState, NewCall};
use aion_services::calls;
use aion_services::pagination::PageRequest;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// `?state=&limit=&cursor=` of the call list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Only calls in this state: `draft`, `open` or `closed`.
    pub state: Option<String>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn ok(call: calls::Call) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(etag(&call.version()))
        .json(convert::call(call))
}

/// Creates a draft call (allocators of the organisation, platform admins).
#[utoipa::path(tag = "allocation", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = CallCreate,
    responses(
        (status = 201, body = Call),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/calls")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<CallCreate>,
) -> Result<HttpResponse, ApiError> {
    let cmd = NewCall::parse(CallFields {
        organization_id: body.organization_id,
        title: &body.title,
        description: body.description.as_deref(),
        gpu_model: &body.gpu_model,
        pool_gpu_hours: body.pool_gpu_hours,
        opens_at: body.opens_at,
        closes_at: body.closes_at,
        period_start: body.period_start,
        period_end: body.period_end,
    })?;
    let call = calls::create(&state.services, &caller, cmd, idem.get()).await?;
    Ok(HttpResponse::Created()
        .insert_header(etag(&call.version()))
        .json(convert::call(call)))
}

/// Lists calls: open and closed ones for everyone, drafts for their organisation.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(CallQuery), responses(
    (status = 200, body = CallList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/calls")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<CallQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = q
        .state
        .as_deref()
        .map(|s| CallState::parse("state", s))
        .transpose()?;
    let page = calls::list(&state.services, &caller, filter, &page).await?;
    Ok(HttpResponse::Ok().json(CallList {
        items: page.items.into_iter().map(convert::call).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads a call with its pool consumption.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Call, headers(("ETag" = String))),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/calls/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(calls::get(
        &state.services,
        &caller,
        id.into_inner().into(),
    )
    .await?))
}

/// Changes a draft call, or raises the pool of an open or closed one.
#[utoipa::path(tag = "allocation", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = CallUpdate,
    responses(
        (status = 200, body = Call),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[patch("/v1/calls/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    body: web::Json<CallUpdate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let mut patch = CallPatch::parse(
        b.title.as_deref(),
        b.description.as_deref(),
        b.gpu_model.as_deref(),
        b.pool_gpu_hours,
    )?;
    patch.opens_at = b.opens_at;
    patch.closes_at = b.closes_at;
    patch.period_start = b.period_start;
    patch.period_end = b.period_end;
    let call = calls::update(
        &state.services,
        &caller,
        id.into_inner().into(),
        patch,
        if_match.0.as_deref(),
    )
    .await?;
    Ok(ok(call))
}

/// Opens a draft call for requests.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Call),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/calls/{id}/open")]
pub async fn open(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(calls::transition(
        &state.services,
        &caller,
        id.into_inner().into(),
        CallState::Open,
    )
    .await?))
}

/// Closes an open call; its pending requests can still be decided.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Call),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/calls/{id}/close")]
pub async fn close(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(calls::transition(
        &state.services,
        &caller,
        id.into_inner().into(),
        CallState::Closed,
    )
    .await?))
}
