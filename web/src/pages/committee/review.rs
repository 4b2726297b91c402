//! `/admin/allocations/calls/{id}`: one call's review queue (each pending request with
//! its justification and the project's history) with the approve and reject forms (see
//! [`super::decide`]), and the call's pool consumption and burn rate.

use super::consumption::{self, ConsumptionView};
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::session::Session;
use actix_web::{HttpResponse, http::StatusCode, web};
use aion_services::allocation_requests::AllocationRequest;
use aion_services::committee::{self, ReviewItem};
use aion_services::ids::CallId;
use aion_services::pagination::PageRequest;
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// A request of the project's history.
pub struct HistoryRow {
    /// Call title.
    pub call: String,
    /// State.
    pub state: &'static str,
    /// Requested, granted GPU-hours.
    pub requested: String,
    /// Granted, or a dash.
    pub granted: String,
    /// Filed at.
    pub filed: String,
    /// The committee's reason.
    pub reason: String,
}

/// A grant of the project's history.
pub struct GrantRow {
    /// GPU model.
    pub gpu_model: String,
    /// Granted, used, left.
    pub granted: String,
    /// Used.
    pub used: String,
    /// Left.
    pub left: String,
    /// Validity.
    pub valid: String,
}

/// A pending request as the queue shows it.
pub struct QueueItem {
    /// Request id.
    pub id: String,
    /// `org / project`.
    pub project: String,
    /// Requested GPU-hours.
    pub requested: String,
    /// Filed at.
    pub filed: String,
    /// Justification.
    pub justification: String,
    /// Earlier requests.
    pub history: Vec<HistoryRow>,
    /// Grants from this organisation.
    pub grants: Vec<GrantRow>,
    /// Why the last decision on it was refused.
    pub error: Option<String>,
    /// Hours in the approve form.
    pub typed_hours: String,
    /// Reason typed in the last refused form.
    pub typed_reason: String,
}

/// A decision that failed, shown again next to its request with what was typed.
pub struct Failure {
    /// The request.
    pub request_id: String,
    /// Why it failed.
    pub message: String,
    /// Typed hours.
    pub hours: String,
    /// Typed reason.
    pub reason: String,
}

#[derive(Template)]
#[template(path = "committee/call.html")]
struct CallPage {
    c: Chrome,
    id: String,
    title: String,
    description: String,
    state: &'static str,
    gpu_model: &'static str,
    pool: String,
    granted: String,
    remaining: String,
    opens: String,
    closes: String,
    period: String,
    queue: Vec<QueueItem>,
    next: Option<String>,
    failure: Option<Failure>,
    usage: ConsumptionView,
}

/// `?cursor=&notice=` of the call page.
#[derive(Debug, Deserialize)]
pub struct CallParams {
    /// `next_cursor` of the previous page of the queue.
    pub cursor: Option<String>,
    /// A confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: [&str; 5] = [
    "committee.created",
    "committee.opened",
    "committee.closed",
    "committee.approved",
    "committee.rejected",
];

fn item(t: crate::i18n::Tr, r: ReviewItem) -> QueueItem {
    let history = r
        .earlier_requests
        .iter()
        .map(|(e, call): &(AllocationRequest, String)| HistoryRow {
            call: call.clone(),
            state: e.state.as_str(),
            requested: format::gpu_hours(t, e.requested.get()),
            granted: e
                .granted
                .map_or_else(|| "—".to_owned(), |g| format::gpu_hours(t, g.get())),
            filed: format::time(e.created_at),
            reason: e.decision_reason.clone().unwrap_or_default(),
        })
        .collect();
    let grants = r
        .grants
        .iter()
        .map(|g| GrantRow {
            gpu_model: g.gpu_model.clone(),
            granted: format::gpu_hours(t, g.standing.allocated()),
            used: format::gpu_hours(t, g.standing.used),
            left: format::gpu_hours(t, g.standing.balance),
            valid: format!(
                "{} – {}",
                format::time(g.valid_from),
                format::time(g.valid_until)
            ),
        })
        .collect();
    QueueItem {
        id: r.request.id.to_string(),
        project: format!("{} / {}", r.organization, r.project),
        requested: format::gpu_hours(t, r.request.requested.get()),
        filed: format::time(r.request.created_at),
        typed_hours: r.request.requested.whole_gpu_hours().to_string(),
        justification: r.request.justification,
        history,
        grants,
        error: None,
        typed_reason: String::new(),
    }
}

/// Renders the call page, with a refused decision shown next to its request.
pub(super) async fn render(
    s: &Session,
    state: &WebState,
    id: CallId,
    cursor: Option<&str>,
    notice: Option<&str>,
    failure: Option<(Failure, StatusCode)>,
) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let t = s.t;
    let call = committee::reviewed_call(svc, &s.caller, id).await?;
    let page = PageRequest::parse(Some(20), cursor)?;
    let queue = committee::review_queue(svc, &s.caller, id, &page).await?;
    let grants = committee::consumption(svc, &s.caller, id).await?;
    let now = svc.clock.now();
    let (failure, status) = failure.map_or((None, StatusCode::OK), |(f, st)| (Some(f), st));
    let page = CallPage {
        c: Chrome::new(s, "allocations").with_notice(notice, &NOTICES),
        id: call.id.to_string(),
        title: call.title.clone(),
        description: call.description.clone(),
        state: call.state.as_str(),
        gpu_model: call.gpu_model.name(),
        pool: format::gpu_hours(t, call.pool.get()),
        granted: format::gpu_hours(t, call.granted.get()),
        remaining: format::gpu_hours(t, call.remaining().get()),
        opens: format::time(call.opens_at),
        closes: format::time(call.closes_at),
        period: format!(
            "{} – {}",
            format::time(call.period_start),
            format::time(call.period_end)
        ),
        queue: queue
            .items
            .into_iter()
            .map(|r| {
                let mut q = item(t, r);
                if let Some(f) = failure.as_ref().filter(|f| f.request_id == q.id) {
                    q.error = Some(f.message.clone());
                    q.typed_hours = f.hours.clone();
                    q.typed_reason = f.reason.clone();
                }
                q
            })
            .collect(),
        next: queue.next_cursor,
        failure,
        usage: consumption::build(t, &call, &grants, now),
    };
    let mut response = html(page.render())?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /admin/allocations/calls/{id}`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<CallParams>,
) -> WebResult<HttpResponse> {
    let id = id.into_inner().into();
    render(
        &s,
        &state,
        id,
        q.cursor.as_deref(),
        q.notice.as_deref(),
        None,
    )
    .await
}
