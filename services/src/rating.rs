//! Rating: turns a lease's allocated time into money. Pure functions, no database: the
//! invoices call them with the lease and the price steps of [`crate::pricing::price_steps`].
//!
//! **What is rated.** Allocated time is authoritative: from the lease's `active_at` to its
//! end, counted in whole seconds (both ends are truncated to the second). The interval is
//! cut into *pieces* exactly at UTC month boundaries and at price version changes, so a
//! piece belongs to one month and has one price.
//!
//! **Prices.** A profile without an override costs `gpu_hour_price × compute_slices / 7`
//! per hour (its share of a GPU-hour, [`PriceBasis::GpuHour`]); a profile with an override
//! costs its slice-hour price per instance ([`PriceBasis::InstanceHour`]). A preemptible
//! lease pays `(1 - d/100) ×` the price, `d` being the version's preemptible discount.
//!
//! **Rounding rules.**
//! 1. Pieces keep full precision: a piece's [`Amount`] is exact (an integer number of
//!    `1/25,200` × 10⁻¹⁰ EUR), because `compute slices / 7` and seconds / 3,600 are not
//!    terminating decimals. Sums of amounts are exact, so splitting never creates or
//!    loses money. [`RatedPiece::gpu_hours`] is a 28-digit decimal for display only; the
//!    exact quantity is [`RatedPiece::slice_seconds`] (one GPU-hour = 25,200).
//! 2. Only a line item's amount (the exact sum of its pieces) is rounded, once, to cents,
//!    half to even ("banker's rounding", [`RoundingStrategy::MidpointNearestEven`]):
//!    [`Amount::to_cents`] for exact amounts, [`round_cents`] for decimals.
//! 3. Invoice and statement totals are sums of rounded line amounts, never rounded again.

use crate::budget::{SLICE_SECONDS_PER_GPU_HOUR, SLICES_PER_GPU};
use crate::error::{Error, Result};
use crate::ids::PriceListId;
use crate::pricing::{DiscountPercent, PRICE_SCALE, Price};
use aion_mig::Profile;
use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Fractional digits of a unit price after the discount: 6 for the price, 4 for the factor
/// `(100 - d) / 100` with `d` at two digits.
const UNIT_SCALE: u32 = PRICE_SCALE + 4;
/// Exact amount units per cent: `25,200 × 10¹⁰ / 100`.
const UNITS_PER_CENT: i128 = SLICE_SECONDS_PER_GPU_HOUR as i128 * 10i128.pow(UNIT_SCALE) / 100;

/// Rounds a euro amount to cents, half to even (rule 2 of the module doc).
pub fn round_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
}

/// An exact amount of euros, in units of `1 / (25,200 × 10¹⁰)` EUR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(i128);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`; fails rather than overflow.
    pub fn checked_add(self, other: Amount) -> Result<Amount> {
        self.0.checked_add(other.0).map(Amount).ok_or_else(overflow)
    }

    /// Exact sum of many amounts.
    pub fn sum(items: impl IntoIterator<Item = Amount>) -> Result<Amount> {
        items
            .into_iter()
            .try_fold(Amount::ZERO, Amount::checked_add)
    }

    /// The amount in EUR as a decimal (28 significant digits; for display and checks).
    pub fn to_decimal(self) -> Result<Decimal> {
        let units =
            Decimal::try_from_i128_with_scale(self.0, UNIT_SCALE).map_err(|_| overflow())?;
        Ok(units / Decimal::from(SLICE_SECONDS_PER_GPU_HOUR))
    }

    /// The amount rounded to cents, half to even, computed exactly on integers.
    pub fn to_cents(self) -> Result<Decimal> {
        let (quotient, rest) = (
            self.0.div_euclid(UNITS_PER_CENT),
            self.0.rem_euclid(UNITS_PER_CENT),
        );
        let cents = match (2 * rest).cmp(&UNITS_PER_CENT) {
            std::cmp::Ordering::Less => quotient,
            std::cmp::Ordering::Greater => quotient + 1,
            std::cmp::Ordering::Equal => quotient + quotient.rem_euclid(2),
        };
        Decimal::try_from_i128_with_scale(cents, 2).map_err(|_| overflow())
    }
}

fn overflow() -> Error {
    Error::Internal("rated amount out of range".into())
}

/// What a unit price is per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// Per GPU-hour: a slice-hour pays `compute slices / 7` of it.
    GpuHour,
    /// Per instance-hour of the lease's profile (a profile override).
    InstanceHour,
}

/// A price per hour and what the hour is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPrice {
    /// GPU-hour or instance-hour.
    pub basis: PriceBasis,
    /// EUR per hour.
    pub price: Price,
}

impl UnitPrice {
    /// A unit price.
    pub fn new(basis: PriceBasis, price: Price) -> Self {
        Self { basis, price }
    }
}

/// The price of one lease from one instant until the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceStep {
    /// The price list version it comes from.
    pub price_list_id: PriceListId,
    /// Applies from (whole seconds).
    pub effective_from: DateTime<Utc>,
    /// The list price.
    pub unit: UnitPrice,
    /// The version's discount for preemptible leases.
    pub preemptible_discount: DiscountPercent,
}

/// The allocated time of one lease and what it held.
#[derive(Clone, Debug)]
pub struct Allocation {
    /// Profile of each instance.
    pub profile: Profile,
    /// Instances.
    pub count: u32,
    /// Whether the lease was preemptible (discounted).
    pub preemptible: bool,
    /// Became active at.
    pub active_at: DateTime<Utc>,
    /// Ended at.
    pub ended_at: DateTime<Utc>,
}

impl Allocation {
    /// Compute slices of all instances.
    pub fn compute_slices(&self) -> i64 {
        i64::from(self.count) * i64::from(self.profile.geometry().compute_slices)
    }
}

/// One rated piece: inside one UTC month, at one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatedPiece {
    /// First day of the month.
    pub month: NaiveDate,
    /// Start of the piece.
    pub start: DateTime<Utc>,
    /// End of the piece (exclusive).
    pub end: DateTime<Utc>,
    /// Allocated seconds.
    pub seconds: i64,
    /// Seconds × compute slices (exact; 25,200 make one GPU-hour).
    pub slice_seconds: i64,
    /// GPU-hours, `slice_seconds / 25,200` to 28 digits (display only).
    pub gpu_hours: Decimal,
    /// The version that priced it.
    pub price_list_id: PriceListId,
    /// What the unit price is per.
    pub basis: PriceBasis,
    /// EUR per hour after any preemptible discount (exact).
    pub unit_price: Decimal,
    /// The exact amount.
    pub amount: Amount,
}

/// The unit price in `10^-UNIT_SCALE` EUR, after the discount of a preemptible lease.
fn discounted_units(step: &PriceStep, preemptible: bool) -> i128 {
    let keep = if preemptible {
        10_000 - step.preemptible_discount.basis_points()
    } else {
        10_000
    };
    step.unit.price.micros() * keep
}

/// Rates `seconds` of `alloc` at one step: the exact amount.
pub fn amount_at(alloc: &Allocation, step: &PriceStep, seconds: i64) -> Result<Amount> {
    let units = discounted_units(step, alloc.preemptible);
    let quantity = match step.unit.basis {
        PriceBasis::GpuHour => i128::from(seconds) * i128::from(alloc.compute_slices()),
        PriceBasis::InstanceHour => {
            i128::from(seconds) * i128::from(alloc.count) * i128::from(SLICES_PER_GPU)
        }
    };
    quantity.checked_mul(units).map(Amount).ok_or_else(overflow)
}

/// Midnight UTC of the first day of the month after `t`'s.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Rates `alloc` with `steps` (sorted by `effective_from`, the first at or before the
/// start): pieces in time order, cut at month boundaries and step changes.
pub fn rate(alloc: &Allocation, steps: &[PriceStep]) -> Result<Vec<RatedPiece>> {
    let (start, end) = (
        alloc.active_at.trunc_subsecs(0),
        alloc.ended_at.trunc_subsecs(0),
    );
    if end < start {
        return Err(Error::invalid("ended_at", "must not be before active_at"));
    }
    if steps
        .windows(2)
        .any(|w| w[0].effective_from >= w[1].effective_from)
        || steps
            .iter()
            .any(|s| s.effective_from.trunc_subsecs(0) != s.effective_from)
    {
        return Err(Error::Internal(
            "price steps must be in strictly increasing whole seconds".into(),
        ));
    }
    let mut pieces = Vec::new();
    let mut at = start;
    while at < end {
        let current = steps
            .iter()
            .rposition(|s| s.effective_from <= at)
            .ok_or_else(|| Error::NotPriced(format!("no price applies at {}", at.to_rfc3339())))?;
        let step = &steps[current];
        let mut until = next_month(at).min(end);
        if let Some(next) = steps.get(current + 1) {
            until = until.min(next.effective_from);
        }
        let seconds = (until - at).num_seconds();
        let units = discounted_units(step, alloc.preemptible);
        pieces.push(RatedPiece {
            month: at.date_naive().with_day(1).unwrap_or(at.date_naive()),
            start: at,
            end: until,
            seconds,
            slice_seconds: seconds * alloc.compute_slices(),
            gpu_hours: Decimal::from(seconds * alloc.compute_slices())
                / Decimal::from(SLICE_SECONDS_PER_GPU_HOUR),
            price_list_id: step.price_list_id,
            basis: step.unit.basis,
            unit_price: Decimal::try_from_i128_with_scale(units, UNIT_SCALE)
                .map_err(|_| overflow())?
                .normalize(),
            amount: amount_at(alloc, step, seconds)?,
        });
        at = until;
    }
    Ok(pieces)
}

#[cfg(test)]
#[path = "rating_tests.rs"]
mod tests;
