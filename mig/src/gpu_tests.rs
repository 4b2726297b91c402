//! Unit tests of the GPU placement rules.

use super::*;

const P1G: ProfileId = ProfileId::new(19);
const P1G_ME: ProfileId = ProfileId::new(20);
const P1G_2X: ProfileId = ProfileId::new(15);
const P2G: ProfileId = ProfileId::new(14);
const P3G: ProfileId = ProfileId::new(9);
const P4G: ProfileId = ProfileId::new(5);
const P7G: ProfileId = ProfileId::new(0);

#[test]
fn a_full_gpu_instance_fits_only_on_an_empty_gpu() {
    let mut gpu = GpuState::empty();
    gpu.place(P1G, 6).unwrap();
    assert_eq!(
        gpu.check(P7G, 0),
        Err(MigError::Overlap {
            profile: P7G,
            start: 0
        })
    );
}

#[test]
fn a_3g_instance_cannot_start_at_slice_2() {
    let gpu = GpuState::empty();
    assert_eq!(
        gpu.check(P3G, 2),
        Err(MigError::BadStart {
            profile: P3G,
            start: 2
        })
    );
}

#[test]
fn a_1g_instance_cannot_use_the_eighth_memory_slice() {
    assert!(matches!(
        GpuState::empty().check(P1G, 7),
        Err(MigError::BadStart { .. })
    ));
}

#[test]
fn a_second_media_extension_instance_hits_the_count_limit() {
    let mut gpu = GpuState::empty();
    gpu.place(P1G_ME, 0).unwrap();
    assert_eq!(
        gpu.check(P1G_ME, 1),
        Err(MigError::CountLimit {
            profile: P1G_ME,
            max: 1
        })
    );
}

#[test]
fn four_1g_2x_instances_leave_no_memory_for_more() {
    let mut gpu = GpuState::empty();
    for s in [0, 2, 4, 6] {
        gpu.place(P1G_2X, s).unwrap();
    }
    assert!(gpu.is_maximal());
    assert_eq!(gpu.memory_mask(), 0xff);
    assert_eq!(gpu.compute_used(), 4);
}

#[test]
fn a_4g_and_a_3g_use_all_seven_compute_slices() {
    let mut gpu = GpuState::empty();
    gpu.place(P4G, 0).unwrap();
    gpu.place(P3G, 4).unwrap();
    assert_eq!(gpu.compute_used(), 7);
    assert!(gpu.is_maximal());
}

#[test]
fn compute_exhaustion_is_reported_when_memory_is_still_free() {
    // 3x 2g (6 compute) at 0,2,4 leaves slices 6-7 free but 1 compute slice;
    // a 1g.2x fits, and after it the GPU is out of compute.
    let mut gpu = GpuState::empty();
    for s in [0, 2, 4] {
        gpu.place(P2G, s).unwrap();
    }
    gpu.place(P1G, 6).unwrap();
    assert_eq!(gpu.compute_used(), 7);
    assert!(gpu.is_maximal());
    let mut other = GpuState::empty();
    other.place(P4G, 0).unwrap();
    other.place(P2G, 4).unwrap();
    other.place(P1G, 6).unwrap();
    assert_eq!(other.compute_used(), 7);
    let mut three = GpuState::empty();
    three.place(P3G, 0).unwrap();
    three.place(P2G, 4).unwrap();
    three.place(P1G, 6).unwrap();
    // 6 compute used, slice 7 free but no 1g profile may start at 7.
    assert!(three.is_maximal());
}

#[test]
fn removing_an_instance_frees_its_slices() {
    let mut gpu = GpuState::empty();
    gpu.place(P3G, 4).unwrap();
    gpu.remove(P3G, 4).unwrap();
    assert!(gpu.is_empty());
    assert_eq!(
        gpu.remove(P3G, 4),
        Err(MigError::NoSuchInstance {
            profile: P3G,
            start: 4
        })
    );
}

#[test]
fn an_unknown_profile_is_refused() {
    assert!(matches!(
        GpuState::empty().check(ProfileId::new(3), 0),
        Err(MigError::UnknownProfile { .. })
    ));
}

#[test]
fn feasible_starts_follow_the_occupied_memory() {
    let mut gpu = GpuState::empty();
    gpu.place(P2G, 2).unwrap();
    assert_eq!(gpu.feasible_starts(P2G), vec![0, 4]);
    assert_eq!(gpu.feasible_starts(P3G), vec![4]);
    assert_eq!(gpu.feasible_starts(P1G), vec![0, 1, 4, 5, 6]);
}

#[test]
fn a_state_round_trips_through_json_as_its_placements() {
    let gpu = GpuState::from_placements(&[
        Placement {
            profile: P3G,
            start: 4,
        },
        Placement {
            profile: P1G,
            start: 0,
        },
    ])
    .unwrap();
    let json = serde_json::to_string(&gpu).unwrap();
    assert!(json.contains("\"start\":4"));
    let back: GpuState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, gpu);
}

#[test]
fn json_with_overlapping_instances_is_rejected() {
    let json = r#"[{"profile":9,"start":0},{"profile":14,"start":2}]"#;
    assert!(serde_json::from_str::<GpuState>(json).is_err());
}
