//! Entity of the `billing_lines` table.

use sea_orm::entity::prelude::*;

/// A row of `billing_lines`: one line item of a finalised document.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub document_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_no: i32,
    pub project_id: Option<Uuid>,
    pub gpu_model: Option<String>,
    pub profile: Option<String>,
    pub site: Option<String>,
    pub preemptible: bool,
    pub description: String,
    pub seconds: i64,
    pub slice_seconds: i64,
    /// Decimal strings.
    pub gpu_hours: String,
    pub unit_price: String,
    pub amount: String,
    pub energy_mj: i64,
    pub co2e_mg: i64,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
