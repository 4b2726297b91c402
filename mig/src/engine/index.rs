//! GPU indexes: where to find, in O(1) of the fleet size, a GPU on which a
//! profile fits best (fragmentation-aware) or first (first fit).

use super::frag::FragIndex;
use super::policy::Policy;
use crate::config;
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

/// Builds the index for `policy`; `nodes` gives each node's (first GPU, GPU
/// count), in GPU order.
pub(crate) fn for_policy(policy: Policy, groups: usize, nodes: &[(u32, u8)]) -> Box<dyn GpuIndex> {
    match policy {
        Policy::FragmentationAware => Box::new(FragIndex::new(groups, nodes)),
        Policy::FirstFit => Box::new(FirstFitIndex::new(groups)),
    }
}

/// A set of ranks with O(1) "lowest member": a 64-bit summary over words.
/// 2,319 configurations need 37 words, under the summary's 64.
#[derive(Clone, Default)]
pub(crate) struct RankSet {
    summary: u64,
    words: Vec<u64>,
}

impl RankSet {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            summary: 0,
            words: vec![0; len.div_ceil(64)],
        }
    }
    pub(crate) fn set(&mut self, r: usize) {
        self.words[r / 64] |= 1 << (r % 64);
        self.summary |= 1 << (r / 64);
    }
    pub(crate) fn clear(&mut self, r: usize) {
        self.words[r / 64] &= !(1 << (r % 64));
        if self.words[r / 64] == 0 {
            self.summary &= !(1 << (r / 64));
        }
    }
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }
    pub(crate) fn first(&self) -> Option<usize> {
        if self.summary == 0 {
            return None;
        }
        let w = self.summary.trailing_zeros() as usize;
        Some(w * 64 + self.words[w].trailing_zeros() as usize)
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
    fn first_fit_picks_the_lowest_gpu() {
        let mut index = FirstFitIndex::new(1);
        index.insert(5, 0, 0);
        index.insert(2, 0, 0);
        assert_eq!(index.pick(0, Shape::ALL[6]).map(|p| p.0), Some(2));
    }
}
