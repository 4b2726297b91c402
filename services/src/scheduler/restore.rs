//! The scheduler's in-memory view of the fleet: an [`aion_mig::Engine`] restored from the
//! database, and the maps between engine keys and database ids.
//!
//! Every database node becomes one or two engine nodes: its placeable GPUs (node `ready`,
//! GPU `ok`) and the others. Both carry the node's site and only the reserved label
//! [`PLACEABLE_LABEL`] (`true`/`false`; not the node's own labels, see `build_fleet`);
//! every request asks for `true`. So cordoned,
//! draining and unreachable nodes, and unhealthy GPUs, keep their live instances accounted
//! (they can still be preempted and released) but receive no new placements.

use crate::entities::{gpus, joins, lease_placements, leases, nodes};
use crate::error::{Error, Result};
use crate::lease_state::LeaseState;
use aion_mig::{
    Engine, ExistingInstance, Fleet, GpuModel, InstancePlacement, LeaseKey, Node, NodeId,
    Placement, Policy, ProfileId,
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use uuid::Uuid;

/// Reserved node label: whether new instances may go there.
pub const PLACEABLE_LABEL: &str = "aion.placeable";

/// A GPU as the database knows it.
#[derive(Clone, Debug)]
pub(crate) struct GpuRef {
    pub node: Uuid,
    pub gpu: Uuid,
    pub uuid: String,
    pub model: GpuModel,
}

/// What the fleet looked like when read: the fleet revision, which every change to what
/// is placeable bumps (see `nodes::bump_fleet_revision`). 64 small rows, read once per
/// tick, whatever the size of the fleet; a change means the fleet must be rebuilt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint(i64);

impl Fingerprint {
    pub async fn read(db: &impl ConnectionTrait) -> Result<Self> {
        crate::nodes::fleet_revision(db).await.map(Self)
    }
}

/// The engine and the id maps, built from one read of the database.
pub(crate) struct FleetView {
    pub engine: Engine,
    /// Engine GPU `(node, index)` → database GPU.
    pub gpus: HashMap<(NodeId, u8), GpuRef>,
    /// Database lease id ↔ engine key.
    pub keys: HashMap<Uuid, LeaseKey>,
    pub leases: HashMap<LeaseKey, Uuid>,
    next_key: u64,
    pub fingerprint: Fingerprint,
    pub built_at: DateTime<Utc>,
    /// While a newer view is read in the background: the leases let go of since and
    /// not placed again after (a pending lease is let go of after each failed attempt).
    pub forgotten: Option<std::collections::HashSet<Uuid>>,
}

impl FleetView {
    /// Reads nodes, GPUs and live placements and restores the engine from them.
    pub async fn load(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Self> {
        let fingerprint = Fingerprint::read(db).await?;
        // Only the columns the engine needs, read as tuples: at 288,000 GPUs whole models
        // (every column, decoded by name) were most of a rebuild.
        let node_rows: Vec<NodeRow> = nodes::Entity::find()
            .select_only()
            .column(nodes::Column::Id)
            .column(nodes::Column::Site)
            .column(nodes::Column::State)
            .order_by_asc(nodes::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        let gpu_rows: Vec<GpuRow> = gpus::Entity::find()
            .select_only()
            .column(gpus::Column::Id)
            .column(gpus::Column::NodeId)
            .column(gpus::Column::Uuid)
            .column(gpus::Column::Model)
            .column(gpus::Column::Health)
            .order_by_asc(gpus::Column::NodeId)
            .order_by_asc(gpus::Column::GpuIndex)
            .into_tuple()
            .all(db)
            .await?;
        let (fleet, gpus, at) = build_fleet(&node_rows, &gpu_rows);
        let mut view = Self {
            engine: Engine::new(&Fleet::new(), Policy::default()).map_err(internal)?,
            gpus,
            keys: HashMap::new(),
            leases: HashMap::new(),
            next_key: 1,
            fingerprint,
            built_at: now,
            forgotten: None,
        };
        let mut instances = Vec::new();
        for (lease, gpu, profile, start, preemptible) in live_placements(db).await? {
            let Some(&(node, index)) = at.get(&gpu) else {
                tracing::warn!(%lease, %gpu, "a live placement is on a GPU no longer registered");
                continue;
            };
            let placement = Placement {
                profile: ProfileId::new(u8::try_from(profile).unwrap_or(u8::MAX)),
                start: u8::try_from(start).unwrap_or(u8::MAX),
            };
            instances.push(ExistingInstance {
                lease: view.key_for(lease),
                at: InstancePlacement {
                    node,
                    gpu: index,
                    placement,
                },
                preemptible,
            });
        }
        view.engine = Engine::restore(&fleet, &instances, Policy::default()).map_err(internal)?;
        Ok(view)
    }

    /// The engine key of a lease, allocating one on first use.
    pub fn key_for(&mut self, lease: Uuid) -> LeaseKey {
        if let Some(&key) = self.keys.get(&lease) {
            return key;
        }
        let key = LeaseKey(self.next_key);
        self.next_key += 1;
        self.keys.insert(lease, key);
        self.leases.insert(key, lease);
        key
    }

    /// Releases a lease in the engine and forgets its key (no-op if unknown).
    pub fn forget(&mut self, lease: Uuid) {
        if let Some(log) = self.forgotten.as_mut() {
            log.insert(lease);
        }
        if let Some(key) = self.keys.remove(&lease) {
            self.leases.remove(&key);
            let _ = self.engine.release(key);
        }
    }

    /// Number of leases holding instances in the engine.
    pub fn placed_count(&self) -> usize {
        self.keys.len()
    }

    /// Adds leases committed after this view read the database; those it read already
    /// are left as they are. A GPU it does not know is skipped (as in [`Self::load`]);
    /// an instance whose place is taken is an error (the view must be rebuilt). Answers
    /// how many leases it added.
    pub fn adopt(&mut self, committed: &[Committed]) -> Result<usize> {
        let fresh: Vec<&Committed> = committed
            .iter()
            .filter(|c| !self.keys.contains_key(&c.lease))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let count = fresh.len();
        let at: HashMap<Uuid, (NodeId, u8)> =
            self.gpus.iter().map(|(place, g)| (g.gpu, *place)).collect();
        for c in fresh {
            let key = self.key_for(c.lease);
            for (gpu, placement) in &c.at {
                let Some(&(node, index)) = at.get(gpu) else {
                    tracing::warn!(lease = %c.lease, %gpu, "a committed placement is on a GPU the new view lacks");
                    continue;
                };
                self.engine
                    .adopt(&ExistingInstance {
                        lease: key,
                        at: InstancePlacement {
                            node,
                            gpu: index,
                            placement: *placement,
                        },
                        preemptible: c.preemptible,
                    })
                    .map_err(internal)?;
            }
        }
        Ok(count)
    }
}

/// A lease placed and committed by the scheduler, by database GPU ids.
pub(crate) struct Committed {
    pub lease: Uuid,
    preemptible: bool,
    at: Vec<(Uuid, Placement)>,
}

impl Committed {
    /// The record of one placed lease of a committed batch.
    pub fn of(placed: &super::commit::Placed) -> Self {
        Self {
            lease: placed.lease.id,
            preemptible: placed.lease.preemptible,
            at: placed.at.iter().map(|(g, p)| (g.gpu, *p)).collect(),
        }
    }
}

fn internal(e: aion_mig::MigError) -> Error {
    Error::Internal(format!("restoring the placement engine: {e}"))
}

type GpuMap = HashMap<(NodeId, u8), GpuRef>;
type GpuAt = HashMap<Uuid, (NodeId, u8)>;

/// (id, site, state) of a node.
type NodeRow = (Uuid, String, String);
/// (id, node id, UUID, model, health) of a GPU.
type GpuRow = (Uuid, Uuid, String, String, String);

/// Splits each database node into engine nodes by (GPU model, placeable).
fn build_fleet(node_rows: &[NodeRow], gpu_rows: &[GpuRow]) -> (Fleet, GpuMap, GpuAt) {
    let mut by_node: HashMap<Uuid, Vec<&GpuRow>> = HashMap::new();
    for g in gpu_rows {
        by_node.entry(g.1).or_default().push(g);
    }
    let (mut fleet, mut map, mut at) = (Fleet::new(), HashMap::new(), HashMap::new());
    for (node_id, site, state) in node_rows {
        let mut parts: BTreeMap<(GpuModel, bool), Vec<&GpuRow>> = BTreeMap::new();
        for g in by_node.get(node_id).into_iter().flatten() {
            let (_, _, uuid, model, health) = g;
            let Ok(model) = GpuModel::from_str(model) else {
                tracing::warn!(gpu = %uuid, %model, "GPU of unknown model left out");
                continue;
            };
            let placeable = crate::nodes::placeable(state, health);
            parts.entry((model, placeable)).or_default().push(g);
        }
        for ((model, placeable), list) in parts {
            let id = NodeId(fleet.nodes.len() as u64);
            let mut node = Node::new(id, site, model, list.len());
            // Not the node's own labels: no lease selects by them, and the engine keeps
            // its indexes per (model, site, labels) group, some 80 KiB each. With a label
            // unique to each node (a serial number, a host name) 36,000 nodes were 36,000
            // groups: gigabytes, and seconds per rebuild. A label selector on leases
            // would need the engine to index sparse groups first.
            node.labels = BTreeMap::from([(PLACEABLE_LABEL.to_owned(), placeable.to_string())]);
            for (i, (gpu_id, _, uuid, _, _)) in list.into_iter().enumerate() {
                let index = u8::try_from(i).unwrap_or(u8::MAX);
                at.insert(*gpu_id, (id, index));
                map.insert(
                    (id, index),
                    GpuRef {
                        node: *node_id,
                        gpu: *gpu_id,
                        uuid: uuid.clone(),
                        model,
                    },
                );
            }
            fleet.push(node);
        }
    }
    (fleet, map, at)
}

/// (lease, GPU, profile id, start, preemptible) of every placement of a placed lease.
async fn live_placements(db: &impl ConnectionTrait) -> Result<Vec<(Uuid, Uuid, i32, i32, bool)>> {
    Ok(lease_placements::Entity::find()
        .select_only()
        .column(lease_placements::Column::LeaseId)
        .column(lease_placements::Column::GpuId)
        .column(lease_placements::Column::ProfileId)
        .column(lease_placements::Column::Start)
        .column(leases::Column::Preemptible)
        .join(JoinType::InnerJoin, joins::placement_lease())
        .filter(leases::Column::State.is_in(LeaseState::placed_names()))
        .into_tuple()
        .all(db)
        .await?)
}

/// Ids of the leases that hold placements in the database.
pub(crate) async fn placed_lease_ids(db: &impl ConnectionTrait) -> Result<Vec<Uuid>> {
    Ok(leases::Entity::find()
        .select_only()
        .column(leases::Column::Id)
        .filter(leases::Column::State.is_in(LeaseState::placed_names()))
        .into_tuple()
        .all(db)
        .await?)
}

/// How many leases hold placements in the database.
pub(crate) async fn placed_lease_count(db: &impl ConnectionTrait) -> Result<i64> {
    let n = leases::Entity::find()
        .filter(leases::Column::State.is_in(LeaseState::placed_names()))
        .count(db)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}
