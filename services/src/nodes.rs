//! The node registry as operators see it: listing and reading nodes with their GPUs and
//! placed instances, cordoning, uncordoning and draining, and marking nodes that missed
//! their heartbeats `unreachable`.
//!
//! Node states: `ready` (the scheduler places on it), `cordoned` (no new placements),
//! `draining` (no new placements either; its live leases stay until they end — nothing is
//! evicted, so a drain is a cordon that tells operators the node is on its way out), and
//! `unreachable` (no heartbeat within the timeout). Only `ready` nodes become
//! `unreachable`: a cordoned or draining node keeps the operator's decision, and a node
//! that reports again goes from `unreachable` back to `ready`.

use crate::Services;
use crate::agent::notify_nodes;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{fleet_revision, gpus, lease_placements, leases, nodes};
use crate::error::{Error, Result};
use crate::ids::{GpuId, LeaseId, NodeId};
use crate::join_tokens::{Labels, stored_labels};
use crate::lease_lifecycle::bump_nodes;
use crate::lease_state::LeaseState;
use crate::pagination::{Page, PageRequest};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Default time without a heartbeat after which a node is `unreachable`: three agent
/// long-polls (30 s each). With two, one poll answered late under load (a control-plane
/// restart, 36,000 agents coming back at once) was enough to mark a healthy node
/// unreachable, whose return then woke its watchers and added to the load.
pub const HEARTBEAT_TIMEOUT_S: i64 = 90;

/// The state of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Takes new placements.
    Ready,
    /// Takes no new placements (operator's decision).
    Cordoned,
    /// Takes no new placements; its live leases end normally.
    Draining,
    /// Missed its heartbeats.
    Unreachable,
}

impl NodeState {
    /// Every state.
    pub const ALL: [NodeState; 4] = [
        Self::Ready,
        Self::Cordoned,
        Self::Draining,
        Self::Unreachable,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Cordoned => "cordoned",
            Self::Draining => "draining",
            Self::Unreachable => "unreachable",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be one of ready, cordoned, draining, unreachable",
                )
            })
    }
}

/// Whether the scheduler may place new instances on a GPU whose node is in `node_state`
/// and whose own health is `health` (stored names): a `ready` node and an `ok` GPU.
pub(crate) fn placeable(node_state: &str, health: &str) -> bool {
    node_state == NodeState::Ready.as_str() && health == crate::agent_input::Health::Ok.as_str()
}

/// A node as listed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    /// Id.
    pub id: NodeId,
    /// Host name.
    pub hostname: String,
    /// Site.
    pub site: String,
    /// Labels (from its join token).
    pub labels: Labels,
    /// State.
    pub state: NodeState,
    /// GPU model of all its GPUs.
    pub gpu_model: String,
    /// Revision of its desired state.
    pub desired_revision: i64,
    /// Last heartbeat (desired-state poll or status report).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// One MIG instance placed on a GPU.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlacedInstance {
    /// The lease holding it.
    pub lease_id: LeaseId,
    /// The lease's state.
    pub lease_state: LeaseState,
    /// Profile name.
    pub profile: String,
    /// NVML profile id.
    pub profile_id: i32,
    /// Start slot.
    pub start: i32,
    /// MIG device UUID, once the node reported it.
    pub mig_device_uuid: Option<String>,
}

/// A GPU of a node with what is placed on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeGpu {
    /// Id.
    pub id: GpuId,
    /// NVIDIA UUID (`GPU-…`).
    pub uuid: String,
    /// Index on the node.
    pub index: i32,
    /// Model.
    pub model: String,
    /// Memory.
    pub memory_mib: i64,
    /// Whether MIG mode is on.
    pub mig_enabled: bool,
    /// `ok` or `unhealthy`.
    pub health: String,
    /// Instances of live leases.
    pub instances: Vec<PlacedInstance>,
}

/// A node with its GPUs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeDetail {
    /// The node.
    pub node: Node,
    /// Its GPUs by index.
    pub gpus: Vec<NodeGpu>,
}

/// Filters of the node list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this site.
    pub site: Option<String>,
    /// Only this state.
    pub state: Option<NodeState>,
}

pub(crate) fn from_model(m: nodes::Model) -> Result<Node> {
    let state = NodeState::parse("state", &m.state)
        .map_err(|_| Error::Internal(format!("node {} has unknown state {}", m.id, m.state)))?;
    Ok(Node {
        id: m.id.into(),
        hostname: m.hostname,
        site: m.site,
        labels: stored_labels(&m.labels)?,
        state,
        gpu_model: m.gpu_model,
        desired_revision: m.desired_revision,
        last_heartbeat_at: m.last_heartbeat_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn require_reader(caller: &Caller) -> Result<()> {
    if caller.reads_everything() {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only platform admins and auditors read nodes".into(),
        ))
    }
}

/// Lists nodes (platform admins and auditors).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    filter: Filter,
    page: &PageRequest,
) -> Result<Page<Node>> {
    require_reader(caller)?;
    let mut query = nodes::Entity::find();
    if let Some(site) = filter.site {
        query = query.filter(nodes::Column::Site.eq(site));
    }
    if let Some(state) = filter.state {
        query = query.filter(nodes::Column::State.eq(state.as_str()));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(nodes::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(nodes::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |n: &Node| n.id.to_string()))
}

/// Reads a node with its GPUs and the instances of live leases on them.
pub async fn get(svc: &Services, caller: &Caller, id: NodeId) -> Result<NodeDetail> {
    require_reader(caller)?;
    let node = nodes::Entity::find_by_id(id.0)
        .one(&svc.db)
        .await?
        .ok_or(Error::NotFound("node"))?;
    let gpu_rows = gpus::Entity::find()
        .filter(gpus::Column::NodeId.eq(id.0))
        .order_by_asc(gpus::Column::GpuIndex)
        .all(&svc.db)
        .await?;
    let placements = lease_placements::Entity::find()
        .filter(lease_placements::Column::NodeId.eq(id.0))
        .all(&svc.db)
        .await?;
    let lease_rows: HashMap<_, _> = leases::Entity::find()
        .filter(leases::Column::Id.is_in(placements.iter().map(|p| p.lease_id)))
        .filter(leases::Column::State.is_in(LeaseState::live_names()))
        .all(&svc.db)
        .await?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    let mut by_gpu: HashMap<uuid::Uuid, Vec<PlacedInstance>> = HashMap::new();
    for p in placements {
        let Some(lease) = lease_rows.get(&p.lease_id) else {
            continue;
        };
        by_gpu.entry(p.gpu_id).or_default().push(PlacedInstance {
            lease_id: p.lease_id.into(),
            lease_state: LeaseState::parse("state", &lease.state)?,
            profile: lease.profile.clone(),
            profile_id: p.profile_id,
            start: p.start,
            mig_device_uuid: p.mig_device_uuid,
        });
    }
    let gpus = gpu_rows
        .into_iter()
        .map(|g| NodeGpu {
            id: g.id.into(),
            instances: by_gpu.remove(&g.id).unwrap_or_default(),
            uuid: g.uuid,
            index: g.gpu_index,
            model: g.model,
            memory_mib: g.memory_mib,
            mig_enabled: g.mig_enabled,
            health: g.health,
        })
        .collect();
    Ok(NodeDetail {
        node: from_model(node)?,
        gpus,
    })
}

/// What an operator does to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// No new placements.
    Cordon,
    /// Back to `ready`.
    Uncordon,
    /// No new placements; live leases end normally.
    Drain,
}

impl Operation {
    fn target(self, from: NodeState) -> Result<NodeState> {
        use NodeState::*;
        match (self, from) {
            (Operation::Cordon, Draining) => Err(Error::Conflict(
                "the node is draining; uncordon it first".into(),
            )),
            (Operation::Cordon, _) => Ok(Cordoned),
            (Operation::Drain, _) => Ok(Draining),
            (Operation::Uncordon, Cordoned | Draining) => Ok(Ready),
            (Operation::Uncordon, other) => Ok(other),
        }
    }

    fn action(self) -> &'static str {
        match self {
            Operation::Cordon => "node.cordon",
            Operation::Uncordon => "node.uncordon",
            Operation::Drain => "node.drain",
        }
    }
}

/// Cordons, uncordons or drains a node (platform admins). A change bumps the node's
/// desired revision (its agent sees the new state at once) and is audited; asking for
/// the state the node is already in changes nothing.
#[tracing::instrument(skip_all, err, fields(node_id = %id))]
pub async fn operate(svc: &Services, caller: &Caller, id: NodeId, op: Operation) -> Result<Node> {
    require_reader(caller)?;
    caller.require(true, caller.is_platform_admin(), "node")?;
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let model = nodes::Entity::find_by_id(id.0)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("node"))?;
    let from = from_model(model.clone())?.state;
    let to = op.target(from)?;
    if to == from {
        return from_model(model);
    }
    set_state(&txn, id, from, to, now).await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: op.action(),
            target_kind: "node",
            target_id: id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"hostname": model.hostname, "from": from.as_str(), "to": to.as_str()}),
        },
    )
    .await?;
    // `set_state` bumped the node, which notifies the other replicas.
    let node = nodes::Entity::find_by_id(id.0)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("node"))?;
    bump_fleet_revision(&txn).await?;
    txn.commit().await?;
    svc.events.nodes_changed([id.0]);
    if to == NodeState::Ready {
        svc.events.wake_scheduler();
    }
    from_model(node)
}

/// Rows of the striped fleet revision (migration 13).
const FLEET_REVISION_STRIPES: i32 = 64;

/// Bumps the fleet revision in `txn`, so the scheduler rebuilds its fleet once `txn`
/// commits. Every change to what is placeable calls it (a node registered, a node's
/// state, a GPU's health), last before its commit. It bumps one of
/// [`FLEET_REVISION_STRIPES`] rows picked at random: concurrent changes rarely wait on
/// each other's commit (with one row they committed one at a time), and taking the row
/// last keeps its lock short and its order after any node row's.
pub(crate) async fn bump_fleet_revision(txn: &impl ConnectionTrait) -> Result<()> {
    let stripe = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=FLEET_REVISION_STRIPES);
    let bump = |id: i32| {
        fleet_revision::Entity::update_many()
            .col_expr(
                fleet_revision::Column::Revision,
                Expr::col(fleet_revision::Column::Revision).add(1),
            )
            .filter(fleet_revision::Column::Id.eq(id))
    };
    // Row 1 always exists; the others only once migration 13 ran.
    if bump(stripe).exec(txn).await?.rows_affected == 0 {
        bump(1).exec(txn).await?;
    }
    Ok(())
}

/// The fleet revision as committed: the sum of the stripes, which grows exactly when a
/// bump commits (see [`bump_fleet_revision`]).
pub(crate) async fn fleet_revision(db: &impl ConnectionTrait) -> Result<i64> {
    let stripes: Vec<i64> = fleet_revision::Entity::find()
        .select_only()
        .column(fleet_revision::Column::Revision)
        .into_tuple()
        .all(db)
        .await?;
    if stripes.is_empty() {
        return Err(Error::Internal(
            "the fleet revision rows are missing".into(),
        ));
    }
    Ok(stripes.iter().sum())
}

/// Moves a node `from → to` (only if still in `from`) and bumps its desired revision.
/// The caller bumps the fleet revision before it commits.
pub(crate) async fn set_state(
    txn: &impl ConnectionTrait,
    id: NodeId,
    from: NodeState,
    to: NodeState,
    now: DateTime<Utc>,
) -> Result<()> {
    let res = nodes::Entity::update_many()
        .col_expr(nodes::Column::State, Expr::value(to.as_str()))
        .col_expr(nodes::Column::UpdatedAt, Expr::value(now))
        .filter(nodes::Column::Id.eq(id.0))
        .filter(nodes::Column::State.eq(from.as_str()))
        .exec(txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Conflict("the node changed meanwhile; retry".into()));
    }
    bump_nodes(txn, &[id.0], now).await
}

/// Marks `ready` nodes without a heartbeat for [`HEARTBEAT_TIMEOUT_S`] as `unreachable`;
/// returns how many. Meant to be called periodically (by the scheduler leader).
pub async fn mark_unreachable(svc: &Services, now: DateTime<Utc>) -> Result<u64> {
    mark_unreachable_after(svc, now, Duration::seconds(HEARTBEAT_TIMEOUT_S)).await
}

/// Like [`mark_unreachable`] with an explicit timeout.
#[tracing::instrument(skip_all, err)]
pub async fn mark_unreachable_after(
    svc: &Services,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Result<u64> {
    // This replica's heartbeats first, so none waiting in memory is taken for silence
    // (another replica's are at most `heartbeats::FLUSH_EVERY` late).
    if let Err(e) = svc.heartbeats.flush(&svc.db).await {
        tracing::warn!(error = %e, "writing heartbeats before the unreachable sweep failed");
        return Err(e);
    }
    let cutoff = now - timeout;
    let stale_filter = || {
        sea_orm::Condition::all()
            .add(nodes::Column::State.eq(NodeState::Ready.as_str()))
            .add(
                sea_orm::Condition::any()
                    .add(nodes::Column::LastHeartbeatAt.lt(cutoff))
                    .add(nodes::Column::LastHeartbeatAt.is_null()),
            )
    };
    // Cheap check outside a write transaction: most calls find nothing.
    let found = nodes::Entity::find()
        .filter(stale_filter())
        .limit(1)
        .all(&svc.db)
        .await?;
    if found.is_empty() {
        return Ok(0);
    }
    let txn = svc.write_txn().await?;
    // Locked, so a heartbeat written meanwhile takes the node out of the set
    // (PostgreSQL re-checks the filter on the row it waited for).
    let stale = nodes::Entity::find()
        .filter(stale_filter())
        .lock_exclusive()
        .all(&txn)
        .await?;
    let ids: Vec<uuid::Uuid> = stale.iter().map(|n| n.id).collect();
    nodes::Entity::update_many()
        .col_expr(
            nodes::Column::State,
            Expr::value(NodeState::Unreachable.as_str()),
        )
        .col_expr(nodes::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            nodes::Column::DesiredRevision,
            Expr::col(nodes::Column::DesiredRevision).add(1),
        )
        .filter(nodes::Column::Id.is_in(ids.clone()))
        .exec(&txn)
        .await?;
    let system = Caller::system("heartbeat-monitor");
    for n in &stale {
        audit::append(
            &txn,
            now,
            &system,
            Record {
                action: "node.unreachable",
                target_kind: "node",
                target_id: n.id.to_string(),
                organization_id: None,
                project_id: None,
                details: json!({"hostname": n.hostname, "last_heartbeat_at": n.last_heartbeat_at}),
            },
        )
        .await?;
    }
    let typed: Vec<NodeId> = ids.iter().copied().map(NodeId).collect();
    notify_nodes(&txn, &typed).await?;
    bump_fleet_revision(&txn).await?;
    txn.commit().await?;
    svc.events.nodes_changed(ids.iter().copied());
    Ok(ids.len() as u64)
}

/// The site of each of these nodes (unknown ids are left out), in chunked reads.
pub(crate) async fn sites_of(
    db: &impl sea_orm::ConnectionTrait,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> Result<std::collections::HashMap<uuid::Uuid, String>> {
    let ids: Vec<uuid::Uuid> = ids
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let found: Vec<(uuid::Uuid, String)> = nodes::Entity::find()
            .select_only()
            .column(nodes::Column::Id)
            .column(nodes::Column::Site)
            .filter(nodes::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(found);
    }
    Ok(out)
}
