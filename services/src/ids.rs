//! Typed identifiers, so an organisation id can never be passed where a project id is due.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7, so ids sort by creation and paginate well).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    )*};
}

typed_id!(
    /// Identifies an organisation.
    OrganizationId,
    /// Identifies a project.
    ProjectId,
    /// Identifies a user.
    UserId,
    /// Identifies an API token.
    TokenId,
    /// Identifies a membership.
    MembershipId,
    /// Identifies an audit event.
    AuditEventId,
    /// Identifies a call for allocation requests.
    CallId,
    /// Identifies an allocation request.
    AllocationRequestId,
    /// Identifies a grant of GPU-hours.
    GrantId,
    /// Identifies a quota row.
    QuotaId,
    /// Identifies a lease.
    LeaseId,
    /// Identifies a node.
    NodeId,
    /// Identifies a GPU of a node.
    GpuId,
    /// Identifies a join token.
    JoinTokenId,
    /// Identifies a lease placement (one MIG instance).
    PlacementId,
    /// Identifies a version of a price list.
    PriceListId,
);
