//! Leadership: one scheduler among the replicas. On PostgreSQL the leader holds a
//! session-level advisory lock on one dedicated connection for as long as it leads; if
//! that connection drops, the server ends the session, the lock is freed and another
//! replica takes over. With SQLite there is one process, which always leads.

use crate::Services;
use crate::error::{Error, Result};
use sea_orm::DbBackend;
use sea_orm::sqlx::{self, Connection, PgConnection};
use std::time::Duration;

/// The advisory lock key of the scheduler ("aionschd" in ASCII).
pub const LOCK_KEY: i64 = 0x6169_6f6e_7363_6864;

/// How long a liveness probe of the leader's connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Proof of leadership; dropping it gives leadership up.
pub struct Leadership {
    /// The PostgreSQL session holding the lock (none with SQLite).
    conn: Option<PgConnection>,
}

impl Leadership {
    /// Tries once to become the leader; `None` when another replica leads.
    pub async fn try_acquire(svc: &Services) -> Result<Option<Self>> {
        if svc.db.get_database_backend() != DbBackend::Postgres {
            return Ok(Some(Self { conn: None }));
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
            Ok(Some(Self { conn: Some(conn) }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
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

fn unavailable(e: sqlx::Error) -> Error {
    Error::Unavailable(format!("scheduler leadership: {e}"))
}
