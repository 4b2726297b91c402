//! Ends that the scheduler itself decides: active leases reaching their `ends_at`, and
//! live leases whose grant has ended, become `expired`, which frees their slot claims;
//! the engine releases them after commit.

use super::SchedulerState;
use crate::Services;
use crate::authz::Caller;
use crate::entities::{grants, lease_placements, leases};
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
    // Due: active leases past their duration, and live leases whose grant has ended.
    let grant_ended = Query::select()
        .column(grants::Column::Id)
        .from(grants::Entity)
        .and_where(Expr::col(grants::Column::ValidUntil).lte(now))
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
    ledger::lock(&txn, &due.iter().filter_map(|l| l.grant_id).collect()).await?;
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
            "its grant ended"
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
        svc.events.node_changed();
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
