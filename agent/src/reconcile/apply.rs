//! The thin executor: reads the backend, computes the [`plan`](crate::plan::plan),
//! applies its steps one by one and builds the status report. Synchronous, run on a
//! blocking thread by the loop. After each reconcile, [`publish`] tells the node what
//! it now runs: each live lease's MIG devices (for `aion agent exec`), CDI specs, and
//! the workloads `exec` started (tracked, or stopped once their lease is gone).

use crate::backend::{GpuBackend, StopSignal};
use crate::cdi::{self, MigDevice};
use crate::config::AgentConfig;
use crate::exec::{self, LeaseDevices, NodeDevices};
use crate::plan::{Action, Desired, Hold, Observed, PlanContext, Slot, plan};
use crate::{Error, Result};
use aion_api_types::{DesiredState, GpuHealth, ReportedInstance, StatusReport};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// What one reconcile did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Steps applied.
    pub actions: usize,
    /// Steps that failed (logged; retried by the next reconcile).
    pub failed: usize,
    /// Whether the plan had nothing to do and nothing waiting (offline holds aside).
    pub converged: bool,
}

/// Observes, plans and applies once. `term_sent` keeps when TERM went to each process
/// being stopped; processes that are gone are forgotten.
pub fn reconcile(
    backend: &dyn GpuBackend,
    desired: &Desired,
    term_sent: &mut HashMap<u32, DateTime<Utc>>,
    now: DateTime<Utc>,
    online: bool,
    kill_grace: Duration,
) -> Result<Applied> {
    let instances = backend.instances()?;
    let processes = backend.processes()?;
    term_sent.retain(|pid, _| processes.iter().any(|p| p.pid == *pid));
    let p = plan(
        desired,
        &Observed {
            instances: &instances,
            processes: &processes,
        },
        &PlanContext {
            now,
            online,
            kill_grace,
            term_sent,
        },
    );
    for (slot, lease) in &p.adopted {
        tracing::trace!(%lease, gpu = %slot.gpu_uuid, profile = %slot.profile, start = slot.start, "kept");
    }
    let mut out = Applied {
        converged: p.actions.is_empty() && p.held.iter().all(|h| matches!(h, Hold::Offline { .. })),
        ..Applied::default()
    };
    for action in &p.actions {
        out.actions += 1;
        if let Err(e) = apply(backend, action, term_sent, now) {
            out.failed += 1;
            tracing::warn!(error = %e, ?action, "step failed");
        }
    }
    Ok(out)
}

fn apply(
    backend: &dyn GpuBackend,
    action: &Action,
    term_sent: &mut HashMap<u32, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    match action {
        Action::Signal {
            pid,
            mig_device_uuid,
            signal,
        } => {
            tracing::info!(pid, device = %mig_device_uuid, ?signal, "stopping a process without a live lease");
            backend.signal(*pid, *signal)?;
            if *signal == StopSignal::Term {
                term_sent.insert(*pid, now);
            }
        }
        Action::Destroy {
            slot,
            mig_device_uuid,
        } => {
            tracing::info!(gpu = %slot.gpu_uuid, profile = %slot.profile, start = slot.start,
                device = %mig_device_uuid, "destroying instance");
            backend.destroy_instance(&slot.gpu_uuid, slot.profile, slot.start)?;
        }
        Action::Create {
            slot,
            lease_id,
            placement_id,
        } => {
            let made = backend.create_instance(&slot.gpu_uuid, slot.profile, slot.start)?;
            tracing::info!(lease = %lease_id, placement = %placement_id, gpu = %slot.gpu_uuid,
                profile = %slot.profile, start = slot.start, device = %made.mig_device_uuid,
                "created instance");
        }
    }
    Ok(())
}

/// Every instance present, with its MIG device, and the health of every GPU (empty when
/// sampling fails: health is then left as it was).
pub fn status_report(backend: &dyn GpuBackend) -> Result<StatusReport> {
    let instances = backend
        .instances()?
        .into_iter()
        .map(|i| ReportedInstance {
            gpu_uuid: i.gpu_uuid,
            profile_id: i32::from(i.profile.get()),
            start: i32::from(i.start),
            mig_device_uuid: i.mig_device_uuid,
        })
        .collect();
    let gpus = match backend.sample() {
        Ok(samples) => samples
            .into_iter()
            .map(|s| GpuHealth {
                uuid: s.gpu_uuid,
                health: if s.healthy { "ok" } else { "unhealthy" }.into(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "GPU sampling failed; health not reported");
            Vec::new()
        }
    };
    Ok(StatusReport { instances, gpus })
}

/// After a reconcile: publishes the live leases' devices and CDI specs and tends the
/// workloads of `aion agent exec`. Failures are logged; they never fail the reconcile.
/// `published` is what the devices file last held: it is written again only when that
/// changes (a write is an fsync, and a fleet of agents would otherwise sync a file per
/// node on every poll).
pub async fn publish(
    backend: &Arc<dyn GpuBackend>,
    config: &AgentConfig,
    desired: &Option<(DesiredState, Desired)>,
    published: &mut Option<NodeDevices>,
) {
    let Some((_, desired)) = desired.clone() else {
        return;
    };
    let backend = Arc::clone(backend);
    let state_dir = config.state_dir.clone();
    let cdi_dir = config.cdi_dir.clone();
    let grace = Duration::from_std(config.kill_grace).unwrap_or(Duration::seconds(10));
    let mut last = published.take();
    let done = tokio::task::spawn_blocking(move || {
        let r = publish_now(
            &*backend,
            &desired,
            &state_dir,
            cdi_dir.as_deref(),
            Utc::now(),
            grace,
            &mut last,
        );
        (r, last)
    })
    .await
    .map_err(|e| Error::Backend(format!("publish task: {e}")));
    let done = match done {
        Ok((r, last)) => {
            *published = last;
            r
        }
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "publishing the node's devices failed");
    }
}

/// The live leases whose instances are all present: lease → (end, devices).
type LiveDevices = BTreeMap<Uuid, (Option<DateTime<Utc>>, Vec<MigDevice>)>;

/// [`publish`], synchronously. The devices file is written unless `published` holds
/// the same revision and leases; `published` then holds what the file holds.
pub fn publish_now(
    backend: &dyn GpuBackend,
    desired: &Desired,
    state_dir: &Path,
    cdi_dir: Option<&Path>,
    now: DateTime<Utc>,
    kill_grace: Duration,
    published: &mut Option<NodeDevices>,
) -> Result<()> {
    let live = live_devices(backend, desired, now)?;
    let devices = NodeDevices {
        revision: desired.revision,
        written_at: now,
        leases: live
            .iter()
            .map(|(lease, (ends_at, devices))| LeaseDevices {
                lease_id: *lease,
                ends_at: *ends_at,
                mig_device_uuids: devices.iter().map(|d| d.uuid.clone()).collect(),
            })
            .collect(),
    };
    // Written again if someone removed it (a stat, far cheaper than the synced write).
    let unchanged = published
        .as_ref()
        .is_some_and(|p| p.revision == devices.revision && p.leases == devices.leases)
        && exec::devices_path(state_dir).exists();
    if !unchanged {
        // Forgotten first: after a failed write, the next publish writes again.
        *published = None;
        exec::write_devices(state_dir, &devices)?;
        *published = Some(devices);
    }
    if let Some(dir) = cdi_dir {
        let specs = live.iter().map(|(l, (_, d))| (*l, d.clone())).collect();
        cdi::sync(dir, &specs).map_err(|source| Error::State {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    tend_workloads(backend, state_dir, &live, now, kill_grace);
    Ok(())
}

fn live_devices(
    backend: &dyn GpuBackend,
    desired: &Desired,
    now: DateTime<Utc>,
) -> Result<LiveDevices> {
    let index: HashMap<String, u32> = backend
        .inventory()?
        .into_iter()
        .map(|g| (g.uuid, g.index))
        .collect();
    let present: HashMap<Slot, MigDevice> = backend
        .instances()?
        .into_iter()
        .map(|i| {
            let gpu_index = index.get(&i.gpu_uuid).copied().unwrap_or_default();
            (
                Slot::of(&i),
                MigDevice {
                    uuid: i.mig_device_uuid,
                    gpu_index,
                },
            )
        })
        .collect();
    let mut live = LiveDevices::new();
    for lease in &desired.leases {
        if !lease.in_term(now) {
            continue;
        }
        let devices: Option<Vec<MigDevice>> = lease
            .instances
            .iter()
            .map(|w| present.get(&w.slot).cloned())
            .collect();
        if let Some(devices) = devices.filter(|d| !d.is_empty()) {
            live.insert(lease.lease_id, (lease.ends_at, devices));
        }
    }
    Ok(live)
}

/// Before planning: every running workload that `aion agent exec` registered on a device
/// present now is made known to the backend (the simulator lists it on that device; the
/// driver lists it by itself), whatever its lease. The plan then sees it as a process on
/// the device: it stops it (and reports that) before destroying the instance, even when
/// the release arrived before the agent had picked the workload up.
pub fn track_workloads(backend: &dyn GpuBackend, state_dir: &Path) {
    let workloads = exec::read_workloads(state_dir);
    if workloads.is_empty() {
        return;
    }
    let (devices, listed) = match (backend.instances(), backend.processes()) {
        (Ok(i), Ok(p)) => (
            i.into_iter()
                .map(|i| i.mig_device_uuid)
                .collect::<HashSet<_>>(),
            p.into_iter().map(|p| p.pid).collect::<HashSet<_>>(),
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read the GPUs; workloads not tracked this time");
            return;
        }
    };
    for w in workloads {
        if listed.contains(&w.pid) || !w.is_running() {
            continue;
        }
        let Some(device) = w.mig_device_uuids.iter().find(|u| devices.contains(*u)) else {
            continue;
        };
        if let Err(e) = backend.track_workload(device, w.pid) {
            tracing::warn!(error = %e, pid = w.pid, lease = %w.lease_id, "cannot track workload");
        }
    }
}

/// Workloads of live leases are tracked by the backend (the simulator lists them on
/// their device); workloads whose lease is no longer live here and that the backend does
/// not list (so the plan cannot stop them) get TERM, then KILL after the grace.
fn tend_workloads(
    backend: &dyn GpuBackend,
    state_dir: &Path,
    live: &LiveDevices,
    now: DateTime<Utc>,
    kill_grace: Duration,
) {
    let workloads = exec::read_workloads(state_dir);
    if workloads.is_empty() {
        return;
    }
    let listed: HashSet<u32> = match backend.processes() {
        Ok(p) => p.into_iter().map(|p| p.pid).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list GPU processes; workloads left as they are");
            return;
        }
    };
    for mut w in workloads {
        if !w.is_running() {
            exec::forget_workload(state_dir, w.pid);
            continue;
        }
        let devices = live.get(&w.lease_id).map(|(_, d)| d);
        let on_live = devices.is_some_and(|d| {
            w.mig_device_uuids
                .iter()
                .all(|u| d.iter().any(|dev| &dev.uuid == u))
        });
        if on_live {
            if let (false, Some(device)) = (listed.contains(&w.pid), w.mig_device_uuids.first())
                && let Err(e) = backend.track_workload(device, w.pid)
            {
                tracing::warn!(error = %e, pid = w.pid, lease = %w.lease_id, "cannot track workload");
            }
            continue;
        }
        if listed.contains(&w.pid) {
            continue; // on a device: the plan stops it
        }
        let signal = match w.term_sent_at {
            None => StopSignal::Term,
            Some(at) if now - at >= kill_grace => StopSignal::Kill,
            Some(_) => continue,
        };
        tracing::info!(pid = w.pid, lease = %w.lease_id, ?signal, "stopping a workload whose lease is not live here");
        match w.os().signal(signal) {
            Ok(_) if signal == StopSignal::Term => {
                w.term_sent_at = Some(now);
                if let Err(e) = exec::write_workload(state_dir, &w) {
                    tracing::warn!(error = %e, pid = w.pid, "cannot update workload file");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, pid = w.pid, "cannot signal workload"),
        }
    }
}
