//! The agent side of the node registry: registration with a one-time join token, node
//! credentials (short-lived, renewed by the agent), heartbeats, and the cross-replica
//! wake-up of desired-state watchers ([`notify_nodes`]). Desired state and status
//! reports are in [`crate::agent_sync`]; hostnames and GPU inventories in
//! [`crate::agent_input`].
//!
//! A node credential is not a [`Caller`]: it authenticates only on `/v1/agent/*` and
//! reaches only its own node. Renewal issues a new credential and cuts the old one's
//! life to [`RENEW_GRACE_S`] (5 minutes), so an agent whose renewal answer was lost can
//! still retry with the old one; a stolen old credential stays useful for that long only.

use crate::Services;
use crate::agent_input::Registration;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{gpus, node_credentials, nodes};
use crate::error::{Error, Result};
use crate::ids::{GpuId, NodeId};
use crate::join_tokens::{self, hash_secret, new_secret};
use crate::nodes::{NodeState, set_state};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, Statement,
};
use serde_json::json;
use std::collections::HashMap;

/// Prefix of node credentials.
pub const NODE_PREFIX: &str = "aionnode_";
/// Lifetime of a node credential.
pub const CREDENTIAL_LIFETIME_H: i64 = 24;
/// How long a renewed credential keeps working.
pub const RENEW_GRACE_S: i64 = 300;
/// PostgreSQL channel on which writers announce changed nodes.
pub const NOTIFY_CHANNEL: &str = "aion_nodes";
/// A heartbeat younger than this is not written again: with 36,000 agents polling every
/// 30 s, writing every poll and every status report would be 2,400 writes per second for
/// nothing. Node timeouts must exceed the agents' poll interval plus this.
pub const HEARTBEAT_WRITE_AFTER_S: i64 = 15;

/// Whether `node`'s recorded heartbeat is recent enough that a new one need not be
/// written at `now` (never for an `unreachable` node, which must come back).
pub(crate) fn heartbeat_fresh(node: &nodes::Model, now: DateTime<Utc>) -> bool {
    node.state != NodeState::Unreachable.as_str()
        && node
            .last_heartbeat_at
            .is_some_and(|t| t <= now && now - t < Duration::seconds(HEARTBEAT_WRITE_AFTER_S))
}

/// A credential as handed to the agent (the secret is never stored).
#[derive(Clone, Debug)]
pub struct IssuedCredential {
    /// The node it authenticates.
    pub node_id: NodeId,
    /// The bearer secret.
    pub credential: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When the agent should renew it (half its life).
    pub renew_after: DateTime<Utc>,
}

/// An authenticated agent request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAuth {
    /// The node.
    pub node_id: NodeId,
    /// The credential used (renewal retires it).
    pub credential_id: uuid::Uuid,
}

/// Tells every replica's watchers that these nodes' desired state changed. Call it inside
/// the writing transaction (PostgreSQL delivers the notice on commit, and drops it on
/// rollback); also call `svc.events.nodes_changed(ids)` after commit for this process. A no-op
/// on SQLite, where the single process's in-process events suffice.
pub async fn notify_nodes(txn: &impl ConnectionTrait, ids: &[NodeId]) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    // One notice per node (the listeners' format), all sent in one round trip per chunk.
    for chunk in ids.chunks(500) {
        let rows: Vec<String> = (2..chunk.len() + 2).map(|i| format!("(${i})")).collect();
        let sql = format!(
            "SELECT pg_notify($1, node) FROM (VALUES {}) AS changed(node)",
            rows.join(", ")
        );
        let mut values: Vec<sea_orm::Value> = vec![NOTIFY_CHANNEL.into()];
        values.extend(chunk.iter().map(|id| id.to_string().into()));
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

async fn issue(
    txn: &impl ConnectionTrait,
    node: NodeId,
    now: DateTime<Utc>,
) -> Result<IssuedCredential> {
    let (secret, hash) = new_secret(NODE_PREFIX);
    let expires_at = now + Duration::hours(CREDENTIAL_LIFETIME_H);
    node_credentials::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        node_id: Set(node.0),
        token_hash: Set(hash),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(IssuedCredential {
        node_id: node,
        credential: secret,
        expires_at,
        renew_after: now + Duration::hours(CREDENTIAL_LIFETIME_H) / 2,
    })
}

/// Registers a node with a join token: creates it `ready` with its GPUs, the site and
/// labels of the token, consumes the token and issues a first credential.
#[tracing::instrument(skip_all, err, fields(hostname = %reg.hostname))]
pub async fn register(
    svc: &Services,
    join_secret: &str,
    reg: Registration,
    request_id: &str,
) -> Result<IssuedCredential> {
    let now = svc.clock.now();
    let node = NodeId::new();
    let txn = svc.write_txn().await?;
    let token = join_tokens::consume(&txn, now, join_secret, node).await?;
    let taken = nodes::Entity::find()
        .filter(nodes::Column::Hostname.eq(reg.hostname.as_str()))
        .one(&txn)
        .await?;
    if taken.is_some() {
        return Err(Error::Conflict(format!(
            "a node named {} is already registered",
            reg.hostname
        )));
    }
    let labels = serde_json::to_string(&token.labels)
        .map_err(|e| Error::Internal(format!("labels: {e}")))?;
    nodes::ActiveModel {
        id: Set(node.0),
        hostname: Set(reg.hostname.as_str().to_owned()),
        site: Set(token.site.clone()),
        labels: Set(labels),
        state: Set(NodeState::Ready.as_str().to_owned()),
        gpu_model: Set(reg.model.name().to_owned()),
        desired_revision: Set(1),
        last_heartbeat_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let gpu_rows: Vec<gpus::ActiveModel> = reg
        .gpus
        .iter()
        .map(|g| gpus::ActiveModel {
            id: Set(GpuId::new().0),
            node_id: Set(node.0),
            uuid: Set(g.uuid.clone()),
            gpu_index: Set(g.index),
            model: Set(reg.model.name().to_owned()),
            memory_mib: Set(g.memory_mib),
            mig_enabled: Set(g.mig_enabled),
            health: Set("ok".to_owned()),
        })
        .collect();
    if !gpu_rows.is_empty() {
        gpus::Entity::insert_many(gpu_rows).exec(&txn).await?;
    }
    let issued = issue(&txn, node, now).await?;
    audit::append(
        &txn,
        now,
        &Caller::system(request_id),
        Record {
            action: "node.register",
            target_kind: "node",
            target_id: node.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({
                "hostname": reg.hostname.as_str(), "site": token.site, "join_token_id": token.id,
                "gpu_model": reg.model.name(), "gpus": reg.gpus.len(),
            }),
        },
    )
    .await?;
    notify_nodes(&txn, &[node]).await?;
    crate::nodes::bump_fleet_revision(&txn).await?;
    txn.commit().await?;
    svc.events.nodes_changed([node.0]);
    svc.events.wake_scheduler();
    Ok(issued)
}

/// How long a node credential lookup is trusted without reading it again: longer than
/// the agents' 30 s long-poll, or every poll would read it. Expiry is checked on every
/// hit. Nothing revokes a node credential at once today: renewal keeps the old one
/// [`RENEW_GRACE_S`] (longer than this) and forgets the node's entries here; a future
/// immediate revocation must also reach the other replicas' caches (as
/// [`crate::token_cache`] does through NOTIFY).
pub const CREDENTIAL_CACHE_S: i64 = 120;
/// Entries kept at most; past that the cache starts over (a bound, not an LRU).
const CREDENTIAL_CACHE_MAX: usize = 200_000;

/// Recent node credential lookups, by secret hash: every agent request authenticates,
/// and at 36,000 agents that was a credential read per long-poll.
#[derive(Debug, Default)]
pub struct CredentialCache {
    entries: std::sync::Mutex<HashMap<String, CachedCredential>>,
}

#[derive(Clone, Copy, Debug)]
struct CachedCredential {
    auth: NodeAuth,
    expires_at: DateTime<Utc>,
    cached_at: DateTime<Utc>,
}

impl CredentialCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedCredential>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<CachedCredential> {
        let entries = self.lock();
        let hit = entries.get(hash)?;
        let age = now - hit.cached_at;
        (age >= Duration::zero() && age < Duration::seconds(CREDENTIAL_CACHE_S)).then_some(*hit)
    }

    fn put(&self, hash: String, entry: CachedCredential) {
        let mut entries = self.lock();
        if entries.len() >= CREDENTIAL_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, entry);
    }

    /// Forgets every entry of a node (its credentials changed).
    pub fn forget_node(&self, node: NodeId) {
        self.lock().retain(|_, e| e.auth.node_id != node);
    }
}

/// Checks a node credential: known, not revoked, not expired. Anything else is 401,
/// including user tokens presented on agent routes. A lookup is cached for
/// [`CREDENTIAL_CACHE_S`] (see [`CredentialCache`]).
pub async fn authenticate(svc: &Services, secret: &str) -> Result<NodeAuth> {
    if !secret.starts_with(NODE_PREFIX) {
        return Err(Error::Unauthenticated(
            "agent routes need a node credential (aionnode_…)".into(),
        ));
    }
    let now = svc.clock.now();
    let hash = hash_secret(secret);
    if let Some(hit) = svc.node_credentials.get(&hash, now) {
        if hit.expires_at <= now {
            return Err(Error::Unauthenticated(
                "this node credential has expired".into(),
            ));
        }
        return Ok(hit.auth);
    }
    let model = node_credentials::Entity::find()
        .filter(node_credentials::Column::TokenHash.eq(hash.clone()))
        .one(&svc.db)
        .await?
        .ok_or_else(|| Error::Unauthenticated("unknown node credential".into()))?;
    if model.revoked_at.is_some() {
        return Err(Error::Unauthenticated(
            "this node credential was revoked".into(),
        ));
    }
    if model.expires_at <= now {
        return Err(Error::Unauthenticated(
            "this node credential has expired".into(),
        ));
    }
    let auth = NodeAuth {
        node_id: model.node_id.into(),
        credential_id: model.id,
    };
    svc.node_credentials.put(
        hash,
        CachedCredential {
            auth,
            expires_at: model.expires_at,
            cached_at: now,
        },
    );
    Ok(auth)
}

/// Issues a new credential and retires the one used (valid [`RENEW_GRACE_S`] more).
#[tracing::instrument(skip_all, err, fields(node_id = %auth.node_id))]
pub async fn renew(svc: &Services, auth: NodeAuth, request_id: &str) -> Result<IssuedCredential> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let grace_end = now + Duration::seconds(RENEW_GRACE_S);
    node_credentials::Entity::update_many()
        .col_expr(node_credentials::Column::ExpiresAt, Expr::value(grace_end))
        .filter(node_credentials::Column::Id.eq(auth.credential_id))
        .filter(node_credentials::Column::ExpiresAt.gt(grace_end))
        .exec(&txn)
        .await?;
    let issued = issue(&txn, auth.node_id, now).await?;
    audit::append(
        &txn,
        now,
        &Caller::system(request_id),
        Record {
            action: "node.credential_renew",
            target_kind: "node",
            target_id: auth.node_id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"expires_at": issued.expires_at}),
        },
    )
    .await?;
    txn.commit().await?;
    // The retired credential's cached expiry is stale now.
    svc.node_credentials.forget_node(auth.node_id);
    Ok(issued)
}

/// Records a heartbeat inside `txn` (unless the recorded one is fresh, see
/// [`HEARTBEAT_WRITE_AFTER_S`]); an `unreachable` node becomes `ready` again (its
/// revision bumped, audited). Returns the node as it now is, and whether its state changed.
pub(crate) async fn heartbeat(
    txn: &impl ConnectionTrait,
    node: NodeId,
    now: DateTime<Utc>,
    request_id: &str,
) -> Result<(nodes::Model, bool)> {
    // Locked: the unreachable sweep may be marking this node in a concurrent transaction;
    // read unlocked, the node looked `ready`, the write waited for the sweep, and the node
    // stayed `unreachable` with a fresh heartbeat (nothing brought it back).
    let model = nodes::Entity::find_by_id(node.0)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(Error::NotFound("node"))?;
    if heartbeat_fresh(&model, now) {
        return Ok((model, false));
    }
    nodes::Entity::update_many()
        .col_expr(nodes::Column::LastHeartbeatAt, Expr::value(now))
        .filter(nodes::Column::Id.eq(node.0))
        .exec(txn)
        .await?;
    let back = model.state == NodeState::Unreachable.as_str();
    if back {
        set_state(txn, node, NodeState::Unreachable, NodeState::Ready, now).await?;
        audit::append(
            txn,
            now,
            &Caller::system(request_id),
            Record {
                action: "node.reachable",
                target_kind: "node",
                target_id: node.to_string(),
                organization_id: None,
                project_id: None,
                details: json!({"hostname": model.hostname}),
            },
        )
        .await?;
    }
    let model = nodes::Entity::find_by_id(node.0)
        .one(txn)
        .await?
        .ok_or(Error::NotFound("node"))?;
    Ok((model, back))
}
