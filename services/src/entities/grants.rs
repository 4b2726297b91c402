//! Entity of the `grants` table.

use sea_orm::entity::prelude::*;

/// A row of `grants`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub organization_id: Uuid,
    pub gpu_model: String,
    pub slice_seconds: i64,
    pub valid_from: DateTimeUtc,
    pub valid_until: DateTimeUtc,
    pub source: String,
    pub call_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub funded_by_org_id: Option<Uuid>,
    pub reference: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub overdrawn_since: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
