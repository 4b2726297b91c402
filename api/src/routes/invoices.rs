//! `/v1/organizations/{id}/invoices` and `/v1/invoices/{id}`: monthly invoices and
//! statements (drafts until finalised), credit notes, and their JSON, CSV and printable
//! HTML forms (`?format=csv|html`).

use super::ListQuery;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, get, post, web};
use aion_api_types as wire;
use aion_api_types::{BillingDocumentList, CreditNoteCreate, MonthDocuments, Problem};
use aion_services::billing::{BillingDocument, Month};
use aion_services::invoices::{self, NewCreditNote};
use aion_services::{Error, organizations};
use askama::Template;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// `?format=` of a document.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// `json` (default), `csv` or `html` (printable).
    pub format: Option<String>,
}

enum Format {
    Json,
    Csv,
    Html,
}

impl FormatQuery {
    fn parse(&self) -> Result<Format, Error> {
        match self.format.as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("html") => Ok(Format::Html),
            Some(_) => Err(Error::invalid("format", "must be one of: json csv html")),
        }
    }
}

fn mwh(mj: i64) -> f64 {
    mj as f64 / 3_600_000.0
}

/// Domain document → wire document.
fn document(d: BillingDocument) -> wire::BillingDocument {
    wire::BillingDocument {
        id: d.id,
        organization_id: d.organization_id.0,
        kind: d.kind.as_str().to_owned(),
        status: if d.finalised { "final" } else { "draft" }.to_owned(),
        period_start: d.period_start,
        period_end: d.period_end,
        number: d.number,
        currency: d.currency,
        lines: d
            .lines
            .into_iter()
            .map(|l| wire::BillingLine {
                project_id: l.project_id.map(|p| p.0),
                gpu_model: l.gpu_model,
                profile: l.profile,
                site: l.site,
                preemptible: l.preemptible,
                description: l.description,
                seconds: l.seconds,
                hours: (Decimal::from(l.seconds) / Decimal::from(3600))
                    .round_dp(6)
                    .to_string(),
                slice_seconds: l.slice_seconds,
                gpu_hours: l.gpu_hours.to_string(),
                unit_price: l.unit_price.to_string(),
                amount: l.amount.to_string(),
                energy_wh: mwh(l.energy_mj),
                co2e_g: l.co2e_mg as f64 / 1000.0,
            })
            .collect(),
        net: d.net.to_string(),
        vat_regime: d.vat.regime.as_str().to_owned(),
        vat_rate_percent: d.vat.rate_percent.to_string(),
        vat_note: d.vat.note,
        vat: d.vat_amount.to_string(),
        total: d.total.to_string(),
        energy_wh: mwh(d.energy_mj),
        energy_without_intensity_wh: mwh(d.energy_without_intensity_mj),
        co2e_g: d.co2e_mg as f64 / 1000.0,
        credits_id: d.credits_id,
        reason: d.reason,
        finalised_by: d.finalised_by,
        finalised_at: d.finalised_at,
    }
}

/// One line of the printable page.
struct HtmlLine {
    no: usize,
    description: String,
    gpu_hours: String,
    unit_price: String,
    amount: String,
    energy_kwh: String,
    co2e_kg: String,
}

/// The printable page (askama escapes every value).
#[derive(Template)]
#[template(path = "invoice.html")]
struct InvoicePage {
    title: String,
    draft: bool,
    customer: String,
    country: String,
    period_start: String,
    period_end: String,
    number: Option<String>,
    reason: Option<String>,
    finalised_at: Option<String>,
    currency: String,
    lines: Vec<HtmlLine>,
    net: String,
    vat_rate: String,
    vat: String,
    total: String,
    energy_kwh: String,
    co2e_kg: String,
    vat_note: String,
}

fn kwh(mj: i64) -> String {
    (Decimal::from(mj) / Decimal::from(3_600_000_000i64))
        .round_dp(3)
        .to_string()
}

fn kg(mg: i64) -> String {
    (Decimal::from(mg) / Decimal::from(1_000_000))
        .round_dp(3)
        .to_string()
}

fn html(d: &BillingDocument, org: &organizations::Organization) -> Result<String, ApiError> {
    let kind = match d.kind {
        aion_services::billing::DocumentKind::Invoice => "Invoice",
        aion_services::billing::DocumentKind::Statement => "Statement of grant-funded usage",
        aion_services::billing::DocumentKind::CreditNote => "Credit note",
    };
    let page = InvoicePage {
        title: format!("{kind} {}", Month::of(d.period_start).key()),
        draft: !d.finalised,
        customer: org.name.clone(),
        country: org.country.clone(),
        period_start: d.period_start.to_rfc3339(),
        period_end: d.period_end.to_rfc3339(),
        number: d.number.clone(),
        reason: d.reason.clone(),
        finalised_at: d.finalised_at.map(|t| t.to_rfc3339()),
        currency: d.currency.clone(),
        lines: d
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| HtmlLine {
                no: i + 1,
                description: l.description.clone(),
                gpu_hours: l.gpu_hours.to_string(),
                unit_price: l.unit_price.to_string(),
                amount: l.amount.to_string(),
                energy_kwh: kwh(l.energy_mj),
                co2e_kg: kg(l.co2e_mg),
            })
            .collect(),
        net: d.net.to_string(),
        vat_rate: d.vat.rate_percent.to_string(),
        vat: d.vat_amount.to_string(),
        total: d.total.to_string(),
        energy_kwh: kwh(d.energy_mj),
        co2e_kg: kg(d.co2e_mg),
        vat_note: d.vat.note.clone(),
    };
    page.render()
        .map_err(|e| ApiError::from(Error::Internal(format!("invoice page: {e}"))))
}

async fn respond(
    state: &AppState,
    caller: &Authenticated,
    docs: Vec<BillingDocument>,
    format: Format,
    period: Option<Month>,
) -> Result<HttpResponse, ApiError> {
    match format {
        Format::Json => Ok(match period {
            Some(m) => HttpResponse::Ok().json(MonthDocuments {
                month: m.key(),
                items: docs.into_iter().map(document).collect(),
            }),
            None => match docs.into_iter().next() {
                Some(d) => HttpResponse::Ok().json(document(d)),
                None => return Err(Error::NotFound("invoice").into()),
            },
        }),
        Format::Csv => {
            let mut out = String::new();
            for (i, d) in docs.iter().enumerate() {
                let csv = invoices::to_csv(d);
                // One header for the whole file.
                out.push_str(if i == 0 {
                    &csv
                } else {
                    csv.split_once('\n').map_or("", |(_, rest)| rest)
                });
            }
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .body(out))
        }
        Format::Html => {
            let Some(first) = docs.first() else {
                return Err(Error::NotFound("invoice").into());
            };
            let org = organizations::get(&state.services, caller, first.organization_id).await?;
            let pages = docs
                .iter()
                .map(|d| html(d, &org))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(pages.join("\n")))
        }
    }
}

/// Lists an organisation's finalised invoices, statements and credit notes (its admin
/// and billing members, platform admins and auditors).
#[utoipa::path(tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, body = BillingDocumentList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations/{id}/invoices")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = invoices::list(&state.services, &caller, id.into_inner().into(), &q.page()?).await?;
    Ok(HttpResponse::Ok().json(BillingDocumentList {
        items: page.items.into_iter().map(document).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A month's invoice and statement: drafts recomputed from the leases until the month
/// is finalised, then the final documents.
#[utoipa::path(tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("month" = String, Path, description = "YYYY-MM"), FormatQuery),
    responses(
        (status = 200, body = MonthDocuments),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/v1/organizations/{id}/invoices/{month}")]
pub async fn month_documents(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(Uuid, String)>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, raw) = path.into_inner();
    let period = Month::parse("month", &raw)?;
    let format = q.parse()?;
    let docs = invoices::month(&state.services, &caller, org.into(), period).await?;
    respond(&state, &caller, docs, format, Some(period)).await
}

/// Finalises a month that is over (platform admins): its invoice gets the next gapless
/// number; the documents never change afterwards.
#[utoipa::path(tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("month" = String, Path, description = "YYYY-MM"),
        ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = MonthDocuments),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/organizations/{id}/invoices/{month}/finalize")]
pub async fn finalize(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, raw) = path.into_inner();
    let period = Month::parse("month", &raw)?;
    let docs = invoices::finalise(&state.services, &caller, org.into(), period, idem.get()).await?;
    Ok(HttpResponse::Ok().json(MonthDocuments {
        month: period.key(),
        items: docs.into_iter().map(document).collect(),
    }))
}

/// Reads a finalised invoice, statement or credit note (`?format=csv|html` to export).
#[utoipa::path(tag = "billing", security(("bearer" = [])), params(("id" = Uuid, Path), FormatQuery), responses(
    (status = 200, body = wire::BillingDocument),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/invoices/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = q.parse()?;
    let doc = invoices::get(&state.services, &caller, id.into_inner()).await?;
    respond(&state, &caller, vec![doc], format, None).await
}

/// Corrects a finalised invoice with a credit note (platform admins): the whole invoice,
/// or part of its net amount; numbered in the invoices' sequence.
#[utoipa::path(tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = CreditNoteCreate,
    responses(
        (status = 201, body = wire::BillingDocument),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/invoices/{id}/credit-notes")]
pub async fn credit_note(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<CreditNoteCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cmd = NewCreditNote::parse(&b.reason, b.amount.as_deref())?;
    let note = invoices::credit(&state.services, &caller, id.into_inner(), cmd, idem.get()).await?;
    Ok(HttpResponse::Created().json(document(note)))
}
