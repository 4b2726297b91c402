//! Entity of the `grant_warnings` table.

use sea_orm::entity::prelude::*;

/// A row of `grant_warnings`: a warning a grant has raised (each is raised once).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grant_warnings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub grant_id: Uuid,
    /// `used_80`, `ends_soon`, `overdrawn`, …
    #[sea_orm(primary_key, auto_increment = false)]
    pub warning: String,
    pub raised_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
