//! Leases, their placements and slot claims; nodes, GPUs, join tokens and node credentials.
//!
//! `gpu_slot_claims` holds one row per (GPU, memory slot) taken by a live lease; its
//! primary key makes double-booking impossible even if the scheduler had a bug. Rows are
//! deleted when the lease ends, so the constraint covers live leases only, on both engines.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Hostname,
    Site,
    Labels,
    State,
    GpuModel,
    DesiredRevision,
    LastHeartbeatAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Gpus {
    Table,
    Id,
    NodeId,
    Uuid,
    GpuIndex,
    Model,
    MemoryMib,
    MigEnabled,
    Health,
}

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    Id,
    TokenHash,
    Site,
    Labels,
    ExpiresAt,
    UsedAt,
    NodeId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NodeCredentials {
    Table,
    Id,
    NodeId,
    TokenHash,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Id,
    ProjectId,
    OrganizationId,
    GrantId,
    Profile,
    ProfileId,
    GpuModel,
    Count,
    ComputeSlices,
    Site,
    SameNode,
    Preemptible,
    DurationS,
    State,
    StateReason,
    HeldSliceSeconds,
    ChargedSliceSeconds,
    CreatedBy,
    CreatedAt,
    ScheduledAt,
    ActiveAt,
    ReleasingAt,
    EndedAt,
    EndsAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LeasePlacements {
    Table,
    Id,
    LeaseId,
    NodeId,
    GpuId,
    GpuUuid,
    ProfileId,
    Start,
    MigDeviceUuid,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GpuSlotClaims {
    Table,
    GpuId,
    Slot,
    LeaseId,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(col);
    }
    if unique {
        stmt.unique();
    }
    m.create_index(stmt.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Nodes::Table)
                .col(pk_uuid(Nodes::Id))
                .col(string_len_uniq(Nodes::Hostname, 253))
                .col(string_len(Nodes::Site, 63))
                .col(text(Nodes::Labels))
                .col(string_len(Nodes::State, 16))
                .col(string_len(Nodes::GpuModel, 32))
                .col(big_integer(Nodes::DesiredRevision))
                .col(timestamp_with_time_zone_null(Nodes::LastHeartbeatAt))
                .col(timestamp_with_time_zone(Nodes::CreatedAt))
                .col(timestamp_with_time_zone(Nodes::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Gpus::Table)
                .col(pk_uuid(Gpus::Id))
                .col(uuid(Gpus::NodeId))
                .col(string_len_uniq(Gpus::Uuid, 64))
                .col(integer(Gpus::GpuIndex))
                .col(string_len(Gpus::Model, 32))
                .col(big_integer(Gpus::MemoryMib))
                .col(boolean(Gpus::MigEnabled))
                .col(string_len(Gpus::Health, 16))
                .foreign_key(
                    ForeignKey::create()
                        .from(Gpus::Table, Gpus::NodeId)
                        .to(Nodes::Table, Nodes::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "gpus_node_index_key",
            Gpus::Table,
            vec![Gpus::NodeId.into_iden(), Gpus::GpuIndex.into_iden()],
            true,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(JoinTokens::Table)
                .col(pk_uuid(JoinTokens::Id))
                .col(string_len_uniq(JoinTokens::TokenHash, 64))
                .col(string_len(JoinTokens::Site, 63))
                .col(text(JoinTokens::Labels))
                .col(timestamp_with_time_zone(JoinTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(JoinTokens::UsedAt))
                .col(uuid_null(JoinTokens::NodeId))
                .col(string_len(JoinTokens::CreatedBy, 64))
                .col(timestamp_with_time_zone(JoinTokens::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NodeCredentials::Table)
                .col(pk_uuid(NodeCredentials::Id))
                .col(uuid(NodeCredentials::NodeId))
                .col(string_len_uniq(NodeCredentials::TokenHash, 64))
                .col(timestamp_with_time_zone(NodeCredentials::ExpiresAt))
                .col(timestamp_with_time_zone_null(NodeCredentials::RevokedAt))
                .col(timestamp_with_time_zone(NodeCredentials::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(NodeCredentials::Table, NodeCredentials::NodeId)
                        .to(Nodes::Table, Nodes::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Leases::Table)
                .col(pk_uuid(Leases::Id))
                .col(uuid(Leases::ProjectId))
                .col(uuid(Leases::OrganizationId))
                .col(uuid_null(Leases::GrantId))
                .col(string_len(Leases::Profile, 32))
                .col(integer(Leases::ProfileId))
                .col(string_len(Leases::GpuModel, 32))
                .col(integer(Leases::Count))
                .col(big_integer(Leases::ComputeSlices))
                .col(string_len_null(Leases::Site, 63))
                .col(boolean(Leases::SameNode))
                .col(boolean(Leases::Preemptible))
                .col(big_integer(Leases::DurationS))
                .col(string_len(Leases::State, 16))
                .col(string_len_null(Leases::StateReason, 500))
                .col(big_integer(Leases::HeldSliceSeconds))
                .col(big_integer(Leases::ChargedSliceSeconds))
                .col(string_len(Leases::CreatedBy, 64))
                .col(timestamp_with_time_zone(Leases::CreatedAt))
                .col(timestamp_with_time_zone_null(Leases::ScheduledAt))
                .col(timestamp_with_time_zone_null(Leases::ActiveAt))
                .col(timestamp_with_time_zone_null(Leases::ReleasingAt))
                .col(timestamp_with_time_zone_null(Leases::EndedAt))
                .col(timestamp_with_time_zone_null(Leases::EndsAt))
                .col(timestamp_with_time_zone(Leases::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Leases::Table, Leases::ProjectId)
                        .to(Projects::Table, Projects::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "leases_project_state_idx",
            Leases::Table,
            vec![Leases::ProjectId.into_iden(), Leases::State.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "leases_org_state_idx",
            Leases::Table,
            vec![
                Leases::OrganizationId.into_iden(),
                Leases::State.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            m,
            "leases_state_idx",
            Leases::Table,
            vec![Leases::State.into_iden(), Leases::Id.into_iden()],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LeasePlacements::Table)
                .col(pk_uuid(LeasePlacements::Id))
                .col(uuid(LeasePlacements::LeaseId))
                .col(uuid(LeasePlacements::NodeId))
                .col(uuid(LeasePlacements::GpuId))
                .col(string_len(LeasePlacements::GpuUuid, 64))
                .col(integer(LeasePlacements::ProfileId))
                .col(integer(LeasePlacements::Start))
                .col(string_len_null(LeasePlacements::MigDeviceUuid, 64))
                .col(timestamp_with_time_zone(LeasePlacements::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(LeasePlacements::Table, LeasePlacements::LeaseId)
                        .to(Leases::Table, Leases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "lease_placements_lease_idx",
            LeasePlacements::Table,
            vec![LeasePlacements::LeaseId.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "lease_placements_node_idx",
            LeasePlacements::Table,
            vec![LeasePlacements::NodeId.into_iden()],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GpuSlotClaims::Table)
                .col(uuid(GpuSlotClaims::GpuId))
                .col(integer(GpuSlotClaims::Slot))
                .col(uuid(GpuSlotClaims::LeaseId))
                .primary_key(
                    Index::create()
                        .col(GpuSlotClaims::GpuId)
                        .col(GpuSlotClaims::Slot),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(GpuSlotClaims::Table, GpuSlotClaims::LeaseId)
                        .to(Leases::Table, Leases::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "gpu_slot_claims_lease_idx",
            GpuSlotClaims::Table,
            vec![GpuSlotClaims::LeaseId.into_iden()],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            GpuSlotClaims::Table.into_iden(),
            LeasePlacements::Table.into_iden(),
            Leases::Table.into_iden(),
            NodeCredentials::Table.into_iden(),
            JoinTokens::Table.into_iden(),
            Gpus::Table.into_iden(),
            Nodes::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
