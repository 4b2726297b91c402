//! Property tests: no sequence of random operations breaks the MIG rules,
//! on one GPU and through the fleet engine.

// Helpers outside #[test] functions panic on broken invariants: a test failure.
#![allow(clippy::unwrap_used)]

use aion_mig::{
    Engine, Fleet, GpuModel, GpuState, LeaseKey, Node, NodeId, Policy, ProfileId, Request,
};
use proptest::prelude::*;

const IDS: [u8; 7] = [19, 20, 15, 14, 9, 5, 0];

/// Reference geometry written out independently: (id, size, compute, max, starts).
fn reference(id: u8) -> (u8, u8, u8, &'static [u8]) {
    match id {
        19 => (1, 1, 7, &[0, 1, 2, 3, 4, 5, 6]),
        20 => (1, 1, 1, &[0, 1, 2, 3, 4, 5, 6]),
        15 => (2, 1, 4, &[0, 2, 4, 6]),
        14 => (2, 2, 3, &[0, 2, 4]),
        9 => (4, 3, 2, &[0, 4]),
        5 => (4, 4, 1, &[0]),
        _ => (8, 7, 1, &[0]),
    }
}

/// Checks a GPU against the rules using only the reference geometry.
fn assert_valid(gpu: GpuState) {
    let (mut mask, mut compute) = (0u8, 0u8);
    for p in gpu.placements() {
        let (size, c, max, starts) = reference(p.profile.get());
        assert!(
            starts.contains(&p.start),
            "start {} not allowed for {}",
            p.start,
            p.profile
        );
        let m = (((1u16 << size) - 1) as u8) << p.start;
        assert_eq!(mask & m, 0, "overlap in {:?}", gpu.placements());
        mask |= m;
        compute += c;
        assert!(usize::from(gpu.count(p.profile)) <= usize::from(max));
    }
    assert!(compute <= 7);
    assert_eq!(compute, gpu.compute_used());
    assert_eq!(mask, gpu.memory_mask());
}

fn would_fit(gpu: GpuState, id: u8, start: u8) -> bool {
    let (size, c, max, starts) = reference(id);
    let m = ((1u16 << size) - 1) << start;
    starts.contains(&start)
        && m <= 0xff
        && u16::from(gpu.memory_mask()) & m == 0
        && gpu.compute_used() + c <= 7
        && gpu.count(ProfileId::new(id)) < max
}

#[derive(Debug, Clone)]
enum Op {
    Place(u8, u8),
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..7usize, 0..9u8).prop_map(|(i, s)| Op::Place(IDS[i], s)),
        1 => (0..8usize).prop_map(Op::Remove),
    ]
}

proptest! {
    #[test]
    fn random_place_and_remove_keep_a_gpu_valid(ops in prop::collection::vec(op(), 1..60)) {
        let mut gpu = GpuState::empty();
        for op in ops {
            match op {
                Op::Place(id, start) => {
                    let expected = would_fit(gpu, id, start);
                    let result = gpu.place(ProfileId::new(id), start);
                    prop_assert_eq!(result.is_ok(), expected, "place {}@{}", id, start);
                }
                Op::Remove(i) => {
                    let placed = gpu.placements();
                    if let Some(p) = placed.get(i % placed.len().max(1)) {
                        gpu.remove(p.profile, p.start).unwrap();
                        prop_assert_eq!(gpu.placements().len(), placed.len() - 1);
                    }
                }
            }
            assert_valid(gpu);
        }
    }

    #[test]
    fn random_requests_and_releases_keep_the_fleet_valid(
        ops in prop::collection::vec((0..7usize, 1..4u16, any::<bool>(), any::<bool>()), 1..80),
        first_fit in any::<bool>(),
    ) {
        let mut fleet = Fleet::new();
        for n in 0..3 {
            fleet.push(Node::new(NodeId(n), "site", GpuModel::H100_80GB, 2));
        }
        let policy = if first_fit { Policy::FirstFit } else { Policy::FragmentationAware };
        let mut engine = Engine::new(&fleet, policy).unwrap();
        let mut live: Vec<u64> = Vec::new();
        for (i, (shape, count, gang, release)) in ops.into_iter().enumerate() {
            if release && !live.is_empty() {
                let lease = live.swap_remove(i % live.len());
                engine.release(LeaseKey(lease)).unwrap();
            } else {
                let mut req = Request { count, ..Request::one(LeaseKey(i as u64), ProfileId::new(IDS[shape])) };
                req.constraints.same_node = gang;
                let before = engine.fleet();
                match engine.place(&req) {
                    Ok(placed) => {
                        prop_assert_eq!(placed.len(), usize::from(count));
                        if gang {
                            prop_assert!(placed.iter().all(|p| p.node == placed[0].node));
                        }
                        live.push(i as u64);
                    }
                    Err(_) => {
                        prop_assert_eq!(engine.fleet(), before.clone(), "a refusal must change nothing");
                        if count == 1 {
                            let id = ProfileId::new(IDS[shape]);
                            let any_room = before.nodes.iter().flat_map(|n| &n.gpus).any(|g| !g.feasible_starts(id).is_empty());
                            prop_assert!(!any_room, "refused although a GPU had room");
                        }
                    }
                }
            }
            let snapshot = engine.fleet();
            let mut held = 0u64;
            for node in &snapshot.nodes {
                for &gpu in &node.gpus {
                    assert_valid(gpu);
                    held += u64::from(gpu.compute_used());
                }
            }
            prop_assert_eq!(held, engine.compute_used());
            let leased: usize = live.iter().map(|&l| engine.lease_instances(LeaseKey(l)).map_or(0, |v| v.len())).sum();
            let placed: usize = snapshot.nodes.iter().flat_map(|n| &n.gpus).map(|g| g.placements().len()).sum();
            prop_assert_eq!(leased, placed);
        }
    }
}
