//! The joins queries use (no relations are navigated through the ORM; these are the
//! explicit join conditions, written once).

use super::{gpus, lease_placements, leases, nodes};
use sea_orm::{EntityTrait, RelationDef};

/// A GPU to its node.
pub(crate) fn gpu_node() -> RelationDef {
    gpus::Entity::belongs_to(nodes::Entity)
        .from(gpus::Column::NodeId)
        .to(nodes::Column::Id)
        .into()
}

/// A placement to its lease.
pub(crate) fn placement_lease() -> RelationDef {
    lease_placements::Entity::belongs_to(leases::Entity)
        .from(lease_placements::Column::LeaseId)
        .to(leases::Column::Id)
        .into()
}
