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
    /// The control plane sent something the agent cannot act on.
    #[error("control plane protocol: {0}")]
    Protocol(String),
    /// The control plane could not be reached (connection, timeout, 502/503/504): the
    /// agent keeps the last known leases (offline rules) and retries.
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    /// The control plane rejected the node credential or join token (401). A join token
    /// works once: a node whose credential is gone needs a new join token.
    #[error("control plane rejected the agent's credential ({title}): {detail}")]
    Unauthorized {
        /// Problem title.
        title: String,
        /// Problem detail.
        detail: String,
    },
    /// The control plane refused the request (a problem+json answer).
    #[error("control plane refused ({status} {title}, {type_uri}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Problem `type`.
        type_uri: String,
        /// Problem `title`.
        title: String,
        /// Problem `detail`.
        detail: String,
        /// Problem `code`, when given.
        code: Option<String>,
    },
    /// Reading or writing the agent's state directory failed.
    #[error("agent state {path}: {source}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The agent's settings are wrong.
    #[error("agent configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the error means the control plane could not be reached (as opposed to
    /// refusing): the agent then goes on with its last known desired state.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable(_))
    }
}
