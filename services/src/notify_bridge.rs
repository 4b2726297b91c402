//! The PostgreSQL LISTEN/NOTIFY bridge: writers announce changed nodes with
//! [`crate::agent::notify_nodes`] (a `pg_notify` on [`NOTIFY_CHANNEL`] inside their
//! transaction); every replica runs [`run`], which listens on that channel and turns each
//! notice (its payload is the node's id) into `events.nodes_changed([id])`, so an agent's
//! long-poll is woken whichever replica serves it (and lease long-polls look again: a
//! node's change is its leases' change). It also listens for API-token revocations
//! ([`crate::token_cache::NOTIFY_CHANNEL`]) and drops them from this replica's token cache.
//! Nothing to do on SQLite: one process, in-process events suffice.

use crate::Services;
use crate::agent::NOTIFY_CHANNEL;
use crate::token_cache::NOTIFY_CHANNEL as TOKEN_CHANNEL;
use sea_orm::DbBackend;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;

/// Starts [`run`] on its own task. On PostgreSQL, other replicas' notices count as
/// missing until it listens (what trusts them, such as the desired-state cache, reads the
/// database meanwhile).
pub fn spawn(svc: Services, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    if svc.db.get_database_backend() == DbBackend::Postgres {
        svc.events.set_notices_complete(false);
    }
    tokio::spawn(run(svc, stop))
}

/// Listens until `stop` turns true (or its sender goes away), reconnecting after errors.
pub async fn run(svc: Services, mut stop: watch::Receiver<bool>) {
    if svc.db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    svc.events.set_notices_complete(false);
    loop {
        let ended = listen(&svc, &mut stop).await;
        svc.events.set_notices_complete(false);
        match ended {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "node notification listener failed; reconnecting"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

async fn listen(
    svc: &Services,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(svc.db.get_postgres_connection_pool()).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    listener.listen(TOKEN_CHANNEL).await?;
    // Notices sent while we were not listening are lost: wake every watcher to re-read,
    // and forget every cached token lookup (a revocation may have been missed).
    svc.events.set_notices_complete(true);
    svc.events.node_changed();
    svc.tokens.clear();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
            }
            notice = listener.try_recv() => {
                // `recv` would reconnect by itself and drop what was sent meanwhile,
                // unseen; a lost connection ends this listener instead, so the notices
                // count as missing until a new one listens (and everything is re-read).
                let Some(notice) = notice? else {
                    return Err(sea_orm::sqlx::Error::Protocol(
                        "the notification connection was lost".into(),
                    ));
                };
                if notice.channel() == TOKEN_CHANNEL {
                    svc.tokens.forget(notice.payload());
                } else {
                    // The payload is the node's id; anything else: re-read every node.
                    match notice.payload().parse::<uuid::Uuid>() {
                        Ok(node) => svc.events.nodes_changed([node]),
                        Err(_) => svc.events.node_changed(),
                    }
                    // A node's desired state moves with its leases (placed, active,
                    // released, preempted): lease long-polls here look again at once
                    // rather than at their once-a-second re-read.
                    svc.events.lease_changed();
                }
            }
        }
    }
}
