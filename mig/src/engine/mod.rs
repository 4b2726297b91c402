//! The fleet placement engine: places MIG requests on a fleet of GPUs, releases
//! them, plans preemptions, and restores itself from the instances a database
//! holds. Decisions cost the same on 8 GPUs as on 288,000: GPUs live in
//! buckets keyed by (group, configuration) and each profile has a precomputed
//! ranking of configurations (see [`policy`]).

mod build;
mod core;
mod frag;
mod gang;
mod index;
mod policy;
mod preempt;
mod view;

pub use self::core::Engine;
pub use policy::Policy;
pub use preempt::PreemptionPlan;

use crate::fleet::NodeId;
use crate::gpu::Placement;
use crate::model::GpuModel;
use crate::profile::ProfileId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Opaque key of the lease that owns instances (the scheduler's lease id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseKey(pub u64);

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a request may go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Constraints {
    /// Only GPUs of this model (any model when `None`).
    pub model: Option<GpuModel>,
    /// Only nodes at this site (any site when `None`).
    pub site: Option<String>,
    /// Every `key=value` must be among the node's labels.
    pub labels: BTreeMap<String, String>,
    /// All instances on one node (a gang).
    pub same_node: bool,
}

/// A request for `count` instances of one profile, owned by one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The lease that will own the instances.
    pub lease: LeaseKey,
    /// The NVML profile id (shared by every supported model).
    pub profile: ProfileId,
    /// Number of instances (at least 1).
    pub count: u16,
    /// Whether the instances may later be preempted for other requests.
    pub preemptible: bool,
    /// Where the instances may go.
    pub constraints: Constraints,
}

impl Request {
    /// A request for one instance, anywhere, not preemptible.
    pub fn one(lease: LeaseKey, profile: ProfileId) -> Self {
        Self {
            lease,
            profile,
            count: 1,
            preemptible: false,
            constraints: Constraints::default(),
        }
    }
}

/// One placed instance as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstancePlacement {
    /// The node.
    pub node: NodeId,
    /// The GPU index on the node.
    pub gpu: u8,
    /// Profile and start.
    pub placement: Placement,
}

/// An instance that already exists (read back from the database on restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingInstance {
    /// The owning lease.
    pub lease: LeaseKey,
    /// Where it is.
    pub at: InstancePlacement,
    /// Whether its lease is preemptible.
    pub preemptible: bool,
}

/// Why a request cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unplaceable {
    /// The request asks for zero instances.
    #[error("a request needs at least one instance")]
    EmptyRequest,
    /// The fleet has no GPU of the requested model.
    #[error("the fleet has no {model} GPU")]
    NoGpuOfModel {
        /// The model asked for.
        model: GpuModel,
    },
    /// No node satisfies the model, site and label constraints.
    #[error("no node matches the constraints")]
    ConstraintsMatchNothing,
    /// Matching nodes exist but have no room for the instances.
    #[error("no capacity for {count} instance(s) of profile {profile} on matching GPUs")]
    NoCapacity {
        /// The profile.
        profile: ProfileId,
        /// The number asked for.
        count: u16,
    },
    /// No single matching node can take the whole gang.
    #[error("no matching node has room for {count} instance(s) of profile {profile}")]
    NoNodeForGang {
        /// The profile.
        profile: ProfileId,
        /// The gang size.
        count: u16,
    },
    /// Even preempting every preemptible instance would not make room.
    #[error("no preemption can make room for the request")]
    NoPreemptionHelps,
}

#[cfg(test)]
mod tests;
