//! Usage and enforcement reporting. The [`Accumulator`] turns periodic samples into
//! per-lease intervals (allocated instance-seconds, SM utilisation, peak memory, energy =
//! the GPU's power × the instance's compute slices / 7 × time); the [`Outbox`] numbers
//! closed intervals with a per-lease sequence and keeps them, with enforcement events,
//! in `usage-outbox.json` until the control plane acknowledges them, so a batch resent
//! after a crash carries the same sequence numbers and is never counted twice. The
//! [`Recorder`] wraps the GPU backend during a reconcile and notes every signal, destroy
//! and create that succeeded, as enforcement events; a process stopped on a slice that
//! no lease holds is also reported as a `rogue_process`.

use crate::backend::{GpuBackend, GpuInfo, GpuSample, InstanceInfo, ProcessInfo, StopSignal};
use crate::plan::{Desired, Slot};
use crate::{Error, Result};
use aion_api_types::{AgentEvent, UsageRecord};
use aion_mig::ProfileId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use uuid::Uuid;

/// Compute slices of a whole GPU.
pub const GPU_COMPUTE_SLICES: u64 = 7;
/// Longest gap between two samples that still counts as allocated time (a longer one
/// means the agent was stopped or the host suspended: nothing was measured).
pub const MAX_STEP_S: i64 = 600;
/// Sequence numbers of leases unseen this long are forgotten.
pub const FORGET_AFTER_DAYS: i64 = 40;

/// A MIG instance of a live lease, as the sampler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInstance {
    /// The lease.
    pub lease_id: Uuid,
    /// GPU it is on.
    pub gpu_uuid: String,
    /// Its MIG device.
    pub mig_device_uuid: String,
    /// Compute slices of the instance (out of 7).
    pub compute_slices: u8,
}

/// Compute slices of a profile (1 when the id is unknown, which `Desired::parse` refuses).
pub fn compute_slices(profile: ProfileId) -> u8 {
    aion_mig::profile::Shape::of(profile).map_or(1, |s| s.geometry().compute_slices)
}

/// The instances of live leases present on the node.
pub fn live_instances(
    desired: &Desired,
    present: &[InstanceInfo],
    now: DateTime<Utc>,
) -> Vec<LeaseInstance> {
    let by_slot: HashMap<Slot, &InstanceInfo> = present.iter().map(|i| (Slot::of(i), i)).collect();
    let mut out = Vec::new();
    for lease in &desired.leases {
        if !lease.in_term(now) {
            continue;
        }
        for w in &lease.instances {
            if let Some(i) = by_slot.get(&w.slot) {
                out.push(LeaseInstance {
                    lease_id: lease.lease_id,
                    gpu_uuid: i.gpu_uuid.clone(),
                    mig_device_uuid: i.mig_device_uuid.clone(),
                    compute_slices: compute_slices(w.slot.profile),
                });
            }
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct Open {
    start: DateTime<Utc>,
    allocated_ms: i64,
    sm_weighted: f64,
    sm_ms: i64,
    peak_memory_mib: u64,
    energy_mj: f64,
}

impl Open {
    fn new(start: DateTime<Utc>) -> Self {
        Self {
            start,
            allocated_ms: 0,
            sm_weighted: 0.0,
            sm_ms: 0,
            peak_memory_mib: 0,
            energy_mj: 0.0,
        }
    }
}

/// A closed interval of one lease, not yet numbered.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// The lease.
    pub lease_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Instance-seconds.
    pub allocated_seconds: i64,
    /// Average SM utilisation where reported.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub memory_used_mib: i64,
    /// Energy, millijoules.
    pub energy_mj: i64,
}

/// Per-lease sums of the intervals being measured. Pure: time and samples come in.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    open: BTreeMap<Uuid, Open>,
    last: Option<DateTime<Utc>>,
}

impl Accumulator {
    /// Adds the time since the previous sample: each present instance of a live lease
    /// was allocated during it and used its share of the GPU's power; the sample taken
    /// now stands for that whole step.
    pub fn observe(&mut self, now: DateTime<Utc>, live: &[LeaseInstance], samples: &[GpuSample]) {
        let Some(last) = self.last.replace(now) else {
            return;
        };
        let step_ms = (now - last).num_milliseconds();
        if step_ms <= 0 || step_ms > MAX_STEP_S * 1000 {
            return;
        }
        let gpus: HashMap<&str, &GpuSample> =
            samples.iter().map(|s| (s.gpu_uuid.as_str(), s)).collect();
        for inst in live {
            let open = self
                .open
                .entry(inst.lease_id)
                .or_insert_with(|| Open::new(last));
            open.allocated_ms += step_ms;
            let Some(gpu) = gpus.get(inst.gpu_uuid.as_str()) else {
                continue;
            };
            // mW × ms / 1000 = mJ, apportioned by compute slices.
            open.energy_mj += gpu.power_mw as f64 * f64::from(inst.compute_slices)
                / GPU_COMPUTE_SLICES as f64
                * step_ms as f64
                / 1000.0;
            if let Some(s) = gpu
                .instances
                .iter()
                .find(|s| s.mig_device_uuid == inst.mig_device_uuid)
            {
                open.peak_memory_mib = open.peak_memory_mib.max(s.memory_used_mib);
                if let Some(pct) = s.sm_utilisation_pct {
                    open.sm_weighted += pct.clamp(0.0, 100.0) * step_ms as f64;
                    open.sm_ms += step_ms;
                }
            }
        }
    }

    /// Ends every open interval at the last sample and starts new ones there.
    pub fn close(&mut self) -> Vec<Interval> {
        let Some(end) = self.last else {
            return Vec::new();
        };
        std::mem::take(&mut self.open)
            .into_iter()
            .filter(|(_, o)| o.allocated_ms > 0 && end > o.start)
            .map(|(lease_id, o)| Interval {
                lease_id,
                start: o.start,
                end,
                allocated_seconds: (o.allocated_ms + 500) / 1000,
                sm_utilisation_pct: (o.sm_ms > 0).then(|| o.sm_weighted / o.sm_ms as f64),
                memory_used_mib: i64::try_from(o.peak_memory_mib).unwrap_or(i64::MAX),
                energy_mj: o.energy_mj.round() as i64,
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SequenceState {
    next: i64,
    used_at: DateTime<Utc>,
}

/// Reports waiting for the control plane, saved in the state directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    sequences: BTreeMap<Uuid, SequenceState>,
    /// Usage records not yet acknowledged.
    pub records: Vec<UsageRecord>,
    /// Enforcement events not yet acknowledged.
    pub events: Vec<AgentEvent>,
}

impl Outbox {
    /// The outbox file in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("usage-outbox.json")
    }

    /// The saved outbox; empty when there is none. An unreadable file is kept aside
    /// (`.bad`) rather than overwritten, so its sequence numbers can be recovered by hand.
    pub fn load(path: &Path) -> Self {
        let Ok(bytes) = std::fs::read(path) else {
            return Self::default();
        };
        match serde_json::from_slice(&bytes) {
            Ok(outbox) => outbox,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "unreadable usage outbox; set aside");
                let _ = std::fs::rename(path, path.with_extension("bad"));
                Self::default()
            }
        }
    }

    /// Saves atomically (0600).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other);
        bytes
            .and_then(|b| crate::client::write_private(path, &b))
            .map_err(|source| Error::State {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Numbers closed intervals (per lease, from 0, never reused) and queues them.
    pub fn push_intervals(&mut self, intervals: Vec<Interval>, now: DateTime<Utc>) {
        for i in intervals {
            let seq = self.sequences.entry(i.lease_id).or_insert(SequenceState {
                next: 0,
                used_at: now,
            });
            self.records.push(UsageRecord {
                lease_id: i.lease_id,
                sequence: seq.next,
                interval_start: i.start,
                interval_end: i.end,
                allocated_seconds: i.allocated_seconds,
                sm_utilisation_pct: i.sm_utilisation_pct,
                memory_used_mib: i.memory_used_mib,
                energy_mj: i.energy_mj,
            });
            seq.next += 1;
            seq.used_at = now;
        }
        let horizon = now - Duration::days(FORGET_AFTER_DAYS);
        self.sequences.retain(|_, s| s.used_at > horizon);
    }

    /// Drops acknowledged records.
    pub fn ack_records(&mut self, sent: &[UsageRecord]) {
        self.records.retain(|r| {
            !sent
                .iter()
                .any(|s| s.lease_id == r.lease_id && s.sequence == r.sequence)
        });
    }

    /// Drops acknowledged events.
    pub fn ack_events(&mut self, sent: &[AgentEvent]) {
        self.events
            .retain(|e| !sent.iter().any(|s| s.event_id == e.event_id));
    }
}

/// Wraps a backend during one reconcile and records the enforcement actions that
/// succeeded. Devices and processes are those the plan saw (it reads them first).
pub struct Recorder<'a> {
    inner: &'a dyn GpuBackend,
    leases: HashMap<Slot, Uuid>,
    now: DateTime<Utc>,
    instances: Mutex<Vec<InstanceInfo>>,
    processes: Mutex<Vec<ProcessInfo>>,
    events: Mutex<Vec<AgentEvent>>,
}

impl<'a> Recorder<'a> {
    /// Records actions on `inner`; `desired` tells which lease each slot belongs to.
    pub fn new(inner: &'a dyn GpuBackend, desired: &Desired, now: DateTime<Utc>) -> Self {
        let leases = desired
            .leases
            .iter()
            .flat_map(|l| l.instances.iter().map(|w| (w.slot.clone(), l.lease_id)))
            .collect();
        Self {
            inner,
            leases,
            now,
            instances: Mutex::new(Vec::new()),
            processes: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        }
    }

    /// The events recorded.
    pub fn into_events(self) -> Vec<AgentEvent> {
        self.events.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, event: AgentEvent) {
        match self.events.lock() {
            Ok(mut v) => v.push(event),
            Err(p) => p.into_inner().push(event),
        }
    }

    fn event(&self, kind: &str, slot: Option<&Slot>, device: Option<String>) -> AgentEvent {
        AgentEvent {
            event_id: Uuid::now_v7(),
            kind: kind.to_owned(),
            occurred_at: self.now,
            lease_id: slot.and_then(|s| self.leases.get(s).copied()),
            gpu_uuid: slot.map(|s| s.gpu_uuid.clone()),
            mig_device_uuid: device,
            profile_id: slot.map(|s| i32::from(s.profile.get())),
            start: slot.map(|s| i32::from(s.start)),
            ..AgentEvent::default()
        }
    }

    fn slot_of_device(&self, device: &str) -> Option<Slot> {
        let instances = self.instances.lock().ok()?;
        instances
            .iter()
            .find(|i| i.mig_device_uuid == device)
            .map(Slot::of)
    }
}

impl GpuBackend for Recorder<'_> {
    fn inventory(&self) -> Result<Vec<GpuInfo>> {
        self.inner.inventory()
    }

    fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let seen = self.inner.instances()?;
        if let Ok(mut cache) = self.instances.lock() {
            cache.clone_from(&seen);
        }
        Ok(seen)
    }

    fn create_instance(
        &self,
        gpu_uuid: &str,
        profile: ProfileId,
        start: u8,
    ) -> Result<InstanceInfo> {
        let made = self.inner.create_instance(gpu_uuid, profile, start)?;
        let mut e = self.event(
            "instance_created",
            Some(&Slot::of(&made)),
            Some(made.mig_device_uuid.clone()),
        );
        e.reason = Some("instance of a live lease".into());
        self.push(e);
        Ok(made)
    }

    fn destroy_instance(&self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()> {
        self.inner.destroy_instance(gpu_uuid, profile, start)?;
        let slot = Slot {
            gpu_uuid: gpu_uuid.to_owned(),
            profile,
            start,
        };
        let device = self.instances.lock().ok().and_then(|v| {
            v.iter()
                .find(|i| Slot::of(i) == slot)
                .map(|i| i.mig_device_uuid.clone())
        });
        let mut e = self.event("instance_destroyed", Some(&slot), device);
        e.reason = Some(reason(e.lease_id));
        self.push(e);
        Ok(())
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let seen = self.inner.processes()?;
        if let Ok(mut cache) = self.processes.lock() {
            cache.clone_from(&seen);
        }
        Ok(seen)
    }

    fn signal(&self, pid: u32, signal: StopSignal) -> Result<()> {
        self.inner.signal(pid, signal)?;
        let device = self.processes.lock().ok().and_then(|v| {
            v.iter()
                .find(|p| p.pid == pid)
                .map(|p| p.mig_device_uuid.clone())
        });
        let slot = device.as_deref().and_then(|d| self.slot_of_device(d));
        let lease = slot.as_ref().and_then(|s| self.leases.get(s));
        if lease.is_none() && signal == StopSignal::Term {
            // On a slice no lease of the desired state holds: a rogue process, reported
            // once (with its first signal) beside the signal itself.
            let mut e = self.event("rogue_process", slot.as_ref(), device.clone());
            e.pid = Some(i64::from(pid));
            e.signal = Some("TERM".into());
            e.reason = Some("process on a MIG device of no live lease".into());
            self.push(e);
        }
        let mut e = self.event("process_terminated", slot.as_ref(), device);
        e.pid = Some(i64::from(pid));
        e.signal = Some(match signal {
            StopSignal::Term => "TERM".into(),
            StopSignal::Kill => "KILL".into(),
        });
        e.reason = Some(reason(e.lease_id));
        self.push(e);
        Ok(())
    }

    fn sample(&self) -> Result<Vec<GpuSample>> {
        self.inner.sample()
    }
}

fn reason(lease: Option<Uuid>) -> String {
    match lease {
        Some(_) => "the lease of this slice is no longer live".into(),
        None => "no live lease on this slice".into(),
    }
}

#[cfg(test)]
#[path = "usage/tests.rs"]
mod tests;
