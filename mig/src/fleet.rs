//! Nodes and fleets as plain values: what the agent reports and what the
//! scheduler persists. The placement [`crate::Engine`] builds its indexes from
//! a [`Fleet`].

use crate::gpu::GpuState;
use crate::model::GpuModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Identifies a node; the scheduler maps its own database ids onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// A GPU node: one GPU model (an HGX board has 8 identical GPUs), a site and
/// free-form labels used by request selectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The node id.
    pub id: NodeId,
    /// The data-centre site, e.g. `paris-1`.
    pub site: String,
    /// Labels matched by request selectors (`key=value`).
    pub labels: BTreeMap<String, String>,
    /// The model of all the node's GPUs.
    pub model: GpuModel,
    /// The state of each GPU, by GPU index.
    pub gpus: Vec<GpuState>,
}

impl Node {
    /// A node with `gpu_count` empty GPUs and no labels.
    pub fn new(id: NodeId, site: &str, model: GpuModel, gpu_count: usize) -> Self {
        Self {
            id,
            site: site.to_string(),
            labels: BTreeMap::new(),
            model,
            gpus: vec![GpuState::empty(); gpu_count],
        }
    }

    /// Adds a label (builder style).
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Compute slices in use over all the node's GPUs.
    pub fn compute_used(&self) -> u32 {
        self.gpus.iter().map(|g| u32::from(g.compute_used())).sum()
    }
}

/// A set of nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// The nodes, in the order they were added.
    pub nodes: Vec<Node>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a node.
    pub fn push(&mut self, node: Node) {
        self.nodes.push(node);
    }
    /// Total number of GPUs.
    pub fn gpu_count(&self) -> usize {
        self.nodes.iter().map(|n| n.gpus.len()).sum()
    }
    /// Fraction of all compute slices in use (0.0 for an empty fleet).
    pub fn compute_fill(&self) -> f64 {
        let total = self.gpu_count() as f64 * f64::from(crate::profile::COMPUTE_SLICES);
        let used: u32 = self.nodes.iter().map(Node::compute_used).sum();
        if total == 0.0 {
            0.0
        } else {
            f64::from(used) / total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_node_has_empty_gpus_of_its_model() {
        let node =
            Node::new(NodeId(1), "paris-1", GpuModel::H100_80GB, 8).with_label("tier", "gold");
        assert_eq!(node.gpus.len(), 8);
        assert!(node.gpus.iter().all(|g| g.is_empty()));
        assert_eq!(node.labels.get("tier").map(String::as_str), Some("gold"));
    }

    #[test]
    fn fleet_fill_counts_compute_slices() {
        let mut node = Node::new(NodeId(1), "s", GpuModel::H100_80GB, 2);
        node.gpus[0].place(crate::ProfileId::new(0), 0).unwrap();
        let mut fleet = Fleet::new();
        fleet.push(node);
        assert!((fleet.compute_fill() - 0.5).abs() < 1e-9);
    }
}
