//! Entity of the `lease_placements` table.

use sea_orm::entity::prelude::*;

/// A row of `lease_placements`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "lease_placements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub lease_id: Uuid,
    pub node_id: Uuid,
    pub gpu_id: Uuid,
    pub gpu_uuid: String,
    pub profile_id: i32,
    /// First memory slice of the GPU instance.
    pub start: i32,
    /// `MIG-…` UUID reported by the agent once the instance exists.
    pub mig_device_uuid: Option<String>,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
