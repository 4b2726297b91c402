//! Price lists: versions per organisation kind or per organisation (contract), each with
//! an effective date, and their prices per GPU model and per profile. Money is TEXT in
//! `rust_decimal`'s canonical form ("2.400000"), so both engines store it exactly and
//! identically; never a float.

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
enum PriceLists {
    Table,
    Id,
    ScopeKey,
    OrganizationKind,
    OrganizationId,
    Name,
    Currency,
    EffectiveFrom,
    PreemptibleDiscountPercent,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PriceListEntries {
    Table,
    PriceListId,
    GpuModel,
    Profile,
    Price,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(PriceLists::Table)
                .col(pk_uuid(PriceLists::Id))
                // "kind:<kind>" or "org:<uuid>": whom the version applies to.
                .col(string_len(PriceLists::ScopeKey, 64))
                .col(string_len_null(PriceLists::OrganizationKind, 16))
                .col(uuid_null(PriceLists::OrganizationId))
                .col(string_len(PriceLists::Name, 200))
                .col(string_len(PriceLists::Currency, 3))
                .col(timestamp_with_time_zone(PriceLists::EffectiveFrom))
                .col(string_len(PriceLists::PreemptibleDiscountPercent, 16))
                .col(string_len(PriceLists::CreatedBy, 64))
                .col(timestamp_with_time_zone(PriceLists::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(PriceLists::Table, PriceLists::OrganizationId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        // Two versions of one scope never take effect at the same instant, so the version
        // in effect at any time is unambiguous.
        m.create_index(
            Index::create()
                .name("price_lists_scope_effective_key")
                .table(PriceLists::Table)
                .col(PriceLists::ScopeKey)
                .col(PriceLists::EffectiveFrom)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PriceListEntries::Table)
                .col(uuid(PriceListEntries::PriceListId))
                .col(string_len(PriceListEntries::GpuModel, 32))
                // Empty: the model's GPU-hour price; else a profile's slice-hour price.
                .col(string_len(PriceListEntries::Profile, 32))
                .col(string_len(PriceListEntries::Price, 32))
                .primary_key(
                    Index::create()
                        .col(PriceListEntries::PriceListId)
                        .col(PriceListEntries::GpuModel)
                        .col(PriceListEntries::Profile),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(PriceListEntries::Table, PriceListEntries::PriceListId)
                        .to(PriceLists::Table, PriceLists::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(PriceListEntries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(PriceLists::Table).to_owned())
            .await
    }
}
