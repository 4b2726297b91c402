//! Entity of the `price_lists` table.

use sea_orm::entity::prelude::*;

/// A row of `price_lists`: one version of a price list.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "price_lists")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scope_key: String,
    pub organization_kind: Option<String>,
    pub organization_id: Option<Uuid>,
    pub name: String,
    pub currency: String,
    pub effective_from: DateTimeUtc,
    pub preemptible_discount_percent: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
