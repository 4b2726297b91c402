//! Placement policies and their precomputed preference tables.
//!
//! # Fragmentation-aware scoring (the default)
//!
//! Placing a profile on a GPU in configuration `c` at start `s` leads to a
//! configuration `c'`. Every candidate `(c, s)` gets a score, compared
//! lexicographically, lower is better:
//!
//! 1. **cost** = `loss + 48 × waste`, where
//!    * **loss of large placements** is `value(c) - value(c')`; `value` sums,
//!      over profiles, how many more instances still fit times a weight that
//!      grows with the profile's size (1, 1, 1, 4, 9, 16, 49 for the 1g,
//!      1g+me, 1g 2×memory, 2g, 3g, 4g and 7g profiles). Placing a `1g` on an
//!      empty GPU destroys its 7g (and often 4g) placement, a large loss;
//!      placing it next to other small instances costs little. This is what
//!      packs partially used GPUs first and keeps whole GPUs for large
//!      requests;
//!    * **waste** is the compute slices this placement makes unusable forever
//!      (`potential(c) - potential(c')`, where `potential` is the highest
//!      compute use reachable by adding instances). A `3g` at start 0 caps its
//!      GPU at 6 slices, a `3g` at start 4 does not. Waste is weighed, not
//!      absolute: pairing two `3g` (one slice lost) still beats opening an
//!      empty GPU for the second one.
//! 2. **free compute after** — best fit: the tighter GPU wins.
//! 3. **start** — lowest start, for determinism.
//!
//! **Node-level packing**: among GPUs in the same configuration (same score),
//! the engine takes the one on the node with the fewest empty GPUs. Empty GPUs
//! are opened on nodes already in use, and partially used GPUs on nearly empty
//! nodes are left to drain, so whole nodes stay free for whole-node gangs
//! (see `frag.rs`; the node class is kept in the index, so this stays O(1)).
//!
//! The score depends only on `(c, profile, s)`, and there are 2,319 valid
//! configurations, so each profile's candidates are ranked once at start-up;
//! a decision then only looks for the best-ranked non-empty bucket.
//!
//! # First fit (the baseline)
//!
//! The lowest-numbered GPU (in fleet order) where the profile fits, at its
//! lowest allowed start: what a naive allocator does.

use crate::config::{self, ConfigInfo, NONE};
use crate::profile::{COMPUTE_SLICES, SHAPE_COUNT, Shape};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// How the engine chooses among feasible placements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Policy {
    /// Fragmentation-aware best fit (see the module documentation).
    #[default]
    FragmentationAware,
    /// Lowest GPU, lowest start.
    FirstFit,
}

const WEIGHTS: [u32; SHAPE_COUNT] = [1, 1, 1, 4, 9, 16, 49];
/// Cost of one wasted compute slice, in `value` units. Tuned on the
/// `fleet_bench` fill trace: at 12-24 a 3g opens an empty GPU rather than
/// pair with another 3g (fill at first reject 0.958); at 48 it pairs (0.982).
const WASTE_WEIGHT: u32 = 48;

/// Per-profile ranking of configurations by the fragmentation-aware score.
pub(crate) struct Preference {
    /// Ranked candidates: (configuration, best start in it).
    pub order: Vec<(u16, u8)>,
    /// Rank of each configuration, `NONE` when the profile does not fit.
    pub rank: Vec<u16>,
}

/// The score of placing `shape` at `start` on configuration `config`.
pub(crate) fn score(config: u16, shape: Shape, start: u8) -> (u32, u8, u8) {
    let t = config::table();
    let next = t.after_place(config, shape, start);
    let (before, after) = (&t.infos[config as usize], &t.infos[next as usize]);
    let pot = potentials();
    let waste = pot[config as usize] - pot[next as usize];
    let loss = value(before) - value(after);
    (
        loss + WASTE_WEIGHT * u32::from(waste),
        COMPUTE_SLICES - after.compute_used,
        start,
    )
}

fn value(info: &ConfigInfo) -> u32 {
    info.addable
        .iter()
        .zip(WEIGHTS)
        .map(|(&a, w)| u32::from(a) * w)
        .sum()
}

/// Highest compute use reachable from each configuration.
pub(crate) fn potentials() -> &'static [u8] {
    static POTENTIAL: OnceLock<Vec<u8>> = OnceLock::new();
    POTENTIAL.get_or_init(|| {
        let t = config::table();
        let mut ids: Vec<u16> = (0..t.len() as u16).collect();
        // Children have one more instance: visit the fullest first.
        ids.sort_by_key(|&c| std::cmp::Reverse(t.infos[c as usize].instances.len()));
        let mut pot = vec![0u8; t.len()];
        for c in ids {
            let mut best = t.infos[c as usize].compute_used;
            for shape in Shape::ALL {
                for s in shape.geometry().starts() {
                    let next = t.after_place(c, shape, s);
                    if next != NONE {
                        best = best.max(pot[next as usize]);
                    }
                }
            }
            pot[c as usize] = best;
        }
        pot
    })
}

/// The best start for `shape` on `config` under the fragmentation-aware score.
pub(crate) fn best_start(config: u16, shape: Shape) -> Option<u8> {
    let feasible = config::table().infos[config as usize].feasible[shape.index()];
    (0..8u8)
        .filter(|s| feasible & (1 << s) != 0)
        .min_by_key(|&s| score(config, shape, s))
}

/// The lowest feasible start for `shape` on `config` (first fit).
pub(crate) fn first_start(config: u16, shape: Shape) -> Option<u8> {
    let feasible = config::table().infos[config as usize].feasible[shape.index()];
    (feasible != 0).then(|| feasible.trailing_zeros() as u8)
}

/// The per-profile preference tables, built once.
pub(crate) fn preferences() -> &'static [Preference] {
    static PREFS: OnceLock<Vec<Preference>> = OnceLock::new();
    PREFS.get_or_init(|| Shape::ALL.iter().map(|&s| build_preference(s)).collect())
}

fn build_preference(shape: Shape) -> Preference {
    let n = config::table().len();
    let mut order: Vec<(u16, u8)> = (0..n as u16)
        .filter_map(|c| best_start(c, shape).map(|s| (c, s)))
        .collect();
    order.sort_by_key(|&(c, s)| (score(c, shape, s), c));
    let mut rank = vec![NONE; n];
    for (r, &(c, _)) in order.iter().enumerate() {
        rank[c as usize] = r as u16;
    }
    Preference { order, rank }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuState;
    use crate::profile::ProfileId;

    fn state(placements: &[(u8, u8)]) -> u16 {
        let mut gpu = GpuState::empty();
        for &(id, start) in placements {
            gpu.place(ProfileId::new(id), start).unwrap();
        }
        gpu.config()
    }

    #[test]
    fn a_3g_goes_to_the_upper_half_so_no_compute_is_wasted() {
        let three = Shape::of(ProfileId::new(9)).unwrap();
        assert_eq!(best_start(0, three), Some(4));
    }

    #[test]
    fn a_1g_prefers_a_partially_used_gpu_over_an_empty_one() {
        let one = Shape::of(ProfileId::new(19)).unwrap();
        let partial = state(&[(19, 6)]);
        let pref = &preferences()[one.index()];
        assert!(pref.rank[partial as usize] < pref.rank[0]);
    }

    #[test]
    fn an_empty_gpu_can_reach_all_seven_compute_slices() {
        assert_eq!(potentials()[0], 7);
        assert_eq!(potentials()[state(&[(9, 0)]) as usize], 6);
    }

    #[test]
    fn every_configuration_where_a_profile_fits_is_ranked() {
        let t = config::table();
        for shape in Shape::ALL {
            let ranked = preferences()[shape.index()].order.len();
            let fits = t
                .infos
                .iter()
                .filter(|i| i.feasible[shape.index()] != 0)
                .count();
            assert_eq!(ranked, fits);
        }
    }
}
