//! Entity of the `billing_documents` table.

use sea_orm::entity::prelude::*;

/// A row of `billing_documents`: a finalised invoice, statement or credit note.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// invoice, statement or credit_note.
    pub kind: String,
    /// `YYYY-MM` for a month's invoice or statement.
    pub period_key: Option<String>,
    pub period_start: DateTimeUtc,
    pub period_end: DateTimeUtc,
    /// Gapless per-year number (invoices and credit notes).
    pub number: Option<String>,
    pub currency: String,
    /// Decimal strings, EUR.
    pub net: String,
    pub vat_regime: String,
    pub vat_rate: String,
    pub vat_note: String,
    pub vat: String,
    pub total: String,
    pub energy_mj: i64,
    /// Energy measured where no grid intensity was recorded (not in `co2e_mg`).
    pub energy_without_intensity_mj: i64,
    pub co2e_mg: i64,
    /// The invoice a credit note corrects.
    pub credits_id: Option<Uuid>,
    pub reason: Option<String>,
    pub finalised_by: String,
    pub finalised_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
