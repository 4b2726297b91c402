//! Monthly billing documents. A month's invoice (contract-funded usage) and statement
//! (usage funded by allocators' grants, valorised at list price, not invoiced) are drafts
//! computed from leases until finalised; finalising stores the document and its lines,
//! which are never changed again. Invoices and credit notes take numbers from a gapless
//! per-year sequence: the counter row is incremented inside the finalising transaction,
//! so a rolled-back finalisation gives its number back.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BillingDocuments {
    Table,
    Id,
    OrganizationId,
    Kind,
    PeriodKey,
    PeriodStart,
    PeriodEnd,
    Number,
    Currency,
    Net,
    VatRegime,
    VatRate,
    VatNote,
    Vat,
    Total,
    EnergyMj,
    EnergyWithoutIntensityMj,
    Co2eMg,
    CreditsId,
    Reason,
    FinalisedBy,
    FinalisedAt,
}

#[derive(DeriveIden)]
enum BillingLines {
    Table,
    DocumentId,
    LineNo,
    ProjectId,
    GpuModel,
    Profile,
    Site,
    Preemptible,
    Description,
    Seconds,
    SliceSeconds,
    GpuHours,
    UnitPrice,
    Amount,
    EnergyMj,
    Co2eMg,
}

#[derive(DeriveIden)]
enum InvoiceSequences {
    Table,
    Year,
    Last,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BillingDocuments::Table)
                .col(uuid(BillingDocuments::Id).primary_key())
                .col(uuid(BillingDocuments::OrganizationId))
                .col(string_len(BillingDocuments::Kind, 16))
                // `2026-11` for a month's invoice or statement; NULL for credit notes
                // (NULLs never collide in the unique index below).
                .col(string_len_null(BillingDocuments::PeriodKey, 7))
                .col(timestamp_with_time_zone(BillingDocuments::PeriodStart))
                .col(timestamp_with_time_zone(BillingDocuments::PeriodEnd))
                .col(string_len_null(BillingDocuments::Number, 32))
                .col(string_len(BillingDocuments::Currency, 3))
                .col(string_len(BillingDocuments::Net, 40))
                .col(string_len(BillingDocuments::VatRegime, 16))
                .col(string_len(BillingDocuments::VatRate, 16))
                .col(text(BillingDocuments::VatNote))
                .col(string_len(BillingDocuments::Vat, 40))
                .col(string_len(BillingDocuments::Total, 40))
                .col(big_integer(BillingDocuments::EnergyMj))
                .col(big_integer(BillingDocuments::EnergyWithoutIntensityMj))
                .col(big_integer(BillingDocuments::Co2eMg))
                .col(uuid_null(BillingDocuments::CreditsId))
                .col(text_null(BillingDocuments::Reason))
                .col(string_len(BillingDocuments::FinalisedBy, 300))
                .col(timestamp_with_time_zone(BillingDocuments::FinalisedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("billing_documents_month")
                .table(BillingDocuments::Table)
                .col(BillingDocuments::OrganizationId)
                .col(BillingDocuments::Kind)
                .col(BillingDocuments::PeriodKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("billing_documents_number")
                .table(BillingDocuments::Table)
                .col(BillingDocuments::Number)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BillingLines::Table)
                .col(uuid(BillingLines::DocumentId))
                .col(integer(BillingLines::LineNo))
                .col(uuid_null(BillingLines::ProjectId))
                .col(string_len_null(BillingLines::GpuModel, 32))
                .col(string_len_null(BillingLines::Profile, 32))
                .col(string_len_null(BillingLines::Site, 64))
                .col(boolean(BillingLines::Preemptible))
                .col(text(BillingLines::Description))
                .col(big_integer(BillingLines::Seconds))
                .col(big_integer(BillingLines::SliceSeconds))
                .col(string_len(BillingLines::GpuHours, 48))
                .col(string_len(BillingLines::UnitPrice, 48))
                .col(string_len(BillingLines::Amount, 40))
                .col(big_integer(BillingLines::EnergyMj))
                .col(big_integer(BillingLines::Co2eMg))
                .primary_key(
                    Index::create()
                        .col(BillingLines::DocumentId)
                        .col(BillingLines::LineNo),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(BillingLines::Table, BillingLines::DocumentId)
                        .to(BillingDocuments::Table, BillingDocuments::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(InvoiceSequences::Table)
                .col(integer(InvoiceSequences::Year).primary_key())
                .col(big_integer(InvoiceSequences::Last))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(InvoiceSequences::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(BillingLines::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(BillingDocuments::Table).to_owned())
            .await
    }
}
