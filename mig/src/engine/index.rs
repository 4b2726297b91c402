//! GPU indexes: where to find, in O(1) of the fleet size, a GPU on which a
//! profile fits best (fragmentation-aware) or first (first fit).

use super::policy::{self, Policy};
use crate::config::{self, NONE};
use crate::profile::{SHAPE_COUNT, Shape};
use std::collections::BTreeSet;

/// The operations the engine needs from a GPU index.
pub(crate) trait GpuIndex: Send + Sync {
    /// GPU `gpu` of group `group` is now in configuration `config`.
    fn insert(&mut self, gpu: u32, group: u16, config: u16);
    /// GPU `gpu` of group `group` leaves configuration `config`.
    fn remove(&mut self, gpu: u32, group: u16, config: u16);
    /// The GPU (and the index's rank of it, lower is better) of the best
    /// candidate for `shape` in `group`.
    fn pick(&self, group: u16, shape: Shape) -> Option<(u32, u32)>;
    /// Heap bytes used by the index.
    fn heap_bytes(&self) -> usize;
}

/// Builds the index for `policy`.
pub(crate) fn for_policy(policy: Policy, groups: usize, gpus: usize) -> Box<dyn GpuIndex> {
    match policy {
        Policy::FragmentationAware => Box::new(FragIndex::new(groups, gpus)),
        Policy::FirstFit => Box::new(FirstFitIndex::new(groups)),
    }
}

/// A set of ranks with O(1) "lowest member": a 64-bit summary over words.
/// 2,319 configurations need 37 words, under the summary's 64.
#[derive(Clone, Default)]
struct RankSet {
    summary: u64,
    words: Vec<u64>,
}

impl RankSet {
    fn new(len: usize) -> Self {
        Self {
            summary: 0,
            words: vec![0; len.div_ceil(64)],
        }
    }
    fn set(&mut self, r: usize) {
        self.words[r / 64] |= 1 << (r % 64);
        self.summary |= 1 << (r / 64);
    }
    fn clear(&mut self, r: usize) {
        self.words[r / 64] &= !(1 << (r % 64));
        if self.words[r / 64] == 0 {
            self.summary &= !(1 << (r / 64));
        }
    }
    fn first(&self) -> Option<usize> {
        if self.summary == 0 {
            return None;
        }
        let w = self.summary.trailing_zeros() as usize;
        Some(w * 64 + self.words[w].trailing_zeros() as usize)
    }
}

/// Buckets of GPUs keyed by (group, configuration), and per (group, profile)
/// the set of non-empty buckets ordered by the policy's rank.
pub(crate) struct FragIndex {
    configs: usize,
    buckets: Vec<Vec<u32>>,
    pos: Vec<u32>,
    ranks: Vec<RankSet>,
}

impl FragIndex {
    fn new(groups: usize, gpus: usize) -> Self {
        let configs = config::table().len();
        let prefs = policy::preferences();
        let ranks = (0..groups * SHAPE_COUNT)
            .map(|i| RankSet::new(prefs[i % SHAPE_COUNT].order.len()))
            .collect();
        Self {
            configs,
            buckets: vec![Vec::new(); groups * configs],
            pos: vec![0; gpus],
            ranks,
        }
    }

    fn mark(&mut self, group: u16, config: u16, present: bool) {
        for (shape, pref) in policy::preferences().iter().enumerate() {
            let r = pref.rank[config as usize];
            if r != NONE {
                let set = &mut self.ranks[group as usize * SHAPE_COUNT + shape];
                if present {
                    set.set(r as usize)
                } else {
                    set.clear(r as usize)
                }
            }
        }
    }
}

impl GpuIndex for FragIndex {
    fn insert(&mut self, gpu: u32, group: u16, config: u16) {
        let b = group as usize * self.configs + config as usize;
        self.pos[gpu as usize] = self.buckets[b].len() as u32;
        self.buckets[b].push(gpu);
        if self.buckets[b].len() == 1 {
            self.mark(group, config, true);
        }
    }

    fn remove(&mut self, gpu: u32, group: u16, config: u16) {
        let b = group as usize * self.configs + config as usize;
        let at = self.pos[gpu as usize] as usize;
        let bucket = &mut self.buckets[b];
        bucket.swap_remove(at);
        if let Some(&moved) = bucket.get(at) {
            self.pos[moved as usize] = at as u32;
        }
        if bucket.is_empty() {
            self.mark(group, config, false);
        }
    }

    fn pick(&self, group: u16, shape: Shape) -> Option<(u32, u32)> {
        let r = self.ranks[group as usize * SHAPE_COUNT + shape.index()].first()?;
        let config = policy::preferences()[shape.index()].order[r].0;
        let gpu = *self.buckets[group as usize * self.configs + config as usize].last()?;
        Some((gpu, r as u32))
    }

    fn heap_bytes(&self) -> usize {
        let buckets: usize = self.buckets.iter().map(|b| b.capacity() * 4 + 24).sum();
        let ranks: usize = self.ranks.iter().map(|r| r.words.len() * 8 + 32).sum();
        buckets + ranks + self.pos.len() * 4
    }
}

/// Per (group, profile) the ordered set of GPUs where the profile fits.
pub(crate) struct FirstFitIndex {
    fits: Vec<BTreeSet<u32>>,
}

impl FirstFitIndex {
    fn new(groups: usize) -> Self {
        Self {
            fits: vec![BTreeSet::new(); groups * SHAPE_COUNT],
        }
    }
    fn sets(&mut self, group: u16, config: u16) -> impl Iterator<Item = &mut BTreeSet<u32>> {
        let feasible = config::table().infos[config as usize].feasible;
        let base = group as usize * SHAPE_COUNT;
        self.fits[base..base + SHAPE_COUNT]
            .iter_mut()
            .zip(feasible)
            .filter_map(|(set, f)| (f != 0).then_some(set))
    }
}

impl GpuIndex for FirstFitIndex {
    fn insert(&mut self, gpu: u32, group: u16, config: u16) {
        self.sets(group, config).for_each(|s| {
            s.insert(gpu);
        });
    }
    fn remove(&mut self, gpu: u32, group: u16, config: u16) {
        self.sets(group, config).for_each(|s| {
            s.remove(&gpu);
        });
    }
    fn pick(&self, group: u16, shape: Shape) -> Option<(u32, u32)> {
        let gpu = *self.fits[group as usize * SHAPE_COUNT + shape.index()].first()?;
        Some((gpu, gpu))
    }
    fn heap_bytes(&self) -> usize {
        // A B-tree stores about 4 bytes per key plus node overhead (~1.5x).
        self.fits.iter().map(|s| s.len() * 6 + 48).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_set_finds_its_lowest_member_across_words() {
        let mut set = RankSet::new(2319);
        set.set(2000);
        set.set(130);
        assert_eq!(set.first(), Some(130));
        set.clear(130);
        assert_eq!(set.first(), Some(2000));
        set.clear(2000);
        assert_eq!(set.first(), None);
    }

    #[test]
    fn the_frag_index_prefers_the_partially_used_gpu_for_a_1g() {
        let mut index = FragIndex::new(1, 2);
        let one = Shape::ALL[0];
        let partial = config::table().after_place(0, one, 6);
        index.insert(0, 0, 0);
        index.insert(1, 0, partial);
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(1));
        index.remove(1, 0, partial);
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(0));
    }

    #[test]
    fn first_fit_picks_the_lowest_gpu() {
        let mut index = FirstFitIndex::new(1);
        index.insert(5, 0, 0);
        index.insert(2, 0, 0);
        assert_eq!(index.pick(0, Shape::ALL[6]).map(|p| p.0), Some(2));
    }
}
