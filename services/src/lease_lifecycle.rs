//! Lease transitions shared by the lease API, the scheduler and the agent API. Each runs
//! inside the caller's transaction, checks the state machine, stamps the time, frees what
//! an ended lease held, audits, and leaves waking waiters to the caller (after commit).

use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{gpu_slot_claims, leases, nodes};
use crate::error::{Error, Result};
use crate::ids::{LeaseId, OrganizationId, ProjectId};
use crate::lease_state::LeaseState;
use crate::ledger;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// Moves `lease` to `to`, refusing transitions the state machine forbids or a concurrent
/// change (the row is updated only if it is still in the state read).
pub async fn transition(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    lease: &leases::Model,
    to: LeaseState,
    reason: Option<String>,
) -> Result<()> {
    let from = LeaseState::parse("state", &lease.state).map_err(|_| {
        Error::Internal(format!(
            "lease {} has unknown state {}",
            lease.id, lease.state
        ))
    })?;
    if !from.can_become(to) {
        return Err(Error::Conflict(format!(
            "a {} lease cannot become {}",
            from.as_str(),
            to.as_str()
        )));
    }
    let mut update = leases::ActiveModel {
        state: Set(to.as_str().to_owned()),
        updated_at: Set(now),
        ..Default::default()
    };
    if reason.is_some() {
        update.state_reason = Set(reason.clone());
    }
    match to {
        LeaseState::Scheduled => update.scheduled_at = Set(Some(now)),
        LeaseState::Active => {
            update.active_at = Set(Some(now));
            update.ends_at = Set(Some(now + Duration::seconds(lease.duration_s)));
        }
        LeaseState::Releasing => update.releasing_at = Set(Some(now)),
        _ => {}
    }
    if !to.is_live() {
        update.ended_at = Set(Some(now));
        update.held_slice_seconds = Set(0);
        update.charged_slice_seconds = Set(charge(lease, now));
    }
    let res = leases::Entity::update_many()
        .set(update)
        .filter(leases::Column::Id.eq(lease.id))
        .filter(leases::Column::State.eq(lease.state.clone()))
        .exec(txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Conflict("the lease changed meanwhile; retry".into()));
    }
    if !to.is_live() {
        free_slots(txn, lease.id).await?;
        // Every admitted lease has a grant; the column is nullable only for history.
        if let Some(grant) = lease.grant_id {
            let end = ledger::Posting::lease_end(
                grant,
                lease.id,
                lease.held_slice_seconds,
                charge(lease, now),
            );
            ledger::post(txn, now, &caller.actor.key(), end).await?;
        }
    }
    audit::append(
        txn,
        now,
        caller,
        Record {
            action: "lease.transition",
            target_kind: "lease",
            target_id: lease.id.to_string(),
            organization_id: Some(OrganizationId(lease.organization_id)),
            project_id: Some(ProjectId(lease.project_id)),
            details: json!({"from": from.as_str(), "to": to.as_str(), "reason": reason}),
        },
    )
    .await?;
    Ok(())
}

/// Moves many pending leases to `scheduled` with one update and one multi-row audit
/// insert (the scheduler's batch commit). Fails with a conflict, for the caller to roll
/// back, if any of them is no longer pending.
pub async fn schedule_many(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    leases_placed: &[&leases::Model],
) -> Result<()> {
    let ids: Vec<uuid::Uuid> = leases_placed.iter().map(|l| l.id).collect();
    for chunk in ids.chunks(500) {
        let res = leases::Entity::update_many()
            .set(leases::ActiveModel {
                state: Set(LeaseState::Scheduled.as_str().to_owned()),
                scheduled_at: Set(Some(now)),
                updated_at: Set(now),
                ..Default::default()
            })
            .filter(crate::pg_array::uuid_in(
                txn.get_database_backend(),
                leases::Column::Id,
                chunk,
            ))
            .filter(leases::Column::State.eq(LeaseState::Pending.as_str()))
            .exec(txn)
            .await?;
        if res.rows_affected != chunk.len() as u64 {
            return Err(Error::Conflict(
                "a lease changed meanwhile; the batch is retried".into(),
            ));
        }
    }
    let records = leases_placed
        .iter()
        .map(|lease| Record {
            action: "lease.transition",
            target_kind: "lease",
            target_id: lease.id.to_string(),
            organization_id: Some(OrganizationId(lease.organization_id)),
            project_id: Some(ProjectId(lease.project_id)),
            details: json!({"from": LeaseState::Pending.as_str(), "to": LeaseState::Scheduled.as_str(), "reason": null}),
        })
        .collect();
    audit::append_many(txn, now, caller, records).await
}

/// Budget used by a lease ending at `now`: the whole seconds it was active (from its
/// `active_at` to the earlier of `now` and its `ends_at`, both truncated to the second,
/// as invoices rate them; capped at its duration) × its compute slices. A lease never
/// active used nothing.
pub fn charge(lease: &leases::Model, now: DateTime<Utc>) -> i64 {
    let Some(active_at) = lease.active_at else {
        return 0;
    };
    allocated_seconds(active_at, billable_end(lease, now), lease.duration_s)
        .saturating_mul(lease.compute_slices)
}

/// When a lease's allocated time ends if it ends at `now`: its `ends_at` when that came
/// first (the scheduler expires it a tick later).
pub fn billable_end(lease: &leases::Model, now: DateTime<Utc>) -> DateTime<Utc> {
    lease.ends_at.map_or(now, |e| Ord::min(e, now))
}

/// Whole seconds from `start` to `end` (both truncated to the second), within
/// `0..=max_s`.
pub fn allocated_seconds(start: DateTime<Utc>, end: DateTime<Utc>, max_s: i64) -> i64 {
    (end.timestamp() - start.timestamp()).clamp(0, Ord::max(max_s, 0))
}

/// Deletes the lease's GPU slot claims, so the scheduler may place others there.
pub async fn free_slots(txn: &impl ConnectionTrait, lease: uuid::Uuid) -> Result<()> {
    gpu_slot_claims::Entity::delete_many()
        .filter(gpu_slot_claims::Column::LeaseId.eq(lease))
        .exec(txn)
        .await?;
    Ok(())
}

/// Bumps the desired-state revision of these nodes (their agents long-poll it) and
/// notifies other replicas; callers still call `events.nodes_changed(ids)` after commit.
pub async fn bump_nodes(
    txn: &impl ConnectionTrait,
    node_ids: &[uuid::Uuid],
    now: DateTime<Utc>,
) -> Result<()> {
    if node_ids.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // One round trip: lock in id order (as the heartbeat writer and the unreachable
        // sweep do; an `UPDATE … IN (…)` locks in scan order, and two writers of several
        // nodes could deadlock), bump, and notify the other replicas (on commit) with
        // the node ids the listeners expect. This runs in every scheduler batch.
        let sql = "WITH locked AS (SELECT id FROM nodes WHERE id IN (SELECT unnest($2::uuid[])) ORDER BY id FOR UPDATE), \
                   bumped AS (UPDATE nodes SET desired_revision = nodes.desired_revision + 1, updated_at = $1 \
                   FROM locked WHERE nodes.id = locked.id RETURNING nodes.id) \
                   SELECT pg_notify($3, bumped.id::text) FROM bumped";
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            [
                now.into(),
                crate::pg_array::uuids(node_ids).into(),
                crate::agent::NOTIFY_CHANNEL.into(),
            ],
        ))
        .await?;
        return Ok(());
    }
    nodes::Entity::update_many()
        .col_expr(
            nodes::Column::DesiredRevision,
            Expr::col(nodes::Column::DesiredRevision).add(1),
        )
        .col_expr(nodes::Column::UpdatedAt, Expr::value(now))
        .filter(nodes::Column::Id.is_in(node_ids.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Loads a lease row by id, without access checks (internal callers only).
pub async fn load(db: &impl ConnectionTrait, id: LeaseId) -> Result<leases::Model> {
    leases::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .ok_or(Error::NotFound("lease"))
}
