//! Entity of the `gpus` table.

use sea_orm::entity::prelude::*;

/// A row of `gpus`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gpus")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub node_id: Uuid,
    #[sea_orm(unique)]
    pub uuid: String,
    pub gpu_index: i32,
    pub model: String,
    pub memory_mib: i64,
    pub mig_enabled: bool,
    /// `ok` or `unhealthy`.
    pub health: String,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
