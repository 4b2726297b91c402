//! Entity of the `audit_events` table.

use sea_orm::entity::prelude::*;

/// A row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub request_id: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
