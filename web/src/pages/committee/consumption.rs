//! A call's pool consumption as the committee follows it: the pool against the hours
//! granted and used per project, the cumulative use over time, and each grant's burn
//! rate and projected run-out date.

use super::burn;
use crate::charts::{self, Chart, Series, Spec};
use crate::format;
use crate::i18n::Tr;
use aion_services::calls::Call;
use aion_services::committee::GrantConsumption;
use aion_services::usage_report::Granularity;
use chrono::{DateTime, Duration, Utc};

/// Most days the cumulative chart spans (the latest ones).
pub const MAX_DAYS: i64 = 90;
/// Most projects drawn separately; the others are summed.
const MAX_SERIES: usize = 6;
/// Slice-seconds in one GPU-hour.
const H: f64 = 7.0 * 3600.0;

/// One grant of the call, as the table shows it.
pub struct GrantRow {
    /// `org / project`.
    pub project: String,
    /// Granted (with adjustments), used, held and left, GPU-hours.
    pub granted: String,
    /// Used.
    pub used: String,
    /// Held by live leases.
    pub held: String,
    /// Left to hold or spend.
    pub left: String,
    /// GPU-hours a day over the last seven days.
    pub rate: String,
    /// Projected run-out date, or none at this rate.
    pub runs_out: Option<String>,
    /// The grant ends before it would run out.
    pub ends_first: bool,
    /// Valid until.
    pub valid_until: String,
}

/// Everything the consumption section shows.
pub struct ConsumptionView {
    /// One row per grant.
    pub rows: Vec<GrantRow>,
    /// Pool, granted and used per project.
    pub pool_chart: Chart,
    /// Cumulative use over time against the hours granted and the pool.
    pub burn_chart: Chart,
    /// Burn rate of all grants together.
    pub total_rate: String,
}

/// The days of the cumulative chart: from the grant period's start (at most
/// [`MAX_DAYS`] back) to today.
pub fn days(period_start: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, i64) {
    let today = Granularity::Day.floor(now);
    let first = Granularity::Day
        .floor(period_start)
        .max(today - Duration::days(MAX_DAYS - 1))
        .min(today);
    (first, (today - first).num_days() + 1)
}

/// Builds the section.
pub fn build(
    t: Tr,
    call: &Call,
    grants: &[GrantConsumption],
    now: DateTime<Utc>,
) -> ConsumptionView {
    let name = |g: &GrantConsumption| format!("{} / {}", g.organization, g.project);
    let rows = grants
        .iter()
        .map(|g| {
            let s = g.grant.standing;
            let rate = burn::burn_rate(&g.used_over_time, now);
            let out = burn::runs_out(s.allocated() - s.used, rate, now);
            GrantRow {
                project: name(g),
                granted: format::gpu_hours(t, s.allocated()),
                used: format::gpu_hours(t, s.used),
                held: format::gpu_hours(t, s.held),
                left: format::gpu_hours(t, s.balance),
                rate: format::decimal(t, rate, 1),
                runs_out: out.map(|d| d.format("%Y-%m-%d").to_string()),
                ends_first: out.is_some_and(|d| d > g.grant.valid_until),
                valid_until: format::time(g.grant.valid_until),
            }
        })
        .collect();
    let total_rate: f64 = grants
        .iter()
        .map(|g| burn::burn_rate(&g.used_over_time, now))
        .sum();
    ConsumptionView {
        rows,
        pool_chart: pool_chart(t, call, grants),
        burn_chart: burn_chart(t, call, grants, now),
        total_rate: format::decimal(t, total_rate, 1),
    }
}

/// Grants drawn one by one, and the rest summed under one name.
fn grouped(grants: &[GrantConsumption], t: Tr) -> Vec<(String, Vec<&GrantConsumption>)> {
    let mut out: Vec<(String, Vec<&GrantConsumption>)> = grants
        .iter()
        .take(MAX_SERIES)
        .map(|g| (format!("{} / {}", g.organization, g.project), vec![g]))
        .collect();
    if grants.len() > MAX_SERIES {
        out.push((
            t.s("committee.other_projects").to_owned(),
            grants.iter().skip(MAX_SERIES).collect(),
        ));
    }
    out
}

fn pool_chart(t: Tr, call: &Call, grants: &[GrantConsumption]) -> Chart {
    let labels = vec![
        t.s("committee.bar_pool").to_owned(),
        t.s("committee.bar_granted").to_owned(),
        t.s("committee.bar_used").to_owned(),
    ];
    let mut series = vec![Series::new(
        t.s("committee.pool"),
        [call.pool.get() as f64 / H, 0.0, 0.0],
    )];
    for (name, members) in grouped(grants, t) {
        let granted: i64 = members.iter().map(|g| g.grant.standing.allocated()).sum();
        let used: i64 = members.iter().map(|g| g.grant.standing.used).sum();
        series.push(Series::new(
            name,
            [0.0, granted as f64 / H, used as f64 / H],
        ));
    }
    charts::bars::stacked(
        &Spec {
            id: "call-pool",
            title: t.s("committee.chart_pool"),
            desc: t.s("committee.chart_pool_desc"),
            unit: t.s("usage.unit_gpu_hours"),
            x_header: t.s("committee.what"),
            labels: &labels,
            digits: 1,
            t,
        },
        &series,
    )
}

fn burn_chart(t: Tr, call: &Call, grants: &[GrantConsumption], now: DateTime<Utc>) -> Chart {
    let (first, n) = days(call.period_start, now);
    let n = usize::try_from(n).unwrap_or(1);
    let labels: Vec<String> = (0..n)
        .map(|d| {
            (first + Duration::days(d as i64))
                .format("%m-%d")
                .to_string()
        })
        .collect();
    let per_grant: Vec<Vec<Option<f64>>> = grants
        .iter()
        .map(|g| burn::cumulative_by_day(&g.used_over_time, first, n, now))
        .collect();
    let total: Vec<Option<f64>> = (0..n)
        .map(|d| per_grant.iter().map(|v| v[d]).sum::<Option<f64>>())
        .collect();
    let granted: i64 = grants.iter().map(|g| g.grant.standing.allocated()).sum();
    let mut series = vec![
        Series {
            name: t.s("committee.used_all").to_owned(),
            values: total,
            dashed: false,
        },
        Series {
            name: t.s("committee.granted").to_owned(),
            values: vec![Some(granted as f64 / H); n],
            dashed: true,
        },
        Series {
            name: t.s("committee.pool").to_owned(),
            values: vec![Some(call.pool.get() as f64 / H); n],
            dashed: true,
        },
    ];
    if grants.len() > 1 && grants.len() <= MAX_SERIES {
        for (g, values) in grants.iter().zip(per_grant) {
            series.push(Series {
                name: format!("{} / {}", g.organization, g.project),
                values,
                dashed: false,
            });
        }
    }
    charts::lines::chart(
        &Spec {
            id: "call-burn",
            title: t.s("committee.chart_burn"),
            desc: t.s("committee.chart_burn_desc"),
            unit: t.s("usage.unit_gpu_hours"),
            x_header: t.s("usage.day"),
            labels: &labels,
            digits: 1,
            t,
        },
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_chart_starts_at_the_period_and_never_spans_more_than_ninety_days() {
        let now = at("2026-11-25T13:00:00Z");
        assert_eq!(
            days(at("2026-11-20T08:00:00Z"), now),
            (at("2026-11-20T00:00:00Z"), 6)
        );
        let (first, n) = days(at("2025-01-01T00:00:00Z"), now);
        assert_eq!(n, 90);
        assert_eq!(first, at("2026-08-28T00:00:00Z"));
        // A period that starts later shows today only.
        assert_eq!(
            days(at("2027-01-01T00:00:00Z"), now),
            (at("2026-11-25T00:00:00Z"), 1)
        );
    }
}
