//! Database migrations of Aion. They run unchanged on PostgreSQL and SQLite, use plain
//! table names (never entity types, so old migrations never change) and are only ever added.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_tenancy;
mod m20261125_000002_allocation;
mod m20261125_000003_leases_nodes;
mod m20261125_000004_audit_inbox;
mod m20261125_000005_usage;
mod m20261125_000006_scheduler_epoch;
mod m20261125_000007_ledger;
mod m20261125_000008_pricing;
mod m20261125_000009_carbon;
mod m20261125_000010_billing;
mod m20261126_000011_web_sessions;
mod m20261126_000012_fleet_revision;
mod m20261126_000013_fleet_revision_stripes;

/// The ordered list of Aion's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_tenancy::Migration),
            Box::new(m20261125_000002_allocation::Migration),
            Box::new(m20261125_000003_leases_nodes::Migration),
            Box::new(m20261125_000004_audit_inbox::Migration),
            Box::new(m20261125_000005_usage::Migration),
            Box::new(m20261125_000006_scheduler_epoch::Migration),
            Box::new(m20261125_000007_ledger::Migration),
            Box::new(m20261125_000008_pricing::Migration),
            Box::new(m20261125_000009_carbon::Migration),
            Box::new(m20261125_000010_billing::Migration),
            Box::new(m20261126_000011_web_sessions::Migration),
            Box::new(m20261126_000012_fleet_revision::Migration),
            Box::new(m20261126_000013_fleet_revision_stripes::Migration),
        ]
    }
}
