//! Property: on any consistent node (valid MIG placements, leases on them or not, some
//! processes), the plan never touches an instance that matches a live lease, never
//! destroys an instance with processes, and its steps apply in order under the MIG rules.

use aion_agent::backend::{InstanceInfo, ProcessInfo};
use aion_agent::plan::{
    Action, Desired, KnownLease, LeasePhase, Observed, PlanContext, Slot, WantedInstance, plan,
};
use aion_mig::GpuState;
use aion_mig::profile::GEOMETRY;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// How a generated instance relates to the leases.
#[derive(Clone, Copy, Debug)]
enum Owner {
    Live,
    LiveEndingLater,
    LiveEnded,
    Releasing,
    Nobody,
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        Just(Owner::Live),
        Just(Owner::LiveEndingLater),
        Just(Owner::LiveEnded),
        Just(Owner::Releasing),
        Just(Owner::Nobody),
    ]
}

/// Placement attempts (shape, start) per GPU, each with an owner, a process flag and
/// whether it is present (false: desired only).
type Attempt = (usize, u8, Owner, bool, bool);

fn node() -> impl Strategy<Value = (Vec<Vec<Attempt>>, bool, bool)> {
    let attempt = (
        0..GEOMETRY.len(),
        0u8..8,
        owner(),
        any::<bool>(),
        any::<bool>(),
    );
    (
        prop::collection::vec(prop::collection::vec(attempt, 0..10), 1..3),
        any::<bool>(),
        any::<bool>(),
    )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

proptest! {
    #[test]
    fn a_plan_never_touches_live_slices_and_applies_under_the_mig_rules(
        (gpus, online, termed) in node()
    ) {
        let mut instances = Vec::new();
        let mut processes = Vec::new();
        let mut leases = Vec::new();
        let mut term_sent = HashMap::new();
        let mut states: HashMap<String, GpuState> = HashMap::new();
        for (g, attempts) in gpus.iter().enumerate() {
            let gpu = format!("GPU-{g}");
            let mut full = GpuState::empty();
            let mut present_state = GpuState::empty();
            for (k, &(shape, start, who, busy, present)) in attempts.iter().enumerate() {
                let profile = GEOMETRY[shape].id;
                if full.place(profile, start).is_err() {
                    continue;
                }
                let slot = Slot { gpu_uuid: gpu.clone(), profile, start };
                if present {
                    let _ = present_state.place(profile, start);
                    let mig = format!("MIG-{g}-{k}");
                    instances.push(InstanceInfo {
                        gpu_uuid: gpu.clone(), profile, start, mig_device_uuid: mig.clone(),
                    });
                    if busy {
                        let pid = (g * 100 + k) as u32;
                        processes.push(ProcessInfo { pid, mig_device_uuid: mig, used_memory_mib: 1 });
                        if termed {
                            term_sent.insert(pid, now() - Duration::seconds(k as i64 * 5));
                        }
                    }
                }
                let (phase, ends_at) = match who {
                    Owner::Nobody => continue,
                    Owner::Live => (LeasePhase::Active, None),
                    Owner::LiveEndingLater => (LeasePhase::Active, Some(now() + Duration::hours(1))),
                    Owner::LiveEnded => (LeasePhase::Active, Some(now() - Duration::hours(1))),
                    Owner::Releasing => (LeasePhase::Releasing, None),
                };
                let phase = if present { phase } else if phase == LeasePhase::Active { LeasePhase::Scheduled } else { phase };
                leases.push(KnownLease {
                    lease_id: Uuid::new_v4(),
                    phase,
                    ends_at,
                    instances: vec![WantedInstance { placement_id: Uuid::new_v4(), slot }],
                });
            }
            states.insert(gpu, present_state);
        }
        let desired = Desired { revision: 1, leases };
        let p = plan(
            &desired,
            &Observed { instances: &instances, processes: &processes },
            &PlanContext { now: now(), online, kill_grace: Duration::seconds(10), term_sent: &term_sent },
        );

        let live: HashSet<Slot> = desired.leases.iter()
            .filter(|l| l.phase != LeasePhase::Releasing
                && (online || l.ends_at.is_none_or(|e| e > now())))
            .flat_map(|l| l.instances.iter().map(|w| w.slot.clone()))
            .collect();
        let live_devices: HashSet<&str> = instances.iter()
            .filter(|i| live.contains(&Slot::of(i)))
            .map(|i| i.mig_device_uuid.as_str())
            .collect();
        let busy: HashSet<&str> = processes.iter().map(|p| p.mig_device_uuid.as_str()).collect();
        for a in &p.actions {
            match a {
                Action::Signal { mig_device_uuid, .. } => {
                    prop_assert!(!live_devices.contains(mig_device_uuid.as_str()), "signal on a live slice: {a:?}");
                }
                Action::Destroy { slot, mig_device_uuid } => {
                    prop_assert!(!live.contains(slot), "destroyed a live slice: {a:?}");
                    prop_assert!(!busy.contains(mig_device_uuid.as_str()), "destroyed a busy slice: {a:?}");
                    let state = states.entry(slot.gpu_uuid.clone()).or_default();
                    prop_assert!(state.remove(slot.profile, slot.start).is_ok(), "{a:?}");
                }
                Action::Create { slot, .. } => {
                    prop_assert!(online, "created offline: {a:?}");
                    prop_assert!(live.contains(slot));
                    let state = states.entry(slot.gpu_uuid.clone()).or_default();
                    prop_assert!(state.place(slot.profile, slot.start).is_ok(), "{a:?}");
                }
            }
        }
    }
}
