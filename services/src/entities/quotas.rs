//! Entity of the `quotas` table.

use sea_orm::entity::prelude::*;

/// A row of `quotas`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quotas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scope_key: String,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub max_compute_slices: i64,
    pub max_preemptible_compute_slices: i64,
    pub per_profile: Option<String>,
    pub per_site: Option<String>,
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
