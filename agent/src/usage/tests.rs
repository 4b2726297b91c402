//! Unit tests of the accumulation, numbering and outbox of usage reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::backend::InstanceSample;

fn t(s: i64) -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s)
}

fn inst(lease: Uuid, gpu: &str, dev: &str, slices: u8) -> LeaseInstance {
    LeaseInstance {
        lease_id: lease,
        gpu_uuid: gpu.into(),
        mig_device_uuid: dev.into(),
        compute_slices: slices,
    }
}

fn sample(gpu: &str, power_mw: u64, devs: &[(&str, Option<f64>, u64)]) -> GpuSample {
    GpuSample {
        gpu_uuid: gpu.into(),
        power_mw,
        healthy: true,
        instances: devs
            .iter()
            .map(|(d, sm, mem)| InstanceSample {
                mig_device_uuid: (*d).into(),
                sm_utilisation_pct: *sm,
                memory_used_mib: *mem,
            })
            .collect(),
    }
}

#[test]
fn energy_is_the_gpu_power_apportioned_by_compute_slices_over_time() {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let live = [inst(a, "GPU-0", "MIG-a", 3), inst(b, "GPU-0", "MIG-b", 4)];
    let s = [sample(
        "GPU-0",
        700_000,
        &[("MIG-a", Some(50.0), 1000), ("MIG-b", None, 10)],
    )];
    let mut acc = Accumulator::default();
    acc.observe(t(0), &live, &s);
    acc.observe(t(10), &live, &s);
    acc.observe(t(20), &live, &s);
    let out = acc.close();
    let ra = out.iter().find(|i| i.lease_id == a).unwrap();
    let rb = out.iter().find(|i| i.lease_id == b).unwrap();
    // 700 W × 3/7 × 20 s = 6000 J; 700 W × 4/7 × 20 s = 8000 J.
    assert_eq!(ra.energy_mj, 6_000_000);
    assert_eq!(rb.energy_mj, 8_000_000);
    assert_eq!((ra.start, ra.end, ra.allocated_seconds), (t(0), t(20), 20));
    assert_eq!(ra.sm_utilisation_pct, Some(50.0));
    assert_eq!(rb.sm_utilisation_pct, None);
    assert_eq!(ra.memory_used_mib, 1000);
}

#[test]
fn utilisation_is_averaged_over_the_time_it_was_reported_and_memory_is_the_peak() {
    let a = Uuid::now_v7();
    let live = [inst(a, "GPU-0", "MIG-a", 1)];
    let mut acc = Accumulator::default();
    acc.observe(t(0), &live, &[]);
    acc.observe(
        t(10),
        &live,
        &[sample("GPU-0", 0, &[("MIG-a", Some(20.0), 100)])],
    );
    acc.observe(
        t(40),
        &live,
        &[sample("GPU-0", 0, &[("MIG-a", Some(60.0), 50)])],
    );
    acc.observe(t(50), &live, &[sample("GPU-0", 0, &[("MIG-a", None, 70)])]);
    let out = acc.close();
    // (20 × 10 + 60 × 30) / 40 = 50.
    assert_eq!(out[0].sm_utilisation_pct, Some(50.0));
    assert_eq!(out[0].memory_used_mib, 100);
    assert_eq!(out[0].allocated_seconds, 50);
}

#[test]
fn a_lease_whose_instance_went_away_stops_accumulating_and_a_new_interval_starts_at_the_close() {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut acc = Accumulator::default();
    acc.observe(t(0), &[inst(a, "G", "A", 1), inst(b, "G", "B", 1)], &[]);
    acc.observe(t(30), &[inst(a, "G", "A", 1), inst(b, "G", "B", 1)], &[]);
    acc.observe(t(60), &[inst(a, "G", "A", 1)], &[]);
    let first = acc.close();
    assert_eq!(first.len(), 2);
    assert_eq!(
        first
            .iter()
            .find(|i| i.lease_id == b)
            .unwrap()
            .allocated_seconds,
        30
    );
    acc.observe(t(90), &[inst(a, "G", "A", 1)], &[]);
    let second = acc.close();
    assert_eq!(second.len(), 1);
    assert_eq!(
        (second[0].start, second[0].end, second[0].allocated_seconds),
        (t(60), t(90), 30)
    );
    assert!(
        acc.close().is_empty(),
        "nothing measured since the last close"
    );
}

#[test]
fn a_gap_longer_than_the_longest_step_is_not_counted_as_allocated() {
    let a = Uuid::now_v7();
    let live = [inst(a, "G", "A", 1)];
    let mut acc = Accumulator::default();
    acc.observe(t(0), &live, &[]);
    acc.observe(t(10), &live, &[]);
    acc.observe(t(10 + MAX_STEP_S + 1), &live, &[]);
    acc.observe(t(20 + MAX_STEP_S + 1), &live, &[]);
    assert_eq!(acc.close()[0].allocated_seconds, 20);
}

#[test]
fn sequences_increase_per_lease_and_survive_a_restart_through_the_saved_outbox() {
    let dir = std::env::temp_dir().join(format!("aion-usage-{}", Uuid::now_v7()));
    let path = Outbox::path(&dir);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let interval = |lease, s: i64| Interval {
        lease_id: lease,
        start: t(s),
        end: t(s + 60),
        allocated_seconds: 60,
        sm_utilisation_pct: None,
        memory_used_mib: 0,
        energy_mj: 1,
    };
    let mut outbox = Outbox::default();
    outbox.push_intervals(vec![interval(a, 0), interval(b, 0)], t(60));
    outbox.push_intervals(vec![interval(a, 60)], t(120));
    let seqs: Vec<_> = outbox
        .records
        .iter()
        .map(|r| (r.lease_id, r.sequence))
        .collect();
    assert_eq!(seqs, vec![(a, 0), (b, 0), (a, 1)]);
    outbox.save(&path).unwrap();

    // A crash before the acknowledgement: the same records come back, to be resent as is.
    let mut again = Outbox::load(&path);
    assert_eq!(again, outbox);
    let sent = again.records.clone();
    again.ack_records(&sent[..2]);
    assert_eq!(again.records, sent[2..].to_vec());
    again.push_intervals(vec![interval(b, 60)], t(180));
    assert_eq!(
        again.records.last().map(|r| (r.lease_id, r.sequence)),
        Some((b, 1))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sequences_of_leases_unseen_for_weeks_are_forgotten() {
    let a = Uuid::now_v7();
    let mut outbox = Outbox::default();
    let one = Interval {
        lease_id: a,
        start: t(0),
        end: t(1),
        allocated_seconds: 1,
        sm_utilisation_pct: None,
        memory_used_mib: 0,
        energy_mj: 0,
    };
    outbox.push_intervals(vec![one], t(1));
    outbox.push_intervals(Vec::new(), t(1) + Duration::days(FORGET_AFTER_DAYS + 1));
    assert!(outbox.sequences.is_empty());
}

#[test]
fn a_process_stopped_on_a_slice_of_no_lease_is_reported_as_rogue_once() {
    use crate::backend::sim::{SimBackend, SimConfig};
    use crate::backend::{GpuBackend, StopSignal};
    let sim = SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 1,
        seed: 9,
        mig_enabled: true,
    });
    let gpu = sim.inventory().unwrap()[0].uuid.clone();
    let made = sim.create_instance(&gpu, ProfileId::new(19), 0).unwrap();
    sim.attach_virtual_process(&made.mig_device_uuid, 77, 1)
        .unwrap();
    sim.attach_virtual_process(&made.mig_device_uuid, 78, 1)
        .unwrap();
    let desired = Desired {
        revision: 1,
        leases: Vec::new(),
    };
    let recorder = Recorder::new(&sim, &desired, t(0));
    recorder.instances().unwrap();
    recorder.processes().unwrap();
    recorder.signal(77, StopSignal::Term).unwrap();
    recorder.signal(78, StopSignal::Kill).unwrap();
    let events = recorder.into_events();
    let kinds: Vec<(&str, Option<i64>)> = events.iter().map(|e| (e.kind.as_str(), e.pid)).collect();
    assert_eq!(
        kinds,
        vec![
            ("rogue_process", Some(77)),
            ("process_terminated", Some(77)),
            ("process_terminated", Some(78)),
        ]
    );
    let rogue = &events[0];
    assert_eq!(rogue.lease_id, None);
    assert_eq!(
        rogue.mig_device_uuid.as_deref(),
        Some(made.mig_device_uuid.as_str())
    );
    assert_eq!(rogue.gpu_uuid.as_deref(), Some(gpu.as_str()));
}
