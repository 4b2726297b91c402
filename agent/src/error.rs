//! The agent's one error type.

use thiserror::Error;

/// Result with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the agent.
#[derive(Debug, Error)]
pub enum Error {
    /// The GPU backend refused or failed an operation.
    #[error("GPU backend: {0}")]
    Backend(String),
    /// The GPU would refuse this MIG placement.
    #[error("invalid MIG placement: {0}")]
    Placement(#[from] aion_mig::MigError),
    /// No GPU with this UUID on the node.
    #[error("no GPU {0} on this node")]
    UnknownGpu(String),
    /// No MIG instance at this place.
    #[error("no MIG instance of profile {profile} at slot {start} on GPU {gpu}")]
    UnknownInstance {
        /// GPU UUID.
        gpu: String,
        /// NVML profile id.
        profile: u8,
        /// Start slot.
        start: u8,
    },
    /// The instance still has processes on it.
    #[error("MIG device {0} still has processes")]
    Busy(String),
}
