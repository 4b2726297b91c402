//! Allocation: calls for proposals, allocation requests, grants of GPU-hours and quotas.
//! Budgets are stored exactly as integer slice-seconds (one GPU-hour = 25,200).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    Id,
    AllocatorOrgId,
    Title,
    Description,
    GpuModel,
    PoolSliceSeconds,
    OpensAt,
    ClosesAt,
    PeriodStart,
    PeriodEnd,
    State,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AllocationRequests {
    Table,
    Id,
    CallId,
    ProjectId,
    OrganizationId,
    RequestedSliceSeconds,
    Justification,
    State,
    GrantedSliceSeconds,
    DecisionReason,
    DecidedBy,
    DecidedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    ProjectId,
    OrganizationId,
    GpuModel,
    SliceSeconds,
    ValidFrom,
    ValidUntil,
    Source,
    CallId,
    RequestId,
    FundedByOrgId,
    Reference,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Quotas {
    Table,
    Id,
    ScopeKey,
    OrganizationId,
    ProjectId,
    MaxComputeSlices,
    MaxPreemptibleComputeSlices,
    PerProfile,
    PerSite,
    UpdatedAt,
}

fn fk(
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Calls::Table)
                    .col(pk_uuid(Calls::Id))
                    .col(uuid(Calls::AllocatorOrgId))
                    .col(string_len(Calls::Title, 200))
                    .col(text(Calls::Description))
                    .col(string_len(Calls::GpuModel, 32))
                    .col(big_integer(Calls::PoolSliceSeconds))
                    .col(timestamp_with_time_zone(Calls::OpensAt))
                    .col(timestamp_with_time_zone(Calls::ClosesAt))
                    .col(timestamp_with_time_zone(Calls::PeriodStart))
                    .col(timestamp_with_time_zone(Calls::PeriodEnd))
                    .col(string_len(Calls::State, 16))
                    .col(timestamp_with_time_zone(Calls::CreatedAt))
                    .col(timestamp_with_time_zone(Calls::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Calls::Table, Calls::AllocatorOrgId),
                        (Organizations::Table, Organizations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AllocationRequests::Table)
                    .col(pk_uuid(AllocationRequests::Id))
                    .col(uuid(AllocationRequests::CallId))
                    .col(uuid(AllocationRequests::ProjectId))
                    .col(uuid(AllocationRequests::OrganizationId))
                    .col(big_integer(AllocationRequests::RequestedSliceSeconds))
                    .col(text(AllocationRequests::Justification))
                    .col(string_len(AllocationRequests::State, 16))
                    .col(big_integer_null(AllocationRequests::GrantedSliceSeconds))
                    .col(text_null(AllocationRequests::DecisionReason))
                    .col(string_len_null(AllocationRequests::DecidedBy, 64))
                    .col(timestamp_with_time_zone_null(AllocationRequests::DecidedAt))
                    .col(timestamp_with_time_zone(AllocationRequests::CreatedAt))
                    .foreign_key(&mut fk(
                        (AllocationRequests::Table, AllocationRequests::CallId),
                        (Calls::Table, Calls::Id),
                    ))
                    .foreign_key(&mut fk(
                        (AllocationRequests::Table, AllocationRequests::ProjectId),
                        (Projects::Table, Projects::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // One live (non-withdrawn) request per project per call, even under concurrent
        // filings. A partial index, which both engines support; sea-query has no builder.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX allocation_requests_live_key \
                 ON allocation_requests (call_id, project_id) WHERE state <> 'withdrawn'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(pk_uuid(Grants::Id))
                    .col(uuid(Grants::ProjectId))
                    .col(uuid(Grants::OrganizationId))
                    .col(string_len(Grants::GpuModel, 32))
                    .col(big_integer(Grants::SliceSeconds))
                    .col(timestamp_with_time_zone(Grants::ValidFrom))
                    .col(timestamp_with_time_zone(Grants::ValidUntil))
                    .col(string_len(Grants::Source, 16))
                    .col(uuid_null(Grants::CallId))
                    .col(uuid_null(Grants::RequestId).unique_key())
                    .col(uuid_null(Grants::FundedByOrgId))
                    .col(string_len(Grants::Reference, 200))
                    .col(string_len(Grants::CreatedBy, 64))
                    .col(timestamp_with_time_zone(Grants::CreatedAt))
                    .foreign_key(&mut fk(
                        (Grants::Table, Grants::ProjectId),
                        (Projects::Table, Projects::Id),
                    ))
                    .foreign_key(&mut fk(
                        (Grants::Table, Grants::CallId),
                        (Calls::Table, Calls::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("grants_project_idx")
                    .table(Grants::Table)
                    .col(Grants::ProjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Quotas::Table)
                    .col(pk_uuid(Quotas::Id))
                    // "org:<uuid>" or "project:<uuid>": one quota per scope.
                    .col(string_len_uniq(Quotas::ScopeKey, 64))
                    .col(uuid(Quotas::OrganizationId))
                    .col(uuid_null(Quotas::ProjectId))
                    .col(big_integer(Quotas::MaxComputeSlices))
                    .col(big_integer(Quotas::MaxPreemptibleComputeSlices))
                    .col(text_null(Quotas::PerProfile))
                    .col(text_null(Quotas::PerSite))
                    .col(timestamp_with_time_zone(Quotas::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Quotas::Table, Quotas::OrganizationId),
                        (Organizations::Table, Organizations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Quotas::Table.into_iden(),
            Grants::Table.into_iden(),
            AllocationRequests::Table.into_iden(),
            Calls::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
