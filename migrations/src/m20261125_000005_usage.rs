//! Usage records reported by agents (one row per lease, node and sequence number, so a
//! retried batch is stored once) and the ids of enforcement events already audited (so
//! a retried event batch lands in the audit log once). Project, organisation, profile and
//! compute slices are copied onto usage rows: per-project reports then read one table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    LeaseId,
    NodeId,
    Sequence,
    ProjectId,
    OrganizationId,
    Profile,
    ComputeSlices,
    IntervalStart,
    IntervalEnd,
    AllocatedSeconds,
    SmUtilisationPct,
    MemoryUsedMib,
    EnergyMj,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum AgentEvents {
    Table,
    NodeId,
    EventId,
    Kind,
    LeaseId,
    OccurredAt,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(UsageRecords::Table)
                .col(uuid(UsageRecords::LeaseId))
                .col(uuid(UsageRecords::NodeId))
                .col(big_integer(UsageRecords::Sequence))
                .col(uuid(UsageRecords::ProjectId))
                .col(uuid(UsageRecords::OrganizationId))
                .col(string_len(UsageRecords::Profile, 32))
                .col(integer(UsageRecords::ComputeSlices))
                .col(timestamp_with_time_zone(UsageRecords::IntervalStart))
                .col(timestamp_with_time_zone(UsageRecords::IntervalEnd))
                .col(big_integer(UsageRecords::AllocatedSeconds))
                .col(double_null(UsageRecords::SmUtilisationPct))
                .col(big_integer(UsageRecords::MemoryUsedMib))
                .col(big_integer(UsageRecords::EnergyMj))
                .col(timestamp_with_time_zone(UsageRecords::ReceivedAt))
                .primary_key(
                    Index::create()
                        .col(UsageRecords::LeaseId)
                        .col(UsageRecords::NodeId)
                        .col(UsageRecords::Sequence),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("usage_records_project_idx")
                .table(UsageRecords::Table)
                .col(UsageRecords::ProjectId)
                .col(UsageRecords::IntervalStart)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("usage_records_lease_idx")
                .table(UsageRecords::Table)
                .col(UsageRecords::LeaseId)
                .col(UsageRecords::IntervalStart)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AgentEvents::Table)
                .col(uuid(AgentEvents::NodeId))
                .col(uuid(AgentEvents::EventId))
                .col(string_len(AgentEvents::Kind, 32))
                .col(uuid_null(AgentEvents::LeaseId))
                .col(timestamp_with_time_zone(AgentEvents::OccurredAt))
                .col(timestamp_with_time_zone(AgentEvents::ReceivedAt))
                .primary_key(
                    Index::create()
                        .col(AgentEvents::NodeId)
                        .col(AgentEvents::EventId),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AgentEvents::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(UsageRecords::Table).to_owned())
            .await
    }
}
