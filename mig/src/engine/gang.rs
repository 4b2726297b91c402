//! Index of nodes by free capacity class, for gangs that must share a node:
//! per (group, profile) the nodes bucketed by how many more instances of the
//! profile they can take (0..=56 for 8 GPUs), so a gang of `n` finds the
//! tightest node with room for `n` by scanning at most 57 buckets.

use crate::profile::SHAPE_COUNT;

/// Highest tracked class; nodes with more room are kept in this class.
pub(crate) const MAX_CLASS: usize = 63;

/// Nodes by (group, profile, free capacity class).
pub(crate) struct GangIndex {
    /// Per node, per profile: instances it can still take.
    capacity: Vec<[u8; SHAPE_COUNT]>,
    buckets: Vec<Vec<u32>>,
    pos: Vec<[u32; SHAPE_COUNT]>,
}

fn key(group: u16, shape: usize, class: u8) -> usize {
    (usize::from(group) * SHAPE_COUNT + shape) * (MAX_CLASS + 1) + usize::from(class)
}

impl GangIndex {
    /// An index of `nodes` nodes in `groups` groups, all with zero capacity
    /// until `adjust`.
    pub fn new(groups: usize, nodes: usize) -> Self {
        Self {
            capacity: vec![[0; SHAPE_COUNT]; nodes],
            buckets: vec![Vec::new(); groups * SHAPE_COUNT * (MAX_CLASS + 1)],
            pos: vec![[u32::MAX; SHAPE_COUNT]; nodes],
        }
    }

    /// The node's free capacity for each profile.
    pub fn capacity(&self, node: u32) -> [u8; SHAPE_COUNT] {
        self.capacity[node as usize]
    }

    /// Adds `delta[shape]` to a node's capacity and re-buckets it.
    pub fn adjust(&mut self, node: u32, group: u16, delta: [i8; SHAPE_COUNT]) {
        for (shape, &d) in delta.iter().enumerate() {
            if d == 0 && self.pos[node as usize][shape] != u32::MAX {
                continue;
            }
            let old = self.capacity[node as usize][shape];
            let new = (i16::from(old) + i16::from(d)).clamp(0, MAX_CLASS as i16) as u8;
            self.unlink(node, group, shape, old);
            self.capacity[node as usize][shape] = new;
            let bucket = &mut self.buckets[key(group, shape, new)];
            self.pos[node as usize][shape] = bucket.len() as u32;
            bucket.push(node);
        }
    }

    fn unlink(&mut self, node: u32, group: u16, shape: usize, class: u8) {
        let at = self.pos[node as usize][shape];
        if at == u32::MAX {
            return;
        }
        let bucket = &mut self.buckets[key(group, shape, class)];
        bucket.swap_remove(at as usize);
        if let Some(&moved) = bucket.get(at as usize) {
            self.pos[moved as usize][shape] = at;
        }
    }

    /// The tightest node of `group` with room for `need` instances of `shape`.
    pub fn pick(&self, group: u16, shape: usize, need: usize) -> Option<(u32, usize)> {
        (need.max(1)..=MAX_CLASS).find_map(|class| {
            self.buckets[key(group, shape, class as u8)]
                .last()
                .map(|&n| (n, class))
        })
    }

    /// Heap bytes used by the index.
    pub fn heap_bytes(&self) -> usize {
        let buckets: usize = self.buckets.iter().map(|b| b.capacity() * 4 + 24).sum();
        buckets + self.capacity.len() * (SHAPE_COUNT * 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gang_gets_the_tightest_node_with_enough_room() {
        let mut index = GangIndex::new(1, 3);
        index.adjust(0, 0, [7, 0, 0, 0, 0, 0, 0]);
        index.adjust(1, 0, [3, 0, 0, 0, 0, 0, 0]);
        index.adjust(2, 0, [5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(index.pick(0, 0, 4), Some((2, 5)));
        assert_eq!(index.pick(0, 0, 6), Some((0, 7)));
        assert_eq!(index.pick(0, 0, 8), None);
        index.adjust(2, 0, [-3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(index.pick(0, 0, 4), Some((0, 7)));
    }
}
