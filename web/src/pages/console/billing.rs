//! `/console/organizations/{id}/billing` and `/console/billing/documents/{id}`: an
//! organisation's monthly invoices and statements (its billing members and admins, as the
//! domain decides), a document's lines, its CSV download and a printable page, and the
//! energy and CO2e of the organisation's usage this month.

use super::billing_view::{DocView, csv_file_name, doc_view, kwh};
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::forms;
use crate::i18n::Tr;
use crate::session::Session;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use aion_services::billing::Month;
use aion_services::ids::OrganizationId;
use aion_services::pagination::PageRequest;
use aion_services::usage_report::{self, UsageQuery};
use aion_services::{Error, invoices, organizations};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// Finalised documents per page.
const PER_PAGE: u64 = 24;

/// `?month=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct BillingQuery {
    /// The month to show (`YYYY-MM`); this month when absent.
    pub month: Option<String>,
    /// Next page of finalised documents.
    pub cursor: Option<String>,
}

/// A finalised document as listed.
pub struct DocRow {
    /// Id.
    pub id: String,
    /// Text key of its kind.
    pub kind: &'static str,
    /// Month.
    pub month: String,
    /// Number.
    pub number: String,
    /// Total.
    pub total: String,
    /// Currency.
    pub currency: String,
}

#[derive(Template)]
#[template(path = "console/billing.html")]
struct BillingPage {
    c: Chrome,
    org_id: String,
    org_name: String,
    month: String,
    month_docs: Vec<DocView>,
    month_error: Option<String>,
    finalised: Vec<DocRow>,
    next: Option<String>,
    usage_month: String,
    energy_kwh: String,
    co2e_kg: String,
    unvalued_kwh: Option<String>,
    gpu_hours: String,
}

/// `GET /console/organizations/{id}/billing`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<BillingQuery>,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let t = s.t;
    let org_id = OrganizationId(*id);
    let now = svc.clock.now();
    let month = match forms::optional(q.month.as_deref()) {
        Some(raw) => Month::parse("month", raw)?,
        None => Month::of(now),
    };
    // The billing read comes first: it is what decides who may open this page. A month
    // that no price list covers has no drafts; the page says so instead of failing.
    let (month_docs, month_error) = match invoices::month(svc, &s.caller, org_id, month).await {
        Ok(docs) => (docs, None),
        Err(Error::NotPriced(m)) => {
            invoices::list(svc, &s.caller, org_id, &PageRequest::parse(Some(1), None)?).await?;
            (Vec::new(), Some(m))
        }
        Err(e) => return Err(e.into()),
    };
    let org = organizations::get(svc, &s.caller, org_id).await?;
    let page = PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref())?;
    let listed = invoices::list(svc, &s.caller, org_id, &page).await?;
    let this_month = Month::of(now);
    // A report needs a span: at the very first instant of a month, take one second.
    let to = now.max(this_month.start() + chrono::Duration::seconds(1));
    let query = UsageQuery::parse(Some(this_month.start()), Some(to), Some("month"), None, now)?;
    let usage = usage_report::organization_usage(svc, &s.caller, org_id, query).await?;
    let unvalued = usage.total.co2e.unvalued_energy_mj;
    let next = listed.next_cursor.as_deref().map(|c| {
        forms::link(
            &format!("/console/organizations/{}/billing", org_id.0),
            &[("month", Some(&month.key())), ("cursor", Some(c))],
        )
    });
    let finalised = listed
        .items
        .iter()
        .filter_map(|d| {
            let v = doc_view(t, d);
            Some(DocRow {
                id: v.id?,
                kind: v.kind,
                month: v.month,
                number: v.number,
                total: v.total,
                currency: v.currency,
            })
        })
        .collect();
    let page = BillingPage {
        c: Chrome::new(&s, "console"),
        org_id: org_id.0.to_string(),
        org_name: org.name,
        month: month.key(),
        month_docs: month_docs.iter().map(|d| doc_view(t, d)).collect(),
        month_error,
        finalised,
        next,
        usage_month: this_month.key(),
        energy_kwh: kwh(t, usage.total.energy_mj),
        co2e_kg: format::decimal(t, usage.total.co2e.grams() / 1000.0, 3),
        unvalued_kwh: (unvalued > 0).then(|| kwh(t, unvalued)),
        gpu_hours: format::decimal(t, usage.total.gpu_hours(), 1),
    };
    html(page.render())
}

#[derive(Template)]
#[template(path = "console/document.html")]
struct DocumentPage {
    c: Chrome,
    org_id: String,
    org_name: String,
    d: DocView,
}

/// `GET /console/billing/documents/{id}`: a finalised document.
pub async fn document(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let doc = invoices::get(svc, &s.caller, *id).await?;
    let org = organizations::get(svc, &s.caller, doc.organization_id).await?;
    let page = DocumentPage {
        c: Chrome::new(&s, "console"),
        org_id: org.id.to_string(),
        org_name: org.name,
        d: doc_view(s.t, &doc),
    };
    html(page.render())
}

/// `GET /console/billing/documents/{id}/csv`: the document as a CSV download.
pub async fn csv(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let doc = invoices::get(&state.services, &s.caller, *id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", csv_file_name(&doc)),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(invoices::to_csv(&doc)))
}

/// The texts of the printable page, named like the page frame's so the document's
/// partial template serves both.
pub struct PrintTexts {
    /// Texts.
    pub t: Tr,
}

#[derive(Template)]
#[template(path = "console/document_print.html")]
struct PrintPage {
    c: PrintTexts,
    org_name: String,
    country: String,
    d: DocView,
}

/// `GET /console/billing/documents/{id}/print`: the document alone, ready to print.
pub async fn print(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let doc = invoices::get(svc, &s.caller, *id).await?;
    let org = organizations::get(svc, &s.caller, doc.organization_id).await?;
    let page = PrintPage {
        c: PrintTexts { t: s.t },
        org_name: org.name,
        country: org.country,
        d: doc_view(s.t, &doc),
    };
    html(page.render())
}
