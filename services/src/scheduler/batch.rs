//! One batch: take pending leases in creation order, decide each one in the engine
//! (placement, or preemption then placement, or a reason to wait, or failure), and
//! write every decision in one transaction (see [`super::commit`]).

use super::BatchReport;
use super::SchedulerState;
use super::commit::{self, Placed, Plan};
use super::restore::{FleetView, PLACEABLE_LABEL};
use crate::Services;
use crate::entities::leases;
use crate::error::{Error, Result};
use crate::lease_state::LeaseState;
use aion_mig::{Constraints, GpuModel, MigError, Request};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::str::FromStr;
use tracing::field::Empty;

/// Places up to one batch of pending leases and commits the outcome.
#[tracing::instrument(
    name = "scheduler_batch",
    skip_all,
    fields(batch = Empty, placed = Empty, pending = Empty, preempted = Empty, failed = Empty)
)]
pub(super) async fn place_pending(
    svc: &Services,
    state: &mut SchedulerState,
    now: DateTime<Utc>,
) -> Result<BatchReport> {
    let txn = svc.write_txn().await?;
    if let Some(epoch) = state.fence {
        super::leader::fence(&txn, epoch).await?;
    }
    let mut query = leases::Entity::find()
        .filter(leases::Column::State.eq(LeaseState::Pending.as_str()))
        .order_by_asc(leases::Column::Id)
        .limit(state.config.batch_size)
        // Row locks on PostgreSQL: a concurrent release waits for this batch, and the
        // transitions below never find a pending lease gone.
        .lock_exclusive();
    if let Some(after) = state.cursor {
        query = query.filter(leases::Column::Id.gt(after));
    }
    let pending = query.all(&txn).await?;
    let cursor_before = state.cursor;
    // A full batch moves the cursor on, so leases that cannot be placed at the head of
    // the queue do not starve the ones behind them.
    state.cursor = match pending.last() {
        Some(last) if pending.len() as u64 >= state.config.batch_size => Some(last.id),
        _ => None,
    };
    if pending.is_empty() {
        txn.commit().await?;
        return Ok(BatchReport::default());
    }
    let timeout =
        chrono::Duration::from_std(state.config.pending_timeout).unwrap_or(chrono::Duration::MAX);
    let view = state
        .view
        .as_mut()
        .ok_or_else(|| Error::Internal("the scheduler has no fleet".into()))?;
    let mut plan = Plan::default();
    for lease in pending.iter() {
        decide(view, lease, now, timeout, state.behind, &mut plan);
    }
    if state.behind && !commit::targets_placeable(&txn, &plan).await? {
        // The view placed on a node or GPU that stopped being placeable since it was
        // built: write nothing, rebuild at the next tick (the engine holds this plan),
        // and take the same leases again then.
        txn.rollback().await?;
        state.invalidate();
        state.cursor = cursor_before;
        tracing::debug!("scheduler: batch dropped, its fleet view was out of date");
        return Ok(BatchReport {
            examined: pending.len(),
            pending: pending.len(),
            ..BatchReport::default()
        });
    }
    let touched = commit::write(&txn, &plan, now).await?;
    txn.commit().await?;
    state.committed(&plan.placed);
    // A view read in the background already brings the nodes this batch lacked.
    if plan.rebuild || (plan.behind_rebuild && !state.rebuild_coming()) {
        state.invalidate();
    }
    let report = BatchReport {
        examined: pending.len(),
        placed: plan.placed.len(),
        pending: plan.pending,
        preempted: plan.preempt.len(),
        failed: plan.fail.len(),
        expired: 0,
    };
    record(&report);
    if report.placed + report.preempted + report.failed > 0 || !plan.reasons.is_empty() {
        svc.events.lease_changed();
        svc.events.nodes_changed(touched);
    }
    Ok(report)
}

fn record(r: &BatchReport) {
    let span = tracing::Span::current();
    span.record("batch", r.examined);
    span.record("placed", r.placed);
    span.record("pending", r.pending);
    span.record("preempted", r.preempted);
    span.record("failed", r.failed);
    if r.placed + r.preempted + r.failed > 0 {
        tracing::info!("scheduler batch committed");
    }
}

/// Decides one pending lease, updating the engine and the plan.
fn decide(
    view: &mut FleetView,
    lease: &leases::Model,
    now: DateTime<Utc>,
    timeout: chrono::Duration,
    behind: bool,
    plan: &mut Plan,
) {
    let request = match request_for(view, lease) {
        Ok(r) => r,
        Err(reason) => {
            plan.fail.push((lease.clone(), reason));
            return;
        }
    };
    let why = match view.engine.place(&request) {
        Ok(at) => return plan.placed.push(Placed::new(view, lease, at)),
        Err(MigError::Unplaceable(why)) => why.to_string(),
        Err(e) => {
            tracing::warn!(lease = %lease.id, error = %e, "engine refused a pending lease");
            plan.rebuild = true;
            e.to_string()
        }
    };
    view.forget(lease.id);
    if !lease.preemptible && behind {
        // Nodes registered or back since the view was built may have room: rebuild
        // before ending anyone's lease for it.
        plan.behind_rebuild = true;
    } else if !lease.preemptible && preempt_for(view, lease, &request, plan) {
        return;
    }
    still_pending(lease, why, now, timeout, plan);
}

/// The engine request of a lease, or why it can never be placed.
fn request_for(
    view: &mut FleetView,
    lease: &leases::Model,
) -> std::result::Result<Request, String> {
    let model = GpuModel::from_str(&lease.gpu_model).map_err(|e| e.to_string())?;
    let profile = model
        .parse_profile(&lease.profile)
        .map_err(|e| e.to_string())?;
    let count = u16::try_from(lease.count)
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("invalid instance count {}", lease.count))?;
    let mut constraints = Constraints {
        model: Some(model),
        site: lease.site.clone(),
        same_node: lease.same_node,
        ..Constraints::default()
    };
    constraints
        .labels
        .insert(PLACEABLE_LABEL.into(), "true".into());
    Ok(Request {
        lease: view.key_for(lease.id),
        profile: profile.id(),
        count,
        preemptible: lease.preemptible,
        constraints,
    })
}

/// Tries to make room for a guaranteed lease by preempting preemptible ones; true when
/// the lease was then placed.
fn preempt_for(
    view: &mut FleetView,
    lease: &leases::Model,
    request: &Request,
    plan: &mut Plan,
) -> bool {
    let request = Request {
        lease: view.key_for(lease.id),
        ..request.clone()
    };
    let victims = match view.engine.preemption_plan(&request) {
        Ok(p) if !p.leases.is_empty() => p.leases,
        _ => {
            view.forget(lease.id);
            return false;
        }
    };
    let mut preempted = Vec::new();
    for key in victims {
        let Some(&victim) = view.leases.get(&key) else {
            continue;
        };
        view.forget(victim);
        // A victim placed earlier in this batch simply goes back to waiting.
        if let Some(i) = plan.placed.iter().position(|p| p.lease.id == victim) {
            plan.placed.remove(i);
            plan.pending += 1;
        } else {
            preempted.push(victim);
        }
    }
    match view.engine.place(&request) {
        Ok(at) => {
            plan.preempt
                .extend(preempted.into_iter().map(|v| (v, lease.id)));
            plan.placed.push(Placed::new(view, lease, at));
            true
        }
        Err(e) => {
            // The engine released leases the database still holds: rebuild after commit.
            tracing::warn!(lease = %lease.id, error = %e, "placement failed after a preemption plan");
            view.forget(lease.id);
            plan.rebuild = true;
            false
        }
    }
}

/// Leaves the lease pending with `why`, or fails it once it waited too long.
fn still_pending(
    lease: &leases::Model,
    why: String,
    now: DateTime<Utc>,
    timeout: chrono::Duration,
    plan: &mut Plan,
) {
    if now - lease.created_at >= timeout {
        let waited = timeout.num_seconds();
        let reason = format!("could not be placed within {waited} s: {why}");
        plan.fail.push((lease.clone(), reason));
    } else {
        plan.pending += 1;
        if lease.state_reason.as_deref() != Some(why.as_str()) {
            plan.reasons.push((lease.id, why));
        }
    }
}
