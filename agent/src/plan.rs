//! The reconcile plan: what to do so that the node's MIG instances match the leases the
//! control plane placed on it. Pure: the loop passes in the desired state, what the
//! backend observed, the time and the per-process "TERM sent at" memory, and gets back
//! actions to apply. No I/O here, so every rule is unit-tested without a GPU.
//!
//! Rules:
//! * a live lease's instance that is present is *adopted* (kept as it is, whoever created
//!   it): a restarted agent never destroys a tenant's running slice;
//! * a missing instance of a live lease is created at its explicit placement, once the
//!   place is free (instances in the way are torn down first);
//! * any other instance is torn down: its processes get TERM, then KILL after a grace
//!   period, and the instance is destroyed once no process is left on it;
//! * processes on a MIG device without a live lease are stopped the same way;
//! * offline (control plane unreachable) the known leases are kept until their `ends_at`
//!   (forever when absent), nothing is created, and only instances of expired, releasing
//!   or unknown leases are torn down.

use crate::backend::{InstanceInfo, ProcessInfo, StopSignal};
use crate::{Error, Result};
use aion_api_types::DesiredState;
use aion_mig::{GpuState, ProfileId};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Where a MIG instance sits: GPU, profile and first memory slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// GPU UUID.
    pub gpu_uuid: String,
    /// NVML profile id.
    pub profile: ProfileId,
    /// First memory slice.
    pub start: u8,
}

impl Slot {
    /// The slot of an observed instance.
    pub fn of(instance: &InstanceInfo) -> Self {
        Self {
            gpu_uuid: instance.gpu_uuid.clone(),
            profile: instance.profile,
            start: instance.start,
        }
    }
}

/// The agent-side state of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeasePhase {
    /// Create its instances.
    Scheduled,
    /// Keep its instances.
    Active,
    /// Tear its instances down.
    Releasing,
}

impl LeasePhase {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "scheduled" => Ok(Self::Scheduled),
            "active" => Ok(Self::Active),
            "releasing" => Ok(Self::Releasing),
            other => Err(Error::Protocol(format!("unknown lease state `{other}`"))),
        }
    }
}

/// One instance a lease needs on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedInstance {
    /// Placement id.
    pub placement_id: Uuid,
    /// Where.
    pub slot: Slot,
}

/// A lease the agent knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownLease {
    /// Lease id.
    pub lease_id: Uuid,
    /// Its state.
    pub phase: LeasePhase,
    /// When it ends (offline, the agent keeps it until then).
    pub ends_at: Option<DateTime<Utc>>,
    /// Its instances on this node.
    pub instances: Vec<WantedInstance>,
}

impl KnownLease {
    /// Whether the lease's term runs at `now`: not being released and before its end.
    /// Usage is counted, and workloads are allowed on its slices, only then (invoices
    /// and budgets end a lease's allocated time at `ends_at` too).
    pub fn in_term(&self, now: DateTime<Utc>) -> bool {
        self.phase != LeasePhase::Releasing && self.ends_at.is_none_or(|end| end > now)
    }

    /// Whether the agent keeps the lease's instances. Online, the control plane decides:
    /// it expires a lease a scheduler tick after `ends_at`, and tearing the instances down
    /// first would look like a failed node. Offline, the agent keeps them until the end.
    pub fn keeps_instances(&self, now: DateTime<Utc>, online: bool) -> bool {
        self.phase != LeasePhase::Releasing && (online || self.ends_at.is_none_or(|end| end > now))
    }
}

/// The desired state, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Revision it was read at.
    pub revision: i64,
    /// Leases placed on the node.
    pub leases: Vec<KnownLease>,
}

impl Desired {
    /// Parses the wire desired state; refuses unknown lease states and placements the
    /// MIG rules do not allow (so the plan never asks the GPU for one).
    pub fn parse(wire: &DesiredState) -> Result<Self> {
        let mut leases = Vec::with_capacity(wire.leases.len());
        for l in &wire.leases {
            let mut instances = Vec::with_capacity(l.instances.len());
            for i in &l.instances {
                let bad = || {
                    Error::Protocol(format!(
                        "lease {}: invalid placement profile {} at {}",
                        l.lease_id, i.profile_id, i.start
                    ))
                };
                let profile = ProfileId::new(u8::try_from(i.profile_id).map_err(|_| bad())?);
                let start = u8::try_from(i.start).map_err(|_| bad())?;
                GpuState::empty().check(profile, start).map_err(|_| bad())?;
                instances.push(WantedInstance {
                    placement_id: i.placement_id,
                    slot: Slot {
                        gpu_uuid: i.gpu_uuid.clone(),
                        profile,
                        start,
                    },
                });
            }
            leases.push(KnownLease {
                lease_id: l.lease_id,
                phase: LeasePhase::parse(&l.state)?,
                ends_at: l.ends_at,
                instances,
            });
        }
        Ok(Self {
            revision: wire.revision,
            leases,
        })
    }
}

/// What the backend reports now.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// MIG instances present.
    pub instances: &'a [InstanceInfo],
    /// Processes on MIG devices.
    pub processes: &'a [ProcessInfo],
}

/// Everything else the plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct PlanContext<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// Whether the desired state is fresh from the control plane (false: offline rules).
    pub online: bool,
    /// How long a process gets between TERM and KILL.
    pub kill_grace: Duration,
    /// When TERM was sent to each process still being stopped.
    pub term_sent: &'a HashMap<u32, DateTime<Utc>>,
}

/// One step to apply through the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Signal a process that runs on a device without a live lease.
    Signal {
        /// Process.
        pid: u32,
        /// Its MIG device.
        mig_device_uuid: String,
        /// TERM first, KILL after the grace period.
        signal: StopSignal,
    },
    /// Destroy an instance no live lease needs (no process is left on it).
    Destroy {
        /// Where.
        slot: Slot,
        /// Its MIG device.
        mig_device_uuid: String,
    },
    /// Create a live lease's missing instance.
    Create {
        /// Where.
        slot: Slot,
        /// Lease.
        lease_id: Uuid,
        /// Placement.
        placement_id: Uuid,
    },
}

/// Something the plan could not do yet, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// An instance to tear down still has processes (being stopped).
    AwaitingExit {
        /// Where.
        slot: Slot,
        /// Processes left.
        pids: Vec<u32>,
    },
    /// A missing instance whose place is still taken (or that the GPU would refuse).
    Blocked {
        /// Where.
        slot: Slot,
        /// Lease.
        lease_id: Uuid,
    },
    /// A missing instance not created because the control plane is unreachable.
    Offline {
        /// Where.
        slot: Slot,
        /// Lease.
        lease_id: Uuid,
    },
}

/// The outcome of [`plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in order: signals, then destroys, then creates.
    pub actions: Vec<Action>,
    /// Present instances kept for a live lease: (slot, lease).
    pub adopted: Vec<(Slot, Uuid)>,
    /// What waits for a later reconcile.
    pub held: Vec<Hold>,
}

impl Plan {
    /// Whether the node already matches (nothing to do, nothing waiting).
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty() && self.held.is_empty()
    }
}

/// Whether the agent keeps a lease's instances (see [`KnownLease::keeps_instances`]).
fn is_live(lease: &KnownLease, ctx: &PlanContext<'_>) -> bool {
    lease.keeps_instances(ctx.now, ctx.online)
}

/// Live leases' slots (slot → lease, placement) and slots some non-live lease claims.
type Claims = (BTreeMap<Slot, (Uuid, Uuid)>, BTreeSet<Slot>);

/// A present instance at a slot claimed by both a live and a non-live lease (a
/// releasing lease's slice given to someone else) is not adopted: it is torn down and
/// created again, so a new tenant never inherits the old tenant's device and processes.
fn claims(desired: &Desired, ctx: &PlanContext<'_>) -> Claims {
    let mut live = BTreeMap::new();
    let mut dead = BTreeSet::new();
    for lease in &desired.leases {
        let keep = is_live(lease, ctx);
        for w in &lease.instances {
            if keep {
                live.entry(w.slot.clone())
                    .or_insert((lease.lease_id, w.placement_id));
            } else {
                dead.insert(w.slot.clone());
            }
        }
    }
    (live, dead)
}

/// TERM for processes not yet signalled, KILL once the grace period is over.
fn stop_signals(
    processes: &[ProcessInfo],
    kept_devices: &BTreeSet<&str>,
    ctx: &PlanContext<'_>,
) -> Vec<Action> {
    let mut signals: Vec<(u32, Action)> = processes
        .iter()
        .filter(|p| !kept_devices.contains(p.mig_device_uuid.as_str()))
        .filter_map(|p| {
            let signal = match ctx.term_sent.get(&p.pid) {
                None => StopSignal::Term,
                Some(at) if ctx.now - *at >= ctx.kill_grace => StopSignal::Kill,
                Some(_) => return None,
            };
            let action = Action::Signal {
                pid: p.pid,
                mig_device_uuid: p.mig_device_uuid.clone(),
                signal,
            };
            Some((p.pid, action))
        })
        .collect();
    signals.sort_by_key(|(pid, _)| *pid);
    signals.into_iter().map(|(_, a)| a).collect()
}

/// Each GPU's MIG state once `destroyed` is gone.
fn states_after<'a>(
    instances: &'a [InstanceInfo],
    destroyed: &BTreeSet<Slot>,
) -> HashMap<&'a str, GpuState> {
    let mut gpus: HashMap<&str, GpuState> = HashMap::new();
    for inst in instances {
        let slot = Slot::of(inst);
        let state = gpus.entry(inst.gpu_uuid.as_str()).or_default();
        if !destroyed.contains(&slot) {
            // An instance the tables do not know cannot be accounted; the GPU itself
            // refuses a create that would overlap it.
            let _ = state.place(slot.profile, slot.start);
        }
    }
    gpus
}

/// Computes the actions that move the observed node toward the desired state.
pub fn plan(desired: &Desired, observed: &Observed<'_>, ctx: &PlanContext<'_>) -> Plan {
    let (live, dead) = claims(desired, ctx);
    let mut out = Plan::default();
    let mut by_device: HashMap<&str, Vec<u32>> = HashMap::new();
    for p in observed.processes {
        by_device
            .entry(p.mig_device_uuid.as_str())
            .or_default()
            .push(p.pid);
    }

    let mut kept_devices: BTreeSet<&str> = BTreeSet::new();
    let mut destroys = BTreeMap::new();
    for inst in observed.instances {
        let slot = Slot::of(inst);
        if let Some((lease, _)) = live.get(&slot).filter(|_| !dead.contains(&slot)) {
            kept_devices.insert(inst.mig_device_uuid.as_str());
            out.adopted.push((slot, *lease));
        } else if let Some(pids) = by_device.get(inst.mig_device_uuid.as_str()) {
            let mut pids = pids.clone();
            pids.sort_unstable();
            out.held.push(Hold::AwaitingExit { slot, pids });
        } else {
            destroys.insert(slot, inst.mig_device_uuid.clone());
        }
    }
    out.actions = stop_signals(observed.processes, &kept_devices, ctx);

    let destroyed: BTreeSet<Slot> = destroys.keys().cloned().collect();
    let mut gpus = states_after(observed.instances, &destroyed);
    out.actions.extend(
        destroys
            .into_iter()
            .map(|(slot, mig_device_uuid)| Action::Destroy {
                slot,
                mig_device_uuid,
            }),
    );
    let adopted: BTreeSet<&Slot> = out.adopted.iter().map(|(s, _)| s).collect();
    let mut creates = Vec::new();
    for (slot, &(lease_id, placement_id)) in &live {
        if adopted.contains(slot) {
            continue;
        }
        let hold = if !ctx.online {
            Hold::Offline {
                slot: slot.clone(),
                lease_id,
            }
        } else if gpus
            .entry(slot.gpu_uuid.as_str())
            .or_default()
            .place(slot.profile, slot.start)
            .is_ok()
        {
            creates.push(Action::Create {
                slot: slot.clone(),
                lease_id,
                placement_id,
            });
            continue;
        } else {
            // Still taken (processes on the instance in the way not yet gone), or a
            // placement the GPU would refuse: wait for a later reconcile.
            Hold::Blocked {
                slot: slot.clone(),
                lease_id,
            }
        };
        out.held.push(hold);
    }
    out.actions.extend(creates);
    out
}
