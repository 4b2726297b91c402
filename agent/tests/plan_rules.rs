//! The reconcile plan's rules, without a GPU: adoption, teardown, rogue processes,
//! offline behaviour and conflicting placements.

use aion_agent::backend::{InstanceInfo, ProcessInfo, StopSignal};
use aion_agent::plan::{
    Action, Desired, Hold, KnownLease, LeasePhase, Observed, PlanContext, Slot, WantedInstance,
    plan,
};
use aion_mig::ProfileId;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::HashMap;
use uuid::Uuid;

const GPU: &str = "GPU-0";
/// `3g.40gb` on H100 (starts 0 and 4).
const P3G: ProfileId = ProfileId::new(9);
/// `1g.10gb` on H100.
const P1G: ProfileId = ProfileId::new(19);
/// `7g.80gb`.
const P7G: ProfileId = ProfileId::new(0);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn slot(profile: ProfileId, start: u8) -> Slot {
    Slot {
        gpu_uuid: GPU.into(),
        profile,
        start,
    }
}

fn lease(phase: LeasePhase, ends_at: Option<DateTime<Utc>>, slots: &[Slot]) -> KnownLease {
    KnownLease {
        lease_id: Uuid::new_v4(),
        phase,
        ends_at,
        instances: slots
            .iter()
            .map(|s| WantedInstance {
                placement_id: Uuid::new_v4(),
                slot: s.clone(),
            })
            .collect(),
    }
}

fn instance(s: &Slot, mig: &str) -> InstanceInfo {
    InstanceInfo {
        gpu_uuid: s.gpu_uuid.clone(),
        profile: s.profile,
        start: s.start,
        mig_device_uuid: mig.into(),
    }
}

fn process(pid: u32, mig: &str) -> ProcessInfo {
    ProcessInfo {
        pid,
        mig_device_uuid: mig.into(),
        used_memory_mib: 100,
    }
}

struct Case {
    leases: Vec<KnownLease>,
    instances: Vec<InstanceInfo>,
    processes: Vec<ProcessInfo>,
    term_sent: HashMap<u32, DateTime<Utc>>,
    online: bool,
}

impl Case {
    fn new() -> Self {
        Self {
            leases: Vec::new(),
            instances: Vec::new(),
            processes: Vec::new(),
            term_sent: HashMap::new(),
            online: true,
        }
    }
    fn run(&self) -> aion_agent::plan::Plan {
        let desired = Desired {
            revision: 1,
            leases: self.leases.clone(),
        };
        plan(
            &desired,
            &Observed {
                instances: &self.instances,
                processes: &self.processes,
            },
            &PlanContext {
                now: now(),
                online: self.online,
                kill_grace: Duration::seconds(10),
                term_sent: &self.term_sent,
            },
        )
    }
}

#[test]
fn a_scheduled_lease_gets_its_missing_instances_created_at_their_placement() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Scheduled, None, &[slot(P3G, 4)]));
    let p = c.run();
    assert_eq!(p.actions.len(), 1);
    assert!(matches!(&p.actions[0], Action::Create { slot: s, .. } if *s == slot(P3G, 4)));
}

#[test]
fn a_restarted_agent_adopts_the_instances_of_live_leases_with_their_processes() {
    let mut c = Case::new();
    let l = lease(LeasePhase::Active, None, &[slot(P3G, 0)]);
    let id = l.lease_id;
    c.leases.push(l);
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    c.processes.push(process(42, "MIG-a"));
    let p = c.run();
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.adopted, vec![(slot(P3G, 0), id)]);
    assert!(p.is_converged());
}

#[test]
fn an_instance_of_no_lease_without_processes_is_destroyed() {
    let mut c = Case::new();
    c.instances.push(instance(&slot(P1G, 6), "MIG-x"));
    let p = c.run();
    assert_eq!(
        p.actions,
        vec![Action::Destroy {
            slot: slot(P1G, 6),
            mig_device_uuid: "MIG-x".into()
        }]
    );
}

#[test]
fn a_releasing_lease_with_processes_gets_term_first_and_no_destroy() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Releasing, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    c.processes.push(process(7, "MIG-a"));
    let p = c.run();
    assert_eq!(
        p.actions,
        vec![Action::Signal {
            pid: 7,
            mig_device_uuid: "MIG-a".into(),
            signal: StopSignal::Term
        }]
    );
    assert_eq!(
        p.held,
        vec![Hold::AwaitingExit {
            slot: slot(P3G, 0),
            pids: vec![7]
        }]
    );
}

#[test]
fn a_process_that_ignores_term_is_killed_after_the_grace_period_only() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Releasing, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    c.processes.push(process(7, "MIG-a"));
    c.term_sent.insert(7, now() - Duration::seconds(3));
    assert!(c.run().actions.is_empty(), "within the grace period: wait");
    c.term_sent.insert(7, now() - Duration::seconds(10));
    let p = c.run();
    assert!(matches!(
        p.actions.as_slice(),
        [Action::Signal {
            pid: 7,
            signal: StopSignal::Kill,
            ..
        }]
    ));
}

#[test]
fn a_releasing_lease_whose_processes_are_gone_is_destroyed() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Releasing, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    let p = c.run();
    assert!(matches!(p.actions.as_slice(), [Action::Destroy { .. }]));
}

#[test]
fn rogue_processes_on_a_device_without_a_live_lease_are_stopped_but_tenants_are_not() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Active, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P3G, 0), "MIG-tenant"));
    c.instances.push(instance(&slot(P1G, 6), "MIG-orphan"));
    c.processes.push(process(1, "MIG-tenant"));
    c.processes.push(process(2, "MIG-orphan"));
    c.processes.push(process(3, "MIG-vanished"));
    let p = c.run();
    let pids: Vec<u32> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect();
    assert_eq!(pids, vec![2, 3]);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::Destroy { .. })),
        "the orphan still has a process"
    );
}

#[test]
fn offline_known_leases_are_kept_until_their_end_and_nothing_new_is_created() {
    let mut c = Case::new();
    c.online = false;
    let running = lease(
        LeasePhase::Active,
        Some(now() + Duration::hours(1)),
        &[slot(P3G, 0)],
    );
    let unending = lease(LeasePhase::Active, None, &[slot(P1G, 4)]);
    let missing = lease(LeasePhase::Scheduled, None, &[slot(P1G, 5)]);
    c.leases.extend([running, unending, missing]);
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    c.instances.push(instance(&slot(P1G, 4), "MIG-b"));
    c.processes.push(process(1, "MIG-a"));
    let p = c.run();
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.adopted.len(), 2);
    assert!(matches!(p.held.as_slice(), [Hold::Offline { slot: s, .. }] if *s == slot(P1G, 5)));
}

#[test]
fn offline_a_lease_past_its_end_is_torn_down() {
    let mut c = Case::new();
    c.online = false;
    c.leases.push(lease(
        LeasePhase::Active,
        Some(now() - Duration::seconds(1)),
        &[slot(P3G, 0), slot(P3G, 4)],
    ));
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    c.instances.push(instance(&slot(P3G, 4), "MIG-b"));
    c.processes.push(process(9, "MIG-a"));
    let p = c.run();
    assert_eq!(
        p.actions,
        vec![
            Action::Signal {
                pid: 9,
                mig_device_uuid: "MIG-a".into(),
                signal: StopSignal::Term
            },
            Action::Destroy {
                slot: slot(P3G, 4),
                mig_device_uuid: "MIG-b".into()
            },
        ]
    );
}

#[test]
fn online_an_active_lease_past_its_end_is_kept_because_the_control_plane_decides() {
    let mut c = Case::new();
    c.leases.push(lease(
        LeasePhase::Active,
        Some(now() - Duration::hours(1)),
        &[slot(P3G, 0)],
    ));
    c.instances.push(instance(&slot(P3G, 0), "MIG-a"));
    assert!(c.run().is_converged());
}

#[test]
fn a_conflicting_instance_is_destroyed_before_the_desired_one_is_created() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Scheduled, None, &[slot(P7G, 0)]));
    c.instances.push(instance(&slot(P3G, 4), "MIG-old"));
    let p = c.run();
    assert!(
        matches!(
            p.actions.as_slice(),
            [Action::Destroy { slot: d, .. }, Action::Create { slot: s, .. }]
                if *d == slot(P3G, 4) && *s == slot(P7G, 0)
        ),
        "{p:?}"
    );
}

#[test]
fn a_conflicting_instance_with_processes_blocks_the_create_until_they_are_gone() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Scheduled, None, &[slot(P7G, 0)]));
    c.instances.push(instance(&slot(P3G, 4), "MIG-old"));
    c.processes.push(process(5, "MIG-old"));
    let p = c.run();
    assert!(matches!(
        p.actions.as_slice(),
        [Action::Signal {
            pid: 5,
            signal: StopSignal::Term,
            ..
        }]
    ));
    assert!(
        p.held
            .iter()
            .any(|h| matches!(h, Hold::Blocked { slot: s, .. } if *s == slot(P7G, 0)))
    );
}

#[test]
fn a_slot_reassigned_from_a_releasing_lease_is_recreated_not_handed_over() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Releasing, None, &[slot(P3G, 0)]));
    c.leases
        .push(lease(LeasePhase::Scheduled, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P3G, 0), "MIG-old"));
    let p = c.run();
    assert!(
        matches!(
            p.actions.as_slice(),
            [Action::Destroy { .. }, Action::Create { slot: s, .. }] if *s == slot(P3G, 0)
        ),
        "{p:?}"
    );
    assert!(p.adopted.is_empty());
}

#[test]
fn an_instance_of_another_profile_at_the_wanted_start_is_replaced() {
    let mut c = Case::new();
    c.leases
        .push(lease(LeasePhase::Scheduled, None, &[slot(P3G, 0)]));
    c.instances.push(instance(&slot(P1G, 0), "MIG-small"));
    let p = c.run();
    assert!(matches!(
        p.actions.as_slice(),
        [Action::Destroy { slot: d, .. }, Action::Create { slot: s, .. }]
            if *d == slot(P1G, 0) && *s == slot(P3G, 0)
    ));
}

#[test]
fn the_wire_desired_state_is_parsed_and_bad_placements_are_refused() {
    let wire = aion_api_types::DesiredState {
        revision: 3,
        node_state: "ready".into(),
        leases: vec![aion_api_types::DesiredLease {
            lease_id: Uuid::new_v4(),
            state: "active".into(),
            ends_at: None,
            instances: vec![aion_api_types::DesiredInstance {
                placement_id: Uuid::new_v4(),
                gpu_uuid: GPU.into(),
                gpu_index: 0,
                profile_id: 9,
                profile: "3g.40gb".into(),
                start: 4,
            }],
        }],
    };
    let d = Desired::parse(&wire).unwrap_or_default();
    assert_eq!(d.revision, 3);
    assert_eq!(d.leases[0].phase, LeasePhase::Active);
    assert_eq!(d.leases[0].instances[0].slot, slot(P3G, 4));

    let mut bad = wire.clone();
    bad.leases[0].instances[0].start = 2;
    assert!(Desired::parse(&bad).is_err(), "3g cannot start at 2");
    let mut bad = wire;
    bad.leases[0].state = "pending".into();
    assert!(Desired::parse(&bad).is_err());
}

#[test]
fn a_lease_past_its_end_keeps_its_instances_online_but_its_term_is_over() {
    let now = Utc::now();
    let past = lease(
        LeasePhase::Active,
        Some(now - chrono::Duration::seconds(1)),
        &[],
    );
    let running = lease(
        LeasePhase::Active,
        Some(now + chrono::Duration::seconds(1)),
        &[],
    );
    let releasing = lease(LeasePhase::Releasing, None, &[]);
    // Online the control plane ends leases (a tick after ends_at): instances stay until
    // it does; offline the agent ends them itself at ends_at.
    assert!(past.keeps_instances(now, true));
    assert!(!past.keeps_instances(now, false));
    assert!(running.keeps_instances(now, false));
    assert!(!releasing.keeps_instances(now, true));
    // Usage and workloads stop at ends_at whatever the connection.
    assert!(!past.in_term(now));
    assert!(running.in_term(now));
    assert!(!releasing.in_term(now));
    assert!(lease(LeasePhase::Active, None, &[]).in_term(now));
}
