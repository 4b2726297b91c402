//! `aion-mig`: a pure, I/O-free model of NVIDIA MIG shared by the scheduler and
//! the node agent — GPU models and profile tables, the placement rules of one
//! GPU, nodes and fleets, and a placement engine that decides for a whole fleet
//! in time independent of its size.

mod config;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod gpu;
mod hash;
pub mod model;
pub mod profile;
pub mod report;

pub use engine::{
    Constraints, Engine, ExistingInstance, InstancePlacement, LeaseKey, Policy, PreemptionPlan,
    Request, Unplaceable,
};
pub use error::MigError;
pub use fleet::{Fleet, Node, NodeId};
pub use gpu::{GpuState, Placement, all_configurations, maximal_configurations};
pub use model::{GpuModel, Profile};
pub use profile::{NvmlProfileIndex, ProfileId};
