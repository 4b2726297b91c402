//! Leadership: one scheduler among the replicas. On PostgreSQL the leader holds a
//! session-level advisory lock on one dedicated connection for as long as it leads; if
//! that connection drops, the server ends the session, the lock is freed and another
//! replica takes over. With SQLite there is one process, which always leads.

use crate::Services;
use crate::error::{Error, Result};
use sea_orm::sqlx::{self, Connection, PgConnection};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Duration;

/// The advisory lock key of the scheduler ("aionschd" in ASCII).
pub const LOCK_KEY: i64 = 0x6169_6f6e_7363_6864;

/// How long a liveness probe of the leader's connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Proof of leadership; dropping it gives leadership up.
pub struct Leadership {
    /// The PostgreSQL session holding the lock (none with SQLite).
    conn: Option<PgConnection>,
    /// The fencing epoch this leadership took (see [`fence`]).
    epoch: i64,
}

impl Leadership {
    /// Tries once to become the leader; `None` when another replica leads.
    pub async fn try_acquire(svc: &Services) -> Result<Option<Self>> {
        if svc.db.get_database_backend() != DbBackend::Postgres {
            let epoch = bump_epoch(svc).await?;
            return Ok(Some(Self { conn: None, epoch }));
        }
        let pooled = svc
            .db
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(unavailable)?;
        // Detached from the pool: the session must end when leadership ends, never be
        // handed to another task with the lock still held.
        let mut conn = pooled.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(unavailable)?;
        if got {
            // Waits for the last batch of a previous leader that still holds the epoch
            // row, and fences off any later one.
            match bump_epoch(svc).await {
                Ok(epoch) => Ok(Some(Self {
                    conn: Some(conn),
                    epoch,
                })),
                Err(e) => {
                    let _ = conn.close().await;
                    Err(e)
                }
            }
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The fencing epoch of this leadership.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether this process still leads (the lock's session answers).
    pub async fn is_held(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return true;
        };
        let probe = sqlx::query("SELECT 1").execute(&mut *conn);
        let alive = matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(_)));
        if !alive {
            self.conn = None;
        }
        alive
    }

    /// Gives leadership up cleanly (unlocks and closes the session).
    pub async fn resign(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    /// Ends the lock's session abruptly, as a crash or a network cut would (tests).
    pub fn abandon(mut self) {
        self.conn.take();
    }
}

/// Takes the next fencing epoch (a new leader does, once it holds the lock).
async fn bump_epoch(svc: &Services) -> Result<i64> {
    let txn = svc.write_txn().await?;
    txn.execute_unprepared("UPDATE scheduler_epoch SET epoch = epoch + 1 WHERE id = 1")
        .await?;
    let epoch = current_epoch(&txn).await?;
    txn.commit().await?;
    Ok(epoch)
}

/// The current fencing epoch.
pub async fn current_epoch(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT epoch FROM scheduler_epoch WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| Error::Internal("the scheduler epoch row is missing".into()))?;
    Ok(row.try_get::<i64>("", "epoch")?)
}

/// In a batch's transaction: proceeds only while `epoch` is still the current one, and
/// holds the epoch row until commit so a new leader's bump waits for this batch.
pub async fn fence(txn: &impl ConnectionTrait, epoch: i64) -> Result<()> {
    let res = txn
        .execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            match txn.get_database_backend() {
                DbBackend::Postgres => {
                    "UPDATE scheduler_epoch SET epoch = epoch WHERE id = 1 AND epoch = $1"
                }
                _ => "UPDATE scheduler_epoch SET epoch = epoch WHERE id = 1 AND epoch = ?",
            },
            [epoch.into()],
        ))
        .await?;
    if res.rows_affected() != 1 {
        return Err(Error::Unavailable(
            "scheduler leadership lost: another replica took over".into(),
        ));
    }
    Ok(())
}

fn unavailable(e: sqlx::Error) -> Error {
    Error::Unavailable(format!("scheduler leadership: {e}"))
}
