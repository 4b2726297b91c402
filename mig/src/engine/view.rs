//! Read-only views of the engine: GPU states, leases, fill, memory use.

use super::core::Engine;
use super::{InstancePlacement, LeaseKey, Policy};
use crate::fleet::{Fleet, Node, NodeId};
use crate::gpu::GpuState;
use crate::profile::COMPUTE_SLICES;

impl Engine {
    /// The policy the engine decides with.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Number of GPUs in the fleet.
    pub fn gpu_count(&self) -> usize {
        self.gpus.len()
    }

    /// Fraction of all compute slices in use.
    pub fn compute_fill(&self) -> f64 {
        let total = self.gpus.len() as f64 * f64::from(COMPUTE_SLICES);
        if total == 0.0 {
            0.0
        } else {
            self.compute_used() as f64 / total
        }
    }

    /// Compute slices in use over the fleet.
    pub fn compute_used(&self) -> u64 {
        self.compute_used
    }

    /// The state of GPU `gpu` of `node`; `None` when the engine has no such
    /// node or the node has no such GPU (never panics on bad input).
    pub fn gpu_state(&self, node: NodeId, gpu: u8) -> Option<GpuState> {
        let rec = self.nodes.get(*self.node_index.get(&node)? as usize)?;
        (gpu < rec.gpu_count).then(|| {
            GpuState::from_config(self.gpus[(rec.first_gpu + u32::from(gpu)) as usize].config)
        })
    }

    /// Where the instances of `lease` are, if the lease is placed.
    pub fn lease_instances(&self, lease: LeaseKey) -> Option<Vec<InstancePlacement>> {
        let rec = self.leases.get(&lease.0)?;
        Some(rec.held.iter().map(|&h| self.describe(h)).collect())
    }

    /// Number of placed leases.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// A snapshot of the fleet with the current GPU states.
    pub fn fleet(&self) -> Fleet {
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let group = &self.groups[n.group as usize];
                let gpus = (n.first_gpu..n.first_gpu + u32::from(n.gpu_count))
                    .map(|g| GpuState::from_config(self.gpus[g as usize].config))
                    .collect();
                Node {
                    id: n.id,
                    site: group.site.clone(),
                    labels: group.labels.clone(),
                    model: group.model,
                    gpus,
                }
            })
            .collect();
        Fleet { nodes }
    }

    /// Approximate bytes of the fleet-size-dependent structures (GPU records,
    /// node records, indexes), excluding lease records.
    pub fn fleet_bytes(&self) -> usize {
        let gpus = self.gpus.len() * std::mem::size_of::<super::core::GpuRec>();
        let nodes = self.nodes.len() * (std::mem::size_of::<super::core::NodeRec>() + 24);
        gpus + nodes + self.index_bytes() + self.gang.heap_bytes()
    }
}
