//! Allocation requests: a project lead asks an open call for GPU-hours with a
//! justification; the call's committee decides (see [`crate::decisions`]).

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Caller, Grant as Role};
use crate::budget::{GpuHours, SliceSeconds};
use crate::call_input::CallState;
use crate::calls::load_visible as load_call;
use crate::entities::allocation_requests as requests;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{AllocationRequestId, CallId, OrganizationId, ProjectId};
use crate::pagination::{Page, PageRequest};
use crate::projects::load_visible as load_project;
use crate::validate::{Validator, missing};
use crate::values::parse_name;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// Lifecycle of a request: `submitted`, then `approved`, `rejected` or `withdrawn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for the committee.
    Submitted,
    /// Approved; a grant exists.
    Approved,
    /// Rejected, with a reason.
    Rejected,
    /// Withdrawn by the project.
    Withdrawn,
}

impl RequestState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    fn stored(raw: &str) -> Result<Self> {
        [
            Self::Submitted,
            Self::Approved,
            Self::Rejected,
            Self::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| Error::Internal(format!("unknown request state {raw}")))
    }
}

/// An allocation request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationRequest {
    /// Id.
    pub id: AllocationRequestId,
    /// The call.
    pub call_id: CallId,
    /// The requesting project.
    pub project_id: ProjectId,
    /// The project's organisation.
    pub organization_id: OrganizationId,
    /// Hours asked for.
    pub requested: SliceSeconds,
    /// Why.
    pub justification: String,
    /// State.
    pub state: RequestState,
    /// Hours granted, once approved.
    pub granted: Option<SliceSeconds>,
    /// The committee's reason, when rejected (or given on approval).
    pub decision_reason: Option<String>,
    /// Actor who decided.
    pub decided_by: Option<String>,
    /// When it was decided (or withdrawn).
    pub decided_at: Option<DateTime<Utc>>,
    /// Filed at.
    pub created_at: DateTime<Utc>,
}

/// A validated request to file.
#[derive(Clone, Debug, Serialize)]
pub struct NewRequest {
    project_id: ProjectId,
    hours: GpuHours,
    justification: String,
}

impl NewRequest {
    /// Validates raw input, reporting every bad field.
    pub fn parse(project_id: Uuid, gpu_hours: i64, justification: &str) -> Result<Self> {
        let mut v = Validator::default();
        let hours = v.check(GpuHours::parse("gpu_hours", gpu_hours));
        let justification = v.check(parse_name("justification", justification, 10_000));
        v.finish()?;
        match (hours, justification) {
            (Some(hours), Some(justification)) => Ok(Self {
                project_id: project_id.into(),
                hours,
                justification,
            }),
            _ => Err(missing()),
        }
    }
}

pub(crate) fn from_model(m: requests::Model) -> Result<AllocationRequest> {
    Ok(AllocationRequest {
        id: m.id.into(),
        call_id: m.call_id.into(),
        project_id: m.project_id.into(),
        organization_id: m.organization_id.into(),
        requested: SliceSeconds::from_stored(m.requested_slice_seconds)?,
        state: RequestState::stored(&m.state)?,
        granted: m
            .granted_slice_seconds
            .map(SliceSeconds::from_stored)
            .transpose()?,
        justification: m.justification,
        decision_reason: m.decision_reason,
        decided_by: m.decided_by,
        decided_at: m.decided_at,
        created_at: m.created_at,
    })
}

/// Loads a request the caller may see (the project's people and the call's committee),
/// with the allocating organisation of its call; 404 otherwise.
pub(crate) async fn load_visible(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: AllocationRequestId,
) -> Result<(AllocationRequest, OrganizationId)> {
    let not_found = || Error::NotFound("allocation request");
    let m = requests::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let call = crate::entities::calls::Entity::find_by_id(m.call_id)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let allocator = OrganizationId(call.allocator_org_id);
    if caller.can_see_project(m.organization_id.into(), m.project_id.into())
        || caller.reviews_calls_of(allocator)
    {
        Ok((from_model(m)?, allocator))
    } else {
        Err(not_found())
    }
}

pub(crate) fn record(
    action: &'static str,
    r: &AllocationRequest,
    details: serde_json::Value,
) -> Record {
    Record {
        action,
        target_kind: "allocation_request",
        target_id: r.id.to_string(),
        organization_id: Some(r.organization_id),
        project_id: Some(r.project_id),
        details,
    }
}

/// Files a request on an open call (the project's lead, its organisation's admins).
#[tracing::instrument(skip_all, err, fields(call_id = %call_id))]
pub async fn file(
    svc: &Services,
    caller: &Caller,
    call_id: CallId,
    cmd: NewRequest,
    idem: Option<&IdempotencyKey>,
) -> Result<AllocationRequest> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let call = load_call(&txn, caller, call_id).await?;
    let project = load_project(&txn, caller, cmd.project_id).await?;
    caller.require(
        true,
        caller.can_manage_project(project.organization_id, project.id),
        "project",
    )?;
    let op = format!("allocation_request.create:{call_id}");
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(r) => return Ok(r),
        idempotency::Begin::Proceed(slot) => slot,
    };
    if call.state != CallState::Open || now < call.opens_at || now >= call.closes_at {
        return Err(Error::Conflict(format!(
            "the call is {} and accepts requests only while open, from {} until {}",
            call.state.as_str(),
            call.opens_at,
            call.closes_at
        )));
    }
    let live = requests::Entity::find()
        .filter(requests::Column::CallId.eq(call_id.0))
        .filter(requests::Column::ProjectId.eq(project.id.0))
        .filter(requests::Column::State.ne(RequestState::Withdrawn.as_str()))
        .count(&txn)
        .await?;
    if live > 0 {
        return Err(Error::Conflict(
            "the project already has a request on this call; withdraw it first".into(),
        ));
    }
    let model = requests::ActiveModel {
        id: Set(AllocationRequestId::new().0),
        call_id: Set(call_id.0),
        project_id: Set(project.id.0),
        organization_id: Set(project.organization_id.0),
        requested_slice_seconds: Set(cmd.hours.slice_seconds().get()),
        justification: Set(cmd.justification.clone()),
        state: Set(RequestState::Submitted.as_str().to_owned()),
        granted_slice_seconds: Set(None),
        decision_reason: Set(None),
        decided_by: Set(None),
        decided_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let request = from_model(model)?;
    let details = json!({"call_id": call_id, "gpu_hours": cmd.hours.get()});
    audit::append(
        &txn,
        now,
        caller,
        record("allocation_request.create", &request, details),
    )
    .await?;
    idempotency::finish(&txn, slot, &request).await?;
    txn.commit().await?;
    Ok(request)
}

/// Reads one request.
pub async fn get(
    svc: &Services,
    caller: &Caller,
    id: AllocationRequestId,
) -> Result<AllocationRequest> {
    Ok(load_visible(&svc.db, caller, id).await?.0)
}

/// Lists a call's requests: all of them for its committee, else the caller's projects' ones.
pub async fn list_for_call(
    svc: &Services,
    caller: &Caller,
    call_id: CallId,
    page: &PageRequest,
) -> Result<Page<AllocationRequest>> {
    let call = load_call(&svc.db, caller, call_id).await?;
    let mut query = requests::Entity::find().filter(requests::Column::CallId.eq(call_id.0));
    if !caller.reviews_calls_of(call.allocator_org_id) {
        let (mut orgs, mut projects) = (Vec::new(), Vec::new());
        for g in &caller.grants {
            match g {
                Role::Organization(o, _) => orgs.push(o.0),
                Role::Project(_, p, _) => projects.push(p.0),
                Role::Platform(_) => {}
            }
        }
        query = query.filter(
            Condition::any()
                .add(requests::Column::OrganizationId.is_in(orgs))
                .add(requests::Column::ProjectId.is_in(projects)),
        );
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(requests::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(requests::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |r| r.id.to_string()))
}

/// Withdraws a submitted request (the project's lead, its organisation's admins).
#[tracing::instrument(skip_all, err, fields(request_id = %id))]
pub async fn withdraw(
    svc: &Services,
    caller: &Caller,
    id: AllocationRequestId,
) -> Result<AllocationRequest> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let (current, _) = load_visible(&txn, caller, id).await?;
    caller.require(
        true,
        caller.can_manage_project(current.organization_id, current.project_id),
        "allocation request",
    )?;
    crate::decisions::set_state(&txn, &current, RequestState::Withdrawn, |m| {
        m.decided_at = Set(Some(now));
    })
    .await?;
    let (updated, _) = load_visible(&txn, caller, id).await?;
    audit::append(
        &txn,
        now,
        caller,
        record("allocation_request.withdraw", &updated, json!({})),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}
