//! The thin executor: reads the backend, computes the [`plan`](crate::plan::plan),
//! applies its steps one by one and builds the status report. Synchronous, run on a
//! blocking thread by the loop.

use crate::Result;
use crate::backend::{GpuBackend, StopSignal};
use crate::plan::{Action, Desired, Hold, Observed, PlanContext, plan};
use aion_api_types::{GpuHealth, ReportedInstance, StatusReport};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

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
