//! Reading usage: per project or per lease, totals by hour, day or month (UTC), optionally
//! split by profile. A record counts in the bucket where its interval starts. Who may
//! read is who may see the project (another tenant's id answers 404).

use crate::Services;
use crate::authz::Caller;
use crate::carbon::{Co2e, IntensityTable};
use crate::entities::usage_records;
use crate::error::{Error, Result};
use crate::ids::{LeaseId, OrganizationId, ProjectId};
use crate::projects;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Most buckets one report may span.
pub const MAX_BUCKETS: usize = 2000;
/// Default span of a project report: the last 30 days.
pub const DEFAULT_SPAN_DAYS: i64 = 30;

/// Size of a report's buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Hours (UTC).
    Hour,
    /// Days (UTC).
    Day,
    /// Calendar months (UTC).
    Month,
}

impl Granularity {
    /// Parses `hour`, `day` or `month`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            _ => Err(Error::invalid(
                "granularity",
                "must be one of: hour day month",
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Start of the bucket holding `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let day = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
        match self {
            Self::Hour => {
                t - Duration::seconds(t.timestamp().rem_euclid(3600))
                    - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
            }
            Self::Day => day(t.date_naive()),
            Self::Month => day(t.date_naive().with_day(1).unwrap_or(t.date_naive())),
        }
    }

    /// Start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Hour => start + Duration::hours(1),
            Self::Day => start + Duration::days(1),
            Self::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(start + Duration::days(31)),
        }
    }
}

/// A validated report request.
#[derive(Clone, Copy, Debug)]
pub struct UsageQuery {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
    by_profile: bool,
}

impl UsageQuery {
    /// Validates; `from` defaults to 30 days before `to`, `to` to `now`, granularity to `day`.
    pub fn parse(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        granularity: Option<&str>,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let granularity = granularity.map_or(Ok(Granularity::Day), Granularity::parse)?;
        let by_profile = match by {
            None => false,
            Some("profile") => true,
            Some(_) => return Err(Error::invalid("by", "must be: profile")),
        };
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::days(DEFAULT_SPAN_DAYS));
        if from >= to {
            return Err(Error::invalid("to", "must be after from"));
        }
        let mut buckets = 0;
        let mut t = granularity.floor(from);
        while t < to {
            buckets += 1;
            if buckets > MAX_BUCKETS {
                return Err(Error::invalid(
                    "to",
                    format!("at most {MAX_BUCKETS} buckets: choose a coarser granularity"),
                ));
            }
            t = granularity.next(t);
        }
        Ok(Self {
            from,
            to,
            granularity,
            by_profile,
        })
    }
}

/// Sums over the records of one bucket (and profile).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Instance-seconds allocated.
    pub allocated_seconds: i64,
    /// Allocated seconds × compute slices (7 slice-seconds = 1 GPU-second).
    pub slice_seconds: i64,
    /// Energy, millijoules.
    pub energy_mj: i64,
    /// Average SM utilisation weighted by allocated seconds, where reported.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub peak_memory_used_mib: i64,
    /// Records summed.
    pub records: u64,
    /// CO2e of the energy, at each site's grid intensity when the interval started.
    pub co2e: Co2e,
    sm_weight: f64,
    sm_seconds: i64,
}

impl Totals {
    fn add(&mut self, m: &usage_records::Model, grams_per_kwh: Option<i32>) {
        self.co2e.add(m.energy_mj, grams_per_kwh);
        self.allocated_seconds = self.allocated_seconds.saturating_add(m.allocated_seconds);
        self.slice_seconds = self.slice_seconds.saturating_add(
            m.allocated_seconds
                .saturating_mul(i64::from(m.compute_slices)),
        );
        self.energy_mj = self.energy_mj.saturating_add(m.energy_mj);
        self.peak_memory_used_mib = self.peak_memory_used_mib.max(m.memory_used_mib);
        self.records += 1;
        if let Some(p) = m.sm_utilisation_pct {
            self.add_sm_utilisation(p, m.allocated_seconds);
        }
    }

    /// Counts `seconds` of allocated time that reported an average SM utilisation of
    /// `pct`; `sm_utilisation_pct` becomes the average over all such seconds.
    pub fn add_sm_utilisation(&mut self, pct: f64, seconds: i64) {
        self.sm_weight += pct * seconds as f64;
        self.sm_seconds = self.sm_seconds.saturating_add(seconds);
        self.sm_utilisation_pct = (self.sm_seconds > 0)
            .then(|| self.sm_weight / self.sm_seconds as f64)
            .or(Some(pct));
    }

    /// Adds the sums of `other` (another bucket or profile): SM utilisation is averaged
    /// over the seconds that reported one on either side, not over all allocated time.
    pub fn merge(&mut self, other: &Totals) {
        self.allocated_seconds = self
            .allocated_seconds
            .saturating_add(other.allocated_seconds);
        self.slice_seconds = self.slice_seconds.saturating_add(other.slice_seconds);
        self.energy_mj = self.energy_mj.saturating_add(other.energy_mj);
        self.peak_memory_used_mib = self.peak_memory_used_mib.max(other.peak_memory_used_mib);
        self.records = self.records.saturating_add(other.records);
        self.co2e.merge(&other.co2e);
        self.sm_weight += other.sm_weight;
        self.sm_seconds = self.sm_seconds.saturating_add(other.sm_seconds);
        self.sm_utilisation_pct = if self.sm_seconds > 0 {
            Some(self.sm_weight / self.sm_seconds as f64)
        } else {
            other.sm_utilisation_pct.or(self.sm_utilisation_pct)
        };
    }

    /// GPU-hours: slice-seconds / 7 / 3600.
    pub fn gpu_hours(&self) -> f64 {
        self.slice_seconds as f64 / 7.0 / 3600.0
    }

    /// Energy in watt-hours.
    pub fn energy_wh(&self) -> f64 {
        self.energy_mj as f64 / 3_600_000.0
    }
}

/// One bucket of a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Profile, when split by profile.
    pub profile: Option<String>,
    /// The sums.
    pub totals: Totals,
}

/// A usage report; only buckets with records are listed.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageReport {
    /// Start of the span.
    pub from: DateTime<Utc>,
    /// End of the span.
    pub to: DateTime<Utc>,
    /// Bucket size.
    pub granularity: Granularity,
    /// Buckets in time order (then by profile).
    pub buckets: Vec<Bucket>,
    /// Sums over the whole span.
    pub total: Totals,
}

fn aggregate(q: UsageQuery, rows: &[usage_records::Model], sites: &Sites) -> UsageReport {
    let mut buckets: BTreeMap<(DateTime<Utc>, Option<String>), Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for m in rows {
        let start = q.granularity.floor(m.interval_start);
        let profile = q.by_profile.then(|| m.profile.clone());
        let grams = sites.intensity(m.node_id, m.interval_start);
        buckets.entry((start, profile)).or_default().add(m, grams);
        total.add(m, grams);
    }
    UsageReport {
        from: q.from,
        to: q.to,
        granularity: q.granularity,
        buckets: buckets
            .into_iter()
            .map(|((start, profile), totals)| Bucket {
                start,
                end: q.granularity.next(start),
                profile,
                totals,
            })
            .collect(),
        total,
    }
}

/// The site of each node that reported the records, and those sites' grid intensities.
struct Sites {
    of_node: HashMap<Uuid, String>,
    intensities: IntensityTable,
}

impl Sites {
    async fn load(db: &impl ConnectionTrait, records: &[usage_records::Model]) -> Result<Self> {
        let of_node = crate::nodes::sites_of(db, records.iter().map(|r| r.node_id)).await?;
        let sites = of_node.values().cloned().collect();
        let intensities = IntensityTable::load(db, &sites).await?;
        Ok(Self {
            of_node,
            intensities,
        })
    }

    fn intensity(&self, node: Uuid, t: DateTime<Utc>) -> Option<i32> {
        self.intensities.at(self.of_node.get(&node)?, t)
    }
}

async fn report(
    db: &impl ConnectionTrait,
    q: UsageQuery,
    scope: sea_orm::Condition,
) -> Result<UsageReport> {
    let rows = usage_records::Entity::find()
        .filter(scope)
        .filter(usage_records::Column::IntervalStart.gte(q.from))
        .filter(usage_records::Column::IntervalStart.lt(q.to))
        .order_by_asc(usage_records::Column::IntervalStart)
        .all(db)
        .await?;
    let sites = Sites::load(db, &rows).await?;
    Ok(aggregate(q, &rows, &sites))
}

/// Usage of an organisation: all its projects for organisation members, operators and
/// auditors; only their own projects for people with project roles alone.
#[tracing::instrument(skip_all, err, fields(organization_id = %org))]
pub async fn organization_usage(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    q: UsageQuery,
) -> Result<UsageReport> {
    crate::organizations::get(svc, caller, org).await?;
    let mut scope = sea_orm::Condition::all().add(usage_records::Column::OrganizationId.eq(org.0));
    if let Some(own) = caller.projects_seen_in(org) {
        // A role on some projects only: their usage, not the organisation's.
        scope = scope.add(usage_records::Column::ProjectId.is_in(own.into_iter().map(|p| p.0)));
    }
    report(&svc.db, q, scope).await
}

/// Usage of a project the caller may see.
#[tracing::instrument(skip_all, err, fields(project_id = %project))]
pub async fn project_usage(
    svc: &Services,
    caller: &Caller,
    project: ProjectId,
    q: UsageQuery,
) -> Result<UsageReport> {
    projects::load_visible(&svc.db, caller, project).await?;
    let scope = sea_orm::Condition::all().add(usage_records::Column::ProjectId.eq(project.0));
    report(&svc.db, q, scope).await
}

/// Usage of a lease the caller may see.
#[tracing::instrument(skip_all, err, fields(lease_id = %lease))]
pub async fn lease_usage(
    svc: &Services,
    caller: &Caller,
    lease: LeaseId,
    q: UsageQuery,
) -> Result<UsageReport> {
    crate::leases::load_visible(&svc.db, caller, lease).await?;
    let scope = sea_orm::Condition::all().add(usage_records::Column::LeaseId.eq(lease.0));
    report(&svc.db, q, scope).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn buckets_start_at_the_hour_day_and_month_in_utc() {
        let t = at("2026-11-25T13:47:12.5Z");
        assert_eq!(Granularity::Hour.floor(t), at("2026-11-25T13:00:00Z"));
        assert_eq!(Granularity::Day.floor(t), at("2026-11-25T00:00:00Z"));
        assert_eq!(Granularity::Month.floor(t), at("2026-11-01T00:00:00Z"));
        assert_eq!(
            Granularity::Month.next(at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn a_span_of_too_many_hourly_buckets_is_refused() {
        let now = at("2026-11-25T00:00:00Z");
        let from = Some(now - Duration::days(365));
        assert!(UsageQuery::parse(from, Some(now), Some("hour"), None, now).is_err());
        assert!(UsageQuery::parse(from, Some(now), Some("day"), Some("profile"), now).is_ok());
        assert!(UsageQuery::parse(None, None, Some("week"), None, now).is_err());
    }

    #[test]
    fn merged_utilisation_is_weighted_by_the_seconds_that_reported_one() {
        // A: 10 h allocated, of which 1 h reported 90 %; B: 1 h at 10 %.
        let mut a = Totals {
            allocated_seconds: 10 * 3600,
            slice_seconds: 10 * 3600 * 7,
            energy_mj: 1_000,
            peak_memory_used_mib: 2_048,
            records: 10,
            ..Totals::default()
        };
        a.add_sm_utilisation(90.0, 3600);
        a.co2e.add(1_000, Some(100));
        let mut b = Totals {
            allocated_seconds: 3600,
            slice_seconds: 3600,
            energy_mj: 500,
            peak_memory_used_mib: 4_096,
            records: 1,
            ..Totals::default()
        };
        b.add_sm_utilisation(10.0, 3600);
        b.co2e.add(500, None);

        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged.sm_utilisation_pct, Some(50.0));
        assert_eq!(merged.allocated_seconds, 11 * 3600);
        assert_eq!(merged.slice_seconds, 71 * 3600);
        assert_eq!(merged.energy_mj, 1_500);
        assert_eq!(merged.peak_memory_used_mib, 4_096);
        assert_eq!(merged.records, 11);
        let mut co2e = a.co2e;
        co2e.merge(&b.co2e);
        assert_eq!(merged.co2e, co2e);
        assert_eq!(merged.co2e.unvalued_energy_mj, 500);

        // Merging into an empty Totals, or merging one that reported nothing, keeps it.
        let mut empty = Totals::default();
        empty.merge(&a);
        assert_eq!(empty, a);
        a.merge(&Totals::default());
        assert_eq!(a.sm_utilisation_pct, Some(90.0));
    }
}
