//! Sealing the audit inbox into the hash chain: in one transaction per batch, take the
//! head row's lock, give each waiting event the next sequence number and a hash over the
//! previous one, move it to `audit_events`, and move the head. Any replica may seal; the
//! head lock makes them take turns, so the chain stays linear.

use crate::audit::chain_hash;
use crate::entities::{audit_events, audit_head, audit_inbox};
use crate::error::{Error, Result};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use std::time::Duration;

/// Events sealed per transaction.
pub const BATCH: u64 = 500;

/// Takes the chain's head lock for the rest of `txn` and returns the head.
pub async fn lock_head(txn: &impl ConnectionTrait) -> Result<audit_head::Model> {
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Seq, Expr::col(audit_head::Column::Seq))
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    audit_head::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("audit head row is missing".into()))
}

/// Seals every waiting event; returns how many.
pub async fn seal_pending(db: &DatabaseConnection) -> Result<u64> {
    let mut sealed = 0;
    loop {
        let txn = crate::db::write_txn(db).await?;
        let head = lock_head(&txn).await?;
        let postgres = txn.get_database_backend() == DatabaseBackend::Postgres;
        let waiting = if postgres {
            take_waiting_postgres(&txn).await?
        } else {
            audit_inbox::Entity::find()
                .order_by_asc(audit_inbox::Column::OccurredAt)
                .order_by_asc(audit_inbox::Column::Id)
                .limit(BATCH)
                .all(&txn)
                .await?
        };
        if waiting.is_empty() {
            txn.commit().await?;
            return Ok(sealed);
        }
        let (mut seq, mut prev) = (head.seq, head.hash);
        let mut events = Vec::with_capacity(waiting.len());
        // PostgreSQL took (deleted) its batch already; SQLite deletes it after the insert.
        let taken: Vec<_> = if postgres {
            Vec::new()
        } else {
            waiting.iter().map(|m| m.id).collect()
        };
        for m in waiting {
            seq += 1;
            let mut event = audit_events::Model {
                seq,
                id: m.id,
                occurred_at: m.occurred_at,
                actor: m.actor,
                action: m.action,
                target_kind: m.target_kind,
                target_id: m.target_id,
                organization_id: m.organization_id,
                project_id: m.project_id,
                request_id: m.request_id,
                details: m.details,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            event.hash = chain_hash(&prev, &event);
            prev = event.hash.clone();
            events.push(audit_events::ActiveModel::from(event));
        }
        let count = events.len() as u64;
        crate::pg_array::insert_many(&txn, events).await?;
        if !postgres {
            audit_inbox::Entity::delete_many()
                .filter(audit_inbox::Column::Id.is_in(taken))
                .exec(&txn)
                .await?;
        }
        audit_head::ActiveModel {
            id: Set(1),
            seq: Set(seq),
            hash: Set(prev),
        }
        .update(&txn)
        .await?;
        txn.commit().await?;
        sealed += count;
    }
}

/// Takes (deletes and returns) the oldest `BATCH` inbox events in one statement, in the
/// order they are chained. The head lock keeps other sealers out meanwhile; a mutation
/// committing now lands in the next batch.
async fn take_waiting_postgres(txn: &impl ConnectionTrait) -> Result<Vec<audit_inbox::Model>> {
    let mut waiting = audit_inbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "DELETE FROM audit_inbox WHERE id IN \
             (SELECT id FROM audit_inbox ORDER BY occurred_at, id LIMIT $1) \
             RETURNING *",
            [i64::try_from(BATCH).unwrap_or(i64::MAX).into()],
        ))
        .all(txn)
        .await?;
    // RETURNING keeps no order; uuids compare bytewise in both PostgreSQL and Rust.
    waiting.sort_by_key(|m| (m.occurred_at, m.id));
    Ok(waiting)
}

/// Seals the inbox every `every` until `shutdown` turns true.
pub async fn run(
    db: DatabaseConnection,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(err) = seal_pending(&db).await {
            tracing::warn!(error = %err, "sealing the audit inbox failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
