//! `aion-agent`: the daemon on every GPU node. It makes the node's GPUs match what the
//! control plane decided (MIG instances of live leases), lets tenants use their slices,
//! stops everything else and reports status and usage.

pub mod backend;
pub mod cdi;
pub mod client;
pub mod config;
pub mod error;
pub mod exec;
pub mod fleet_sim;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod usage;

pub use error::{Error, Result};
