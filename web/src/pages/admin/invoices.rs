//! Invoices for operators: an organisation's month (drafts until finalised, then the
//! final documents) with the button that finalises it, and its finalised documents.
//! One document and its credit notes are in [`super::credit_notes`].

use super::{FormErrors, require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms;
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::billing::{BillingDocument, DocumentKind, Month};
use aion_services::invoices;
use aion_services::organizations::{self as orgs, Organization};
use aion_services::pagination::PageRequest;
use askama::Template;
use chrono::Duration;
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

/// EUR to the cent (amounts are rounded once by the domain; this only pads them).
fn money(d: Decimal) -> String {
    let mut cents =
        d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    cents.rescale(2);
    format!("{cents} EUR")
}

/// A line as the pages show it.
pub(super) struct Line {
    pub(super) description: String,
    pub(super) gpu_hours: String,
    pub(super) unit_price: String,
    pub(super) amount: String,
}

/// A document as the pages show it.
pub(super) struct Doc {
    pub(super) id: Option<String>,
    /// Text key of the kind.
    pub(super) kind: &'static str,
    pub(super) finalised: bool,
    pub(super) number: String,
    pub(super) month: String,
    pub(super) net: String,
    pub(super) vat: String,
    pub(super) total: String,
    pub(super) lines: Vec<Line>,
    pub(super) reason: String,
    pub(super) credits_id: Option<String>,
    pub(super) finalised_at: String,
    pub(super) is_invoice: bool,
}

/// Text key of a document kind.
fn kind_key(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Invoice => "admin.inv.kind_invoice",
        DocumentKind::Statement => "admin.inv.kind_statement",
        DocumentKind::CreditNote => "admin.inv.kind_credit_note",
    }
}

pub(super) fn doc(d: BillingDocument) -> Doc {
    Doc {
        id: d.id.map(|i| i.to_string()),
        kind: kind_key(d.kind),
        finalised: d.finalised,
        number: d.number.unwrap_or_default(),
        month: Month::of(d.period_start).key(),
        net: money(d.net),
        vat: format!(
            "{} ({} %)",
            money(d.vat_amount),
            d.vat.rate_percent.normalize()
        ),
        total: money(d.total),
        lines: d
            .lines
            .into_iter()
            .map(|l| Line {
                description: l.description,
                gpu_hours: l.gpu_hours.round_dp(3).to_string(),
                unit_price: super::price_lists::price_text(l.unit_price),
                amount: money(l.amount),
            })
            .collect(),
        reason: d.reason.unwrap_or_default(),
        credits_id: d.credits_id.map(|i| i.to_string()),
        finalised_at: match (d.finalised_by, d.finalised_at) {
            (Some(by), Some(at)) => format!("{} · {by}", format::time(at)),
            _ => String::new(),
        },
        is_invoice: d.kind == DocumentKind::Invoice,
    }
}

/// `?month=&cursor=&notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/invoices.html")]
struct MonthPage {
    c: Chrome,
    can_act: bool,
    org: Organization,
    month: String,
    month_ends: String,
    month_over: bool,
    docs: Vec<Doc>,
    all_final: bool,
    finals: Vec<Doc>,
    next: Option<String>,
    /// Idempotency key of the finalise form, minted with the page.
    idem: String,
    problems: FormErrors,
    shown: &'static [&'static str],
}

async fn month_page(
    s: &Session,
    state: &WebState,
    org: Uuid,
    month: Month,
    cursor: Option<&str>,
    notice: Option<&str>,
    problems: FormErrors,
) -> WebResult<Result<String, askama::Error>> {
    let svc = &state.services;
    let org = orgs::get(svc, &s.caller, org.into()).await?;
    let docs: Vec<Doc> = invoices::month(svc, &s.caller, org.id, month)
        .await?
        .into_iter()
        .map(doc)
        .collect();
    let page = PageRequest::parse(Some(50), cursor)?;
    let finals = invoices::list(svc, &s.caller, org.id, &page).await?;
    let next = finals.next_cursor.map(|cursor| {
        super::query_string(&[("month", Some(&month.key())), ("cursor", Some(&cursor))])
    });
    Ok(MonthPage {
        c: Chrome::new(s, "admin").with_notice(
            notice,
            &["admin.inv.finalised", "admin.inv.nothing_finalised"],
        ),
        can_act: s.caller.is_platform_admin(),
        month: month.key(),
        month_ends: format::time(month.end()),
        month_over: svc.clock.now() >= month.end(),
        all_final: !docs.is_empty() && docs.iter().all(|d| d.finalised),
        docs,
        finals: finals.items.into_iter().map(doc).collect(),
        next,
        org,
        // A fresh key on every render: a refused finalisation stored nothing.
        idem: forms::new_idempotency_key(),
        problems,
        shown: &[],
    }
    .render())
}

/// The month to show by default: the last one that is over (the one to finalise).
fn default_month(now: chrono::DateTime<chrono::Utc>) -> Month {
    Month::of(Month::of(now).start() - Duration::days(1))
}

/// `GET /admin/organizations/{id}/invoices?month=YYYY-MM`.
pub async fn show_month(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<MonthQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let month = match super::non_blank(&q.month) {
        Some(raw) => Month::parse("month", raw)?,
        None => default_month(state.services.clock.now()),
    };
    html(
        month_page(
            &s,
            &state,
            super::path_id(&id)?,
            month,
            q.cursor.as_deref(),
            q.notice.as_deref(),
            FormErrors::default(),
        )
        .await?,
    )
}

/// The finalise button's form: its CSRF token and the idempotency key minted with it.
#[derive(Debug, Deserialize)]
pub struct FinaliseForm {
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// `POST /admin/organizations/{id}/invoices/{month}/finalise` (platform admins, once
/// the month is over); the domain's refusal is shown on the month's page.
pub async fn finalise(
    post: FormPost<FinaliseForm>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    require_operator(&s)?;
    let (org, raw) = path.into_inner();
    let org = super::path_id(&org)?;
    let month = Month::parse("month", &raw)?;
    let key = forms::idempotency_key(form.idem.as_deref())?;
    match invoices::finalise(&state.services, &s.caller, org.into(), month, key.as_ref()).await {
        Ok(stored) => {
            // A month without lines stores nothing: say so rather than claim success.
            let notice = if stored.is_empty() {
                "admin.inv.nothing_finalised"
            } else {
                "admin.inv.finalised"
            };
            Ok(see_other(&format!(
                "/admin/organizations/{org}/invoices?month={}&notice={notice}",
                month.key()
            )))
        }
        Err(e) => {
            let problems = FormErrors::from_error(e)?;
            unprocessable(month_page(&s, &state, org, month, None, None, problems).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_default_month_is_the_last_one_that_is_over() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
        assert_eq!(default_month(now).key(), "2025-12");
    }

    #[test]
    fn amounts_are_shown_to_the_cent_in_euros() {
        assert_eq!(money(Decimal::new(12345, 3)), "12.35 EUR");
        assert_eq!(money(Decimal::new(-12, 0)), "-12.00 EUR");
    }
}
