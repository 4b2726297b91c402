//! Entity of the `price_list_entries` table.

use sea_orm::entity::prelude::*;

/// A row of `price_list_entries`: a GPU-hour price (empty `profile`) or a profile's
/// slice-hour price, as canonical decimal text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "price_list_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub price_list_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub gpu_model: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub profile: String,
    pub price: String,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
