//! The model checked against NVIDIA's MIG user guide ("Supported MIG
//! Profiles") and against an independent brute-force enumeration.

// Helpers outside #[test] functions panic on malformed fixtures: a test failure.
#![allow(clippy::unwrap_used)]

use aion_mig::{GpuModel, GpuState, ProfileId, all_configurations, maximal_configurations};
use std::collections::BTreeMap;

/// Every candidate placement (id, start, size, compute), straight from the
/// guide's `-lgipp` listing, written out independently of the crate's tables.
fn candidates() -> Vec<(u8, u8, u8, u8)> {
    let mut c = Vec::new();
    let rows: [(u8, &[u8], u8, u8); 7] = [
        (19, &[0, 1, 2, 3, 4, 5, 6], 1, 1),
        (20, &[0, 1, 2, 3, 4, 5, 6], 1, 1),
        (15, &[0, 2, 4, 6], 2, 1),
        (14, &[0, 2, 4], 2, 2),
        (9, &[0, 4], 4, 3),
        (5, &[0], 4, 4),
        (0, &[0], 8, 7),
    ];
    for (id, starts, size, compute) in rows {
        for &s in starts {
            c.push((id, s, size, compute));
        }
    }
    c
}

fn max_of(id: u8) -> usize {
    match id {
        19 => 7,
        15 => 4,
        14 => 3,
        9 => 2,
        _ => 1,
    }
}

/// Brute force: every subset of candidate placements obeying the rules.
fn brute_force(
    i: usize,
    mask: u8,
    compute: u8,
    chosen: &mut Vec<(u8, u8)>,
    out: &mut Vec<Vec<(u8, u8)>>,
) {
    let cands = candidates();
    if i == cands.len() {
        out.push(chosen.clone());
        return;
    }
    brute_force(i + 1, mask, compute, chosen, out);
    let (id, start, size, c) = cands[i];
    let m = (((1u16 << size) - 1) as u8) << start;
    let count = chosen.iter().filter(|p| p.0 == id).count();
    if mask & m == 0 && compute + c <= 7 && count < max_of(id) {
        chosen.push((id, start));
        brute_force(i + 1, mask | m, compute + c, chosen, out);
        chosen.pop();
    }
}

fn as_pairs(s: GpuState) -> Vec<(u8, u8)> {
    let mut v: Vec<(u8, u8)> = s
        .placements()
        .iter()
        .map(|p| (p.profile.get(), p.start))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn the_configuration_table_equals_a_brute_force_enumeration() {
    let mut expected = Vec::new();
    brute_force(0, 0, 0, &mut Vec::new(), &mut expected);
    expected.iter_mut().for_each(|v| v.sort_unstable());
    expected.sort();
    let mut ours: Vec<Vec<(u8, u8)>> = all_configurations().map(as_pairs).collect();
    ours.sort();
    assert_eq!(ours.len(), expected.len());
    assert_eq!(ours, expected);
}

#[test]
fn maximal_configurations_admit_no_further_placement() {
    let cands = candidates();
    for s in maximal_configurations() {
        for &(id, start, _, _) in &cands {
            assert!(
                !s.can_place(ProfileId::new(id), start),
                "{:?} + {id}@{start}",
                as_pairs(s)
            );
        }
    }
    // and every non-maximal one admits at least one
    let non_maximal = all_configurations().filter(|s| !s.is_maximal());
    for s in non_maximal {
        assert!(
            cands
                .iter()
                .any(|&(id, st, _, _)| s.can_place(ProfileId::new(id), st))
        );
    }
}

/// The guide's A100 diagram of valid combinations of the 1g, 2g, 3g, 4g and
/// 7g profiles: every lower half (4g | 3g | 2g+2g | 2g+1g+1g | 1g+1g+2g |
/// 4x1g) with every upper half (3g | 2g+1g | 3x1g), plus the whole 7g.
#[test]
fn the_base_profiles_give_the_guides_19_layouts() {
    let base = [19u8, 14, 9, 5, 0];
    let count = all_configurations()
        .filter(|s| {
            s.placements()
                .iter()
                .all(|p| base.contains(&p.profile.get()))
        })
        .filter(|s| {
            base.iter()
                .all(|&id| s.feasible_starts(ProfileId::new(id)).is_empty())
        })
        .count();
    assert_eq!(count, 19);
}

fn multiset(s: GpuState, model: GpuModel) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for p in s.placements() {
        if let Ok(profile) = model.profile(p.profile) {
            *m.entry(profile.name).or_insert(0) += 1;
        }
    }
    m
}

fn parse_combo(text: &str) -> BTreeMap<&str, usize> {
    text.split(" + ")
        .map(|part| {
            let (n, name) = part.split_once('x').unwrap();
            (name, n.parse().unwrap())
        })
        .collect()
}

/// Combinations the guide's tables allow on an A100-40GB (names from the
/// "A100 MIG Profiles" table); each must be realisable with some placement.
#[test]
fn guide_combinations_on_a100_40gb_are_realisable() {
    let combos = [
        "1x7g.40gb",
        "1x4g.20gb + 1x3g.20gb",
        "1x4g.20gb + 1x2g.10gb + 1x1g.5gb",
        "1x4g.20gb + 1x1g.10gb + 1x1g.5gb+me + 1x1g.5gb",
        "2x3g.20gb",
        "1x3g.20gb + 2x2g.10gb",
        "1x3g.20gb + 4x1g.5gb",
        "3x2g.10gb + 1x1g.10gb",
        "4x1g.10gb",
        "1x1g.10gb + 6x1g.5gb",
        "7x1g.5gb",
        "1x1g.5gb+me + 6x1g.5gb",
    ];
    let all: Vec<_> = maximal_configurations()
        .map(|s| multiset(s, GpuModel::A100_40GB))
        .collect();
    for combo in combos {
        let want = parse_combo(combo);
        assert!(
            all.contains(&want),
            "{combo} is not a maximal configuration"
        );
    }
}

#[test]
fn impossible_combinations_are_not_configurations() {
    let impossible = [
        "1x4g.40gb + 2x2g.20gb",
        "3x3g.40gb",
        "2x4g.40gb",
        "5x1g.20gb",
        "8x1g.10gb",
    ];
    let all: Vec<_> = all_configurations()
        .map(|s| multiset(s, GpuModel::H100_80GB))
        .collect();
    for combo in impossible {
        let want = parse_combo(combo);
        assert!(!all.contains(&want), "{combo} should be impossible");
    }
}

#[test]
fn every_model_has_seven_profiles_with_the_shared_ids() {
    for model in GpuModel::ALL {
        let ids: Vec<u8> = model.profiles().map(|p| p.id().get()).collect();
        assert_eq!(ids, [19, 20, 15, 14, 9, 5, 0], "{model}");
    }
}

#[test]
fn profile_names_match_the_guide_for_every_model() {
    let expected = [
        (
            GpuModel::A100_40GB,
            [
                "1g.5gb",
                "1g.5gb+me",
                "1g.10gb",
                "2g.10gb",
                "3g.20gb",
                "4g.20gb",
                "7g.40gb",
            ],
        ),
        (
            GpuModel::A100_80GB,
            [
                "1g.10gb",
                "1g.10gb+me",
                "1g.20gb",
                "2g.20gb",
                "3g.40gb",
                "4g.40gb",
                "7g.80gb",
            ],
        ),
        (
            GpuModel::H100_80GB,
            [
                "1g.10gb",
                "1g.10gb+me",
                "1g.20gb",
                "2g.20gb",
                "3g.40gb",
                "4g.40gb",
                "7g.80gb",
            ],
        ),
        (
            GpuModel::H100_94GB,
            [
                "1g.12gb",
                "1g.12gb+me",
                "1g.24gb",
                "2g.24gb",
                "3g.47gb",
                "4g.47gb",
                "7g.94gb",
            ],
        ),
        (
            GpuModel::H200_141GB,
            [
                "1g.18gb",
                "1g.18gb+me",
                "1g.35gb",
                "2g.35gb",
                "3g.71gb",
                "4g.71gb",
                "7g.141gb",
            ],
        ),
    ];
    for (model, names) in expected {
        let ours: Vec<&str> = model.profiles().map(|p| p.name).collect();
        assert_eq!(ours, names, "{model}");
    }
}
