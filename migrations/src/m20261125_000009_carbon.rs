//! Grid carbon intensity per site and period: each row holds from its `effective_from`
//! until the site's next row. Usage energy at a site is valorised in CO2e with the value
//! in force when the usage interval started.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CarbonIntensities {
    Table,
    Id,
    Site,
    EffectiveFrom,
    GramsPerKwh,
    Source,
    CreatedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CarbonIntensities::Table)
                .col(uuid(CarbonIntensities::Id).primary_key())
                .col(string_len(CarbonIntensities::Site, 64))
                .col(timestamp_with_time_zone(CarbonIntensities::EffectiveFrom))
                .col(integer(CarbonIntensities::GramsPerKwh))
                .col(string_len(CarbonIntensities::Source, 200))
                .col(string_len(CarbonIntensities::CreatedBy, 300))
                .col(timestamp_with_time_zone(CarbonIntensities::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("carbon_intensities_site_from")
                .table(CarbonIntensities::Table)
                .col(CarbonIntensities::Site)
                .col(CarbonIntensities::EffectiveFrom)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CarbonIntensities::Table).to_owned())
            .await
    }
}
