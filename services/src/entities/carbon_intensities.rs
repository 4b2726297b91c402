//! Entity of the `carbon_intensities` table.

use sea_orm::entity::prelude::*;

/// A row of `carbon_intensities`: a site's grid intensity from a date on.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "carbon_intensities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub site: String,
    pub effective_from: DateTimeUtc,
    /// Grams of CO2-equivalent per kWh drawn from the grid.
    pub grams_per_kwh: i32,
    /// Where the figure comes from (e.g. the grid operator's yearly average).
    pub source: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
