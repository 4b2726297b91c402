//! One finalised invoice, statement or credit note for operators (`/admin/invoices/{id}`):
//! its lines, the credit notes of an invoice, and the form that issues one.

use super::invoices::{Doc, doc};
use super::{FormErrors, require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::forms;
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::billing::DocumentKind;
use aion_services::invoices::{self, NewCreditNote};
use aion_services::organizations::{self as orgs, Organization};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Template)]
#[template(path = "admin/invoice.html")]
struct DocPage {
    c: Chrome,
    can_act: bool,
    org: Organization,
    d: Doc,
    credit_notes: Vec<Doc>,
    reason: String,
    amount: String,
    /// Idempotency key of the credit form, minted with the page.
    idem: String,
    problems: FormErrors,
    shown: &'static [&'static str],
}

/// `?notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

async fn doc_page(
    s: &Session,
    state: &WebState,
    id: Uuid,
    notice: Option<&str>,
    form: &CreditForm,
    problems: FormErrors,
) -> WebResult<Result<String, askama::Error>> {
    let d = invoices::get(&state.services, &s.caller, id).await?;
    let org = orgs::get(&state.services, &s.caller, d.organization_id).await?;
    let credit_notes = if d.kind == DocumentKind::Invoice {
        invoices::credit_notes(&state.services, &s.caller, id)
            .await?
            .into_iter()
            .map(doc)
            .collect()
    } else {
        Vec::new()
    };
    Ok(DocPage {
        c: Chrome::new(s, "admin").with_notice(notice, &["admin.inv.credited"]),
        can_act: s.caller.is_platform_admin(),
        org,
        d: doc(d),
        credit_notes,
        reason: form.reason.clone(),
        amount: form.amount.clone().unwrap_or_default(),
        // A fresh key on every render: a refused form created nothing.
        idem: forms::new_idempotency_key(),
        problems,
        shown: &["reason", "amount"],
    }
    .render())
}

/// `GET /admin/invoices/{id}`: a finalised document.
pub async fn document(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let form = CreditForm::default();
    html(
        doc_page(
            &s,
            &state,
            super::path_id(&id)?,
            q.notice.as_deref(),
            &form,
            FormErrors::default(),
        )
        .await?,
    )
}

/// The credit-note form.
#[derive(Debug, Default, Deserialize)]
pub struct CreditForm {
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Net EUR to credit; blank credits the whole invoice (what is left of it).
    pub amount: Option<String>,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// `POST /admin/invoices/{id}/credit-notes` (platform admins): issues the credit note
/// and shows it.
pub async fn credit(
    post: FormPost<CreditForm>,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    require_operator(&s)?;
    let id = super::path_id(&id)?;
    let key = forms::idempotency_key(form.idem.as_deref())?;
    let issued = match NewCreditNote::parse(&form.reason, super::non_blank(&form.amount)) {
        Ok(cmd) => invoices::credit(&state.services, &s.caller, id, cmd, key.as_ref()).await,
        Err(e) => Err(e),
    };
    match issued {
        Ok(note) => Ok(see_other(&format!(
            "/admin/invoices/{}?notice=admin.inv.credited",
            note.id.unwrap_or(id)
        ))),
        Err(e) => {
            let problems = FormErrors::from_error(e)?;
            unprocessable(doc_page(&s, &state, id, None, &form, problems).await?)
        }
    }
}
