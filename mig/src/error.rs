//! The one error type of the crate: every way a MIG operation can be refused.

use crate::profile::ProfileId;

/// Why a MIG model operation or a placement request was refused.
///
/// Each variant names the rule that was broken, so the scheduler can tell a
/// tenant (or an operator) exactly why a slice could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigError {
    /// The model name is not one of the supported GPU models.
    #[error("unknown GPU model `{given}`; valid models: {valid}")]
    UnknownModel {
        /// What the caller asked for.
        given: String,
        /// Comma-separated list of the supported models.
        valid: String,
    },
    /// The profile (by name or id) does not exist on this GPU model.
    #[error("unknown profile `{given}` on {model}; valid profiles: {valid}")]
    UnknownProfile {
        /// What the caller asked for.
        given: String,
        /// The GPU model it was looked up on.
        model: String,
        /// Comma-separated list of the model's profiles.
        valid: String,
    },
    /// The start position is not one of the profile's allowed placements.
    #[error("profile {profile} cannot start at memory slice {start}")]
    BadStart {
        /// The profile.
        profile: ProfileId,
        /// The refused start.
        start: u8,
    },
    /// The memory slices of the placement overlap an existing instance.
    #[error("profile {profile} at {start} overlaps an existing instance")]
    Overlap {
        /// The profile.
        profile: ProfileId,
        /// The refused start.
        start: u8,
    },
    /// Placing the instance would use more than the GPU's 7 compute slices.
    #[error("profile {profile} needs {needed} compute slices but only {free} are free")]
    ComputeExhausted {
        /// The profile.
        profile: ProfileId,
        /// Compute slices the profile needs.
        needed: u8,
        /// Compute slices still free on the GPU.
        free: u8,
    },
    /// The profile already has its maximum number of instances on the GPU.
    #[error("profile {profile} already has its maximum of {max} instances")]
    CountLimit {
        /// The profile.
        profile: ProfileId,
        /// The maximum instance count.
        max: u8,
    },
    /// No instance of that profile starts at that position.
    #[error("no instance of profile {profile} at start {start}")]
    NoSuchInstance {
        /// The profile.
        profile: ProfileId,
        /// The start that was asked for.
        start: u8,
    },
    /// A node id was used twice, or a GPU index is out of range.
    #[error("invalid fleet: {0}")]
    InvalidFleet(String),
    /// The lease key is not known to the engine (or is already placed).
    #[error("lease {0} is unknown or already placed")]
    LeaseConflict(u64),
    /// A request could not be placed; the reason says why.
    #[error("request cannot be placed: {0}")]
    Unplaceable(crate::engine::Unplaceable),
}
