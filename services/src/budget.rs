//! The unit of budget. GPU-hours are stored exactly as integer **slice-seconds**: a MIG
//! slice-hour counts `compute slices / 7` GPU-hours, so one GPU-hour is 7 compute slices
//! held for 3,600 s = 25,200 slice-seconds. Integers keep sums and comparisons exact.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Compute slices of a whole GPU.
pub const SLICES_PER_GPU: i64 = 7;
/// Slice-seconds in one GPU-hour.
pub const SLICE_SECONDS_PER_GPU_HOUR: i64 = SLICES_PER_GPU * 3600;
/// Largest number of GPU-hours one command may name (a million GPUs for a year is
/// 8.8e9; this bound keeps every product far inside `i64`).
pub const MAX_GPU_HOURS: i64 = 100_000_000_000;

/// A non-negative amount of budget in slice-seconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SliceSeconds(i64);

impl SliceSeconds {
    /// Nothing.
    pub const ZERO: SliceSeconds = SliceSeconds(0);

    /// Wraps a stored amount; a negative one is a bug, never user input.
    pub fn from_stored(raw: i64) -> Result<Self> {
        if raw < 0 {
            return Err(Error::Internal(format!(
                "negative budget {raw} in the database"
            )));
        }
        Ok(Self(raw))
    }

    /// The exact amount.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The amount in GPU-hours, for display (may be fractional).
    pub fn gpu_hours(self) -> f64 {
        self.0 as f64 / SLICE_SECONDS_PER_GPU_HOUR as f64
    }

    /// The amount in whole GPU-hours, rounded down.
    pub fn whole_gpu_hours(self) -> i64 {
        self.0 / SLICE_SECONDS_PER_GPU_HOUR
    }

    /// `self - other`, never below zero.
    pub fn saturating_sub(self, other: SliceSeconds) -> SliceSeconds {
        SliceSeconds((self.0 - other.0).max(0))
    }

    /// Sum of many amounts; fails rather than overflow.
    pub fn sum(items: impl IntoIterator<Item = SliceSeconds>) -> Result<SliceSeconds> {
        items
            .into_iter()
            .try_fold(0i64, |acc, s| acc.checked_add(s.0))
            .map(SliceSeconds)
            .ok_or_else(|| Error::Internal("budget sum overflows".into()))
    }
}

/// A positive whole number of GPU-hours, as committees and contracts grant them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuHours(i64);

impl GpuHours {
    /// Parses a caller's amount: 1 to [`MAX_GPU_HOURS`].
    pub fn parse(field: &str, raw: i64) -> Result<Self> {
        if !(1..=MAX_GPU_HOURS).contains(&raw) {
            return Err(Error::invalid(
                field,
                format!("must be a whole number of GPU-hours between 1 and {MAX_GPU_HOURS}"),
            ));
        }
        Ok(Self(raw))
    }

    /// The number of hours.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The exact budget.
    pub fn slice_seconds(self) -> SliceSeconds {
        SliceSeconds(self.0 * SLICE_SECONDS_PER_GPU_HOUR)
    }
}

/// GPU-equivalents of a number of compute slices (slices / 7), for display.
pub fn gpu_equivalents(compute_slices: i64) -> f64 {
    compute_slices as f64 / SLICES_PER_GPU as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gpu_hour_is_25200_slice_seconds() {
        let h = GpuHours::parse("gpu_hours", 1).unwrap();
        assert_eq!(h.slice_seconds().get(), 25_200);
        assert_eq!(h.slice_seconds().gpu_hours(), 1.0);
    }

    #[test]
    fn a_3g_slice_for_one_hour_is_three_sevenths_of_a_gpu_hour() {
        let s = SliceSeconds::from_stored(3 * 3600).unwrap();
        assert!((s.gpu_hours() - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(s.whole_gpu_hours(), 0);
    }

    #[test]
    fn zero_negative_and_huge_hours_are_rejected() {
        assert!(GpuHours::parse("gpu_hours", 0).is_err());
        assert!(GpuHours::parse("gpu_hours", -5).is_err());
        assert!(GpuHours::parse("gpu_hours", MAX_GPU_HOURS + 1).is_err());
        assert!(GpuHours::parse("gpu_hours", MAX_GPU_HOURS).is_ok());
    }

    #[test]
    fn a_negative_stored_budget_is_an_internal_error() {
        assert_eq!(
            SliceSeconds::from_stored(-1).unwrap_err().code(),
            "internal"
        );
    }

    #[test]
    fn what_is_left_never_goes_below_zero() {
        let pool = GpuHours::parse("h", 10).unwrap().slice_seconds();
        let used = GpuHours::parse("h", 12).unwrap().slice_seconds();
        assert_eq!(pool.saturating_sub(used), SliceSeconds::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn gpu_hours_round_trip_through_slice_seconds(h in 1i64..=MAX_GPU_HOURS) {
            let hours = GpuHours::parse("gpu_hours", h).unwrap();
            let s = hours.slice_seconds();
            proptest::prop_assert_eq!(s.get() % SLICE_SECONDS_PER_GPU_HOUR, 0);
            proptest::prop_assert_eq!(s.whole_gpu_hours(), h);
            proptest::prop_assert_eq!(s.gpu_hours(), h as f64);
        }

        #[test]
        fn sums_of_grants_are_exact(hs in proptest::collection::vec(1i64..1_000_000, 0..50)) {
            let total = SliceSeconds::sum(hs.iter().map(|h| GpuHours::parse("h", *h).unwrap().slice_seconds())).unwrap();
            proptest::prop_assert_eq!(total.whole_gpu_hours(), hs.iter().sum::<i64>());
        }
    }
}
