//! Agent heartbeats kept in memory and written together. Every desired-state poll is a
//! heartbeat; at 36,000 nodes polling every 30 s, a write transaction per poll was 1,200
//! commits a second that only moved a timestamp. A replica records them here and writes
//! them in one `UPDATE` per [`FLUSH_EVERY`] (a few per second in all, whatever the fleet).
//!
//! What stays exact: a node comes back from `unreachable` in the first poll that reads it
//! so (not here: that is a state change, audited, in its own transaction; the sweep moves
//! the node's revision, so polls stop answering from what they knew of it); the unreachable sweep flushes
//! its own replica's heartbeats first ([`crate::nodes::mark_unreachable_after`]), and
//! another replica's are at most [`FLUSH_EVERY`] late, far inside the node timeout. A
//! written heartbeat never moves back in time, and a buffered one is never written over
//! an `unreachable` node (whose return needs the audited path).

use crate::entities::nodes;
use crate::error::Result;
use crate::nodes::NodeState;
use crate::pg_array::ArrayLiteral;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    Statement,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// How often a replica writes the heartbeats it received.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Nodes per `UPDATE` statement (each committed on its own: short row locks).
const CHUNK: usize = 1_000;

/// The heartbeats received by this replica and not yet written.
#[derive(Debug, Default)]
pub struct HeartbeatBuffer {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    /// Held from taking the heartbeats to their commit: a flush that finds the buffer
    /// empty has still waited for the one writing (the unreachable sweep relies on it).
    writing: tokio::sync::Mutex<()>,
    flusher: AtomicBool,
}

impl HeartbeatBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `node` was heard from at `at` (the latest time wins).
    pub fn record(&self, node: Uuid, at: DateTime<Utc>) {
        let mut pending = self.lock();
        let slot = pending.entry(node).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// How many heartbeats wait to be written.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every recorded heartbeat now, exactly as recorded: on PostgreSQL one
    /// `UPDATE … FROM unnest(…)` per [`CHUNK`] nodes; on SQLite (one process, a small
    /// fleet) one `UPDATE` per distinct time. On error the heartbeats are put back (a later
    /// one of the same node wins) and the error returned.
    pub async fn flush(&self, db: &impl ConnectionTrait) -> Result<usize> {
        let _writing = self.writing.lock().await;
        let mut taken: Vec<(Uuid, DateTime<Utc>)> = self.lock().drain().collect();
        // Rows are locked in id order, as other writers of many nodes should.
        taken.sort_unstable_by_key(|(node, _)| *node);
        if taken.is_empty() {
            return Ok(0);
        }
        let written = match db.get_database_backend() {
            DbBackend::Postgres => write_postgres(db, &taken).await,
            _ => write_each_time(db, &taken).await,
        };
        if let Err(e) = written {
            for (node, at) in taken {
                self.record(node, at);
            }
            return Err(e);
        }
        Ok(taken.len())
    }

    /// Starts the task that flushes every [`FLUSH_EVERY`], unless it runs already; it
    /// ends after a flush that found nothing (the next [`record`](Self::record)er
    /// starts it again through this).
    pub fn ensure_flusher(self: &std::sync::Arc<Self>, db: &DatabaseConnection) {
        if self.flusher.swap(true, Ordering::AcqRel) {
            return;
        }
        let buffer = std::sync::Arc::clone(self);
        let db = db.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                match buffer.flush(&db).await {
                    Ok(0) => {
                        buffer.flusher.store(false, Ordering::Release);
                        // A heartbeat recorded between the flush and the store would
                        // wait for the next recorder; take it over instead.
                        if buffer.is_empty() || buffer.flusher.swap(true, Ordering::AcqRel) {
                            return;
                        }
                    }
                    Ok(n) => tracing::debug!(heartbeats = n, "heartbeats written"),
                    Err(e) => tracing::warn!(error = %e, "writing heartbeats failed; retrying"),
                }
            }
        });
    }
}

/// Only nodes that are not `unreachable` (their return is audited elsewhere), and never
/// back in time. The ids and times travel as two array literals, so the statement is the
/// same whatever the number of nodes (one prepared statement, not one per batch size).
async fn write_postgres(db: &impl ConnectionTrait, beats: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
    for chunk in beats.chunks(CHUNK) {
        let mut ids = ArrayLiteral::with_capacity(chunk.len());
        let mut times = ArrayLiteral::with_capacity(chunk.len());
        for (node, at) in chunk {
            ids.plain(node);
            times.time(*at);
        }
        // The rows are locked in id order first, so two flushes (or a flush and another
        // writer that also goes in id order) cannot deadlock on them.
        let sql = "WITH beat AS (SELECT * FROM unnest($2::uuid[], $3::timestamptz[]) AS b(id, at)), \
                   locked AS (SELECT nodes.id FROM nodes JOIN beat ON nodes.id = beat.id \
                   WHERE nodes.state <> $1 ORDER BY nodes.id FOR UPDATE OF nodes) \
                   UPDATE nodes SET last_heartbeat_at = beat.at FROM beat, locked \
                   WHERE nodes.id = beat.id AND nodes.id = locked.id AND nodes.state <> $1 \
                   AND (nodes.last_heartbeat_at IS NULL OR nodes.last_heartbeat_at < beat.at)";
        let values: Vec<sea_orm::Value> = vec![
            NodeState::Unreachable.as_str().into(),
            ids.finish().into(),
            times.finish().into(),
        ];
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

async fn write_each_time(db: &impl ConnectionTrait, beats: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
    let mut by_time: HashMap<DateTime<Utc>, Vec<Uuid>> = HashMap::new();
    for (node, at) in beats {
        by_time.entry(*at).or_default().push(*node);
    }
    for (at, nodes_at) in by_time {
        for chunk in nodes_at.chunks(CHUNK) {
            nodes::Entity::update_many()
                .col_expr(nodes::Column::LastHeartbeatAt, Expr::value(at))
                .filter(nodes::Column::Id.is_in(chunk.iter().copied()))
                .filter(nodes::Column::State.ne(NodeState::Unreachable.as_str()))
                .filter(
                    sea_orm::Condition::any()
                        .add(nodes::Column::LastHeartbeatAt.is_null())
                        .add(nodes::Column::LastHeartbeatAt.lt(at)),
                )
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
