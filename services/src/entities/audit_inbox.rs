//! Entity of the `audit_inbox` table.

use sea_orm::entity::prelude::*;

/// A row of `audit_inbox`: an audit event written by a mutation, not yet chained.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
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
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
