//! The lease state machine: `pending → scheduled → active → releasing → released`, or
//! `failed`, `expired`, `preempted`. Shared by the lease API, the scheduler and the agent
//! API, so every transition is checked in one place.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The state of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Admitted (quota and budget held), waiting for a placement.
    Pending,
    /// Placed on GPUs; the node has not yet reported the instances.
    Scheduled,
    /// The node reported every instance; usable.
    Active,
    /// Release asked; the node is tearing the instances down.
    Releasing,
    /// Ended by release; the node confirmed.
    Released,
    /// Could not be placed in time, or the node failed it.
    Failed,
    /// Reached its duration or the end of its grant.
    Expired,
    /// Removed to make room for a guaranteed lease.
    Preempted,
}

impl LeaseState {
    /// Every state.
    pub const ALL: [LeaseState; 8] = [
        Self::Pending,
        Self::Scheduled,
        Self::Active,
        Self::Releasing,
        Self::Released,
        Self::Failed,
        Self::Expired,
        Self::Preempted,
    ];

    /// States in which a lease holds quota, budget and (once placed) GPU slots.
    pub const LIVE: [LeaseState; 4] = [
        Self::Pending,
        Self::Scheduled,
        Self::Active,
        Self::Releasing,
    ];

    /// States in which a lease holds placements on GPUs.
    pub const PLACED: [LeaseState; 3] = [Self::Scheduled, Self::Active, Self::Releasing];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Releasing => "releasing",
            Self::Released => "released",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Preempted => "preempted",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            Error::invalid(
                field,
                "must be one of pending, scheduled, active, releasing, released, failed, expired, preempted",
            )
        })
    }

    /// Whether the lease still holds resources.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    /// Whether `self → to` is an allowed transition.
    pub fn can_become(self, to: LeaseState) -> bool {
        use LeaseState::*;
        matches!(
            (self, to),
            (Pending, Scheduled | Failed | Released | Expired)
                | (Scheduled, Active | Releasing | Failed | Expired | Preempted)
                | (Active, Releasing | Expired | Preempted | Failed)
                | (Releasing, Released | Expired | Preempted | Failed)
        )
    }

    /// Names of the live states, for SQL `IN` filters.
    pub fn live_names() -> Vec<&'static str> {
        Self::LIVE.iter().map(|s| s.as_str()).collect()
    }

    /// Names of the placed states, for SQL `IN` filters.
    pub fn placed_names() -> Vec<&'static str> {
        Self::PLACED.iter().map(|s| s.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_leases_never_come_back() {
        for from in LeaseState::ALL.into_iter().filter(|s| !s.is_live()) {
            for to in LeaseState::ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_pending_lease_can_be_released_before_it_is_placed() {
        assert!(LeaseState::Pending.can_become(LeaseState::Released));
        assert!(!LeaseState::Pending.can_become(LeaseState::Active));
    }

    #[test]
    fn names_round_trip() {
        for s in LeaseState::ALL {
            assert_eq!(LeaseState::parse("state", s.as_str()).unwrap(), s);
        }
    }
}
