//! The audit inbox: mutations write their audit event here, in their own transaction and
//! without touching the chain's head row; a chainer then seals inbox events into
//! `audit_events` in batches (sequence number and hash). Without it, every mutation of the
//! whole platform queued on one row until commit, which capped lease creation at a few
//! hundred per second. Also indexes leases by grant for budget sums.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditInbox {
    Table,
    Id,
    OccurredAt,
    Actor,
    Action,
    TargetKind,
    TargetId,
    OrganizationId,
    ProjectId,
    RequestId,
    Details,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    GrantId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditInbox::Table)
                .col(pk_uuid(AuditInbox::Id))
                .col(timestamp_with_time_zone(AuditInbox::OccurredAt))
                .col(string_len(AuditInbox::Actor, 128))
                .col(string_len(AuditInbox::Action, 64))
                .col(string_len(AuditInbox::TargetKind, 32))
                .col(string_len(AuditInbox::TargetId, 64))
                .col(uuid_null(AuditInbox::OrganizationId))
                .col(uuid_null(AuditInbox::ProjectId))
                .col(string_len(AuditInbox::RequestId, 64))
                .col(text(AuditInbox::Details))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("leases_grant_idx")
                .table(Leases::Table)
                .col(Leases::GrantId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("leases_grant_idx")
                .table(Leases::Table)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(AuditInbox::Table).to_owned())
            .await
    }
}
