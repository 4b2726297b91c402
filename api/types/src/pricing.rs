//! Price lists. Money travels as decimal strings ("2.400000", EUR), never as JSON
//! numbers, so no client ever parses a price into a float.

use crate::OrganizationKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A profile's own price, per slice-hour (one instance for one hour).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePrice {
    /// Profile name on the entry's GPU model, e.g. `1g.10gb`.
    pub profile: String,
    /// EUR per slice-hour, a decimal string with at most 6 fractional digits.
    #[schema(example = "0.400000")]
    pub price: String,
}

/// Prices of one GPU model.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceListEntry {
    /// GPU model, e.g. `H100-80GB`.
    pub gpu_model: String,
    /// EUR per GPU-hour, a decimal string > 0 with at most 6 fractional digits. A profile
    /// without its own price costs `gpu_hour_price × compute slices / 7` per hour.
    #[schema(example = "2.400000")]
    pub gpu_hour_price: String,
    /// Profiles priced on their own.
    #[serde(default)]
    pub profile_prices: Vec<ProfilePrice>,
}

/// One version of a price list.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PriceList {
    /// Id.
    pub id: Uuid,
    /// For every organisation of this kind without a contract list (or absent).
    pub organization_kind: Option<OrganizationKind>,
    /// For this organisation only: a contract list (or absent).
    pub organization_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Always `EUR`.
    pub currency: String,
    /// In effect from this instant until a successor version takes effect.
    pub effective_from: DateTime<Utc>,
    /// Discount on preemptible leases, in percent (decimal string, e.g. `"30.00"`).
    pub preemptible_discount_percent: String,
    /// Prices per GPU model.
    pub entries: Vec<PriceListEntry>,
    /// Actor who published it.
    pub created_by: String,
    /// Published at.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /v1/price-lists`: a new version (exactly one of `organization_kind`
/// and `organization_id`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceListCreate {
    /// For every organisation of this kind (`academic`, `startup`, `industry`,
    /// `public`, `allocator`).
    pub organization_kind: Option<String>,
    /// For this organisation only (a contract).
    pub organization_id: Option<Uuid>,
    /// Name (1–200 characters).
    pub name: String,
    /// `EUR` (the default and only currency).
    pub currency: Option<String>,
    /// Takes effect at (kept to the second); not in the past.
    pub effective_from: DateTime<Utc>,
    /// Discount on preemptible leases, percent 0–100 with at most 2 fractional digits
    /// (default `"0"`).
    pub preemptible_discount_percent: Option<String>,
    /// Prices per GPU model (1–32 models).
    pub entries: Vec<PriceListEntry>,
}

/// A page of price list versions.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PriceListPage {
    /// Items of this page.
    pub items: Vec<PriceList>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
