//! Wire types of the Aion `/v1` API (and, later, of the agent protocol): serde and
//! OpenAPI schemas only, shared by the server, the agent and the CLI.

pub mod agent;
pub mod allocation;
pub mod billing;
pub mod leases;
pub mod ledger;
pub mod pricing;
pub mod problem;
pub mod quotas;
pub mod tenancy;
pub mod usage;

pub use agent::*;
pub use allocation::*;
pub use billing::*;
pub use leases::*;
pub use ledger::*;
pub use pricing::*;
pub use problem::Problem;
pub use quotas::*;
pub use tenancy::*;
pub use usage::*;
