//! Entity of the `agent_events` table.

use sea_orm::entity::prelude::*;

/// A row of `agent_events`: an enforcement event of a node, already in the audit log.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: Uuid,
    /// The agent-side id of the event.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    pub kind: String,
    pub lease_id: Option<Uuid>,
    pub occurred_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
