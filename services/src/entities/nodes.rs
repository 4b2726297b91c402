//! Entity of the `nodes` table.

use sea_orm::entity::prelude::*;

/// A row of `nodes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub hostname: String,
    pub site: String,
    /// JSON object of label → value.
    pub labels: String,
    /// `ready`, `cordoned`, `draining` or `unreachable`.
    pub state: String,
    pub gpu_model: String,
    /// Bumped whenever the node's desired state changes.
    pub desired_revision: i64,
    pub last_heartbeat_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
