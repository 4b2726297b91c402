//! The table of every valid GPU configuration (set of placed instances),
//! interned once: a GPU's state is then a `u16` index, and placing or removing
//! an instance is a table lookup. A100, H100 and H200 share one geometry, so
//! one table serves every model.

use crate::profile::{COMPUTE_SLICES, GEOMETRY, MEMORY_SLICES, SHAPE_COUNT, Shape};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Marks "no such transition" in the transition tables.
pub(crate) const NONE: u16 = u16::MAX;
/// Transitions per configuration: one per (shape, start).
pub(crate) const MOVES: usize = SHAPE_COUNT * MEMORY_SLICES as usize;

/// One instance in table form: (shape index, start).
pub(crate) type Slot = (u8, u8);

/// What the table knows about one configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConfigInfo {
    /// Instances, sorted by (shape, start).
    pub instances: Vec<Slot>,
    /// Bit `s` set when memory slice `s` is used.
    pub memory_mask: u8,
    /// Compute slices used.
    pub compute_used: u8,
    /// Instances per shape.
    pub counts: [u8; SHAPE_COUNT],
    /// Per shape, the starts where one more instance can be placed.
    pub feasible: [u8; SHAPE_COUNT],
    /// Per shape, how many more instances fit (exact: same-shape blocks are
    /// aligned and disjoint, so greedy filling reaches the maximum).
    pub addable: [u8; SHAPE_COUNT],
}

/// The interned configurations and their transitions.
pub(crate) struct ConfigTable {
    pub infos: Vec<ConfigInfo>,
    place: Vec<[u16; MOVES]>,
    remove: Vec<[u16; MOVES]>,
}

/// Index of a move (shape, start) in the transition arrays.
pub(crate) fn move_index(shape: Shape, start: u8) -> usize {
    shape.index() * MEMORY_SLICES as usize + start as usize
}

/// Whether `shape` at `start` can be added to a configuration.
pub(crate) fn fits(info: &ConfigInfo, shape: Shape, start: u8) -> bool {
    let g = shape.geometry();
    g.start_mask & (1 << start) != 0
        && info.memory_mask & g.memory_mask_at(start) == 0
        && info.compute_used + g.compute_slices <= COMPUTE_SLICES
        && info.counts[shape.index()] < g.max_instances
}

fn describe(instances: Vec<Slot>) -> ConfigInfo {
    let mut info = ConfigInfo {
        instances,
        memory_mask: 0,
        compute_used: 0,
        counts: [0; SHAPE_COUNT],
        feasible: [0; SHAPE_COUNT],
        addable: [0; SHAPE_COUNT],
    };
    for &(shape, start) in &info.instances {
        let g = &GEOMETRY[shape as usize];
        info.memory_mask |= g.memory_mask_at(start);
        info.compute_used += g.compute_slices;
        info.counts[shape as usize] += 1;
    }
    for shape in Shape::ALL {
        let g = shape.geometry();
        let starts: Vec<u8> = g.starts().filter(|&s| fits(&info, shape, s)).collect();
        info.feasible[shape.index()] = starts.iter().fold(0, |m, s| m | (1 << s));
        let by_count = g.max_instances - info.counts[shape.index()];
        let by_compute = (COMPUTE_SLICES - info.compute_used) / g.compute_slices;
        info.addable[shape.index()] = (starts.len() as u8).min(by_count).min(by_compute);
    }
    info
}

impl ConfigTable {
    fn build() -> Self {
        let mut infos = vec![describe(Vec::new())];
        let mut lookup: HashMap<Vec<Slot>, u16> = HashMap::from([(Vec::new(), 0)]);
        let mut place = Vec::new();
        let mut next = 0;
        // Breadth-first from the empty GPU: every reachable configuration once.
        while next < infos.len() {
            let mut row = [NONE; MOVES];
            for shape in Shape::ALL {
                for start in shape.geometry().starts() {
                    if !fits(&infos[next], shape, start) {
                        continue;
                    }
                    let mut inst = infos[next].instances.clone();
                    inst.push((shape.0, start));
                    inst.sort_unstable();
                    let id = *lookup.entry(inst.clone()).or_insert_with(|| {
                        infos.push(describe(inst));
                        (infos.len() - 1) as u16
                    });
                    row[move_index(shape, start)] = id;
                }
            }
            place.push(row);
            next += 1;
        }
        let mut remove = vec![[NONE; MOVES]; infos.len()];
        for (from, row) in place.iter().enumerate() {
            for (m, &to) in row.iter().enumerate() {
                if to != NONE {
                    remove[to as usize][m] = from as u16;
                }
            }
        }
        Self {
            infos,
            place,
            remove,
        }
    }

    /// The configuration after placing `shape` at `start`, or `NONE`.
    pub fn after_place(&self, config: u16, shape: Shape, start: u8) -> u16 {
        self.place[config as usize][move_index(shape, start)]
    }

    /// The configuration after removing `shape` at `start`, or `NONE`.
    pub fn after_remove(&self, config: u16, shape: Shape, start: u8) -> u16 {
        self.remove[config as usize][move_index(shape, start)]
    }

    /// Number of configurations.
    pub fn len(&self) -> usize {
        self.infos.len()
    }
}

/// The process-wide table (a few hundred entries, built on first use).
pub(crate) fn table() -> &'static ConfigTable {
    static TABLE: OnceLock<ConfigTable> = OnceLock::new();
    TABLE.get_or_init(ConfigTable::build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_gpu_is_configuration_zero_and_accepts_every_profile() {
        let info = &table().infos[0];
        assert!(info.instances.is_empty());
        assert_eq!(info.addable, [7, 1, 4, 3, 2, 1, 1]);
    }

    #[test]
    fn placing_then_removing_returns_to_the_same_configuration() {
        let t = table();
        for c in 0..t.len() as u16 {
            for shape in Shape::ALL {
                for start in shape.geometry().starts() {
                    let next = t.after_place(c, shape, start);
                    if next != NONE {
                        assert_eq!(t.after_remove(next, shape, start), c);
                    }
                }
            }
        }
    }

    #[test]
    fn addable_counts_match_greedy_filling() {
        let t = table();
        for c in 0..t.len() as u16 {
            for shape in Shape::ALL {
                let (mut cur, mut n) = (c, 0);
                while let Some(s) = shape
                    .geometry()
                    .starts()
                    .find(|&s| t.after_place(cur, shape, s) != NONE)
                {
                    cur = t.after_place(cur, shape, s);
                    n += 1;
                }
                assert_eq!(t.infos[c as usize].addable[shape.index()], n);
            }
        }
    }
}
