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
            self.sm_weight += p * m.allocated_seconds as f64;
            self.sm_seconds += m.allocated_seconds;
            self.sm_utilisation_pct = (self.sm_seconds > 0)
                .then(|| self.sm_weight / self.sm_seconds as f64)
                .or(Some(p));
        }
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

/// Usage of an organisation (all its projects) the caller may see.
#[tracing::instrument(skip_all, err, fields(organization_id = %org))]
pub async fn organization_usage(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    q: UsageQuery,
) -> Result<UsageReport> {
    crate::organizations::get(svc, caller, org).await?;
    let scope = sea_orm::Condition::all().add(usage_records::Column::OrganizationId.eq(org.0));
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
}
