//! Criterion benches of the hot paths: one GPU placement check, and a place +
//! release cycle on a loaded 288,000-GPU fleet for both policies.

// Benches abort on a broken setup; a panic there is the right outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aion_mig::{
    Engine, Fleet, GpuModel, GpuState, LeaseKey, Node, NodeId, Policy, ProfileId, Request,
};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

const MIX: [u8; 10] = [19, 19, 19, 15, 14, 14, 9, 9, 5, 0];

fn loaded_engine(policy: Policy, gpus: usize) -> Engine {
    let mut fleet = Fleet::new();
    for n in 0..gpus / 8 {
        fleet.push(Node::new(
            NodeId(n as u64),
            "paris-1",
            GpuModel::H100_80GB,
            8,
        ));
    }
    let mut engine = Engine::new(&fleet, policy).unwrap();
    // Fill to about 80% with the mix, so decisions see a realistic index.
    let mut lease = 0u64;
    while engine.compute_fill() < 0.8 {
        let profile = ProfileId::new(MIX[(lease % MIX.len() as u64) as usize]);
        let _ = engine.place(&Request::one(LeaseKey(lease), profile));
        lease += 1;
    }
    engine
}

fn gpu_check(c: &mut Criterion) {
    let mut gpu = GpuState::empty();
    gpu.place(ProfileId::new(14), 2).unwrap();
    c.bench_function("gpu_can_place", |b| {
        b.iter(|| black_box(gpu).can_place(black_box(ProfileId::new(9)), black_box(4)))
    });
}

fn place_release(c: &mut Criterion) {
    for policy in [Policy::FragmentationAware, Policy::FirstFit] {
        let mut engine = loaded_engine(policy, 288_000);
        let mut i = 0u64;
        c.bench_function(&format!("place_release_288k_{policy:?}"), |b| {
            b.iter(|| {
                let profile = ProfileId::new(MIX[(i % MIX.len() as u64) as usize]);
                let lease = LeaseKey(u64::MAX / 2 + i);
                i += 1;
                if engine.place(&Request::one(lease, profile)).is_ok() {
                    engine.release(lease).unwrap();
                }
            })
        });
    }
}

criterion_group!(benches, gpu_check, place_release);
criterion_main!(benches);
