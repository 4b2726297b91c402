//! `/admin/allocations`: the calls of the organisations the person allocates for, the
//! form that creates a call (a draft), and the buttons that open and close calls.

use super::call_form::CallForm;
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::{WebError, WebResult};
use crate::format;
use crate::forms::{self, Empty};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, http::StatusCode, web};
use aion_mig::GpuModel;
use aion_services::call_input::{CallFields, CallState, NewCall};
use aion_services::committee::{self, OrgName};
use aion_services::error::FieldErrors;
use aion_services::pagination::PageRequest;
use aion_services::{Error, calls};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// A call as the list shows it.
pub struct CallRow {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Allocating organisation.
    pub organization: String,
    /// `draft`, `open` or `closed`.
    pub state: &'static str,
    /// GPU model.
    pub gpu_model: &'static str,
    /// Pool, granted and remaining GPU-hours.
    pub pool: String,
    /// Granted.
    pub granted: String,
    /// Remaining.
    pub remaining: String,
    /// Opens, closes.
    pub opens: String,
    /// Closes.
    pub closes: String,
    /// Requests waiting for a decision.
    pub pending: u64,
}

#[derive(Template)]
#[template(path = "committee/calls.html")]
struct CallsPage {
    c: Chrome,
    calls: Vec<CallRow>,
    next: Option<String>,
    orgs: Vec<OrgName>,
    models: Vec<&'static str>,
    form: CallForm,
    /// Idempotency key of the create form, minted with the page.
    idem: String,
    errors: FieldErrors,
}

impl CallsPage {
    /// The message of a field, if it has one.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    /// Messages about fields the form does not show.
    fn other_errors(&self) -> Vec<String> {
        const SHOWN: [&str; 9] = [
            "organization_id",
            "title",
            "description",
            "gpu_model",
            "pool_gpu_hours",
            "opens_at",
            "closes_at",
            "period_start",
            "period_end",
        ];
        self.errors
            .iter()
            .filter(|(k, _)| !SHOWN.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect()
    }
}

/// `?cursor=&notice=` of the list.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: [&str; 3] = ["committee.created", "committee.opened", "committee.closed"];

async fn render(
    s: &Session,
    state: &WebState,
    cursor: Option<&str>,
    notice: Option<&str>,
    form: CallForm,
    errors: FieldErrors,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let t = s.t;
    let page = PageRequest::parse(Some(50), cursor)?;
    let listed = committee::calls(svc, &s.caller, &page).await?;
    let orgs = committee::allocator_orgs(svc, &s.caller).await?;
    let rows = listed
        .items
        .into_iter()
        .map(|c| CallRow {
            id: c.call.id.to_string(),
            title: c.call.title.clone(),
            organization: c.organization,
            state: c.call.state.as_str(),
            gpu_model: c.call.gpu_model.name(),
            pool: format::gpu_hours(t, c.call.pool.get()),
            granted: format::gpu_hours(t, c.call.granted.get()),
            remaining: format::gpu_hours(t, c.call.remaining().get()),
            opens: format::time(c.call.opens_at),
            closes: format::time(c.call.closes_at),
            pending: c.pending,
        })
        .collect();
    let failed = !errors.is_empty();
    let page = CallsPage {
        c: Chrome::new(s, "allocations").with_notice(notice, &NOTICES),
        calls: rows,
        next: listed.next_cursor,
        orgs,
        models: GpuModel::ALL.iter().map(|m| m.name()).collect(),
        form,
        // A fresh key on every render: a refused form created nothing.
        idem: forms::new_idempotency_key(),
        errors,
    };
    let mut response = html(page.render())?;
    if failed {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

/// `GET /admin/allocations`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<ListParams>,
) -> WebResult<HttpResponse> {
    let form = CallForm {
        gpu_model: GpuModel::H100_80GB.name().to_owned(),
        ..CallForm::default()
    };
    render(
        &s,
        &state,
        q.cursor.as_deref(),
        q.notice.as_deref(),
        form,
        FieldErrors::new(),
    )
    .await
}

/// `POST /admin/allocations/calls`: creates a draft call, or shows the form again with
/// what was typed and why it was refused.
pub async fn create(
    post: FormPost<CallForm>,
    state: web::Data<WebState>,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    // The panel's own check first: someone who allocates for no one gets 403.
    committee::committee_orgs(&s.caller)?;
    let key = forms::idempotency_key(form.idem.as_deref())?;
    let outcome = match form.parse() {
        Err(errors) => Err(errors),
        Ok(p) => {
            let fields = CallFields {
                organization_id: p.organization_id,
                title: &form.title,
                description: Some(&form.description),
                gpu_model: &form.gpu_model,
                pool_gpu_hours: p.pool_gpu_hours,
                opens_at: p.opens_at,
                closes_at: p.closes_at,
                period_start: p.period_start,
                period_end: p.period_end,
            };
            let created = match NewCall::parse(fields) {
                Ok(cmd) => calls::create(&state.services, &s.caller, cmd, key.as_ref()).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(call) => Ok(call),
                Err(Error::Validation(fields)) => Err(fields),
                Err(Error::Conflict(m)) => Err(FieldErrors::from([("form".to_owned(), m)])),
                Err(e @ Error::IdempotencyMismatch) => {
                    Err(FieldErrors::from([("form".to_owned(), e.to_string())]))
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    match outcome {
        Ok(call) => Ok(see_other(&format!(
            "/admin/allocations/calls/{}?notice=committee.created",
            call.id
        ))),
        Err(errors) => render(&s, &state, None, None, form, errors).await,
    }
}

/// `POST /admin/allocations/calls/{id}/open`.
pub async fn open(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    transition(
        post,
        state,
        id.into_inner(),
        CallState::Open,
        "committee.opened",
    )
    .await
}

/// `POST /admin/allocations/calls/{id}/close`.
pub async fn close(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    transition(
        post,
        state,
        id.into_inner(),
        CallState::Closed,
        "committee.closed",
    )
    .await
}

async fn transition(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    id: Uuid,
    to: CallState,
    notice: &str,
) -> WebResult<HttpResponse> {
    let s = post.session;
    // The committee's own check first, so another organisation's call answers 404.
    committee::reviewed_call(&state.services, &s.caller, id.into()).await?;
    calls::transition(&state.services, &s.caller, id.into(), to)
        .await
        .map_err(WebError::from)?;
    Ok(see_other(&format!("/admin/allocations?notice={notice}")))
}
