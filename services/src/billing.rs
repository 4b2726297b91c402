//! Monthly billing documents of an organisation, computed from its leases.
//!
//! A month's allocated time (each lease from `active` to its end, to the second, cut
//! exactly at the month's bounds) is rated with the price lists in force (see
//! [`crate::rating`]) and gathered into line items per project × GPU model × profile ×
//! site (and preemptible, and unit price when a price changed inside the month). Usage
//! funded by a commercial contract goes on the **invoice**; usage funded by an
//! allocator's grant (GENCI, CNRS calls) goes on the **statement**, valorised at list
//! price and not invoiced. Each line also carries the energy the agents measured for its
//! leases in the month and its CO2e at the site's grid intensity.
//!
//! Rounding: a line's amount is the exact sum of its rated pieces rounded once to the
//! cent, half to even; the net is the sum of line amounts; VAT is computed on the net
//! and rounded the same way (see [`crate::vat`]); the total is net + VAT.

use crate::carbon::{Co2e, IntensityTable};
use crate::entities::{grants, lease_placements, leases, organizations, projects, usage_records};
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId};
use crate::lease_lifecycle::billable_end;
use crate::price_lists;
use crate::pricing;
use crate::rating::{self, Allocation, Amount, RatedPiece};
use crate::values::{OrganizationKind, stored_gpu_model};
use crate::vat::{self, VatRegime, VatTreatment};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// A calendar month (UTC), the billing period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// 1–12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let bad = || Error::invalid(field, "must be a month as YYYY-MM, e.g. 2026-11");
        let (y, m) = raw.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(2000..=9998).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The month holding `t`.
    pub fn of(t: DateTime<Utc>) -> Self {
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// `YYYY-MM`.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// Midnight UTC of its first day.
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Midnight UTC of the next month's first day.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The month after.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }
}

/// What a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Contract-funded usage, payable.
    Invoice,
    /// Grant-funded usage valorised at list price; not payable.
    Statement,
    /// A correction of an invoice, negative.
    CreditNote,
}

impl DocumentKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Statement => "statement",
            Self::CreditNote => "credit_note",
        }
    }

    /// Parses a stored name.
    pub fn stored(raw: &str) -> Result<Self> {
        match raw {
            "invoice" => Ok(Self::Invoice),
            "statement" => Ok(Self::Statement),
            "credit_note" => Ok(Self::CreditNote),
            _ => Err(Error::Internal(format!("unknown document kind {raw}"))),
        }
    }
}

/// One line item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingLine {
    /// The project.
    pub project_id: Option<ProjectId>,
    /// GPU model.
    pub gpu_model: Option<String>,
    /// MIG profile.
    pub profile: Option<String>,
    /// Site of the GPUs.
    pub site: Option<String>,
    /// Preemptible leases (discounted).
    pub preemptible: bool,
    /// What the line is, in words.
    pub description: String,
    /// Allocated seconds, summed over the line's leases.
    pub seconds: i64,
    /// Exact quantity: seconds × compute slices (25,200 per GPU-hour).
    pub slice_seconds: i64,
    /// GPU-hours, to 6 decimals (display; `slice_seconds` is exact).
    pub gpu_hours: Decimal,
    /// EUR per hour of the line's basis, after any preemptible discount.
    pub unit_price: Decimal,
    /// EUR, rounded once to the cent.
    pub amount: Decimal,
    /// Energy measured, millijoules.
    pub energy_mj: i64,
    /// CO2e of that energy, milligrams.
    pub co2e_mg: i64,
}

/// A document: a month's draft, or a finalised invoice, statement or credit note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingDocument {
    /// Id, once finalised.
    pub id: Option<Uuid>,
    /// The customer.
    pub organization_id: OrganizationId,
    /// Invoice, statement or credit note.
    pub kind: DocumentKind,
    /// Draft (recomputed on every read) or final (stored, never changed).
    pub finalised: bool,
    /// Period start (a month's first instant).
    pub period_start: DateTime<Utc>,
    /// Period end (exclusive).
    pub period_end: DateTime<Utc>,
    /// Gapless number, for final invoices and credit notes.
    pub number: Option<String>,
    /// Always EUR.
    pub currency: String,
    /// Line items.
    pub lines: Vec<BillingLine>,
    /// Sum of line amounts.
    pub net: Decimal,
    /// How VAT applies.
    pub vat: VatTreatment,
    /// VAT amount.
    pub vat_amount: Decimal,
    /// Net + VAT.
    pub total: Decimal,
    /// Energy of all lines, millijoules.
    pub energy_mj: i64,
    /// Energy measured with no known grid intensity, millijoules.
    pub energy_without_intensity_mj: i64,
    /// CO2e of all lines, milligrams.
    pub co2e_mg: i64,
    /// The invoice a credit note corrects.
    pub credits_id: Option<Uuid>,
    /// Why, for credit notes.
    pub reason: Option<String>,
    /// Finalised by whom and when.
    pub finalised_by: Option<String>,
    /// When.
    pub finalised_at: Option<DateTime<Utc>>,
}

/// The statement's VAT "treatment": nothing is invoiced.
pub fn not_invoiced() -> VatTreatment {
    VatTreatment {
        regime: VatRegime::NotInvoiced,
        rate_percent: Decimal::ZERO,
        note: "Usage funded by an allocation grant, valorised at list price; not invoiced".into(),
    }
}

/// Key of a line: where and how the compute was used, and at what price.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LineKey {
    project: Uuid,
    gpu_model: String,
    profile: String,
    site: String,
    preemptible: bool,
    unit_price: Decimal,
}

#[derive(Default)]
struct LineSum {
    seconds: i64,
    slice_seconds: i64,
    amount: Amount,
    co2e: Co2e,
    energy_mj: i64,
}

/// The rated allocated time of one lease in the month, with what funds it.
pub(crate) struct RatedLease {
    /// Invoiced (contract) or on the statement (allocator's grant).
    pub kind: DocumentKind,
    pub project: Uuid,
    pub gpu_model: String,
    pub profile: String,
    pub site: String,
    pub preemptible: bool,
    pub pieces: Vec<RatedPiece>,
    /// The lease's usage records in the month.
    pub energy: Vec<Measured>,
}

/// (interval start, energy in mJ, grams of CO2e per kWh in force) of one usage record.
pub(crate) type Measured = (DateTime<Utc>, i64, Option<i32>);

/// Gathers rated leases into the lines of one document kind, in key order; also the
/// energy of those lines measured where no grid intensity was known.
pub(crate) fn lines_of(
    leases: &[RatedLease],
    kind: DocumentKind,
    project_names: &HashMap<Uuid, String>,
) -> Result<(Vec<BillingLine>, i64)> {
    let mut sums: BTreeMap<LineKey, LineSum> = BTreeMap::new();
    for l in leases.iter().filter(|l| l.kind == kind) {
        let key_of = |p: &RatedPiece| LineKey {
            project: l.project,
            gpu_model: l.gpu_model.clone(),
            profile: l.profile.clone(),
            site: l.site.clone(),
            preemptible: l.preemptible,
            unit_price: p.unit_price,
        };
        for p in &l.pieces {
            let s = sums.entry(key_of(p)).or_default();
            s.seconds += p.seconds;
            s.slice_seconds += p.slice_seconds;
            s.amount = s.amount.checked_add(p.amount)?;
        }
        // Energy goes to the line of the piece its interval started in (or the lease's
        // first piece when it started outside the allocated time).
        for (start, mj, grams) in &l.energy {
            let piece = l
                .pieces
                .iter()
                .find(|p| p.start <= *start && *start < p.end)
                .or_else(|| l.pieces.first());
            if let Some(p) = piece {
                let s = sums.entry(key_of(p)).or_default();
                s.energy_mj = s.energy_mj.saturating_add(*mj);
                s.co2e.add(*mj, *grams);
            }
        }
    }
    let unvalued = sums.values().map(|s| s.co2e.unvalued_energy_mj).sum();
    let lines = sums
        .into_iter()
        .map(|(k, s)| {
            let project = project_names
                .get(&k.project)
                .cloned()
                .unwrap_or_else(|| k.project.to_string());
            let preemptible = if k.preemptible { ", preemptible" } else { "" };
            Ok(BillingLine {
                description: format!(
                    "{} on {} at {}{preemptible}, project {project}",
                    k.profile, k.gpu_model, k.site
                ),
                project_id: Some(ProjectId(k.project)),
                gpu_model: Some(k.gpu_model),
                profile: Some(k.profile),
                site: Some(k.site),
                preemptible: k.preemptible,
                seconds: s.seconds,
                slice_seconds: s.slice_seconds,
                gpu_hours: (Decimal::from(s.slice_seconds)
                    / Decimal::from(crate::budget::SLICE_SECONDS_PER_GPU_HOUR))
                .round_dp(6),
                unit_price: k.unit_price,
                amount: s.amount.to_cents()?,
                energy_mj: s.energy_mj,
                co2e_mg: s.co2e.milligrams(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((lines, unvalued))
}

/// A document from its lines: net, VAT, total, energy and CO2e summed.
pub(crate) fn document(
    org: OrganizationId,
    kind: DocumentKind,
    month: Month,
    lines: Vec<BillingLine>,
    vat: VatTreatment,
    energy_without_intensity_mj: i64,
) -> BillingDocument {
    let net: Decimal = lines.iter().map(|l| l.amount).sum();
    let vat_amount = vat::vat_on(net, &vat);
    BillingDocument {
        id: None,
        organization_id: org,
        kind,
        finalised: false,
        period_start: month.start(),
        period_end: month.end(),
        number: None,
        currency: pricing::CURRENCY.to_owned(),
        energy_mj: lines.iter().map(|l| l.energy_mj).sum(),
        co2e_mg: lines.iter().map(|l| l.co2e_mg).sum(),
        energy_without_intensity_mj,
        lines,
        net,
        vat_amount,
        total: net + vat_amount,
        vat,
        credits_id: None,
        reason: None,
        finalised_by: None,
        finalised_at: None,
    }
}

/// The month's invoice and statement drafts of an organisation, as of `now` (a month
/// not over yet counts running leases up to `now`).
pub(crate) async fn month_drafts(
    db: &impl ConnectionTrait,
    org: &organizations::Model,
    month: Month,
    now: DateTime<Utc>,
) -> Result<[BillingDocument; 2]> {
    let org_id = OrganizationId(org.id);
    let kind = OrganizationKind::parse("kind", &org.kind)
        .map_err(|_| Error::Internal(format!("organisation {} has unknown kind", org.id)))?;
    let (start, end) = (month.start(), month.end());
    let until = Ord::min(end, now);
    let rows = leases::Entity::find()
        .filter(leases::Column::OrganizationId.eq(org.id))
        .filter(leases::Column::ActiveAt.is_not_null())
        .filter(leases::Column::ActiveAt.lt(until))
        .filter(
            Condition::any()
                .add(leases::Column::EndedAt.is_null())
                .add(leases::Column::EndedAt.gt(start)),
        )
        .all(db)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|l| l.id).collect();
    let grant_ids: BTreeSet<Uuid> = rows.iter().filter_map(|l| l.grant_id).collect();
    let contract: HashMap<Uuid, bool> = grants::Entity::find()
        .filter(grants::Column::Id.is_in(grant_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|g| (g.id, g.source == "contract"))
        .collect();
    let sites = lease_sites(db, &ids).await?;
    let site_names: BTreeSet<String> = sites.values().cloned().collect();
    let intensities = IntensityTable::load(db, &site_names).await?;
    let mut energy: HashMap<Uuid, Vec<Measured>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let records = usage_records::Entity::find()
            .filter(usage_records::Column::LeaseId.is_in(chunk.to_vec()))
            .filter(usage_records::Column::IntervalStart.gte(start))
            .filter(usage_records::Column::IntervalStart.lt(end))
            .all(db)
            .await?;
        for r in records {
            let grams = sites
                .get(&r.lease_id)
                .and_then(|s| intensities.at(s, r.interval_start));
            energy
                .entry(r.lease_id)
                .or_default()
                .push((r.interval_start, r.energy_mj, grams));
        }
    }
    let versions = price_lists::versions_for(db, org_id, kind).await?;
    let mut rated = Vec::with_capacity(rows.len());
    for lease in &rows {
        let Some(active_at) = lease.active_at else {
            continue;
        };
        let lease_end = billable_end(lease, lease.ended_at.unwrap_or(now));
        let (from, to) = (Ord::max(active_at, start), Ord::min(lease_end, until));
        if to <= from {
            continue;
        }
        let model = stored_gpu_model(&lease.gpu_model)?;
        let profile = model
            .parse_profile(&lease.profile)
            .map_err(|e| Error::Internal(format!("lease {} has a bad profile: {e}", lease.id)))?;
        let count = u32::try_from(lease.count)
            .map_err(|_| Error::Internal(format!("lease {} has a bad count", lease.id)))?;
        let alloc = Allocation {
            profile,
            count,
            preemptible: lease.preemptible,
            active_at: from,
            ended_at: to,
        };
        let steps = pricing::price_steps(&versions, org_id, kind, model, &profile, from, to)?;
        let pieces = rating::rate(&alloc, &steps)?;
        let funded_by_contract = lease
            .grant_id
            .and_then(|g| contract.get(&g).copied())
            .unwrap_or(true);
        rated.push(RatedLease {
            kind: if funded_by_contract {
                DocumentKind::Invoice
            } else {
                DocumentKind::Statement
            },
            project: lease.project_id,
            gpu_model: lease.gpu_model.clone(),
            profile: lease.profile.clone(),
            site: sites
                .get(&lease.id)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            preemptible: lease.preemptible,
            pieces: pieces
                .into_iter()
                .filter(|p| Some(p.month) == month.first_day())
                .collect(),
            energy: energy.remove(&lease.id).unwrap_or_default(),
        });
    }
    let names: HashMap<Uuid, String> = projects::Entity::find()
        .filter(projects::Column::OrganizationId.eq(org.id))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.slug))
        .collect();
    let (invoice_lines, invoice_unvalued) = lines_of(&rated, DocumentKind::Invoice, &names)?;
    let (statement_lines, statement_unvalued) = lines_of(&rated, DocumentKind::Statement, &names)?;
    Ok([
        document(
            org_id,
            DocumentKind::Invoice,
            month,
            invoice_lines,
            vat::treatment(&org.country),
            invoice_unvalued,
        ),
        document(
            org_id,
            DocumentKind::Statement,
            month,
            statement_lines,
            not_invoiced(),
            statement_unvalued,
        ),
    ])
}

/// The site of each lease: the site of the node holding its (first) placement.
async fn lease_sites(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
    let mut node_of: HashMap<Uuid, Uuid> = HashMap::new();
    for chunk in ids.chunks(500) {
        for p in lease_placements::Entity::find()
            .filter(lease_placements::Column::LeaseId.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            node_of.entry(p.lease_id).or_insert(p.node_id);
        }
    }
    let site_of_node = crate::nodes::sites_of(db, node_of.values().copied()).await?;
    Ok(node_of
        .into_iter()
        .filter_map(|(lease, node)| site_of_node.get(&node).map(|s| (lease, s.clone())))
        .collect())
}

#[cfg(test)]
#[path = "billing_tests.rs"]
mod tests;
