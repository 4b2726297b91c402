//! How fast a grant is being used: its cumulative use per day (from the running totals
//! of its ledger), the burn rate over the last days and the date it runs out at that rate.

use chrono::{DateTime, Duration, Utc};

/// Days the burn rate looks back.
pub const RATE_WINDOW_DAYS: i64 = 7;
/// Slice-seconds in one GPU-hour.
const SLICE_SECONDS_PER_GPU_HOUR: f64 = 7.0 * 3600.0;

/// What was used (slice-seconds) at `t`: the running total of the last entry at or
/// before `t`, zero before the first. `points` are in time order.
pub fn used_at(points: &[(DateTime<Utc>, i64)], t: DateTime<Utc>) -> i64 {
    let n = points.partition_point(|(at, _)| *at <= t);
    if n == 0 { 0 } else { points[n - 1].1 }
}

/// Cumulative GPU-hours used at the end of each of `days` days from `first` (a UTC
/// midnight); days after `now` have no value yet.
pub fn cumulative_by_day(
    points: &[(DateTime<Utc>, i64)],
    first: DateTime<Utc>,
    days: usize,
    now: DateTime<Utc>,
) -> Vec<Option<f64>> {
    (0..days)
        .map(|d| {
            let day_start = first + Duration::days(d as i64);
            if day_start > now {
                return None;
            }
            let end = (day_start + Duration::days(1)).min(now);
            Some(used_at(points, end) as f64 / SLICE_SECONDS_PER_GPU_HOUR)
        })
        .collect()
}

/// GPU-hours used per day over the last [`RATE_WINDOW_DAYS`] days.
pub fn burn_rate(points: &[(DateTime<Utc>, i64)], now: DateTime<Utc>) -> f64 {
    let before = used_at(points, now - Duration::days(RATE_WINDOW_DAYS));
    let used = used_at(points, now) - before;
    used.max(0) as f64 / SLICE_SECONDS_PER_GPU_HOUR / RATE_WINDOW_DAYS as f64
}

/// When `left` slice-seconds run out at `rate` GPU-hours a day; `None` when nothing is
/// being used, or so slowly that it would take more than a century.
pub fn runs_out(left: i64, rate: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if left <= 0 {
        return Some(now);
    }
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let days = left as f64 / SLICE_SECONDS_PER_GPU_HOUR / rate;
    if days > 36_500.0 {
        return None;
    }
    Some(now + Duration::seconds((days * 86_400.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const H: i64 = 7 * 3600; // one GPU-hour in slice-seconds

    fn points() -> Vec<(DateTime<Utc>, i64)> {
        vec![
            (at("2026-11-01T12:00:00Z"), 10 * H),
            (at("2026-11-03T08:00:00Z"), 24 * H),
            (at("2026-11-20T08:00:00Z"), 38 * H),
        ]
    }

    #[test]
    fn use_at_a_time_is_the_last_running_total_before_it() {
        let p = points();
        assert_eq!(used_at(&p, at("2026-10-31T00:00:00Z")), 0);
        assert_eq!(used_at(&p, at("2026-11-01T12:00:00Z")), 10 * H);
        assert_eq!(used_at(&p, at("2026-11-10T00:00:00Z")), 24 * H);
        assert_eq!(used_at(&[], at("2026-11-10T00:00:00Z")), 0);
    }

    #[test]
    fn cumulative_use_is_carried_over_days_without_entries() {
        let now = at("2026-11-03T09:00:00Z");
        let v = cumulative_by_day(&points(), at("2026-11-01T00:00:00Z"), 4, now);
        assert_eq!(v, vec![Some(10.0), Some(10.0), Some(24.0), None]);
    }

    #[test]
    fn the_burn_rate_is_the_use_of_the_last_seven_days_per_day() {
        let now = at("2026-11-21T00:00:00Z");
        assert_eq!(burn_rate(&points(), now), 2.0);
        assert_eq!(burn_rate(&points(), at("2026-12-31T00:00:00Z")), 0.0);
    }

    #[test]
    fn a_grant_runs_out_when_its_balance_is_burnt_at_that_rate() {
        let now = at("2026-11-21T00:00:00Z");
        assert_eq!(runs_out(20 * H, 2.0, now), Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(runs_out(20 * H, 0.0, now), None);
        assert_eq!(runs_out(0, 0.0, now), Some(now));
        assert_eq!(runs_out(i64::MAX, 1e-9, now), None);
    }
}
