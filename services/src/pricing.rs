//! Price lists: what a GPU-hour costs, in EUR, per organisation kind or per contract.
//!
//! A price list is *versioned*: each version has a scope (an organisation kind, or one
//! organisation for a contract) and an `effective_from`; the version in effect for a
//! scope at `t` is the one with the latest `effective_from <= t`. An organisation is
//! priced by its own contract list in effect at `t`, else by its kind's list in effect at
//! `t`. Versions are never edited: a price change is a successor version (see
//! [`crate::price_lists`] for storage and immutability).
//!
//! Money is [`Decimal`], never a float. Prices are stored and shown with exactly
//! [`PRICE_SCALE`] fractional digits ("2.400000"), discounts with [`DISCOUNT_SCALE`].

use crate::error::{Error, Result};
use crate::ids::{OrganizationId, PriceListId};
use crate::rating::{PriceBasis, PriceStep, UnitPrice};
use crate::validate::{Validator, missing};
use crate::values::{OrganizationKind, parse_gpu_model, parse_name};
use aion_mig::{GpuModel, Profile};
use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The only currency prices are kept in.
pub const CURRENCY: &str = "EUR";
/// Fractional digits of a price (micro-euros).
pub const PRICE_SCALE: u32 = 6;
/// Fractional digits of a discount percentage.
pub const DISCOUNT_SCALE: u32 = 2;
/// Highest price per hour accepted (keeps every rated amount far inside exact integers).
pub const MAX_PRICE_EUR: i64 = 1_000_000;
/// Most GPU models (and most profile overrides per model) in one version.
pub const MAX_ENTRIES: usize = 32;

/// A price per hour in EUR: positive, at most [`PRICE_SCALE`] fractional digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(Decimal);

impl Price {
    /// Parses a decimal string such as `"2.40"` (a JSON string, never a float).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let value = Decimal::from_str_exact(raw.trim())
            .map_err(|_| {
                Error::invalid(
                    field,
                    "must be a decimal number written as a string, e.g. \"2.40\"",
                )
            })?
            .normalize();
        if value <= Decimal::ZERO {
            return Err(Error::invalid(field, "must be greater than 0"));
        }
        if value.scale() > PRICE_SCALE {
            return Err(Error::invalid(
                field,
                format!("must have at most {PRICE_SCALE} fractional digits"),
            ));
        }
        if value > Decimal::from(MAX_PRICE_EUR) {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_PRICE_EUR} EUR per hour"),
            ));
        }
        Ok(Self(canonical(value, PRICE_SCALE)))
    }

    /// Reads a stored price back (a bad one is a bug, never user input).
    pub fn stored(raw: &str) -> Result<Self> {
        Self::parse("price", raw).map_err(|e| Error::Internal(format!("stored price {raw}: {e}")))
    }

    /// The price, with exactly [`PRICE_SCALE`] fractional digits.
    pub fn get(self) -> Decimal {
        self.0
    }

    /// The price in millionths of a euro (exact).
    pub fn micros(self) -> i128 {
        canonical(self.0, PRICE_SCALE).mantissa()
    }
}

/// A discount in percent, 0 to 100, at most [`DISCOUNT_SCALE`] fractional digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiscountPercent(Decimal);

impl DiscountPercent {
    /// No discount.
    pub const NONE: DiscountPercent = DiscountPercent(Decimal::ZERO);

    /// Parses a decimal string such as `"30"` or `"12.5"`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let value = Decimal::from_str_exact(raw.trim())
            .map_err(|_| {
                Error::invalid(
                    field,
                    "must be a decimal number written as a string, e.g. \"30\"",
                )
            })?
            .normalize();
        if value < Decimal::ZERO || value > Decimal::ONE_HUNDRED {
            return Err(Error::invalid(field, "must be between 0 and 100"));
        }
        if value.scale() > DISCOUNT_SCALE {
            return Err(Error::invalid(
                field,
                format!("must have at most {DISCOUNT_SCALE} fractional digits"),
            ));
        }
        Ok(Self(canonical(value, DISCOUNT_SCALE)))
    }

    /// Reads a stored discount back.
    pub fn stored(raw: &str) -> Result<Self> {
        Self::parse("discount", raw)
            .map_err(|e| Error::Internal(format!("stored discount {raw}: {e}")))
    }

    /// The percentage, with exactly [`DISCOUNT_SCALE`] fractional digits.
    pub fn get(self) -> Decimal {
        self.0
    }

    /// The percentage in hundredths of a percent (0..=10,000, exact).
    pub fn basis_points(self) -> i128 {
        canonical(self.0, DISCOUNT_SCALE).mantissa()
    }
}

/// `value` rescaled to exactly `scale` fractional digits (never loses digits here: callers
/// checked the scale first).
fn canonical(mut value: Decimal, scale: u32) -> Decimal {
    value.rescale(scale);
    value
}

/// Whom a price list version applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceScope {
    /// Every organisation of a kind without a contract list.
    OrganizationKind(OrganizationKind),
    /// One organisation (a contract list).
    Organization(OrganizationId),
}

impl PriceScope {
    /// The stored key, unique together with `effective_from`.
    pub fn key(&self) -> String {
        match self {
            PriceScope::OrganizationKind(kind) => format!("kind:{}", kind.as_str()),
            PriceScope::Organization(org) => format!("org:{org}"),
        }
    }

    /// Parses "exactly one of" the two request fields.
    pub fn parse(kind: Option<&str>, organization_id: Option<uuid::Uuid>) -> Result<Self> {
        match (kind, organization_id) {
            (Some(kind), None) => Ok(PriceScope::OrganizationKind(OrganizationKind::parse(
                "organization_kind",
                kind,
            )?)),
            (None, Some(org)) => Ok(PriceScope::Organization(org.into())),
            _ => Err(Error::invalid(
                "organization_kind",
                "give exactly one of organization_kind (a list for every organisation of that kind) or organization_id (a contract list)",
            )),
        }
    }
}

/// Prices of one GPU model in one version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPrices {
    /// GPU model.
    pub gpu_model: GpuModel,
    /// Price of a whole GPU-hour; a profile without an override costs its share of it.
    pub gpu_hour_price: Price,
    /// Price per slice-hour (one instance for one hour) of some profiles, by profile name.
    pub profile_prices: Vec<(String, Price)>,
}

impl ModelPrices {
    /// What one hour of `profile` costs under these prices.
    pub fn unit_price(&self, profile: &Profile) -> UnitPrice {
        match self
            .profile_prices
            .iter()
            .find(|(name, _)| name == profile.name)
        {
            Some((_, price)) => UnitPrice::new(PriceBasis::InstanceHour, *price),
            None => UnitPrice::new(PriceBasis::GpuHour, self.gpu_hour_price),
        }
    }
}

/// One version of a price list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceList {
    /// Id of this version.
    pub id: PriceListId,
    /// Whom it applies to.
    pub scope: PriceScope,
    /// Name, e.g. "Academic 2027".
    pub name: String,
    /// Always [`CURRENCY`].
    pub currency: String,
    /// In effect from this instant (whole seconds) until a successor takes over.
    pub effective_from: DateTime<Utc>,
    /// Discount on the price of preemptible leases.
    pub preemptible_discount_percent: DiscountPercent,
    /// Prices per GPU model.
    pub entries: Vec<ModelPrices>,
    /// Actor who published it.
    pub created_by: String,
    /// Published at.
    pub created_at: DateTime<Utc>,
}

impl PriceList {
    /// The price step for `profile` on `model`, or an error naming what is missing.
    pub fn step_for(&self, model: GpuModel, profile: &Profile) -> Result<PriceStep> {
        let prices = self
            .entries
            .iter()
            .find(|e| e.gpu_model == model)
            .ok_or_else(|| {
                Error::NotPriced(format!(
                    "price list {} ({}) has no price for GPU model {}",
                    self.id,
                    self.name,
                    model.name()
                ))
            })?;
        Ok(PriceStep {
            price_list_id: self.id,
            effective_from: self.effective_from,
            unit: prices.unit_price(profile),
            preemptible_discount: self.preemptible_discount_percent,
        })
    }
}

/// Raw prices of one GPU model, as a caller sends them.
#[derive(Clone, Debug)]
pub struct ModelPricesInput {
    /// GPU model name.
    pub gpu_model: String,
    /// Price of a GPU-hour, as a decimal string.
    pub gpu_hour_price: String,
    /// (profile name, price per slice-hour) overrides.
    pub profile_prices: Vec<(String, String)>,
}

/// A validated new price list version (its date is checked against the clock on create).
#[derive(Clone, Debug, Serialize)]
pub struct NewPriceList {
    pub(crate) scope: PriceScope,
    pub(crate) name: String,
    pub(crate) effective_from: DateTime<Utc>,
    pub(crate) preemptible_discount_percent: DiscountPercent,
    pub(crate) entries: Vec<ModelPrices>,
}

impl NewPriceList {
    /// Validates raw input, reporting every bad field. `effective_from` is kept to the
    /// second, like rated time.
    pub fn parse(
        scope: Result<PriceScope>,
        name: &str,
        currency: Option<&str>,
        effective_from: DateTime<Utc>,
        discount: Option<&str>,
        entries: &[ModelPricesInput],
    ) -> Result<Self> {
        let mut v = Validator::default();
        let scope = v.check(scope);
        let name = v.check(parse_name("name", name, 200));
        if currency.is_some_and(|c| c != CURRENCY) {
            v.check::<()>(Err(Error::invalid("currency", "must be EUR")));
        }
        let discount = match discount {
            Some(raw) => v.check(DiscountPercent::parse("preemptible_discount_percent", raw)),
            None => Some(DiscountPercent::NONE),
        };
        let entries = v.check(parse_entries(entries));
        v.finish()?;
        match (scope, name, discount, entries) {
            (Some(scope), Some(name), Some(discount), Some(entries)) => Ok(Self {
                scope,
                name,
                effective_from: effective_from.trunc_subsecs(0),
                preemptible_discount_percent: discount,
                entries,
            }),
            _ => Err(missing()),
        }
    }

    /// Whom it applies to.
    pub fn scope(&self) -> PriceScope {
        self.scope
    }
}

fn parse_entries(raw: &[ModelPricesInput]) -> Result<Vec<ModelPrices>> {
    if raw.is_empty() || raw.len() > MAX_ENTRIES {
        return Err(Error::invalid(
            "entries",
            format!("must list 1 to {MAX_ENTRIES} GPU models"),
        ));
    }
    let mut v = Validator::default();
    let mut models = BTreeSet::new();
    let mut parsed = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let field = |name: &str| format!("entries[{i}].{name}");
        let model = v.check(parse_gpu_model(&field("gpu_model"), &e.gpu_model));
        if let Some(model) = model
            && !models.insert(model)
        {
            v.check::<()>(Err(Error::invalid(
                &field("gpu_model"),
                format!("{} is listed twice", model.name()),
            )));
        }
        let price = v.check(Price::parse(&field("gpu_hour_price"), &e.gpu_hour_price));
        let overrides = model.and_then(|m| v.check(parse_overrides(m, i, &e.profile_prices)));
        if let (Some(gpu_model), Some(gpu_hour_price), Some(profile_prices)) =
            (model, price, overrides)
        {
            parsed.push(ModelPrices {
                gpu_model,
                gpu_hour_price,
                profile_prices,
            });
        }
    }
    v.finish()?;
    Ok(parsed)
}

fn parse_overrides(
    model: GpuModel,
    entry: usize,
    raw: &[(String, String)],
) -> Result<Vec<(String, Price)>> {
    let field = |j: usize, name: &str| format!("entries[{entry}].profile_prices[{j}].{name}");
    if raw.len() > MAX_ENTRIES {
        return Err(Error::invalid(
            &format!("entries[{entry}].profile_prices"),
            format!("must list at most {MAX_ENTRIES} profiles"),
        ));
    }
    let mut v = Validator::default();
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::new();
    for (j, (profile, price)) in raw.iter().enumerate() {
        let profile = v.check(
            model
                .parse_profile(profile)
                .map_err(|e| Error::invalid(&field(j, "profile"), e.to_string())),
        );
        if let Some(p) = profile
            && !seen.insert(p.name)
        {
            v.check::<()>(Err(Error::invalid(
                &field(j, "profile"),
                format!("{} is listed twice", p.name),
            )));
        }
        let price = v.check(Price::parse(&field(j, "price"), price));
        if let (Some(p), Some(price)) = (profile, price) {
            parsed.push((p.name.to_owned(), price));
        }
    }
    v.finish()?;
    Ok(parsed)
}

/// The version of `scope` in effect at `at`: the latest `effective_from <= at`.
pub fn in_effect(
    versions: &[PriceList],
    scope: PriceScope,
    at: DateTime<Utc>,
) -> Option<&PriceList> {
    versions
        .iter()
        .filter(|v| v.scope == scope && v.effective_from <= at)
        .max_by_key(|v| v.effective_from)
}

/// The version that prices organisation `org` (of `kind`) at `at`: its contract list in
/// effect, else its kind's list in effect.
pub fn applicable(
    versions: &[PriceList],
    org: OrganizationId,
    kind: OrganizationKind,
    at: DateTime<Utc>,
) -> Result<&PriceList> {
    in_effect(versions, PriceScope::Organization(org), at)
        .or_else(|| in_effect(versions, PriceScope::OrganizationKind(kind), at))
        .ok_or_else(|| {
            Error::NotPriced(format!(
                "no price list covers organisation {org} at {}",
                at.to_rfc3339()
            ))
        })
}

/// The price steps that rate `profile` on `model` for organisation `org` over
/// `[from, to)`: one step from `from` (to the second, as rating counts), then one at each
/// later version change.
pub fn price_steps(
    versions: &[PriceList],
    org: OrganizationId,
    kind: OrganizationKind,
    model: GpuModel,
    profile: &Profile,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<PriceStep>> {
    let from = from.trunc_subsecs(0);
    let mut changes: Vec<DateTime<Utc>> = versions
        .iter()
        .map(|v| v.effective_from)
        .filter(|t| *t > from && *t < to)
        .collect();
    changes.sort();
    changes.dedup();
    let mut steps = Vec::with_capacity(changes.len() + 1);
    for at in std::iter::once(from).chain(changes) {
        let mut step = applicable(versions, org, kind, at)?.step_for(model, profile)?;
        // The step applies from this change (the first from `from`), even when its
        // version took effect earlier.
        step.effective_from = at;
        if steps
            .last()
            .is_none_or(|last: &PriceStep| last.price_list_id != step.price_list_id)
        {
            steps.push(step);
        }
    }
    Ok(steps)
}

#[cfg(test)]
#[path = "pricing_tests.rs"]
mod tests;
