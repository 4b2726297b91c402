//! Invoices, statements and credit notes: reading drafts, finalising a month, correcting
//! a finalised invoice with a credit note, and exporting as CSV.
//!
//! A month's documents are drafts, recomputed from the leases on every read, until an
//! operator finalises the month once it is over. Finalising stores the documents and
//! their lines; nothing changes them afterwards. Invoices and credit notes are numbered
//! `AION-<year>-<6 digits>` from one gapless sequence per year: the counter row is
//! incremented in the finalising transaction (and row-locked by it on PostgreSQL), so
//! concurrent finalisations queue for it and a rolled-back one gives its number back.
//!
//! Who reads: platform admins and auditors, and the organisation's `admin` and
//! `billing` members; anyone else gets 404. Only platform admins finalise and credit.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Caller, OrgRole};
use crate::billing::{self, BillingDocument, BillingLine, DocumentKind, Month};
use crate::entities::organizations;
use crate::entities::{billing_documents as docs, billing_lines as lines, invoice_sequences};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{OrganizationId, ProjectId};
use crate::pagination::{Page, PageRequest};
use crate::vat::{VatRegime, VatTreatment};
use chrono::Datelike;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;
use std::str::FromStr;
use uuid::Uuid;

/// Whether the caller reads the organisation's invoices.
fn reads_billing(caller: &Caller, org: OrganizationId) -> bool {
    caller.reads_everything()
        || matches!(
            caller.org_role(org),
            Some(OrgRole::Admin | OrgRole::Billing)
        )
}

async fn load_org(
    db: &impl ConnectionTrait,
    caller: &Caller,
    org: OrganizationId,
) -> Result<organizations::Model> {
    organizations::Entity::find_by_id(org.0)
        .one(db)
        .await?
        .filter(|_| reads_billing(caller, org))
        .ok_or(Error::NotFound("organization"))
}

/// The month's documents: the finalised ones if the month was finalised, else the
/// drafts as of now.
#[tracing::instrument(skip_all, err, fields(organization_id = %org, month = %month.key()))]
pub async fn month(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    month: Month,
) -> Result<Vec<BillingDocument>> {
    let o = load_org(&svc.db, caller, org).await?;
    let stored = docs::Entity::find()
        .filter(docs::Column::OrganizationId.eq(org.0))
        .filter(docs::Column::PeriodKey.eq(month.key()))
        .order_by_asc(docs::Column::Kind)
        .all(&svc.db)
        .await?;
    if !stored.is_empty() {
        return with_lines(&svc.db, stored).await;
    }
    Ok(billing::month_drafts(&svc.db, &o, month, svc.clock.now())
        .await?
        .into())
}

/// Finalises an organisation's month (platform admins, once the month is over): stores
/// its invoice (numbered) and its statement, those that have lines.
#[tracing::instrument(skip_all, err, fields(organization_id = %org, month = %month.key()))]
pub async fn finalise(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    month: Month,
    idem: Option<&IdempotencyKey>,
) -> Result<Vec<BillingDocument>> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let o = load_org(&txn, caller, org).await?;
    caller.require(true, caller.is_platform_admin(), "organization")?;
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // One finalisation of an organisation at a time: the second sees the first's
        // documents and is refused, instead of colliding on the unique index.
        organizations::Entity::find_by_id(org.0)
            .lock_exclusive()
            .one(&txn)
            .await?;
    }
    let op = format!("invoices.finalise:{org}:{}", month.key());
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &month).await? {
        idempotency::Begin::Replay(done) => return Ok(done),
        idempotency::Begin::Proceed(slot) => slot,
    };
    if now < month.end() {
        return Err(Error::Conflict(format!(
            "{} is not over; its documents stay drafts until {}",
            month.key(),
            month.end().to_rfc3339()
        )));
    }
    let already = docs::Entity::find()
        .filter(docs::Column::OrganizationId.eq(org.0))
        .filter(docs::Column::PeriodKey.eq(month.key()))
        .count(&txn)
        .await?;
    if already > 0 {
        return Err(Error::Conflict(format!(
            "{} is already finalised for this organisation",
            month.key()
        )));
    }
    let drafts = billing::month_drafts(&txn, &o, month, now).await?;
    let mut finals = Vec::new();
    for mut doc in drafts {
        if doc.lines.is_empty() {
            continue;
        }
        if doc.kind == DocumentKind::Invoice {
            doc.number = Some(next_number(&txn, now.year()).await?);
        }
        doc.id = Some(Uuid::now_v7());
        doc.finalised = true;
        doc.finalised_by = Some(caller.actor.key());
        doc.finalised_at = Some(now);
        store(&txn, &doc, Some(month)).await?;
        audit::append(&txn, now, caller, record("invoice.finalise", &doc)).await?;
        finals.push(doc);
    }
    idempotency::finish(&txn, slot, &finals).await?;
    txn.commit().await?;
    Ok(finals)
}

/// A validated credit note request.
#[derive(Clone, Debug, Serialize)]
pub struct NewCreditNote {
    reason: String,
    amount: Option<Decimal>,
}

impl NewCreditNote {
    /// A reason, and optionally the net amount to credit (EUR, positive, at most two
    /// decimals); without one the whole invoice is credited.
    pub fn parse(reason: &str, amount: Option<&str>) -> Result<Self> {
        let mut v = crate::validate::Validator::default();
        let reason = v.check(crate::values::parse_name("reason", reason, 1000));
        let amount = match amount {
            None => None,
            Some(raw) => v.check(
                Decimal::from_str_exact(raw.trim())
                    .ok()
                    .filter(|d| *d > Decimal::ZERO && d.scale() <= 2)
                    .ok_or_else(|| {
                        Error::invalid(
                            "amount",
                            "must be a positive amount of EUR with at most 2 decimals, as a string like \"120.50\"",
                        )
                    }),
            ),
        };
        v.finish()?;
        Ok(Self {
            reason: reason.ok_or_else(crate::validate::missing)?,
            amount,
        })
    }
}

/// Corrects a finalised invoice with a credit note (platform admins): the whole invoice
/// (its lines negated) or part of its net, never more than what is left to credit.
#[tracing::instrument(skip_all, err, fields(invoice_id = %invoice))]
pub async fn credit(
    svc: &Services,
    caller: &Caller,
    invoice: Uuid,
    cmd: NewCreditNote,
    idem: Option<&IdempotencyKey>,
) -> Result<BillingDocument> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let found = load_doc(&txn, caller, invoice).await?;
    caller.require(true, caller.is_platform_admin(), "invoice")?;
    let op = format!("invoices.credit:{invoice}");
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(done) => return Ok(done),
        idempotency::Begin::Proceed(slot) => slot,
    };
    if found.kind != DocumentKind::Invoice {
        return Err(Error::Conflict(format!(
            "only invoices are credited; this is a {}",
            found.kind.as_str()
        )));
    }
    // Take the number first: incrementing the year's counter row-locks it, so two credit
    // notes of one invoice queue here and the second reads the first's credit below. A
    // refused credit rolls back and gives the number back.
    let number = next_number(&txn, now.year()).await?;
    let credited: Decimal = docs::Entity::find()
        .filter(docs::Column::CreditsId.eq(invoice))
        .all(&txn)
        .await?
        .iter()
        .map(|d| decimal(&d.net).map(|n| -n))
        .sum::<Result<Decimal>>()?;
    let left = found.net - credited;
    let amount = cmd.amount.unwrap_or(left);
    if amount <= Decimal::ZERO || amount > left {
        return Err(Error::Conflict(format!(
            "at most {left} EUR of invoice {} is left to credit",
            found.number.clone().unwrap_or_default()
        )));
    }
    let lines: Vec<BillingLine> = if amount == found.net {
        found.lines.iter().map(negated).collect()
    } else {
        vec![BillingLine {
            project_id: None,
            gpu_model: None,
            profile: None,
            site: None,
            preemptible: false,
            description: format!(
                "Credit on invoice {}: {}",
                found.number.clone().unwrap_or_default(),
                cmd.reason
            ),
            seconds: 0,
            slice_seconds: 0,
            gpu_hours: Decimal::ZERO,
            unit_price: Decimal::ZERO,
            amount: -amount,
            energy_mj: 0,
            co2e_mg: 0,
        }]
    };
    let month = Month::of(found.period_start);
    let mut note = billing::document(
        found.organization_id,
        DocumentKind::CreditNote,
        month,
        lines,
        found.vat.clone(),
        0,
    );
    note.id = Some(Uuid::now_v7());
    note.number = Some(number);
    note.finalised = true;
    note.credits_id = Some(invoice);
    note.reason = Some(cmd.reason.clone());
    note.finalised_by = Some(caller.actor.key());
    note.finalised_at = Some(now);
    store(&txn, &note, None).await?;
    audit::append(&txn, now, caller, record("invoice.credit", &note)).await?;
    idempotency::finish(&txn, slot, &note).await?;
    txn.commit().await?;
    Ok(note)
}

fn negated(l: &BillingLine) -> BillingLine {
    BillingLine {
        seconds: -l.seconds,
        slice_seconds: -l.slice_seconds,
        gpu_hours: -l.gpu_hours,
        amount: -l.amount,
        energy_mj: -l.energy_mj,
        co2e_mg: -l.co2e_mg,
        description: format!("Credit: {}", l.description),
        ..l.clone()
    }
}

/// A finalised document the caller may read.
pub async fn get(svc: &Services, caller: &Caller, id: Uuid) -> Result<BillingDocument> {
    load_doc(&svc.db, caller, id).await
}

/// The credit notes of an invoice the caller may read, oldest first (none for a
/// statement or a credit note).
#[tracing::instrument(skip_all, err, fields(invoice_id = %invoice))]
pub async fn credit_notes(
    svc: &Services,
    caller: &Caller,
    invoice: Uuid,
) -> Result<Vec<BillingDocument>> {
    docs::Entity::find_by_id(invoice)
        .one(&svc.db)
        .await?
        .filter(|d| reads_billing(caller, OrganizationId(d.organization_id)))
        .ok_or(Error::NotFound("invoice"))?;
    let rows = docs::Entity::find()
        .filter(docs::Column::CreditsId.eq(invoice))
        .order_by_asc(docs::Column::Id)
        .all(&svc.db)
        .await?;
    with_lines(&svc.db, rows).await
}

/// The organisation's finalised documents, oldest first (cursor: the last id).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    page: &PageRequest,
) -> Result<Page<BillingDocument>> {
    load_org(&svc.db, caller, org).await?;
    let mut query = docs::Entity::find().filter(docs::Column::OrganizationId.eq(org.0));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(docs::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(docs::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = with_lines(&svc.db, rows).await?;
    Ok(Page::from_rows(items, page, |d| {
        d.id.map(|i| i.to_string()).unwrap_or_default()
    }))
}

async fn load_doc(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> Result<BillingDocument> {
    let row = docs::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|d| reads_billing(caller, OrganizationId(d.organization_id)))
        .ok_or(Error::NotFound("invoice"))?;
    with_lines(db, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound("invoice"))
}

/// Takes the next number of `year`'s sequence inside the caller's transaction.
async fn next_number(txn: &impl ConnectionTrait, year: i32) -> Result<String> {
    invoice_sequences::Entity::insert(invoice_sequences::ActiveModel {
        year: Set(year),
        last: Set(0),
    })
    .on_conflict(
        OnConflict::column(invoice_sequences::Column::Year)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    // The update row-locks the counter until commit: concurrent finalisations wait here.
    invoice_sequences::Entity::update_many()
        .col_expr(
            invoice_sequences::Column::Last,
            Expr::col(invoice_sequences::Column::Last).add(1),
        )
        .filter(invoice_sequences::Column::Year.eq(year))
        .exec(txn)
        .await?;
    let last = invoice_sequences::Entity::find_by_id(year)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the invoice counter vanished".into()))?
        .last;
    Ok(format!("AION-{year}-{last:06}"))
}

fn record(action: &'static str, d: &BillingDocument) -> Record {
    Record {
        action,
        target_kind: "invoice",
        target_id: d.id.map(|i| i.to_string()).unwrap_or_default(),
        organization_id: Some(d.organization_id),
        project_id: None,
        details: json!({"kind": d.kind.as_str(), "number": d.number, "net": d.net.to_string(),
            "total": d.total.to_string(), "period_start": d.period_start, "credits_id": d.credits_id}),
    }
}

async fn store(
    txn: &impl ConnectionTrait,
    d: &BillingDocument,
    month: Option<Month>,
) -> Result<()> {
    let id =
        d.id.ok_or_else(|| Error::Internal("a stored document needs an id".into()))?;
    docs::Entity::insert(docs::ActiveModel {
        id: Set(id),
        organization_id: Set(d.organization_id.0),
        kind: Set(d.kind.as_str().to_owned()),
        period_key: Set(month.map(Month::key)),
        period_start: Set(d.period_start),
        period_end: Set(d.period_end),
        number: Set(d.number.clone()),
        currency: Set(d.currency.clone()),
        net: Set(d.net.to_string()),
        vat_regime: Set(d.vat.regime.as_str().to_owned()),
        vat_rate: Set(d.vat.rate_percent.to_string()),
        vat_note: Set(d.vat.note.clone()),
        vat: Set(d.vat_amount.to_string()),
        total: Set(d.total.to_string()),
        energy_mj: Set(d.energy_mj),
        energy_without_intensity_mj: Set(d.energy_without_intensity_mj),
        co2e_mg: Set(d.co2e_mg),
        credits_id: Set(d.credits_id),
        reason: Set(d.reason.clone()),
        finalised_by: Set(d.finalised_by.clone().unwrap_or_default()),
        finalised_at: Set(d.finalised_at.unwrap_or(d.period_end)),
    })
    .exec_without_returning(txn)
    .await?;
    let rows: Vec<lines::ActiveModel> = d
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| lines::ActiveModel {
            document_id: Set(id),
            line_no: Set(i32::try_from(i + 1).unwrap_or(i32::MAX)),
            project_id: Set(l.project_id.map(|p| p.0)),
            gpu_model: Set(l.gpu_model.clone()),
            profile: Set(l.profile.clone()),
            site: Set(l.site.clone()),
            preemptible: Set(l.preemptible),
            description: Set(l.description.clone()),
            seconds: Set(l.seconds),
            slice_seconds: Set(l.slice_seconds),
            gpu_hours: Set(l.gpu_hours.to_string()),
            unit_price: Set(l.unit_price.to_string()),
            amount: Set(l.amount.to_string()),
            energy_mj: Set(l.energy_mj),
            co2e_mg: Set(l.co2e_mg),
        })
        .collect();
    for chunk in rows.chunks(500) {
        lines::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

fn decimal(raw: &str) -> Result<Decimal> {
    Decimal::from_str(raw)
        .map_err(|_| Error::Internal(format!("stored amount {raw} is not a decimal")))
}

async fn with_lines(
    db: &impl ConnectionTrait,
    rows: Vec<docs::Model>,
) -> Result<Vec<BillingDocument>> {
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let mut by_doc: std::collections::HashMap<Uuid, Vec<lines::Model>> = Default::default();
    for chunk in ids.chunks(500) {
        for l in lines::Entity::find()
            .filter(lines::Column::DocumentId.is_in(chunk.to_vec()))
            .order_by_asc(lines::Column::LineNo)
            .all(db)
            .await?
        {
            by_doc.entry(l.document_id).or_default().push(l);
        }
    }
    rows.into_iter()
        .map(|d| {
            let lines = by_doc
                .remove(&d.id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    Ok(BillingLine {
                        project_id: l.project_id.map(ProjectId),
                        gpu_model: l.gpu_model,
                        profile: l.profile,
                        site: l.site,
                        preemptible: l.preemptible,
                        description: l.description,
                        seconds: l.seconds,
                        slice_seconds: l.slice_seconds,
                        gpu_hours: decimal(&l.gpu_hours)?,
                        unit_price: decimal(&l.unit_price)?,
                        amount: decimal(&l.amount)?,
                        energy_mj: l.energy_mj,
                        co2e_mg: l.co2e_mg,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(BillingDocument {
                id: Some(d.id),
                organization_id: OrganizationId(d.organization_id),
                kind: DocumentKind::stored(&d.kind)?,
                finalised: true,
                period_start: d.period_start,
                period_end: d.period_end,
                number: d.number,
                currency: d.currency,
                lines,
                net: decimal(&d.net)?,
                vat: VatTreatment {
                    regime: VatRegime::stored(&d.vat_regime).ok_or_else(|| {
                        Error::Internal(format!("unknown VAT regime {}", d.vat_regime))
                    })?,
                    rate_percent: decimal(&d.vat_rate)?,
                    note: d.vat_note,
                },
                vat_amount: decimal(&d.vat)?,
                total: decimal(&d.total)?,
                energy_mj: d.energy_mj,
                energy_without_intensity_mj: d.energy_without_intensity_mj,
                co2e_mg: d.co2e_mg,
                credits_id: d.credits_id,
                reason: d.reason,
                finalised_by: Some(d.finalised_by),
                finalised_at: Some(d.finalised_at),
            })
        })
        .collect()
}

/// The document as CSV: one row per line item, then a total row. Amounts are exact
/// decimal strings; text fields are quoted.
pub fn to_csv(d: &BillingDocument) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from(
        "document,number,period_start,line,project_id,gpu_model,profile,site,preemptible,description,seconds,hours,gpu_hours,unit_price_eur,amount_eur,energy_kwh,co2e_kg\n",
    );
    let number = d.number.clone().unwrap_or_default();
    let kwh = |mj: i64| Decimal::from(mj) / Decimal::from(3_600_000_000i64);
    let kg = |mg: i64| Decimal::from(mg) / Decimal::from(1_000_000);
    for (i, l) in d.lines.iter().enumerate() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            d.kind.as_str(),
            q(&number),
            d.period_start.to_rfc3339(),
            i + 1,
            l.project_id.map(|p| p.to_string()).unwrap_or_default(),
            q(l.gpu_model.as_deref().unwrap_or("")),
            q(l.profile.as_deref().unwrap_or("")),
            q(l.site.as_deref().unwrap_or("")),
            l.preemptible,
            q(&l.description),
            l.seconds,
            (Decimal::from(l.seconds) / Decimal::from(3600)).round_dp(6),
            l.gpu_hours,
            l.unit_price,
            l.amount,
            kwh(l.energy_mj).round_dp(6),
            kg(l.co2e_mg).round_dp(6),
        ));
    }
    out.push_str(&format!(
        "{},{},{},total,,,,,,{},,,,,{},{},{}\n",
        d.kind.as_str(),
        q(&number),
        d.period_start.to_rfc3339(),
        q(&format!(
            "net {} + VAT {} ({} %) = {} {}",
            d.net, d.vat_amount, d.vat.rate_percent, d.total, d.currency
        )),
        d.total,
        kwh(d.energy_mj).round_dp(6),
        kg(d.co2e_mg).round_dp(6),
    ));
    out
}
