//! `/console/projects/{id}/allocation-requests`: the open calls, the project's requests
//! with their state, the form that files a request on a call, and withdrawal of a
//! submitted one. Who may file or withdraw is the domain's decision (project leads,
//! organisation admins); its refusal is shown with the form.

use super::project::{ProjectHead, project_head};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms::{self, FormErrors};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::allocation_requests::{self as requests, NewRequest, RequestState};
use aion_services::calls::{self, CallState};
use aion_services::ids::{AllocationRequestId, CallId, ProjectId};
use aion_services::pagination::PageRequest;
use aion_services::researcher;
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use uuid::Uuid;

/// Requests per page.
const PER_PAGE: u64 = 25;

/// An open call.
pub struct CallRow {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// GPU model.
    pub gpu_model: String,
    /// Hours left in the pool.
    pub remaining: String,
    /// Accepts requests until.
    pub closes: String,
    /// Grants valid from–until.
    pub period: String,
}

/// A request of the project.
pub struct RequestRow {
    /// Id.
    pub id: String,
    /// The call's title.
    pub call: String,
    /// Hours asked for.
    pub requested: String,
    /// Hours granted.
    pub granted: String,
    /// State name.
    pub state: &'static str,
    /// The committee's reason.
    pub reason: String,
    /// Filed at.
    pub filed: String,
    /// Still submitted (may be withdrawn).
    pub pending: bool,
}

/// What the filing form posts.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RequestForm {
    /// Call id.
    #[serde(default)]
    pub call: String,
    /// Whole GPU-hours.
    #[serde(default)]
    pub gpu_hours: String,
    /// Why.
    #[serde(default)]
    pub justification: String,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

#[derive(Template)]
#[template(path = "console/allocation_requests.html")]
struct RequestsPage {
    c: Chrome,
    p: ProjectHead,
    calls: Vec<CallRow>,
    requests: Vec<RequestRow>,
    next: Option<String>,
    form: RequestForm,
    idem: String,
    errors: FormErrors,
}

/// `?cursor=&notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Next page of requests.
    pub cursor: Option<String>,
    /// Confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: &[&str] = &["console.request_filed", "console.request_withdrawn"];

async fn render(
    s: &Session,
    state: &WebState,
    id: Uuid,
    q: &PageQuery,
    form: RequestForm,
    errors: FormErrors,
) -> WebResult<RequestsPage> {
    let svc = &state.services;
    let t = s.t;
    let head = project_head(svc, &s.caller, id).await?;
    let now = svc.clock.now();
    let open = calls::list(
        svc,
        &s.caller,
        Some(CallState::Open),
        &PageRequest::parse(Some(100), None)?,
    )
    .await?
    .items;
    let mut titles: HashMap<CallId, String> =
        open.iter().map(|c| (c.id, c.title.clone())).collect();
    let call_rows = open
        .into_iter()
        .filter(|c| c.opens_at <= now && now < c.closes_at)
        .map(|c| CallRow {
            id: c.id.to_string(),
            remaining: format::gpu_hours(t, c.remaining().get()),
            gpu_model: c.gpu_model.to_string(),
            closes: format::time(c.closes_at),
            period: format!(
                "{} – {}",
                format::time(c.period_start),
                format::time(c.period_end)
            ),
            title: c.title,
        })
        .collect();
    let page = PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref())?;
    let found = researcher::project_requests(svc, &s.caller, ProjectId(id), &page).await?;
    let mut rows = Vec::with_capacity(found.items.len());
    for r in found.items {
        if let Entry::Vacant(slot) = titles.entry(r.call_id) {
            // Closed calls are not in the open list; at most one read per page row.
            let title = match calls::get(svc, &s.caller, r.call_id).await {
                Ok(call) => call.title,
                // A call the person may no longer see is named by its id.
                Err(aion_services::Error::NotFound(_)) => r.call_id.to_string(),
                Err(e) => return Err(e.into()),
            };
            slot.insert(title);
        }
        rows.push(RequestRow {
            id: r.id.to_string(),
            call: titles.get(&r.call_id).cloned().unwrap_or_default(),
            requested: format::gpu_hours(t, r.requested.get()),
            granted: r
                .granted
                .map_or_else(|| "—".to_owned(), |g| format::gpu_hours(t, g.get())),
            state: r.state.as_str(),
            reason: r.decision_reason.unwrap_or_default(),
            filed: format::time(r.created_at),
            pending: r.state == RequestState::Submitted,
        });
    }
    let next = found.next_cursor.as_deref().map(|c| {
        forms::link(
            &format!("/console/projects/{id}/allocation-requests"),
            &[("cursor", Some(c))],
        )
    });
    Ok(RequestsPage {
        c: Chrome::new(s, "console").with_notice(q.notice.as_deref(), NOTICES),
        p: head,
        calls: call_rows,
        requests: rows,
        next,
        form,
        idem: forms::new_idempotency_key(),
        errors,
    })
}

/// `GET /console/projects/{id}/allocation-requests`: anyone who may see the project.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    let page = render(
        &s,
        &state,
        *id,
        &q,
        RequestForm::default(),
        FormErrors::default(),
    )
    .await?;
    html(page.render())
}

/// Reads the form into the call and the request, or the messages to show.
pub fn parse(
    project: Uuid,
    form: &RequestForm,
) -> WebResult<Result<(CallId, NewRequest), FormErrors>> {
    let mut errors = FormErrors::default();
    let call = Uuid::parse_str(form.call.trim())
        .map_err(|_| errors.add("call", "choose an open call"))
        .ok();
    let hours = form
        .gpu_hours
        .trim()
        .parse::<i64>()
        .map_err(|_| errors.add("gpu_hours", "must be a whole number of GPU-hours"))
        .ok();
    let (Some(call), Some(hours)) = (call, hours) else {
        return Ok(Err(errors));
    };
    match NewRequest::parse(project, hours, &form.justification) {
        Ok(cmd) if errors.is_empty() => Ok(Ok((CallId(call), cmd))),
        Ok(_) => Ok(Err(errors)),
        Err(e) => Ok(Err(FormErrors::from_service(e, FIELDS)?)),
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("gpu_hours", "gpu_hours"),
    ("justification", "justification"),
];

/// `POST /console/projects/{id}/allocation-requests`: files a request.
pub async fn file(
    post: FormPost<RequestForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let id = *id;
    let FormPost { session: s, form } = post;
    let errors = match parse(id, &form)? {
        Ok((call, cmd)) => {
            let key = forms::idempotency_key(form.idem.as_deref())?;
            match requests::file(&state.services, &s.caller, call, cmd, key.as_ref()).await {
                Ok(_) => {
                    return Ok(see_other(&forms::with_notice(
                        &format!("/console/projects/{id}/allocation-requests"),
                        "console.request_filed",
                    )));
                }
                Err(e) => FormErrors::from_service(e, FIELDS)?,
            }
        }
        Err(errors) => errors,
    };
    let page = render(&s, &state, id, &PageQuery::default(), form, errors).await?;
    forms::invalid(page.render())
}

/// `POST /console/projects/{id}/allocation-requests/{request}/withdraw`.
pub async fn withdraw(
    post: FormPost<forms::Empty>,
    state: web::Data<WebState>,
    path: web::Path<(Uuid, Uuid)>,
) -> WebResult<HttpResponse> {
    let (project, request) = path.into_inner();
    requests::withdraw(
        &state.services,
        &post.session.caller,
        AllocationRequestId(request),
    )
    .await?;
    Ok(see_other(&forms::with_notice(
        &format!("/console/projects/{project}/allocation-requests"),
        "console.request_withdrawn",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(call: &str, hours: &str, why: &str) -> RequestForm {
        RequestForm {
            call: call.into(),
            gpu_hours: hours.into(),
            justification: why.into(),
            idem: None,
        }
    }

    #[test]
    fn a_complete_request_names_its_call() {
        let call = Uuid::now_v7();
        let (found, _) = parse(
            Uuid::now_v7(),
            &form(&call.to_string(), "500", "Climate runs"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(found, CallId(call));
    }

    #[test]
    fn bad_call_and_hours_each_get_a_message() {
        let errors = parse(Uuid::now_v7(), &form("", "lots", "x"))
            .unwrap()
            .unwrap_err();
        assert!(errors.field("call").is_some());
        assert!(errors.field("gpu_hours").is_some());
        let errors = parse(
            Uuid::now_v7(),
            &form(&Uuid::now_v7().to_string(), "0", "why"),
        )
        .unwrap()
        .unwrap_err();
        assert!(errors.field("gpu_hours").is_some(), "{errors:?}");
    }
}
