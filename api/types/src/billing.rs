//! Invoices, statements and credit notes. Money is a decimal string in EUR ("120.50"),
//! never a JSON number; quantities are exact integers beside display decimals.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One line item: a project's use of one profile on one GPU model at one site (and
/// price).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BillingLine {
    /// The project (absent on a credit line).
    pub project_id: Option<Uuid>,
    /// GPU model.
    pub gpu_model: Option<String>,
    /// MIG profile.
    pub profile: Option<String>,
    /// Site of the GPUs.
    pub site: Option<String>,
    /// Preemptible leases (discounted price).
    pub preemptible: bool,
    /// What the line is.
    pub description: String,
    /// Allocated seconds of the line's leases.
    pub seconds: i64,
    /// The same in hours, decimal string to 6 places.
    pub hours: String,
    /// Exact quantity: seconds × compute slices (25,200 per GPU-hour).
    pub slice_seconds: i64,
    /// GPU-hours, decimal string to 6 places.
    pub gpu_hours: String,
    /// EUR per hour, after any preemptible discount.
    pub unit_price: String,
    /// EUR, rounded once to the cent (half to even).
    pub amount: String,
    /// Energy measured by the agents, watt-hours.
    pub energy_wh: f64,
    /// CO2e of that energy at the site's grid intensity, grams.
    pub co2e_g: f64,
}

/// An invoice, statement or credit note; a month's documents are drafts until
/// finalised.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BillingDocument {
    /// Id, once finalised.
    pub id: Option<Uuid>,
    /// The customer organisation.
    pub organization_id: Uuid,
    /// `invoice` (contract-funded usage, payable), `statement` (grant-funded usage
    /// valorised at list price, not invoiced) or `credit_note`.
    pub kind: String,
    /// `draft` (recomputed on each read) or `final` (never changes).
    pub status: String,
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end (exclusive).
    pub period_end: DateTime<Utc>,
    /// Gapless number of a final invoice or credit note, `AION-YYYY-NNNNNN`.
    pub number: Option<String>,
    /// EUR.
    pub currency: String,
    /// Line items.
    pub lines: Vec<BillingLine>,
    /// Sum of the line amounts.
    pub net: String,
    /// `domestic`, `reverse_charge`, `outside_eu` or `not_invoiced`.
    pub vat_regime: String,
    /// VAT rate, percent.
    pub vat_rate_percent: String,
    /// The VAT mention.
    pub vat_note: String,
    /// VAT amount.
    pub vat: String,
    /// Net + VAT.
    pub total: String,
    /// Energy, watt-hours.
    pub energy_wh: f64,
    /// Energy measured where no grid intensity was recorded, watt-hours.
    pub energy_without_intensity_wh: f64,
    /// CO2e, grams.
    pub co2e_g: f64,
    /// The invoice a credit note corrects.
    pub credits_id: Option<Uuid>,
    /// Why, for a credit note.
    pub reason: Option<String>,
    /// Who finalised it.
    pub finalised_by: Option<String>,
    /// When.
    pub finalised_at: Option<DateTime<Utc>>,
}

/// A page of finalised documents.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BillingDocumentList {
    /// Items of this page.
    pub items: Vec<BillingDocument>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A month's documents (drafts, or the final ones once finalised).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MonthDocuments {
    /// `YYYY-MM`.
    pub month: String,
    /// The documents.
    pub items: Vec<BillingDocument>,
}

/// Body of `POST /v1/invoices/{id}/credit-notes`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteCreate {
    /// Why (1–1000 characters).
    pub reason: String,
    /// Net EUR to credit, as a string ("120.50"); absent: the whole invoice.
    pub amount: Option<String>,
}
