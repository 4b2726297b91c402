//! Entity of the `calls` table.

use sea_orm::entity::prelude::*;

/// A row of `calls`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub allocator_org_id: Uuid,
    pub title: String,
    pub description: String,
    pub gpu_model: String,
    pub pool_slice_seconds: i64,
    pub opens_at: DateTimeUtc,
    pub closes_at: DateTimeUtc,
    pub period_start: DateTimeUtc,
    pub period_end: DateTimeUtc,
    pub state: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
