//! The agent's loop against the control plane: it long-polls its desired state (the
//! instances of live leases placed on its GPUs, under a revision number) and reports
//! what it runs, which moves leases `scheduled → active` and `releasing → released`.
//! Both are heartbeats.
//!
//! Long-polls do not each re-read their node on every change notice (with 36,000 nodes
//! that is 36,000 queries per scheduled lease): one [`RevisionWatch`] per process reads
//! the revisions of the watched nodes that the notices name (coalesced, at most one read
//! at a time; all watched nodes when a notice does not say which) and wakes only the
//! long-polls whose node's revision moved.

use crate::Services;
use crate::agent::{NodeAuth, heartbeat};
use crate::agent_input::StatusReport;
use crate::authz::Caller;
use crate::entities::{gpu_slot_claims, gpus, lease_placements, leases};
use crate::error::{Error, Result};
use crate::events::ChangedNodes;
use crate::ids::{LeaseId, NodeId, PlacementId};
use crate::lease_lifecycle::{bump_nodes, transition};
use crate::lease_state::LeaseState;
use crate::nodes::{NodeState, from_model};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// Longest long-poll of the desired state.
pub const MAX_WAIT_S: u64 = 60;

/// Lease states an agent must know about: it builds `scheduled` and keeps `active`
/// instances, and tears `releasing` ones down.
const AGENT_STATES: [LeaseState; 3] = [
    LeaseState::Scheduled,
    LeaseState::Active,
    LeaseState::Releasing,
];

/// One MIG instance the node must run.
#[derive(Clone, Debug)]
pub struct DesiredInstance {
    /// Placement id.
    pub placement_id: PlacementId,
    /// GPU UUID.
    pub gpu_uuid: String,
    /// GPU index on the node.
    pub gpu_index: i32,
    /// NVML profile id.
    pub profile_id: i32,
    /// Profile name.
    pub profile: String,
    /// Start slot.
    pub start: i32,
}

/// A lease with its instances on this node.
#[derive(Clone, Debug)]
pub struct DesiredLease {
    /// Lease id.
    pub lease_id: LeaseId,
    /// `scheduled`, `active` or `releasing`.
    pub state: LeaseState,
    /// When it reaches its duration (set once active): an agent cut off from the
    /// control plane keeps the lease until then.
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its instances on this node.
    pub instances: Vec<DesiredInstance>,
}

/// What a node must run.
#[derive(Clone, Debug)]
pub struct DesiredState {
    /// Revision (grows on every change).
    pub revision: i64,
    /// The node's state.
    pub node_state: NodeState,
    /// Leases with instances on the node.
    pub leases: Vec<DesiredLease>,
}

/// The placements of the node's live leases, with those leases. Slot claims exist only
/// for live leases (they are freed when a lease ends), so starting from the claims on the
/// node's GPUs keeps the cost bounded by the node's capacity, not by its history of
/// placements (which are kept for the record).
async fn live_placements(
    db: &impl ConnectionTrait,
    node: NodeId,
) -> Result<(
    Vec<lease_placements::Model>,
    HashMap<uuid::Uuid, leases::Model>,
)> {
    let node_gpus = sea_orm::sea_query::Query::select()
        .column(gpus::Column::Id)
        .from(gpus::Entity)
        .and_where(gpus::Column::NodeId.eq(node.0))
        .to_owned();
    let claimed: HashSet<uuid::Uuid> = gpu_slot_claims::Entity::find()
        .select_only()
        .column(gpu_slot_claims::Column::LeaseId)
        .filter(gpu_slot_claims::Column::GpuId.in_subquery(node_gpus))
        .into_tuple::<uuid::Uuid>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    if claimed.is_empty() {
        return Ok((Vec::new(), HashMap::new()));
    }
    let placements = lease_placements::Entity::find()
        .filter(lease_placements::Column::NodeId.eq(node.0))
        .filter(lease_placements::Column::LeaseId.is_in(claimed.iter().copied()))
        .order_by_asc(lease_placements::Column::Id)
        .all(db)
        .await?;
    let names: Vec<&str> = AGENT_STATES.iter().map(|s| s.as_str()).collect();
    let lease_rows = leases::Entity::find()
        .filter(leases::Column::Id.is_in(claimed))
        .filter(leases::Column::State.is_in(names))
        .all(db)
        .await?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    Ok((placements, lease_rows))
}

async fn read_state(
    db: &impl ConnectionTrait,
    node: &crate::entities::nodes::Model,
) -> Result<DesiredState> {
    let (placements, lease_rows) = live_placements(db, node.id.into()).await?;
    // Most polls of an idle node end here, without reading its GPUs.
    let gpu_index: HashMap<uuid::Uuid, i32> = if placements.is_empty() {
        HashMap::new()
    } else {
        gpus::Entity::find()
            .select_only()
            .column(gpus::Column::Id)
            .column(gpus::Column::GpuIndex)
            .filter(gpus::Column::NodeId.eq(node.id))
            .into_tuple::<(uuid::Uuid, i32)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let mut out: Vec<DesiredLease> = Vec::new();
    let mut slot: HashMap<uuid::Uuid, usize> = HashMap::new();
    for p in placements {
        let Some(lease) = lease_rows.get(&p.lease_id) else {
            continue;
        };
        let i = *slot.entry(lease.id).or_insert_with(|| {
            out.push(DesiredLease {
                lease_id: lease.id.into(),
                state: LeaseState::parse("state", &lease.state).unwrap_or(LeaseState::Scheduled),
                ends_at: lease.ends_at,
                instances: Vec::new(),
            });
            out.len() - 1
        });
        out[i].instances.push(DesiredInstance {
            placement_id: p.id.into(),
            gpu_index: gpu_index.get(&p.gpu_id).copied().unwrap_or_default(),
            gpu_uuid: p.gpu_uuid,
            profile_id: p.profile_id,
            profile: lease.profile.clone(),
            start: p.start,
        });
    }
    Ok(DesiredState {
        revision: node.desired_revision,
        node_state: from_model(node.clone())?.state,
        leases: out,
    })
}

/// What a long-poll knows of its node: the row's revision and state, and the desired
/// state at that revision.
#[derive(Debug)]
struct KnownNode {
    revision: i64,
    state: NodeState,
    desired: Arc<DesiredState>,
}

/// Records a heartbeat: in memory for a node that is up (written within a second by
/// [`crate::heartbeats`], nothing at all if one was recorded or written lately), and in
/// its own transaction for an `unreachable` node, which comes back at once (audited,
/// watchers and scheduler woken). Answers whether the node came back.
async fn beat(
    svc: &Services,
    revisions: &RevisionWatch,
    known: &KnownNode,
    node: NodeId,
    request_id: &str,
) -> Result<bool> {
    let now = svc.clock.now();
    if known.state != NodeState::Unreachable {
        if revisions.heartbeat_due(node.0, now) {
            svc.heartbeats.record(node.0, now);
            svc.heartbeats.ensure_flusher(&svc.db);
        }
        return Ok(false);
    }
    let txn = svc.write_txn().await?;
    let (_, changed) = heartbeat(&txn, node, now, request_id).await?;
    if changed {
        crate::nodes::bump_fleet_revision(&txn).await?;
    }
    txn.commit().await?;
    if changed {
        svc.events.nodes_changed([node.0]);
        svc.events.wake_scheduler();
    }
    Ok(changed)
}

/// The node's desired state. If `known` equals the current revision, waits up to `wait`
/// for it to change (woken by node change notices) and answers the state as it then is.
/// The poll is a heartbeat. A node whose revision did not move since this process last
/// read it is answered from memory (see [`RevisionWatch`]): while notices are complete,
/// a 36,000-node fleet's polls cost no query at all.
#[tracing::instrument(skip_all, err, fields(node_id = %auth.node_id))]
pub async fn desired_state(
    svc: &Services,
    auth: NodeAuth,
    known: Option<i64>,
    wait: std::time::Duration,
    request_id: &str,
) -> Result<DesiredState> {
    let node = auth.node_id;
    // Subscribe before reading, so a change between the read and the wait is not lost.
    let revisions = RevisionWatch::of(svc);
    let mut changes = revisions.subscribe(node.0);
    let mut current = revisions.current(svc, node).await?;
    if beat(svc, &revisions, &current, node, request_id).await? {
        // Back from `unreachable`: its revision moved, and its notice keeps it from being
        // answered from memory until the watch has read it.
        current = revisions.current(svc, node).await?;
    }
    let deadline = tokio::time::Instant::now() + wait;
    while known == Some(current.revision) {
        let held = current.revision;
        let moved = loop {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) if *changes.borrow_and_update() > held => break true,
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break false,
            }
        };
        if !moved {
            break;
        }
        current = revisions.current(svc, node).await?;
    }
    Ok(DesiredState::clone(&current.desired))
}

/// Shortest time between two revision reads of a [`RevisionWatch`]: notices that come
/// faster are served by one read (a long-poll learns of a change at most this late).
const REVISION_READ_EVERY: Duration = Duration::from_millis(20);
/// Above this many watched nodes, the revisions are read with one scan of `nodes`.
const SCAN_ABOVE: usize = 500;
/// How long a node stays watched after its last poll: longer than the longest long-poll
/// plus the agent's turn-around, so what is known of it survives from poll to poll.
const KEEP_AFTER_POLL: Duration = Duration::from_secs(2 * MAX_WAIT_S + 30);
/// A known desired state is read again after this long even if no notice moved its
/// revision: a bound on the harm of a change that forgot to bump its nodes.
const KNOWN_AT_MOST: Duration = Duration::from_secs(300);

/// One watched node: its revision as last read, and what a poll last read of it.
struct Watched {
    revision: watch::Sender<i64>,
    known: Option<Known>,
    /// When this process last recorded (or read) its heartbeat.
    beat_at: Option<chrono::DateTime<chrono::Utc>>,
    polled_at: tokio::time::Instant,
}

/// A node as read by a poll, trusted while its revision stays the same, notices stay
/// complete in the same epoch, and it is younger than [`KNOWN_AT_MOST`].
struct Known {
    node: Arc<KnownNode>,
    epoch: u64,
    read_at: tokio::time::Instant,
}

/// The revisions of the nodes being long-polled in this process, one channel per node,
/// kept current by one task that re-reads them after node change notices, and what the
/// polls last read of each node. A node is registered here before a poll reads it, so a
/// change committed after that read is re-read by the task (from its own notice or,
/// from another replica, through LISTEN/NOTIFY) and moves the revision: what a poll read
/// is trusted until then, and answers later polls without a query.
struct RevisionWatch {
    nodes: std::sync::Mutex<HashMap<uuid::Uuid, Watched>>,
    events: Weak<crate::events::Events>,
    running: AtomicBool,
    /// Set by a failed revision read, cleared by the next good one (of every node).
    failing: AtomicBool,
    pruned_at: std::sync::Mutex<tokio::time::Instant>,
}

/// One watch per [`Services`] (keyed by its event hub), shared by its long-polls and kept
/// (with what it knows) as long as that hub lives.
static WATCHES: LazyLock<std::sync::Mutex<HashMap<usize, Arc<RevisionWatch>>>> =
    LazyLock::new(Default::default);

impl RevisionWatch {
    /// The watch of `svc`'s process, started on first use (and again once its task ended).
    fn of(svc: &Services) -> Arc<Self> {
        let key = Arc::as_ptr(&svc.events) as usize;
        let mut all = WATCHES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|_, w| w.events.strong_count() > 0);
        if let Some(w) = all.get(&key)
            && w.running.load(Ordering::Acquire)
            && w.events
                .upgrade()
                .is_some_and(|e| Arc::ptr_eq(&e, &svc.events))
        {
            return Arc::clone(w);
        }
        let w = Arc::new(Self {
            nodes: std::sync::Mutex::new(HashMap::new()),
            events: Arc::downgrade(&svc.events),
            running: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            pruned_at: std::sync::Mutex::new(tokio::time::Instant::now()),
        });
        all.insert(key, Arc::clone(&w));
        tokio::spawn(watch_revisions(
            svc.db.clone(),
            Arc::downgrade(&svc.events),
            svc.events.nodes(),
            Arc::downgrade(&w),
        ));
        w
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, Watched>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver of `node`'s revision (its value may be stale until the next change).
    fn subscribe(&self, node: uuid::Uuid) -> watch::Receiver<i64> {
        let mut nodes = self.lock();
        let entry = nodes.entry(node).or_insert_with(|| Watched {
            revision: watch::channel(i64::MIN).0,
            known: None,
            beat_at: None,
            polled_at: tokio::time::Instant::now(),
        });
        entry.polled_at = tokio::time::Instant::now();
        entry.revision.subscribe()
    }

    /// What is known of `node` if it is still current (see [`Known`]).
    fn known(&self, node: uuid::Uuid) -> Option<Arc<KnownNode>> {
        let events = self.events.upgrade()?;
        let epoch = events.notice_epoch()?;
        if events.is_changing(node) {
            return None;
        }
        if self.failing.load(Ordering::Acquire) || !self.running.load(Ordering::Acquire) {
            return None;
        }
        let nodes = self.lock();
        let w = nodes.get(&node)?;
        let k = w.known.as_ref()?;
        (k.epoch == epoch
            && *w.revision.borrow() == k.node.revision
            && k.read_at.elapsed() < KNOWN_AT_MOST)
            .then(|| Arc::clone(&k.node))
    }

    /// `node` as known, or read now (and kept, unless a newer revision is already
    /// known). The caller has subscribed to the node first.
    async fn current(&self, svc: &Services, node: NodeId) -> Result<Arc<KnownNode>> {
        if let Some(k) = self.known(node.0) {
            return Ok(k);
        }
        // Taken before the read: an epoch that ends during it leaves the read untrusted.
        let epoch = self.events.upgrade().and_then(|e| e.notice_epoch());
        let read_at = tokio::time::Instant::now();
        let row = crate::entities::nodes::Entity::find_by_id(node.0)
            .one(&svc.db)
            .await?
            .ok_or(Error::NotFound("node"))?;
        let desired = read_state(&svc.db, &row).await?;
        let known = Arc::new(KnownNode {
            revision: row.desired_revision,
            state: desired.node_state,
            desired: Arc::new(desired),
        });
        let mut nodes = self.lock();
        if let Some(w) = nodes.get_mut(&node.0) {
            w.revision.send_if_modified(|v| {
                std::mem::replace(v, (*v).max(known.revision)) < known.revision
            });
            if let Some(at) = row.last_heartbeat_at {
                w.beat_at = Some(w.beat_at.map_or(at, |b| b.max(at)));
            }
            if let Some(epoch) = epoch
                && *w.revision.borrow() == known.revision
            {
                w.known = Some(Known {
                    node: Arc::clone(&known),
                    epoch,
                    read_at,
                });
            }
        }
        Ok(known)
    }

    /// Whether a heartbeat of `node` at `now` should be recorded: none was recorded (or
    /// read) in the last [`crate::agent::HEARTBEAT_WRITE_AFTER_S`]. Answering yes counts
    /// as recording it.
    fn heartbeat_due(&self, node: uuid::Uuid, now: chrono::DateTime<chrono::Utc>) -> bool {
        let mut nodes = self.lock();
        let Some(w) = nodes.get_mut(&node) else {
            return true;
        };
        let fresh = w.beat_at.is_some_and(|t| {
            t <= now && now - t < chrono::Duration::seconds(crate::agent::HEARTBEAT_WRITE_AFTER_S)
        });
        if !fresh {
            w.beat_at = Some(now);
        }
        !fresh
    }

    /// The nodes watched (forgetting, at most once a second, those nobody polled
    /// lately), all of them or those among `changed`.
    fn watched(&self, changed: &ChangedNodes) -> Vec<uuid::Uuid> {
        let now = tokio::time::Instant::now();
        let mut nodes = self.lock();
        {
            let mut pruned = self
                .pruned_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.duration_since(*pruned) >= Duration::from_secs(1) {
                *pruned = now;
                nodes.retain(|_, w| {
                    w.revision.receiver_count() > 0
                        || now.duration_since(w.polled_at) < KEEP_AFTER_POLL
                });
            }
        }
        match changed {
            ChangedNodes::All => nodes.keys().copied().collect(),
            ChangedNodes::Some(ids) => ids
                .iter()
                .filter(|id| nodes.contains_key(id))
                .copied()
                .collect(),
        }
    }

    /// Revisions only grow: a read that finished after a newer one never moves one back.
    fn publish(&self, revisions: Vec<(uuid::Uuid, i64)>) {
        let nodes = self.lock();
        for (id, rev) in revisions {
            if let Some(w) = nodes.get(&id) {
                w.revision
                    .send_if_modified(|v| std::mem::replace(v, (*v).max(rev)) < rev);
            }
        }
    }
}

/// Marks the watch as stopped however its task ends (returned or dropped).
struct Running(Weak<RevisionWatch>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(w) = self.0.upgrade() {
            w.running.store(false, Ordering::Release);
        }
    }
}

/// Re-reads the revisions of the watched nodes that changed after every node change
/// notice (of every watched node when it is unknown which changed, or after a failed
/// read), at most one read per [`REVISION_READ_EVERY`] (or per read time, if longer);
/// ends when the event hub is gone. Every 5 s without notices it still forgets the nodes
/// nobody polled lately.
async fn watch_revisions(
    db: DatabaseConnection,
    events: Weak<crate::events::Events>,
    mut changes: watch::Receiver<u64>,
    watch: Weak<RevisionWatch>,
) {
    let _running = Running(watch.clone());
    let mut retry = false;
    loop {
        if !retry {
            match tokio::time::timeout(Duration::from_secs(5), changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    let Some(w) = watch.upgrade() else { return };
                    w.watched(&ChangedNodes::Some(Default::default()));
                    continue;
                }
            }
            changes.borrow_and_update();
        }
        let Some(w) = watch.upgrade() else { return };
        let Some(hub) = events.upgrade() else { return };
        let taken = hub.take_changed_nodes();
        drop(hub);
        let changed = if retry { ChangedNodes::All } else { taken };
        let started = tokio::time::Instant::now();
        let ids = w.watched(&changed);
        retry = false;
        if !ids.is_empty() {
            match read_revisions(&db, ids).await {
                Ok(revisions) => {
                    w.publish(revisions);
                    if changed == ChangedNodes::All {
                        w.failing.store(false, Ordering::Release);
                    }
                }
                Err(e) => {
                    // Until every node is read again, polls read the database.
                    w.failing.store(true, Ordering::Release);
                    tracing::warn!(error = %e, "reading node revisions failed; retrying");
                    retry = true;
                }
            }
        } else if changed == ChangedNodes::All {
            w.failing.store(false, Ordering::Release);
        }
        // Published (or, after a failure, `failing` keeps polls off what is known).
        if let Some(hub) = events.upgrade() {
            hub.changed_nodes_read();
        }
        drop(w);
        let pause = if retry {
            Duration::from_millis(500)
        } else {
            REVISION_READ_EVERY.max(started.elapsed())
        };
        tokio::time::sleep(pause).await;
    }
}

async fn read_revisions(
    db: &DatabaseConnection,
    ids: Vec<uuid::Uuid>,
) -> Result<Vec<(uuid::Uuid, i64)>> {
    let query = crate::entities::nodes::Entity::find()
        .select_only()
        .column(crate::entities::nodes::Column::Id)
        .column(crate::entities::nodes::Column::DesiredRevision);
    let query = if ids.len() > SCAN_ABOVE {
        query
    } else {
        query.filter(crate::entities::nodes::Column::Id.is_in(ids))
    };
    Ok(query.into_tuple::<(uuid::Uuid, i64)>().all(db).await?)
}

/// Applies a status report: heartbeat, GPU health, MIG device UUIDs of reported
/// instances, `scheduled → active` when every placement of a lease is reported,
/// `releasing → released` when none is present any more. Refuses (400) a report naming
/// a GPU of another node, before changing anything. Returns the node's revision.
#[tracing::instrument(skip_all, err, fields(node_id = %auth.node_id))]
pub async fn report_status(
    svc: &Services,
    auth: NodeAuth,
    report: StatusReport,
    request_id: &str,
) -> Result<i64> {
    let now = svc.clock.now();
    let node = auth.node_id;
    let txn = svc.write_txn().await?;
    let own: HashMap<String, gpus::Model> = gpus::Entity::find()
        .filter(gpus::Column::NodeId.eq(node.0))
        .all(&txn)
        .await?
        .into_iter()
        .map(|g| (g.uuid.clone(), g))
        .collect();
    let mut fields = crate::error::FieldErrors::new();
    for (i, inst) in report.instances.iter().enumerate() {
        if !own.contains_key(&inst.gpu_uuid) {
            fields.insert(
                format!("instances[{i}].gpu_uuid"),
                "is not a GPU of this node".into(),
            );
        }
    }
    for (i, (uuid, _)) in report.gpus.iter().enumerate() {
        if !own.contains_key(uuid) {
            fields.insert(
                format!("gpus[{i}].uuid"),
                "is not a GPU of this node".into(),
            );
        }
    }
    if !fields.is_empty() {
        return Err(Error::Validation(fields));
    }
    let (_, came_back) = heartbeat(&txn, node, now, request_id).await?;
    let mut placeable_changed = came_back;
    for (uuid, health) in &report.gpus {
        if own.get(uuid).is_some_and(|g| g.health != health.as_str()) {
            placeable_changed = true;
            gpus::Entity::update_many()
                .col_expr(gpus::Column::Health, Expr::value(health.as_str()))
                .filter(gpus::Column::Uuid.eq(uuid.as_str()))
                .filter(gpus::Column::NodeId.eq(node.0))
                .exec(&txn)
                .await?;
        }
    }
    let present: HashMap<(&str, i32, i32), &str> = report
        .instances
        .iter()
        .map(|i| {
            (
                (i.gpu_uuid.as_str(), i.profile_id, i.start),
                i.mig_device_uuid.as_str(),
            )
        })
        .collect();
    let (placements, lease_rows) = live_placements(&txn, node).await?;
    for p in &placements {
        if !lease_rows.contains_key(&p.lease_id) {
            continue;
        }
        let seen = present
            .get(&(p.gpu_uuid.as_str(), p.profile_id, p.start))
            .map(|m| (*m).to_owned());
        if seen != p.mig_device_uuid {
            lease_placements::Entity::update_many()
                .col_expr(lease_placements::Column::MigDeviceUuid, Expr::value(seen))
                .filter(lease_placements::Column::Id.eq(p.id))
                .exec(&txn)
                .await?;
        }
    }
    let moved = advance_leases(&txn, now, request_id, lease_rows.into_values().collect()).await?;
    // Every node that shows a lease that moved (a lease may span nodes), this one first
    // among equals: their agents' desired states changed.
    let mut touched: Vec<uuid::Uuid> = moved.nodes.iter().copied().collect();
    if moved.changed > 0 && !moved.nodes.contains(&node.0) {
        touched.push(node.0);
        touched.sort_unstable();
    }
    if moved.changed > 0 {
        bump_nodes(&txn, &touched, now).await?;
    }
    let revision = crate::entities::nodes::Entity::find_by_id(node.0)
        .one(&txn)
        .await?
        .map(|n| n.desired_revision)
        .ok_or(Error::NotFound("node"))?;
    if placeable_changed {
        crate::nodes::bump_fleet_revision(&txn).await?;
    }
    txn.commit().await?;
    if moved.changed > 0 {
        svc.events.lease_changed();
    }
    if moved.changed > 0 || came_back {
        svc.events
            .nodes_changed(touched.into_iter().chain([node.0]));
    }
    if moved.freed || came_back {
        svc.events.wake_scheduler();
    }
    Ok(revision)
}

struct Moved {
    changed: usize,
    freed: bool,
    /// The nodes holding placements of the leases that moved.
    nodes: std::collections::BTreeSet<uuid::Uuid>,
}

/// Moves leases whose placements (on every node) are all reported to `active`, and
/// releasing leases none of whose placements is present any more to `released`. A
/// placement is "present" when it carries a MIG device UUID (set by its node's reports).
async fn advance_leases(
    txn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
    request_id: &str,
    candidates: Vec<leases::Model>,
) -> Result<Moved> {
    let mut moved = Moved {
        changed: 0,
        freed: false,
        nodes: std::collections::BTreeSet::new(),
    };
    let system = Caller::system(request_id);
    // Released leases post to their grants' ledgers: lock those grants first, in id
    // order, so two nodes' reports cannot deadlock on them.
    let releasing = candidates
        .iter()
        .filter(|l| l.state == LeaseState::Releasing.as_str())
        .filter_map(|l| l.grant_id)
        .collect();
    crate::ledger::lock(txn, &releasing).await?;
    for lease in candidates {
        let target = match LeaseState::parse("state", &lease.state)? {
            LeaseState::Scheduled => LeaseState::Active,
            LeaseState::Releasing => LeaseState::Released,
            _ => continue,
        };
        let all = lease_placements::Entity::find()
            .filter(lease_placements::Column::LeaseId.eq(lease.id))
            .all(txn)
            .await?;
        let ready = match target {
            LeaseState::Active => {
                !all.is_empty() && all.iter().all(|p| p.mig_device_uuid.is_some())
            }
            _ => all.iter().all(|p| p.mig_device_uuid.is_none()),
        };
        if ready {
            transition(txn, now, &system, &lease, target, None).await?;
            moved.nodes.extend(all.iter().map(|p| p.node_id));
            moved.changed += 1;
            moved.freed |= target == LeaseState::Released;
        }
    }
    Ok(moved)
}
