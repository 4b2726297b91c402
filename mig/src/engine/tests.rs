//! Unit tests of the placement engine.

use super::*;
use crate::MigError;
use crate::fleet::{Fleet, Node};

const P1G: ProfileId = ProfileId::new(19);
const P3G: ProfileId = ProfileId::new(9);
const P4G: ProfileId = ProfileId::new(5);
const P7G: ProfileId = ProfileId::new(0);

fn fleet(nodes: u64, gpus: usize) -> Fleet {
    let mut f = Fleet::new();
    for i in 0..nodes {
        let site = if i % 2 == 0 { "paris-1" } else { "lyon-1" };
        f.push(Node::new(NodeId(i), site, GpuModel::H100_80GB, gpus).with_label("tier", "gold"));
    }
    f
}

fn request(lease: u64, profile: ProfileId, count: u16) -> Request {
    Request {
        count,
        ..Request::one(LeaseKey(lease), profile)
    }
}

#[test]
fn small_instances_share_one_gpu_and_leave_the_others_whole() {
    let mut engine = Engine::new(&fleet(1, 4), Policy::FragmentationAware).unwrap();
    for lease in 0..7 {
        engine.place(&request(lease, P1G, 1)).unwrap();
    }
    let f = engine.fleet();
    let whole = f.nodes[0].gpus.iter().filter(|g| g.is_empty()).count();
    assert_eq!(whole, 3, "seven 1g instances should fill exactly one GPU");
}

#[test]
fn first_fit_places_a_3g_at_start_0_and_the_default_at_start_4() {
    let mut ff = Engine::new(&fleet(1, 1), Policy::FirstFit).unwrap();
    let mut fa = Engine::new(&fleet(1, 1), Policy::FragmentationAware).unwrap();
    assert_eq!(ff.place(&request(1, P3G, 1)).unwrap()[0].placement.start, 0);
    assert_eq!(fa.place(&request(1, P3G, 1)).unwrap()[0].placement.start, 4);
}

#[test]
fn a_request_beyond_capacity_is_refused_and_changes_nothing() {
    let mut engine = Engine::new(&fleet(1, 2), Policy::FragmentationAware).unwrap();
    let err = engine.place(&request(1, P4G, 3)).unwrap_err();
    assert_eq!(
        err,
        MigError::Unplaceable(Unplaceable::NoCapacity {
            profile: P4G,
            count: 3
        })
    );
    assert_eq!(engine.compute_used(), 0);
    assert_eq!(engine.lease_count(), 0);
}

#[test]
fn constraints_select_model_site_and_labels() {
    let mut engine = Engine::new(&fleet(2, 1), Policy::FragmentationAware).unwrap();
    let mut req = request(1, P7G, 1);
    req.constraints.site = Some("lyon-1".into());
    req.constraints.labels.insert("tier".into(), "gold".into());
    assert_eq!(engine.place(&req).unwrap()[0].node, NodeId(1));
    req.lease = LeaseKey(2);
    req.constraints
        .labels
        .insert("tier".into(), "silver".into());
    assert_eq!(
        engine.place(&req),
        Err(MigError::Unplaceable(Unplaceable::ConstraintsMatchNothing))
    );
    req.constraints = Constraints {
        model: Some(GpuModel::A100_40GB),
        ..Constraints::default()
    };
    let expected = Unplaceable::NoGpuOfModel {
        model: GpuModel::A100_40GB,
    };
    assert_eq!(engine.place(&req), Err(MigError::Unplaceable(expected)));
}

#[test]
fn a_gang_lands_on_one_node() {
    let mut engine = Engine::new(&fleet(3, 2), Policy::FragmentationAware).unwrap();
    engine.place(&request(1, P1G, 3)).unwrap();
    let mut gang = request(2, P3G, 4);
    gang.constraints.same_node = true;
    let placed = engine.place(&gang).unwrap();
    assert_eq!(placed.len(), 4);
    assert!(placed.iter().all(|p| p.node == placed[0].node));
    let mut too_big = request(3, P3G, 5);
    too_big.constraints.same_node = true;
    assert!(matches!(
        engine.place(&too_big),
        Err(MigError::Unplaceable(Unplaceable::NoNodeForGang { .. }))
    ));
}

#[test]
fn release_frees_the_slices_and_forgets_the_lease() {
    let mut engine = Engine::new(&fleet(1, 1), Policy::FragmentationAware).unwrap();
    let placed = engine.place(&request(1, P3G, 2)).unwrap();
    assert_eq!(engine.release(LeaseKey(1)).unwrap(), placed);
    assert_eq!(engine.compute_used(), 0);
    assert_eq!(engine.release(LeaseKey(1)), Err(MigError::LeaseConflict(1)));
}

#[test]
fn a_lease_key_cannot_be_placed_twice() {
    let mut engine = Engine::new(&fleet(1, 2), Policy::FragmentationAware).unwrap();
    engine.place(&request(1, P1G, 1)).unwrap();
    assert_eq!(
        engine.place(&request(1, P1G, 1)),
        Err(MigError::LeaseConflict(1))
    );
}

#[test]
fn restore_rebuilds_the_same_placements_and_refuses_conflicts() {
    let f = fleet(2, 2);
    let mut engine = Engine::new(&f, Policy::FragmentationAware).unwrap();
    let mut existing = Vec::new();
    for lease in 0..5 {
        let profile = [P1G, P3G, P4G][lease as usize % 3];
        for at in engine.place(&request(lease, profile, 1)).unwrap() {
            existing.push(ExistingInstance {
                lease: LeaseKey(lease),
                at,
                preemptible: false,
            });
        }
    }
    let restored = Engine::restore(&f, &existing, Policy::FragmentationAware).unwrap();
    assert_eq!(restored.fleet(), engine.fleet());
    existing.push(existing[0]);
    assert!(Engine::restore(&f, &existing, Policy::FragmentationAware).is_err());
}

fn existing(
    lease: u64,
    gpu: u8,
    profile: ProfileId,
    start: u8,
    preemptible: bool,
) -> ExistingInstance {
    let at = InstancePlacement {
        node: NodeId(0),
        gpu,
        placement: crate::Placement { profile, start },
    };
    ExistingInstance {
        lease: LeaseKey(lease),
        at,
        preemptible,
    }
}

#[test]
fn a_preemption_plan_picks_the_fewest_preemptible_instances() {
    // GPU 0: preemptible 4g + guaranteed 3g. GPU 1: three preemptible 1g in
    // the lower half and a guaranteed 1g in the upper half.
    let instances = [
        existing(1, 0, P4G, 0, true),
        existing(9, 0, P3G, 4, false),
        existing(2, 1, P1G, 0, true),
        existing(3, 1, P1G, 1, true),
        existing(4, 1, P1G, 2, true),
        existing(5, 1, P1G, 4, false),
    ];
    let mut engine = Engine::restore(&fleet(1, 2), &instances, Policy::FragmentationAware).unwrap();
    let plan = engine.preemption_plan(&request(10, P4G, 1)).unwrap();
    assert_eq!(plan.leases, vec![LeaseKey(1)]);
    assert_eq!(plan.instances, 1);
    let two = engine.preemption_plan(&request(11, P4G, 2)).unwrap();
    assert_eq!(
        two.leases,
        vec![LeaseKey(1), LeaseKey(2), LeaseKey(3), LeaseKey(4)]
    );
    let fits = engine.preemption_plan(&request(12, P1G, 1)).unwrap();
    assert!(fits.leases.is_empty());
    assert_eq!(
        engine.compute_used(),
        4 + 3 + 4,
        "planning must not change the fleet"
    );
}

#[test]
fn no_preemption_plan_exists_when_guaranteed_instances_block() {
    let mut engine = Engine::new(&fleet(1, 1), Policy::FragmentationAware).unwrap();
    engine.place(&request(1, P1G, 1)).unwrap();
    let err = engine.preemption_plan(&request(2, P7G, 1)).unwrap_err();
    assert_eq!(err, MigError::Unplaceable(Unplaceable::NoPreemptionHelps));
}

#[test]
fn unowned_instances_from_the_fleet_are_respected() {
    let mut f = fleet(1, 1);
    f.nodes[0].gpus[0].place(P4G, 0).unwrap();
    let mut engine = Engine::new(&f, Policy::FirstFit).unwrap();
    assert!(engine.place(&request(1, P7G, 1)).is_err());
    assert_eq!(
        engine.place(&request(2, P3G, 1)).unwrap()[0]
            .placement
            .start,
        4
    );
}
