//! Entity of the `usage_records` table.

use sea_orm::entity::prelude::*;

/// A row of `usage_records`: what one node measured of one lease over one interval.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub lease_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: Uuid,
    /// The agent's per-lease sequence number.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub project_id: Uuid,
    pub organization_id: Uuid,
    /// Profile name of the lease, e.g. `3g.40gb`.
    pub profile: String,
    /// Compute slices of one instance of the lease (out of 7).
    pub compute_slices: i32,
    pub interval_start: DateTimeUtc,
    pub interval_end: DateTimeUtc,
    /// Instance-seconds: wall time the lease's instances existed, summed over instances.
    pub allocated_seconds: i64,
    /// Average SM utilisation where the hardware reported it.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub memory_used_mib: i64,
    /// Energy apportioned to the lease, millijoules.
    pub energy_mj: i64,
    pub received_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
