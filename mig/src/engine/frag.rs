//! The fragmentation-aware GPU index, with node-level packing.
//!
//! GPUs are kept in lists keyed by (group, configuration, node class), where
//! the node class is the number of empty GPUs on the GPU's node (capped at
//! [`CLASSES`]` - 1`). Per (group, profile) a [`RankSet`] holds the
//! configurations that have at least one GPU, ordered by the policy's rank;
//! per (group, configuration) a bit mask says which node classes are
//! non-empty. A pick takes the best-ranked configuration, then the lowest node
//! class in it: among GPUs in the same configuration, the one on the node with
//! the fewest empty GPUs. Partially used GPUs on nearly empty nodes are then
//! left to drain, and empty GPUs are opened on nodes already in use, so whole
//! nodes stay free for gangs.
//!
//! Lists are intrusive (per-GPU `next` / `prev`), so every operation is O(1)
//! in fleet size. A GPU turning empty or non-empty changes its node's class,
//! which moves the node's other GPUs (at most its GPU count) to new lists.
//! Full GPUs (no profile fits) are in no list.

use super::index::{GpuIndex, RankSet};
use super::policy;
use crate::config::{self, NONE};
use crate::profile::{SHAPE_COUNT, Shape};

/// Node classes: 0..=8 empty GPUs (nodes with more GPUs share the last).
const CLASSES: usize = 9;
const NIL: u32 = u32::MAX;

/// A node's GPU range and empty-GPU count.
#[derive(Clone, Copy)]
struct NodeSpan {
    first_gpu: u32,
    gpu_count: u8,
    empty: u8,
}

pub(crate) struct FragIndex {
    configs: usize,
    /// Head GPU of each (group, configuration, class) list.
    heads: Vec<u32>,
    /// Per (group, configuration): bit `c` set when class `c` is non-empty.
    classes: Vec<u16>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// The list each GPU is in, `NIL` when in none.
    slot: Vec<u32>,
    /// Node of each GPU.
    node_of: Vec<u32>,
    nodes: Vec<NodeSpan>,
    /// Per (group, profile): ranks of configurations with a listed GPU.
    ranks: Vec<RankSet>,
}

impl FragIndex {
    /// An empty index; `nodes` gives each node's (first GPU, GPU count), in
    /// GPU order.
    pub(crate) fn new(groups: usize, nodes: &[(u32, u8)]) -> Self {
        let configs = config::table().len();
        let prefs = policy::preferences();
        let gpus = nodes.iter().map(|&(_, c)| usize::from(c)).sum();
        let mut node_of = Vec::with_capacity(gpus);
        for (n, &(_, count)) in nodes.iter().enumerate() {
            node_of.extend(std::iter::repeat_n(n as u32, usize::from(count)));
        }
        Self {
            configs,
            heads: vec![NIL; groups * configs * CLASSES],
            classes: vec![0; groups * configs],
            next: vec![NIL; gpus],
            prev: vec![NIL; gpus],
            slot: vec![NIL; gpus],
            node_of,
            nodes: nodes
                .iter()
                .map(|&(first_gpu, gpu_count)| NodeSpan {
                    first_gpu,
                    gpu_count,
                    empty: 0,
                })
                .collect(),
            ranks: (0..groups * SHAPE_COUNT)
                .map(|i| RankSet::new(prefs[i % SHAPE_COUNT].order.len()))
                .collect(),
        }
    }

    fn class_of(&self, gpu: u32) -> usize {
        usize::from(self.nodes[self.node_of[gpu as usize] as usize].empty).min(CLASSES - 1)
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

    /// Links `gpu` at the head of list `key`; true when its (group,
    /// configuration) had no GPU before.
    fn link(&mut self, gpu: u32, key: u32) -> bool {
        let (gc, class) = (key as usize / CLASSES, key as usize % CLASSES);
        let head = self.heads[key as usize];
        self.next[gpu as usize] = head;
        self.prev[gpu as usize] = NIL;
        if head != NIL {
            self.prev[head as usize] = gpu;
        }
        self.heads[key as usize] = gpu;
        self.slot[gpu as usize] = key;
        let was_empty = self.classes[gc] == 0;
        self.classes[gc] |= 1 << class;
        was_empty
    }

    /// Unlinks `gpu` from its list; true when its (group, configuration) has
    /// no GPU left.
    fn unlink(&mut self, gpu: u32) -> bool {
        let key = self.slot[gpu as usize];
        if key == NIL {
            return false;
        }
        let (p, n) = (self.prev[gpu as usize], self.next[gpu as usize]);
        if p == NIL {
            self.heads[key as usize] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
        self.slot[gpu as usize] = NIL;
        let (gc, class) = (key as usize / CLASSES, key as usize % CLASSES);
        if self.heads[key as usize] == NIL {
            self.classes[gc] &= !(1 << class);
        }
        self.classes[gc] == 0
    }

    /// Adds `delta` to the empty-GPU count of `node` and moves its listed GPUs
    /// to the lists of the new class.
    fn adjust_empty(&mut self, node: u32, delta: i8) {
        let span = self.nodes[node as usize];
        let old = usize::from(span.empty).min(CLASSES - 1);
        let empty = span.empty.saturating_add_signed(delta);
        self.nodes[node as usize].empty = empty;
        let new = usize::from(empty).min(CLASSES - 1);
        if old == new {
            return;
        }
        for g in span.first_gpu..span.first_gpu + u32::from(span.gpu_count) {
            let key = self.slot[g as usize];
            if key != NIL {
                // Same (group, configuration): its rank marks do not change.
                self.unlink(g);
                self.link(g, key - old as u32 + new as u32);
            }
        }
    }

    fn listed(config: u16) -> bool {
        config::table().infos[config as usize]
            .feasible
            .iter()
            .any(|&f| f != 0)
    }
}

impl GpuIndex for FragIndex {
    fn insert(&mut self, gpu: u32, group: u16, config: u16) {
        if config == 0 {
            self.adjust_empty(self.node_of[gpu as usize], 1);
        }
        if !Self::listed(config) {
            return;
        }
        let gc = group as usize * self.configs + config as usize;
        let key = (gc * CLASSES + self.class_of(gpu)) as u32;
        if self.link(gpu, key) {
            self.mark(group, config, true);
        }
    }

    fn remove(&mut self, gpu: u32, group: u16, config: u16) {
        if self.unlink(gpu) {
            self.mark(group, config, false);
        }
        if config == 0 {
            self.adjust_empty(self.node_of[gpu as usize], -1);
        }
    }

    fn pick(&self, group: u16, shape: Shape) -> Option<(u32, u32)> {
        let r = self.ranks[group as usize * SHAPE_COUNT + shape.index()].first()?;
        let config = policy::preferences()[shape.index()].order[r].0;
        let gc = group as usize * self.configs + config as usize;
        let class = self.classes[gc].trailing_zeros() as usize;
        let gpu = *self.heads.get(gc * CLASSES + class)?;
        (gpu != NIL).then_some((gpu, r as u32))
    }

    fn heap_bytes(&self) -> usize {
        let ranks: usize = self.ranks.iter().map(|r| r.heap_bytes() + 32).sum();
        self.heads.len() * 4
            + self.classes.len() * 2
            + self.next.len() * 16
            + self.nodes.len() * std::mem::size_of::<NodeSpan>()
            + ranks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1g_goes_to_the_partially_used_gpu() {
        let mut index = FragIndex::new(1, &[(0, 2)]);
        let one = Shape::ALL[0];
        let partial = config::table().after_place(0, one, 6);
        index.insert(0, 0, 0);
        index.insert(1, 0, partial);
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(1));
        index.remove(1, 0, partial);
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(0));
    }

    #[test]
    fn among_equal_gpus_the_one_on_the_fuller_node_wins() {
        let one = Shape::ALL[0];
        let partial = config::table().after_place(0, one, 6);
        // Node 0: one partial GPU and three empty; node 1: one partial, one
        // empty. Both partial GPUs rank the same; node 1 has fewer empties.
        let mut index = FragIndex::new(1, &[(0, 4), (4, 2)]);
        index.insert(0, 0, partial);
        (1..4).for_each(|g| index.insert(g, 0, 0));
        index.insert(4, 0, partial);
        index.insert(5, 0, 0);
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(4));
        // An empty GPU is also opened on node 1 first.
        let whole = Shape::ALL[SHAPE_COUNT - 1];
        assert_eq!(index.pick(0, whole).map(|p| p.0), Some(5));
        // Node 1's last empty GPU gets used: node 1 now has no empty GPU and
        // its partial GPU is still preferred; then node 0's empty GPUs.
        index.remove(5, 0, 0);
        index.insert(5, 0, config::table().after_place(0, whole, 0));
        assert_eq!(index.pick(0, one).map(|p| p.0), Some(4));
        assert!(matches!(index.pick(0, whole), Some((1..=3, _))));
        // Node 1 frees its GPU again and becomes the emptier node... no: it
        // has 1 empty against node 0's 3, so it stays preferred.
        index.remove(5, 0, config::table().after_place(0, whole, 0));
        index.insert(5, 0, 0);
        assert_eq!(index.pick(0, whole).map(|p| p.0), Some(5));
    }

    #[test]
    fn full_gpus_are_not_listed() {
        let whole = Shape::ALL[SHAPE_COUNT - 1];
        let full = config::table().after_place(0, whole, 0);
        let mut index = FragIndex::new(1, &[(0, 1)]);
        index.insert(0, 0, full);
        assert_eq!(index.pick(0, Shape::ALL[0]), None);
        index.remove(0, 0, full);
        index.insert(0, 0, 0);
        assert_eq!(index.pick(0, whole).map(|p| p.0), Some(0));
    }
}
