//! Ends that the scheduler itself decides: active leases reaching their `ends_at`, and
//! live leases whose grant has ended, become `expired`, which frees their slot claims;
//! the engine releases them after commit.

use super::SchedulerState;
use crate::Services;
use crate::authz::Caller;
use crate::entities::{grant_warnings, grants, lease_placements, leases};
use crate::error::Result;
use crate::lease_lifecycle;
use crate::lease_state::LeaseState;
use crate::ledger;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Expires up to a batch of active leases whose end has come; returns how many.
pub(super) async fn expire_active(
    svc: &Services,
    state: &mut SchedulerState,
    now: DateTime<Utc>,
) -> Result<usize> {
    // Due: active leases past their duration, and live leases whose grant has ended or
    // has been overdrawn for longer than the grace.
    let grace =
        chrono::Duration::from_std(svc.budget.overdraft_grace).unwrap_or(chrono::Duration::MAX);
    let overdrawn_before = now
        .checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let grant_ended = Query::select()
        .column(grants::Column::Id)
        .from(grants::Entity)
        .cond_where(
            Condition::any()
                .add(Expr::col(grants::Column::ValidUntil).lte(now))
                .add(Expr::col(grants::Column::OverdrawnSince).lte(overdrawn_before)),
        )
        .to_owned();
    let placed_or_waiting = [
        LeaseState::Pending,
        LeaseState::Scheduled,
        LeaseState::Active,
    ]
    .map(LeaseState::as_str);
    let due = leases::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(leases::Column::State.eq(LeaseState::Active.as_str()))
                        .add(leases::Column::EndsAt.lte(now)),
                )
                .add(
                    Condition::all()
                        .add(leases::Column::State.is_in(placed_or_waiting))
                        .add(leases::Column::GrantId.in_subquery(grant_ended)),
                ),
        )
        .order_by_asc(leases::Column::Id)
        .limit(state.config.batch_size)
        .all(&svc.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let caller = Caller::system("scheduler");
    let txn = svc.write_txn().await?;
    // Their grants' ledgers get entries: lock them all first, in id order (no deadlock).
    let due_grants: BTreeSet<Uuid> = due.iter().filter_map(|l| l.grant_id).collect();
    ledger::lock(&txn, &due_grants).await?;
    // Which of them end because they are spent rather than because their period ended.
    let overdrawn: std::collections::HashMap<Option<Uuid>, bool> = grants::Entity::find()
        .filter(grants::Column::Id.is_in(due_grants.iter().copied()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|g| {
            let spent =
                g.valid_until > now && g.overdrawn_since.is_some_and(|t| t <= overdrawn_before);
            (Some(g.id), spent)
        })
        .collect();
    let mut ended = Vec::new();
    for lease in &due {
        // Re-read inside the transaction: the agent or the owner may have moved it.
        let Some(current) = leases::Entity::find_by_id(lease.id).one(&txn).await? else {
            continue;
        };
        let past_duration = current.state == LeaseState::Active.as_str()
            && current.ends_at.is_some_and(|e| e <= now);
        let reason = if past_duration {
            "reached the end of its duration"
        } else if current.state == lease.state {
            match overdrawn.get(&current.grant_id) {
                Some(true) => "its grant is spent (overdrawn beyond the grace)",
                _ => "its grant ended",
            }
        } else {
            continue;
        };
        let reason = Some(reason.to_owned());
        lease_lifecycle::transition(&txn, now, &caller, &current, LeaseState::Expired, reason)
            .await?;
        ended.push(current.id);
    }
    let nodes = nodes_of(&txn, &ended).await?;
    lease_lifecycle::bump_nodes(&txn, &nodes, now).await?;
    txn.commit().await?;
    if let Some(view) = state.view.as_mut() {
        for lease in &ended {
            view.forget(*lease);
        }
    }
    if !ended.is_empty() {
        tracing::info!(count = ended.len(), "scheduler: leases expired");
        svc.events.lease_changed();
        svc.events.nodes_changed(nodes);
    }
    Ok(ended.len())
}

/// The nodes holding placements of these leases.
pub(super) async fn nodes_of(
    db: &impl sea_orm::ConnectionTrait,
    lease_ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    if lease_ids.is_empty() {
        return Ok(Vec::new());
    }
    let nodes: Vec<Uuid> = lease_placements::Entity::find()
        .select_only()
        .column(lease_placements::Column::NodeId)
        .filter(lease_placements::Column::LeaseId.is_in(lease_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(nodes
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// Raises the `ends_soon` warning, once, for grants whose end is nearer than the
/// configured notice; returns how many warned now.
pub(super) async fn warn_grants_ending(svc: &Services, now: DateTime<Utc>) -> Result<usize> {
    let notice =
        chrono::Duration::from_std(svc.budget.grant_end_warning).unwrap_or(chrono::Duration::MAX);
    let horizon = now
        .checked_add_signed(notice)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let warned = Query::select()
        .column(grant_warnings::Column::GrantId)
        .from(grant_warnings::Entity)
        .and_where(Expr::col(grant_warnings::Column::Warning).eq("ends_soon"))
        .to_owned();
    let ending = grants::Entity::find()
        .filter(grants::Column::ValidUntil.gt(now))
        .filter(grants::Column::ValidUntil.lte(horizon))
        .filter(grants::Column::Id.not_in_subquery(warned))
        .limit(500)
        .all(&svc.db)
        .await?;
    if ending.is_empty() {
        return Ok(0);
    }
    let txn = svc.write_txn().await?;
    let mut raised = 0;
    for g in &ending {
        let details = serde_json::json!({"valid_until": g.valid_until});
        if ledger::raise_once(&txn, now, g.id, "ends_soon", details).await? {
            raised += 1;
        }
    }
    txn.commit().await?;
    Ok(raised)
}
