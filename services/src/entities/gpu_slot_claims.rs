//! Entity of the `gpu_slot_claims` table.

use sea_orm::entity::prelude::*;

/// A row of `gpu_slot_claims`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gpu_slot_claims")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub gpu_id: Uuid,
    /// Memory slice index 0..=7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub slot: i32,
    pub lease_id: Uuid,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
