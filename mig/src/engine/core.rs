//! The engine proper: its records, and the place / release path. Building
//! and restoring are in `build.rs`.

use super::gang::GangIndex;
use super::index::GpuIndex;
use super::policy::{self, Policy};
use super::{Constraints, InstancePlacement, LeaseKey, Request, Unplaceable};
use crate::config::{self, NONE};
use crate::error::MigError;
use crate::fleet::NodeId;
use crate::gpu::Placement;
use crate::hash::IntMap;
use crate::model::GpuModel;
use crate::profile::{GEOMETRY, SHAPE_COUNT, Shape};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One instance inside the engine: (GPU, shape, start).
pub(super) type Held = (u32, u8, u8);

pub(super) struct NodeRec {
    pub id: NodeId,
    pub group: u16,
    pub first_gpu: u32,
    pub gpu_count: u8,
}

pub(super) struct GroupRec {
    pub model: GpuModel,
    pub site: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy)]
pub(super) struct GpuRec {
    pub config: u16,
    pub group: u16,
    pub node: u32,
}

pub(super) struct LeaseRec {
    pub held: Vec<Held>,
    pub preemptible: bool,
}

/// Places MIG instances on a fleet; see the [module docs](super).
pub struct Engine {
    pub(super) policy: Policy,
    pub(super) nodes: Vec<NodeRec>,
    pub(super) node_index: HashMap<NodeId, u32>,
    pub(super) groups: Vec<GroupRec>,
    pub(super) gpus: Vec<GpuRec>,
    pub(super) index: Box<dyn GpuIndex>,
    pub(super) gang: GangIndex,
    pub(super) leases: IntMap<u64, LeaseRec>,
    /// Owner of each preemptible instance, keyed by `gpu << 3 | start`.
    pub(super) owners: IntMap<u64, LeaseKey>,
    pub(super) selectors: HashMap<Constraints, Arc<[u16]>>,
    pub(super) all_groups: Option<Arc<[u16]>>,
    pub(super) compute_used: u64,
}

pub(super) fn owner_key(gpu: u32, start: u8) -> u64 {
    u64::from(gpu) << 3 | u64::from(start)
}

impl Engine {
    /// The groups (model, site, label set) that satisfy `c`, cached.
    pub(super) fn matching_groups(&mut self, c: &Constraints) -> Result<Arc<[u16]>, MigError> {
        // The common request has no constraint: skip hashing the selector.
        if *c == Constraints::default()
            && let Some(all) = &self.all_groups
        {
            return Ok(all.clone());
        }
        if let Some(found) = self.selectors.get(c) {
            return Ok(found.clone());
        }
        let found: Arc<[u16]> = (0..self.groups.len() as u16)
            .filter(|&g| {
                let rec = &self.groups[g as usize];
                c.model.is_none_or(|m| m == rec.model)
                    && c.site.as_ref().is_none_or(|s| *s == rec.site)
                    && c.labels.iter().all(|(k, v)| rec.labels.get(k) == Some(v))
            })
            .collect();
        if found.is_empty() {
            let reason = match c.model {
                Some(model) if !self.groups.iter().any(|g| g.model == model) => {
                    Unplaceable::NoGpuOfModel { model }
                }
                _ => Unplaceable::ConstraintsMatchNothing,
            };
            return Err(MigError::Unplaceable(reason));
        }
        self.selectors.insert(c.clone(), found.clone());
        Ok(found)
    }

    /// Places a request, or says why it cannot be placed (nothing changes then).
    pub fn place(&mut self, req: &Request) -> Result<Vec<InstancePlacement>, MigError> {
        let shape = Shape::of(req.profile).ok_or_else(|| unknown_profile(req))?;
        if req.count == 0 {
            return Err(MigError::Unplaceable(Unplaceable::EmptyRequest));
        }
        if self.leases.contains_key(&req.lease.0) {
            return Err(MigError::LeaseConflict(req.lease.0));
        }
        let groups = self.matching_groups(&req.constraints)?;
        let held = if req.constraints.same_node {
            self.place_gang(&groups, shape, req)?
        } else {
            self.place_spread(&groups, shape, req)?
        };
        let out = held.iter().map(|&h| self.describe(h)).collect();
        if req.preemptible {
            for &(gpu, _, start) in &held {
                self.owners.insert(owner_key(gpu, start), req.lease);
            }
        }
        self.leases.insert(
            req.lease.0,
            LeaseRec {
                held,
                preemptible: req.preemptible,
            },
        );
        Ok(out)
    }

    pub(super) fn place_spread(
        &mut self,
        groups: &[u16],
        shape: Shape,
        req: &Request,
    ) -> Result<Vec<Held>, MigError> {
        let mut held = Vec::with_capacity(usize::from(req.count));
        for _ in 0..req.count {
            let best = groups
                .iter()
                .filter_map(|&g| self.index.pick(g, shape))
                .min_by_key(|&(_, rank)| rank);
            let Some((gpu, _)) = best else {
                self.undo(&held);
                let reason = Unplaceable::NoCapacity {
                    profile: req.profile,
                    count: req.count,
                };
                return Err(MigError::Unplaceable(reason));
            };
            let start = self.start_for(self.gpus[gpu as usize].config, shape);
            self.apply_place(gpu, shape, start);
            held.push((gpu, shape.0, start));
        }
        Ok(held)
    }

    pub(super) fn place_gang(
        &mut self,
        groups: &[u16],
        shape: Shape,
        req: &Request,
    ) -> Result<Vec<Held>, MigError> {
        let need = usize::from(req.count);
        let best = groups
            .iter()
            .filter_map(|&g| self.gang.pick(g, shape.index(), need))
            .min_by_key(|&(_, class)| class);
        let Some((node, _)) = best else {
            return Err(MigError::Unplaceable(Unplaceable::NoNodeForGang {
                profile: req.profile,
                count: req.count,
            }));
        };
        let mut held = Vec::with_capacity(need);
        for _ in 0..need {
            let Some(gpu) = self.best_gpu_on_node(node, shape) else {
                // Unreachable while capacities are exact; undo rather than panic.
                self.undo(&held);
                return Err(MigError::Unplaceable(Unplaceable::NoNodeForGang {
                    profile: req.profile,
                    count: req.count,
                }));
            };
            let start = self.start_for(self.gpus[gpu as usize].config, shape);
            self.apply_place(gpu, shape, start);
            held.push((gpu, shape.0, start));
        }
        Ok(held)
    }

    fn best_gpu_on_node(&self, node: u32, shape: Shape) -> Option<u32> {
        let rec = &self.nodes[node as usize];
        let rank = &policy::preferences()[shape.index()].rank;
        (rec.first_gpu..rec.first_gpu + u32::from(rec.gpu_count))
            .filter(|&g| rank[self.gpus[g as usize].config as usize] != NONE)
            .min_by_key(|&g| match self.policy {
                Policy::FragmentationAware => {
                    u32::from(rank[self.gpus[g as usize].config as usize])
                }
                Policy::FirstFit => g,
            })
    }

    fn start_for(&self, config: u16, shape: Shape) -> u8 {
        let start = match self.policy {
            Policy::FragmentationAware => {
                let pref = &policy::preferences()[shape.index()];
                Some(pref.order[pref.rank[config as usize] as usize].1)
            }
            Policy::FirstFit => policy::first_start(config, shape),
        };
        start.unwrap_or(0)
    }

    pub(super) fn undo(&mut self, held: &[Held]) {
        for &(gpu, shape, start) in held.iter().rev() {
            self.apply_remove(gpu, Shape(shape), start);
        }
    }

    pub(super) fn apply_place(&mut self, gpu: u32, shape: Shape, start: u8) {
        let old = self.gpus[gpu as usize].config;
        self.move_gpu(gpu, old, config::table().after_place(old, shape, start));
        self.compute_used += u64::from(shape.geometry().compute_slices);
    }

    pub(super) fn apply_remove(&mut self, gpu: u32, shape: Shape, start: u8) {
        let old = self.gpus[gpu as usize].config;
        self.move_gpu(gpu, old, config::table().after_remove(old, shape, start));
        self.compute_used -= u64::from(shape.geometry().compute_slices);
    }

    pub(super) fn move_gpu(&mut self, gpu: u32, old: u16, new: u16) {
        let rec = self.gpus[gpu as usize];
        self.index.remove(gpu, rec.group, old);
        self.index.insert(gpu, rec.group, new);
        self.gpus[gpu as usize].config = new;
        let infos = &config::table().infos;
        let (a, b) = (&infos[old as usize].addable, &infos[new as usize].addable);
        let delta: [i8; SHAPE_COUNT] = std::array::from_fn(|i| b[i] as i8 - a[i] as i8);
        self.gang.adjust(rec.node, rec.group, delta);
    }

    /// Releases every instance of a lease and returns where they were.
    pub fn release(&mut self, lease: LeaseKey) -> Result<Vec<InstancePlacement>, MigError> {
        let rec = self
            .leases
            .remove(&lease.0)
            .ok_or(MigError::LeaseConflict(lease.0))?;
        let out = rec.held.iter().map(|&h| self.describe(h)).collect();
        for &(gpu, shape, start) in &rec.held {
            self.apply_remove(gpu, Shape(shape), start);
            if rec.preemptible {
                self.owners.remove(&owner_key(gpu, start));
            }
        }
        Ok(out)
    }

    pub(super) fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    pub(super) fn describe(&self, (gpu, shape, start): Held) -> InstancePlacement {
        let node = &self.nodes[self.gpus[gpu as usize].node as usize];
        let placement = Placement {
            profile: GEOMETRY[shape as usize].id,
            start,
        };
        InstancePlacement {
            node: node.id,
            gpu: (gpu - node.first_gpu) as u8,
            placement,
        }
    }
}

pub(super) fn unknown_profile(req: &Request) -> MigError {
    MigError::UnknownProfile {
        given: req.profile.to_string(),
        model: "A100/H100/H200".to_string(),
        valid: GEOMETRY
            .iter()
            .map(|g| g.id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
