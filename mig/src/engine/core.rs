//! The engine proper: fleet layout, groups, and the place / release path.

use super::gang::GangIndex;
use super::index::{self, GpuIndex};
use super::policy::{self, Policy};
use super::{Constraints, ExistingInstance, InstancePlacement, LeaseKey, Request, Unplaceable};
use crate::config::{self, NONE};
use crate::error::MigError;
use crate::fleet::{Fleet, Node, NodeId};
use crate::gpu::{GpuState, Placement};
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
    selectors: HashMap<Constraints, Arc<[u16]>>,
    all_groups: Option<Arc<[u16]>>,
    pub(super) compute_used: u64,
}

pub(super) fn owner_key(gpu: u32, start: u8) -> u64 {
    u64::from(gpu) << 3 | u64::from(start)
}

fn group_key(n: &Node) -> (GpuModel, String, BTreeMap<String, String>) {
    (n.model, n.site.clone(), n.labels.clone())
}

impl Engine {
    /// Builds an engine over `fleet`; GPUs keep the instances their states
    /// already hold, owned by no lease (they can be neither released nor
    /// preempted). Use [`Engine::restore`] to restore leases.
    pub fn new(fleet: &Fleet, policy: Policy) -> Result<Self, MigError> {
        let mut group_ids = HashMap::new();
        let (mut nodes, mut groups, mut gpus) = (Vec::new(), Vec::new(), Vec::new());
        let mut node_index = HashMap::new();
        for n in &fleet.nodes {
            let next = group_ids.len() as u16;
            let group = *group_ids.entry(group_key(n)).or_insert(next);
            if group == next {
                groups.push(GroupRec {
                    model: n.model,
                    site: n.site.clone(),
                    labels: n.labels.clone(),
                });
            }
            let gpu_count = u8::try_from(n.gpus.len())
                .map_err(|_| MigError::InvalidFleet(format!("{} has over 255 GPUs", n.id)))?;
            if node_index.insert(n.id, nodes.len() as u32).is_some() {
                return Err(MigError::InvalidFleet(format!("{} appears twice", n.id)));
            }
            let first_gpu = gpus.len() as u32;
            let node = nodes.len() as u32;
            gpus.extend(n.gpus.iter().map(|s| GpuRec {
                config: s.config(),
                group,
                node,
            }));
            nodes.push(NodeRec {
                id: n.id,
                group,
                first_gpu,
                gpu_count,
            });
        }
        let lease_capacity = gpus.len() * 3;
        let spans: Vec<(u32, u8)> = nodes.iter().map(|n| (n.first_gpu, n.gpu_count)).collect();
        let mut engine = Self {
            policy,
            index: index::for_policy(policy, groups.len(), &spans),
            gang: GangIndex::new(groups.len(), nodes.len()),
            nodes,
            node_index,
            groups,
            gpus,
            // Sized for a loaded fleet so that growth never rehashes mid-batch.
            leases: IntMap::with_capacity_and_hasher(lease_capacity, Default::default()),
            owners: IntMap::default(),
            selectors: HashMap::new(),
            all_groups: None,
            compute_used: 0,
        };
        engine.index_all();
        if !engine.groups.is_empty() {
            engine.all_groups = Some((0..engine.groups.len() as u16).collect());
        }
        Ok(engine)
    }

    fn index_all(&mut self) {
        for (i, rec) in self.gpus.iter().enumerate() {
            self.index.insert(i as u32, rec.group, rec.config);
            self.compute_used += u64::from(config::table().infos[rec.config as usize].compute_used);
        }
        for (n, node) in self.nodes.iter().enumerate() {
            let mut delta = [0i8; SHAPE_COUNT];
            for g in node.first_gpu..node.first_gpu + u32::from(node.gpu_count) {
                let info = &config::table().infos[self.gpus[g as usize].config as usize];
                for (d, a) in delta.iter_mut().zip(info.addable) {
                    *d += a as i8;
                }
            }
            self.gang.adjust(n as u32, node.group, delta);
        }
    }

    /// Rebuilds the engine from the fleet layout and the instances that exist
    /// (the scheduler reads them from the database). GPU states in `fleet` are
    /// ignored; every instance is checked against the placement rules.
    pub fn restore(
        fleet: &Fleet,
        instances: &[ExistingInstance],
        policy: Policy,
    ) -> Result<Self, MigError> {
        let mut empty = fleet.clone();
        empty
            .nodes
            .iter_mut()
            .for_each(|n| n.gpus.fill(GpuState::empty()));
        let mut engine = Self::new(&empty, policy)?;
        for inst in instances {
            let gpu = engine.gpu_at(inst.at.node, inst.at.gpu)?;
            let p = inst.at.placement;
            GpuState::from_config(engine.gpus[gpu as usize].config).check(p.profile, p.start)?;
            let shape = Shape::of(p.profile)
                .ok_or(MigError::InvalidFleet(format!("profile {}", p.profile)))?;
            engine.apply_place(gpu, shape, p.start);
            let rec = engine.leases.entry(inst.lease.0).or_insert(LeaseRec {
                held: Vec::new(),
                preemptible: inst.preemptible,
            });
            rec.held.push((gpu, shape.0, p.start));
            if inst.preemptible {
                engine.owners.insert(owner_key(gpu, p.start), inst.lease);
            }
        }
        Ok(engine)
    }

    fn gpu_at(&self, node: NodeId, gpu: u8) -> Result<u32, MigError> {
        let n = self
            .node_index
            .get(&node)
            .ok_or(MigError::InvalidFleet(format!("unknown {node}")))?;
        let rec = &self.nodes[*n as usize];
        if gpu >= rec.gpu_count {
            return Err(MigError::InvalidFleet(format!("{node} has no GPU {gpu}")));
        }
        Ok(rec.first_gpu + u32::from(gpu))
    }

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

    fn move_gpu(&mut self, gpu: u32, old: u16, new: u16) {
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

fn unknown_profile(req: &Request) -> MigError {
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
