//! Building the engine from a fleet, and restoring it from the instances a
//! database holds.

use super::ExistingInstance;
use super::core::{Engine, GpuRec, GroupRec, LeaseRec, NodeRec, owner_key};
use super::gang::GangIndex;
use super::index;
use super::policy::Policy;
use crate::config;
use crate::error::MigError;
use crate::fleet::{Fleet, Node, NodeId};
use crate::gpu::GpuState;
use crate::hash::IntMap;
use crate::model::GpuModel;
use crate::profile::{SHAPE_COUNT, Shape};
use std::collections::{BTreeMap, HashMap};

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
            let next = u16::try_from(group_ids.len()).map_err(|_| {
                MigError::InvalidFleet("over 65,535 (model, site, labels) groups".to_string())
            })?;
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
            engine.adopt(inst)?;
        }
        Ok(engine)
    }

    /// Records an instance that exists already (placed elsewhere, e.g. committed while
    /// this engine was being restored) as held by its lease. Refused, with nothing
    /// changed, when its place is unknown or not free.
    pub fn adopt(&mut self, inst: &ExistingInstance) -> Result<(), MigError> {
        let gpu = self.gpu_at(inst.at.node, inst.at.gpu)?;
        let p = inst.at.placement;
        GpuState::from_config(self.gpus[gpu as usize].config).check(p.profile, p.start)?;
        let shape =
            Shape::of(p.profile).ok_or(MigError::InvalidFleet(format!("profile {}", p.profile)))?;
        self.apply_place(gpu, shape, p.start);
        let rec = self.leases.entry(inst.lease.0).or_insert(LeaseRec {
            held: Vec::new(),
            preemptible: inst.preemptible,
        });
        rec.held.push((gpu, shape.0, p.start));
        if inst.preemptible {
            self.owners.insert(owner_key(gpu, p.start), inst.lease);
        }
        Ok(())
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
}
