//! `/v1/calls/{id}/requests` and `/v1/allocation-requests/{id}`: requests and decisions.

use super::ListQuery;
use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, get, post, web};
use aion_api_types::{
    AllocationRequest, AllocationRequestCreate, AllocationRequestList, Approval, Approve, Problem,
    Reject,
};
use aion_services::allocation_requests::{self as requests, NewRequest};
use aion_services::decisions::{self, Rejection};
use uuid::Uuid;

fn ok(r: requests::AllocationRequest) -> HttpResponse {
    HttpResponse::Ok().json(convert::allocation_request(r))
}

/// Files a request for a project on an open call (project leads, organisation admins).
#[utoipa::path(tag = "allocation", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Call"), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AllocationRequestCreate,
    responses(
        (status = 201, body = AllocationRequest),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/calls/{id}/requests")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    call: web::Path<Uuid>,
    idem: IdemKey,
    body: web::Json<AllocationRequestCreate>,
) -> Result<HttpResponse, ApiError> {
    let cmd = NewRequest::parse(body.project_id, body.gpu_hours, &body.justification)?;
    let r = requests::file(
        &state.services,
        &caller,
        call.into_inner().into(),
        cmd,
        idem.get(),
    )
    .await?;
    Ok(HttpResponse::Created().json(convert::allocation_request(r)))
}

/// Lists a call's requests: all for its committee, the caller's projects' ones otherwise.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, body = AllocationRequestList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/calls/{id}/requests")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    call: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = requests::list_for_call(
        &state.services,
        &caller,
        call.into_inner().into(),
        &q.page()?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(AllocationRequestList {
        items: page
            .items
            .into_iter()
            .map(convert::allocation_request)
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads a request.
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = AllocationRequest),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/allocation-requests/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(requests::get(
        &state.services,
        &caller,
        id.into_inner().into(),
    )
    .await?))
}

/// Withdraws a submitted request (the project's lead).
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = AllocationRequest),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[post("/v1/allocation-requests/{id}/withdraw")]
pub async fn withdraw(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(requests::withdraw(
        &state.services,
        &caller,
        id.into_inner().into(),
    )
    .await?))
}

/// Approves a request, possibly for fewer hours, creating its grant (the call's allocators).
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Approve,
    responses(
        (status = 200, body = Approval),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/allocation-requests/{id}/approve")]
pub async fn approve(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional: none approves every hour requested.
    let body: Approve = if raw.iter().all(u8::is_ascii_whitespace) {
        Approve::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let cmd = decisions::Approval::parse(body.gpu_hours, body.reason.as_deref())?;
    let (request, grant) =
        decisions::approve(&state.services, &caller, id.into_inner().into(), cmd).await?;
    Ok(HttpResponse::Ok().json(Approval {
        request: convert::allocation_request(request),
        grant: convert::budget_grant(grant),
    }))
}

/// Rejects a request with a reason (the call's allocators).
#[utoipa::path(tag = "allocation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Reject,
    responses(
        (status = 200, body = AllocationRequest),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/allocation-requests/{id}/reject")]
pub async fn reject(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<Reject>,
) -> Result<HttpResponse, ApiError> {
    let cmd = Rejection::parse(&body.reason)?;
    Ok(ok(decisions::reject(
        &state.services,
        &caller,
        id.into_inner().into(),
        cmd,
    )
    .await?))
}
