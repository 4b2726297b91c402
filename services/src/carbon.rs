//! Grid carbon intensity per site and period, and the CO2e of measured energy.
//!
//! An operator records, per site, the grid's intensity in grams of CO2-equivalent per
//! kWh from a date on; it holds until the site's next value. Energy measured by agents
//! (per lease, apportioned by compute slices) is valorised with the value in force at the
//! site when the usage interval started. Arithmetic is exact: energy is in millijoules,
//! intensities in whole g/kWh, and CO2e sums are kept as `mJ × g/kWh` numerators (1 kWh
//! = 3.6e9 mJ, so `mg = mJ × g/kWh / 3.6e6`) and divided once, rounding half up, when a
//! total is shown. Energy at a site or time with no recorded intensity is reported apart
//! rather than counted as carbon-free.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::carbon_intensities as rows;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::pagination::{Page, PageRequest};
use crate::validate::{Validator, missing};
use crate::values::{Slug, parse_name};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Highest intensity accepted, g/kWh (coal-fired grids are about 1,000).
pub const MAX_GRAMS_PER_KWH: i32 = 2_000;
/// `mJ × g/kWh` per milligram of CO2e.
const NUMERATOR_PER_MG: i128 = 3_600_000;

/// A site's grid intensity from a date on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarbonIntensity {
    /// Id.
    pub id: Uuid,
    /// The site (as nodes and join tokens name it).
    pub site: String,
    /// In force from (until the site's next value).
    pub effective_from: DateTime<Utc>,
    /// Grams of CO2e per kWh.
    pub grams_per_kwh: i32,
    /// Where the figure comes from.
    pub source: String,
    /// Who recorded it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn from_row(m: rows::Model) -> CarbonIntensity {
    CarbonIntensity {
        id: m.id,
        site: m.site,
        effective_from: m.effective_from,
        grams_per_kwh: m.grams_per_kwh,
        source: m.source,
        created_by: m.created_by,
        created_at: m.created_at,
    }
}

/// A validated new intensity value.
#[derive(Clone, Debug, Serialize)]
pub struct NewCarbonIntensity {
    site: Slug,
    effective_from: DateTime<Utc>,
    grams_per_kwh: i32,
    source: String,
}

impl NewCarbonIntensity {
    /// Checks every field and reports all the bad ones.
    pub fn parse(
        site: &str,
        effective_from: DateTime<Utc>,
        grams_per_kwh: i64,
        source: &str,
    ) -> Result<Self> {
        let mut v = Validator::default();
        let site = v.check(Slug::parse("site", site));
        let grams = v.check(
            i32::try_from(grams_per_kwh)
                .ok()
                .filter(|g| (0..=MAX_GRAMS_PER_KWH).contains(g))
                .ok_or_else(|| {
                    Error::invalid(
                        "grams_per_kwh",
                        format!("must be a whole number from 0 to {MAX_GRAMS_PER_KWH}"),
                    )
                }),
        );
        let source = v.check(parse_name("source", source, 200));
        v.finish()?;
        Ok(Self {
            site: site.ok_or_else(missing)?,
            effective_from,
            grams_per_kwh: grams.ok_or_else(missing)?,
            source: source.ok_or_else(missing)?,
        })
    }
}

/// Records a site's intensity from a date on (platform admins). A value for a date that
/// already has one is refused: intensities already used in reports are never rewritten,
/// only followed by a newer one.
#[tracing::instrument(skip_all, err)]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cmd: NewCarbonIntensity,
    idem: Option<&IdempotencyKey>,
) -> Result<CarbonIntensity> {
    caller.require(true, caller.is_platform_admin(), "carbon intensity")?;
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let slot =
        match idempotency::begin(&txn, now, caller, "carbon_intensity.create", idem, &cmd).await? {
            idempotency::Begin::Replay(done) => return Ok(done),
            idempotency::Begin::Proceed(slot) => slot,
        };
    let taken = rows::Entity::find()
        .filter(rows::Column::Site.eq(cmd.site.as_str()))
        .filter(rows::Column::EffectiveFrom.eq(cmd.effective_from))
        .one(&txn)
        .await?;
    if taken.is_some() {
        return Err(Error::Conflict(format!(
            "site {} already has an intensity from {}; record a newer one instead",
            cmd.site.as_str(),
            cmd.effective_from.to_rfc3339()
        )));
    }
    let model = rows::ActiveModel {
        id: Set(Uuid::now_v7()),
        site: Set(cmd.site.as_str().to_owned()),
        effective_from: Set(cmd.effective_from),
        grams_per_kwh: Set(cmd.grams_per_kwh),
        source: Set(cmd.source.clone()),
        created_by: Set(caller.actor.key()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let value = from_row(model);
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "carbon_intensity.create",
            target_kind: "carbon_intensity",
            target_id: value.id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"site": value.site, "effective_from": value.effective_from,
                "grams_per_kwh": value.grams_per_kwh, "source": value.source}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &value).await?;
    txn.commit().await?;
    Ok(value)
}

/// Lists intensities (any signed-in caller: they are public facts), by site then date;
/// the cursor is the last id seen.
pub async fn list(
    svc: &Services,
    site: Option<&str>,
    page: &PageRequest,
) -> Result<Page<CarbonIntensity>> {
    let mut query = rows::Entity::find();
    if let Some(site) = site {
        let site = Slug::parse("site", site)?;
        query = query.filter(rows::Column::Site.eq(site.as_str()));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(rows::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(rows::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows.into_iter().map(from_row).collect();
    Ok(Page::from_rows(items, page, |c| c.id.to_string()))
}

/// The intensities of some sites, for looking values up by time.
#[derive(Clone, Debug, Default)]
pub struct IntensityTable {
    by_site: BTreeMap<String, BTreeMap<DateTime<Utc>, i32>>,
}

impl IntensityTable {
    /// Loads every value of these sites.
    pub async fn load(db: &impl ConnectionTrait, sites: &BTreeSet<String>) -> Result<Self> {
        let mut table = Self::default();
        if sites.is_empty() {
            return Ok(table);
        }
        let found = rows::Entity::find()
            .filter(rows::Column::Site.is_in(sites.iter().cloned()))
            .all(db)
            .await?;
        for r in found {
            table.insert(r.site, r.effective_from, r.grams_per_kwh);
        }
        Ok(table)
    }

    /// Adds one value (tests and callers that already hold the rows).
    pub fn insert(&mut self, site: String, from: DateTime<Utc>, grams_per_kwh: i32) {
        self.by_site
            .entry(site)
            .or_default()
            .insert(from, grams_per_kwh);
    }

    /// The value in force at `site` at `t`, if one was recorded by then.
    pub fn at(&self, site: &str, t: DateTime<Utc>) -> Option<i32> {
        self.by_site
            .get(site)?
            .range(..=t)
            .next_back()
            .map(|(_, g)| *g)
    }
}

/// A running CO2e sum, exact until shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Co2e {
    numerator: i128,
    /// Energy counted without a known intensity, millijoules.
    pub unvalued_energy_mj: i64,
}

impl Co2e {
    /// Counts `energy_mj` drawn at `grams_per_kwh` (or at an unknown intensity).
    pub fn add(&mut self, energy_mj: i64, grams_per_kwh: Option<i32>) {
        match grams_per_kwh {
            Some(g) => {
                self.numerator = self
                    .numerator
                    .saturating_add(i128::from(energy_mj) * i128::from(g));
            }
            None => {
                self.unvalued_energy_mj = self.unvalued_energy_mj.saturating_add(energy_mj);
            }
        }
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &Co2e) {
        self.numerator = self.numerator.saturating_add(other.numerator);
        self.unvalued_energy_mj = self
            .unvalued_energy_mj
            .saturating_add(other.unvalued_energy_mj);
    }

    /// Milligrams of CO2e, rounded half up.
    pub fn milligrams(&self) -> i64 {
        let mg = (self.numerator + NUMERATOR_PER_MG / 2) / NUMERATOR_PER_MG;
        i64::try_from(mg).unwrap_or(i64::MAX)
    }

    /// Grams of CO2e, for display.
    pub fn grams(&self) -> f64 {
        self.milligrams() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn one_kwh_at_56_grams_is_56_grams() {
        let mut c = Co2e::default();
        c.add(3_600_000_000, Some(56));
        assert_eq!(c.milligrams(), 56_000);
        assert_eq!(c.unvalued_energy_mj, 0);
    }

    #[test]
    fn sums_are_exact_and_rounded_once() {
        // 1 mJ at 1 g/kWh is 1/3.6e6 mg: a million of them round to 0.28 → 0 mg apart,
        // but their exact sum is 0.277… mg → 0, and 2e6 of them 0.555… → 1 mg.
        let mut c = Co2e::default();
        for _ in 0..2_000_000 {
            c.add(1, Some(1));
        }
        assert_eq!(c.milligrams(), 1);
    }

    #[test]
    fn energy_without_an_intensity_is_kept_apart() {
        let mut c = Co2e::default();
        c.add(1_000, None);
        assert_eq!((c.milligrams(), c.unvalued_energy_mj), (0, 1_000));
    }

    #[test]
    fn the_value_in_force_is_the_latest_before_the_time() {
        let mut t = IntensityTable::default();
        t.insert("par-1".into(), at("2026-01-01T00:00:00Z"), 60);
        t.insert("par-1".into(), at("2026-07-01T00:00:00Z"), 40);
        assert_eq!(t.at("par-1", at("2025-12-31T23:59:59Z")), None);
        assert_eq!(t.at("par-1", at("2026-01-01T00:00:00Z")), Some(60));
        assert_eq!(t.at("par-1", at("2026-06-30T23:59:59Z")), Some(60));
        assert_eq!(t.at("par-1", at("2026-07-01T00:00:00Z")), Some(40));
        assert_eq!(t.at("lyo-1", at("2026-07-01T00:00:00Z")), None);
    }

    #[test]
    fn intensities_are_validated() {
        let now = at("2026-01-01T00:00:00Z");
        assert!(NewCarbonIntensity::parse("par-1", now, 56, "RTE 2025").is_ok());
        assert!(NewCarbonIntensity::parse("par-1", now, -1, "x").is_err());
        assert!(NewCarbonIntensity::parse("par-1", now, 2_001, "x").is_err());
        assert!(NewCarbonIntensity::parse("Not A Site", now, 10, "x").is_err());
        assert!(NewCarbonIntensity::parse("par-1", now, 10, " ").is_err());
    }
}
