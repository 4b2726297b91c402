//! Writing one batch's decisions in the caller's transaction: preemptions first (they
//! free slot claims), then placements with their slot claims, state transitions, new
//! waiting reasons, failures, and the desired-state revision of every touched node.

use super::ends::nodes_of;
use super::restore::{FleetView, GpuRef};
use crate::authz::Caller;
use crate::entities::{gpu_slot_claims, gpus, joins, lease_placements, leases, nodes};
use crate::error::{Error, Result};
use crate::ids::PlacementId;
use crate::lease_lifecycle;
use crate::lease_state::LeaseState;
use crate::ledger;
use aion_mig::{InstancePlacement, Placement};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect, Set};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Rows per multi-row insert, well under both engines' bind-parameter limits.
const CHUNK: usize = 500;
/// Longest `state_reason` the column holds.
const REASON_MAX: usize = 500;

/// A lease placed by the engine, with its instances on database GPUs.
pub(super) struct Placed {
    pub lease: leases::Model,
    pub at: Vec<(GpuRef, Placement)>,
}

impl Placed {
    pub fn new(view: &FleetView, lease: &leases::Model, at: Vec<InstancePlacement>) -> Self {
        let at = at
            .into_iter()
            .filter_map(|i| {
                view.gpus
                    .get(&(i.node, i.gpu))
                    .map(|g| (g.clone(), i.placement))
            })
            .collect();
        Self {
            lease: lease.clone(),
            at,
        }
    }
}

/// Everything one batch decided.
#[derive(Default)]
pub(super) struct Plan {
    pub placed: Vec<Placed>,
    /// (victim, the guaranteed lease it makes room for).
    pub preempt: Vec<(Uuid, Uuid)>,
    /// Pending leases whose waiting reason changed.
    pub reasons: Vec<(Uuid, String)>,
    pub fail: Vec<(leases::Model, String)>,
    /// Leases left pending.
    pub pending: usize,
    /// The engine may disagree with the database after this batch: rebuild it.
    pub rebuild: bool,
    /// A guaranteed lease found no room in a view that is behind the fleet: rebuild
    /// before anyone is preempted for it (unless a rebuild is under way).
    pub behind_rebuild: bool,
}

/// Writes `plan` in `txn` (the caller commits); answers the nodes whose desired state
/// it changed.
pub(super) async fn write(
    txn: &impl ConnectionTrait,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>> {
    let caller = Caller::system("scheduler");
    let victims: Vec<Uuid> = plan.preempt.iter().map(|(v, _)| *v).collect();
    let mut touched: BTreeSet<Uuid> = nodes_of(txn, &victims).await?.into_iter().collect();
    // Ending leases posts to their grants' ledgers: lock those grants first, all at once
    // and in id order, so this batch and another writer cannot deadlock on them.
    let mut ending: BTreeSet<Uuid> = plan.fail.iter().filter_map(|(l, _)| l.grant_id).collect();
    if !victims.is_empty() {
        let victim_grants: Vec<Option<Uuid>> = leases::Entity::find()
            .select_only()
            .column(leases::Column::GrantId)
            .filter(leases::Column::Id.is_in(victims.clone()))
            .into_tuple()
            .all(txn)
            .await?;
        ending.extend(victim_grants.into_iter().flatten());
    }
    ledger::lock(txn, &ending).await?;
    preempt(txn, &caller, plan, now).await?;
    let (rows, claims) = placement_rows(plan, now)?;
    crate::pg_array::insert_many(txn, rows).await?;
    crate::pg_array::insert_many(txn, claims)
        .await
        .map_err(|e| match e {
            Error::Conflict(why) => {
                Error::Conflict(format!("a GPU memory slot is already claimed: {why}"))
            }
            other => other,
        })?;
    let placed: Vec<&leases::Model> = plan.placed.iter().map(|p| &p.lease).collect();
    lease_lifecycle::schedule_many(txn, now, &caller, &placed).await?;
    for p in &plan.placed {
        touched.extend(p.at.iter().map(|(g, _)| g.node));
    }
    for (lease, reason) in &plan.reasons {
        leases::Entity::update_many()
            .col_expr(leases::Column::StateReason, clip(reason).into())
            .filter(leases::Column::Id.eq(*lease))
            .filter(leases::Column::State.eq(LeaseState::Pending.as_str()))
            .exec(txn)
            .await?;
    }
    for (lease, reason) in &plan.fail {
        let reason = Some(clip(reason));
        lease_lifecycle::transition(txn, now, &caller, lease, LeaseState::Failed, reason).await?;
    }
    let touched: Vec<Uuid> = touched.into_iter().collect();
    lease_lifecycle::bump_nodes(txn, &touched, now).await?;
    Ok(touched)
}

async fn preempt(
    txn: &impl ConnectionTrait,
    caller: &Caller,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<()> {
    for (victim, for_lease) in &plan.preempt {
        let lease = leases::Entity::find_by_id(*victim)
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(Error::NotFound("lease"))?;
        let reason = Some(format!("preempted for lease {for_lease}"));
        lease_lifecycle::transition(txn, now, caller, &lease, LeaseState::Preempted, reason)
            .await?;
    }
    Ok(())
}

type Rows = (
    Vec<lease_placements::ActiveModel>,
    Vec<gpu_slot_claims::ActiveModel>,
);

/// Placement rows and one slot claim per memory slice each instance covers.
fn placement_rows(plan: &Plan, now: DateTime<Utc>) -> Result<Rows> {
    let (mut rows, mut claims) = (Vec::new(), Vec::new());
    for p in &plan.placed {
        for (gpu, at) in &p.at {
            let geometry = gpu
                .model
                .profile(at.profile)
                .map_err(|e| Error::Internal(format!("placement of an unknown profile: {e}")))?
                .geometry();
            rows.push(lease_placements::ActiveModel {
                id: Set(PlacementId::new().0),
                lease_id: Set(p.lease.id),
                node_id: Set(gpu.node),
                gpu_id: Set(gpu.gpu),
                gpu_uuid: Set(gpu.uuid.clone()),
                profile_id: Set(i32::from(at.profile.get())),
                start: Set(i32::from(at.start)),
                mig_device_uuid: Set(None),
                created_at: Set(now),
            });
            for slot in at.start..at.start + geometry.memory_slices {
                claims.push(gpu_slot_claims::ActiveModel {
                    gpu_id: Set(gpu.gpu),
                    slot: Set(i32::from(slot)),
                    lease_id: Set(p.lease.id),
                });
            }
        }
    }
    Ok((rows, claims))
}

/// Whether every GPU `plan` places on is still placeable in the database (read in
/// `txn`: its node `ready`, itself healthy). Needed only while the fleet view is behind
/// the fleet revision.
pub(super) async fn targets_placeable(txn: &impl ConnectionTrait, plan: &Plan) -> Result<bool> {
    let targets: BTreeSet<Uuid> = plan
        .placed
        .iter()
        .flat_map(|p| p.at.iter().map(|(g, _)| g.gpu))
        .collect();
    let targets: Vec<Uuid> = targets.into_iter().collect();
    for chunk in targets.chunks(CHUNK) {
        let rows: Vec<(String, String)> = gpus::Entity::find()
            .select_only()
            .column(nodes::Column::State)
            .column(gpus::Column::Health)
            .join(JoinType::InnerJoin, joins::gpu_node())
            .filter(gpus::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(txn)
            .await?;
        let placeable = rows
            .iter()
            .filter(|(state, health)| crate::nodes::placeable(state, health))
            .count();
        if placeable != chunk.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn clip(reason: &str) -> String {
    reason.chars().take(REASON_MAX).collect()
}
