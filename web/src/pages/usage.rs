//! `/console/projects/{id}/usage`: a project's usage over the last 7, 30 or 90 days (UTC):
//! GPU-hours per day by profile, average SM utilisation and energy per day, with totals.

use crate::WebState;
use crate::charts::{self, Chart, Series, Spec};
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::usage_report::{self, Granularity, Totals, UsageQuery, UsageReport};
use aion_services::{organizations, projects};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Spans the page offers, in days.
pub const SPANS: [i64; 3] = [7, 30, 90];

/// `?days=` of the page.
#[derive(Debug, Deserialize)]
pub struct UsageParams {
    /// 7, 30 (default) or 90; anything else reads as 30.
    pub days: Option<String>,
}

/// The span asked for, or 30 days.
pub fn span(raw: Option<&str>) -> i64 {
    raw.and_then(|d| d.trim().parse::<i64>().ok())
        .filter(|d| SPANS.contains(d))
        .unwrap_or(30)
}

/// A report turned into one value per day, days without usage included as zeros.
#[derive(Debug, PartialEq)]
pub struct Daily {
    /// The days, `MM-DD`.
    pub labels: Vec<String>,
    /// GPU-hours per day of each profile, profiles by name.
    pub gpu_hours: Vec<(String, Vec<f64>)>,
    /// Average SM utilisation per day, weighted by the allocated time that reported one;
    /// none where no record reported one.
    pub utilisation: Vec<Option<f64>>,
    /// Energy per day, kWh.
    pub energy_kwh: Vec<f64>,
}

/// Spreads a report split by profile over `days` days from `first` (a UTC midnight).
pub fn daily(report: &UsageReport, first: DateTime<Utc>, days: i64) -> Daily {
    let n = usize::try_from(days.max(0)).unwrap_or(0);
    let index = |start: DateTime<Utc>| {
        usize::try_from((start - first).num_days())
            .ok()
            .filter(|i| *i < n)
    };
    let mut by_profile: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Each day's profiles merged into one sum, so that utilisation is averaged the way
    // the service averages it: over the seconds that reported one.
    let mut per_day = vec![Totals::default(); n];
    for b in &report.buckets {
        let Some(i) = index(b.start) else { continue };
        let name = b.profile.clone().unwrap_or_else(|| "—".to_owned());
        by_profile.entry(name).or_insert_with(|| vec![0.0; n])[i] += b.totals.gpu_hours();
        per_day[i].merge(&b.totals);
    }
    Daily {
        labels: (0..days.max(0))
            .map(|d| (first + Duration::days(d)).format("%m-%d").to_string())
            .collect(),
        gpu_hours: by_profile.into_iter().collect(),
        utilisation: per_day.iter().map(|t| t.sm_utilisation_pct).collect(),
        energy_kwh: per_day.iter().map(|t| t.energy_wh() / 1000.0).collect(),
    }
}

/// A total with one decimal, or two below ten so that a small use does not read as zero.
pub fn total(t: crate::i18n::Tr, value: f64) -> String {
    format::decimal(t, value, if value.abs() < 10.0 { 2 } else { 1 })
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    c: Chrome,
    project_id: String,
    title: String,
    days: i64,
    spans: [i64; 3],
    from: String,
    to: String,
    total_gpu_hours: String,
    total_energy_kwh: String,
    total_co2e_kg: String,
    unvalued_energy: bool,
    gpu_chart: Chart,
    util_chart: Chart,
    energy_chart: Chart,
}

/// `GET /console/projects/{id}/usage?days=`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<UsageParams>,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let t = s.t;
    let project = projects::get(svc, &s.caller, id.into_inner().into()).await?;
    let org = organizations::get(svc, &s.caller, project.organization_id).await?;
    let days = span(q.days.as_deref());
    let now = svc.clock.now();
    let first = Granularity::Day.floor(now) - Duration::days(days - 1);
    let query = UsageQuery::parse(Some(first), Some(now), Some("day"), Some("profile"), now)?;
    let report = usage_report::project_usage(svc, &s.caller, project.id, query).await?;
    let d = daily(&report, first, days);
    let profiles: Vec<Series> = d
        .gpu_hours
        .iter()
        .map(|(name, v)| Series::new(name.clone(), v.iter().copied()))
        .collect();
    let spec = |id, title, desc, unit, digits| Spec {
        id,
        title,
        desc,
        unit,
        x_header: t.s("usage.day"),
        labels: &d.labels,
        digits,
        t,
    };
    let gpu_chart = charts::bars::stacked(
        &spec(
            "usage-gpu-hours",
            t.s("usage.chart_gpu_hours"),
            t.s("usage.chart_gpu_hours_desc"),
            t.s("usage.unit_gpu_hours"),
            2,
        ),
        &profiles,
    );
    let util_chart = charts::lines::chart(
        &spec(
            "usage-utilisation",
            t.s("usage.chart_utilisation"),
            t.s("usage.chart_utilisation_desc"),
            "%",
            1,
        ),
        &[Series {
            name: t.s("usage.sm_utilisation").to_owned(),
            values: d.utilisation.clone(),
            dashed: false,
        }],
    );
    let energy_chart = charts::lines::chart(
        &spec(
            "usage-energy",
            t.s("usage.chart_energy"),
            t.s("usage.chart_energy_desc"),
            "kWh",
            2,
        ),
        &[Series::new(
            t.s("usage.energy"),
            d.energy_kwh.iter().copied(),
        )],
    );
    let title = format!("{} / {}", org.name, project.name);
    html(
        UsagePage {
            c: Chrome::new(&s, "console"),
            project_id: project.id.to_string(),
            title,
            days,
            spans: SPANS,
            from: format::time(first),
            to: format::time(now),
            total_gpu_hours: total(t, report.total.gpu_hours()),
            total_energy_kwh: total(t, report.total.energy_wh() / 1000.0),
            total_co2e_kg: total(t, report.total.co2e.grams() / 1000.0),
            unvalued_energy: report.total.co2e.unvalued_energy_mj > 0,
            gpu_chart,
            util_chart,
            energy_chart,
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aion_services::usage_report::Bucket;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// One hour allocated and 1 kWh; `util` is a utilisation and the seconds that reported it.
    fn bucket(day: &str, profile: &str, slice_seconds: i64, util: Option<(f64, i64)>) -> Bucket {
        // Not a struct literal: `Totals` has private fields.
        let mut totals = Totals::default();
        totals.slice_seconds = slice_seconds;
        totals.allocated_seconds = 3600;
        totals.energy_mj = 3_600_000_000; // 1 kWh
        if let Some((pct, seconds)) = util {
            totals.add_sm_utilisation(pct, seconds);
        }
        Bucket {
            start: at(day),
            end: at(day) + Duration::days(1),
            profile: Some(profile.into()),
            totals,
        }
    }

    #[test]
    fn the_span_is_seven_thirty_or_ninety_days() {
        assert_eq!(span(Some("7")), 7);
        assert_eq!(span(Some(" 90 ")), 90);
        assert_eq!(span(Some("365")), 30);
        assert_eq!(span(Some("abc")), 30);
        assert_eq!(span(None), 30);
    }

    #[test]
    fn days_without_usage_are_zero_and_profiles_stack_separately() {
        let first = at("2026-11-20T00:00:00Z");
        let report = UsageReport {
            from: first,
            to: at("2026-11-23T00:00:00Z"),
            granularity: Granularity::Day,
            buckets: vec![
                bucket(
                    "2026-11-20T00:00:00Z",
                    "1g.10gb",
                    7 * 3600,
                    Some((40.0, 3600)),
                ),
                bucket(
                    "2026-11-20T00:00:00Z",
                    "7g.80gb",
                    14 * 3600,
                    Some((80.0, 3600)),
                ),
                bucket("2026-11-22T00:00:00Z", "1g.10gb", 7 * 3600, None),
                // Outside the span: ignored.
                bucket("2026-11-30T00:00:00Z", "1g.10gb", 7 * 3600, None),
            ],
            total: Totals::default(),
        };
        let d = daily(&report, first, 3);
        assert_eq!(d.labels, vec!["11-20", "11-21", "11-22"]);
        assert_eq!(
            d.gpu_hours,
            vec![
                ("1g.10gb".to_owned(), vec![1.0, 0.0, 1.0]),
                ("7g.80gb".to_owned(), vec![2.0, 0.0, 0.0]),
            ]
        );
        assert_eq!(d.utilisation, vec![Some(60.0), None, None]);
        assert_eq!(d.energy_kwh, vec![2.0, 0.0, 1.0]);
    }

    #[test]
    fn a_day_averages_utilisation_over_the_seconds_that_reported_one() {
        // 1g: 10 h allocated, only 1 h of it reported 90 %; 7g: 1 h at 10 %. Weighting
        // by allocated time would give (900 + 10) / 11 ≈ 82.7 %; the service says 50 %.
        let first = at("2026-11-20T00:00:00Z");
        let mut long = bucket(
            "2026-11-20T00:00:00Z",
            "1g.10gb",
            10 * 3600,
            Some((90.0, 3600)),
        );
        long.totals.allocated_seconds = 10 * 3600;
        let short = bucket(
            "2026-11-20T00:00:00Z",
            "7g.80gb",
            7 * 3600,
            Some((10.0, 3600)),
        );
        let mut total = long.totals.clone();
        total.merge(&short.totals);
        let report = UsageReport {
            from: first,
            to: at("2026-11-21T00:00:00Z"),
            granularity: Granularity::Day,
            buckets: vec![long, short],
            total: total.clone(),
        };
        let d = daily(&report, first, 1);
        assert_eq!(d.utilisation, vec![Some(50.0)]);
        assert_eq!(d.utilisation, vec![total.sm_utilisation_pct]);
        assert_eq!(d.energy_kwh, vec![2.0]);
    }
}
