//! The committee's decisions on allocation requests. Approval creates the grant in the
//! same transaction and never exceeds what is left of the call's pool, even when
//! approvals race: each takes the call's row lock before summing what is granted.

use crate::Services;
use crate::allocation_requests::{AllocationRequest, RequestState, load_visible, record};
use crate::audit;
use crate::authz::Caller;
use crate::budget::GpuHours;
use crate::calls;
use crate::entities::allocation_requests as requests;
use crate::error::{Error, Result};
use crate::grants::{self, Grant, GrantSource};
use crate::ids::{AllocationRequestId, GrantId};
use crate::values::parse_name;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// A validated approval: how many hours (default: all that were asked for).
#[derive(Clone, Debug, Default)]
pub struct Approval {
    hours: Option<GpuHours>,
    reason: Option<String>,
}

impl Approval {
    /// Validates raw input.
    pub fn parse(gpu_hours: Option<i64>, reason: Option<&str>) -> Result<Self> {
        let hours = gpu_hours
            .map(|h| GpuHours::parse("gpu_hours", h))
            .transpose()?;
        let reason = reason.map(|r| parse_name("reason", r, 2000)).transpose()?;
        Ok(Self { hours, reason })
    }
}

/// A validated rejection; the reason is required.
#[derive(Clone, Debug)]
pub struct Rejection {
    reason: String,
}

impl Rejection {
    /// Validates raw input.
    pub fn parse(reason: &str) -> Result<Self> {
        Ok(Self {
            reason: parse_name("reason", reason, 2000)?,
        })
    }
}

/// Moves a `submitted` request to `to`, failing with a conflict if it was decided meanwhile.
pub(crate) async fn set_state(
    db: &impl ConnectionTrait,
    r: &AllocationRequest,
    to: RequestState,
    fill: impl FnOnce(&mut requests::ActiveModel),
) -> Result<()> {
    if r.state != RequestState::Submitted {
        return Err(Error::Conflict(format!(
            "the request is already {}",
            r.state.as_str()
        )));
    }
    let mut model = requests::ActiveModel {
        state: Set(to.as_str().to_owned()),
        ..Default::default()
    };
    fill(&mut model);
    let res = requests::Entity::update_many()
        .set(model)
        .filter(requests::Column::Id.eq(r.id.0))
        .filter(requests::Column::State.eq(RequestState::Submitted.as_str()))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Conflict("the request was decided meanwhile".into()));
    }
    Ok(())
}

/// Approves a submitted request, creating its grant over the call's period.
#[tracing::instrument(skip_all, err, fields(request_id = %id))]
pub async fn approve(
    svc: &Services,
    caller: &Caller,
    id: AllocationRequestId,
    cmd: Approval,
) -> Result<(AllocationRequest, Grant)> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let (found, allocator) = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.can_allocate(allocator), "allocation request")?;
    // Lock first, then read: what we sum below includes every committed approval.
    calls::lock(&txn, found.call_id).await?;
    let call = calls::load_visible(&txn, caller, found.call_id).await?;
    let (current, _) = load_visible(&txn, caller, id).await?;
    let amount = cmd.hours.map_or(current.requested, GpuHours::slice_seconds);
    if amount > current.requested {
        return Err(Error::invalid(
            "gpu_hours",
            format!(
                "must be at most the {} GPU-hours requested",
                current.requested.gpu_hours()
            ),
        ));
    }
    if amount > call.remaining() {
        return Err(Error::Conflict(format!(
            "only {} GPU-hours are left in the call's pool of {}",
            call.remaining().gpu_hours(),
            call.pool.gpu_hours()
        )));
    }
    let reason = cmd.reason.clone();
    set_state(&txn, &current, RequestState::Approved, |m| {
        m.granted_slice_seconds = Set(Some(amount.get()));
        m.decision_reason = Set(reason);
        m.decided_by = Set(Some(caller.actor.key()));
        m.decided_at = Set(Some(now));
    })
    .await?;
    calls::touch(&txn, &call, now).await?;
    let grant = Grant {
        id: GrantId::new(),
        project_id: current.project_id,
        organization_id: current.organization_id,
        gpu_model: call.gpu_model,
        amount,
        valid_from: call.period_start,
        valid_until: call.period_end,
        source: GrantSource::Call,
        call_id: Some(call.id),
        request_id: Some(id),
        funded_by: Some(call.allocator_org_id),
        reference: String::new(),
        created_by: caller.actor.key(),
        created_at: now,
        standing: Default::default(),
        warnings: Vec::new(),
        overdrawn_since: None,
    };
    let (updated, _) = load_visible(&txn, caller, id).await?;
    let details = json!({"granted_slice_seconds": amount.get(), "requested_slice_seconds": current.requested.get()});
    audit::append(
        &txn,
        now,
        caller,
        record("allocation_request.approve", &updated, details),
    )
    .await?;
    let grant = grants::insert(&txn, now, caller, grant).await?;
    txn.commit().await?;
    Ok((updated, grant))
}

/// Rejects a submitted request with a reason.
#[tracing::instrument(skip_all, err, fields(request_id = %id))]
pub async fn reject(
    svc: &Services,
    caller: &Caller,
    id: AllocationRequestId,
    cmd: Rejection,
) -> Result<AllocationRequest> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let (current, allocator) = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.can_allocate(allocator), "allocation request")?;
    let reason = cmd.reason.clone();
    set_state(&txn, &current, RequestState::Rejected, |m| {
        m.decision_reason = Set(Some(reason));
        m.decided_by = Set(Some(caller.actor.key()));
        m.decided_at = Set(Some(now));
    })
    .await?;
    let (updated, _) = load_visible(&txn, caller, id).await?;
    audit::append(
        &txn,
        now,
        caller,
        record(
            "allocation_request.reject",
            &updated,
            json!({"reason": cmd.reason}),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}
