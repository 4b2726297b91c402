//! Entity of the `leases` table.

use sea_orm::entity::prelude::*;

/// A row of `leases`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub organization_id: Uuid,
    /// The grant whose budget is held (none for leases outside any budget).
    pub grant_id: Option<Uuid>,
    /// Profile name, e.g. `3g.40gb`.
    pub profile: String,
    /// NVML profile id, e.g. 9.
    pub profile_id: i32,
    pub gpu_model: String,
    /// Number of instances (a gang when more than one).
    pub count: i32,
    /// Compute slices of all instances together (count × the profile's slices).
    pub compute_slices: i64,
    pub site: Option<String>,
    pub same_node: bool,
    pub preemptible: bool,
    pub duration_s: i64,
    /// `pending`, `scheduled`, `active`, `releasing`, `released`, `failed`, `expired`, `preempted`.
    pub state: String,
    pub state_reason: Option<String>,
    /// Budget held while live: duration × compute slices.
    pub held_slice_seconds: i64,
    /// Budget used, set when the lease ends: active time × compute slices.
    pub charged_slice_seconds: i64,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub scheduled_at: Option<DateTimeUtc>,
    pub active_at: Option<DateTimeUtc>,
    pub releasing_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    /// When an active lease reaches its duration.
    pub ends_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
