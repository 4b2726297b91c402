//! `/console/projects/{id}`: a project's grants, its leases (live states refreshed,
//! filtered by state, paginated) and the form that requests slices.

use super::request_form::{LeaseForm, ProfileOption, profile_options};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms::{self, FormErrors};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::authz::Caller;
use aion_services::ids::ProjectId;
use aion_services::lease_state::LeaseState;
use aion_services::pagination::PageRequest;
use aion_services::{Services, grants, leases, organizations, projects};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// Leases per page.
const LEASES_PER_PAGE: u64 = 25;

/// What every project page shows at its top, and what the caller may do there.
pub struct ProjectHead {
    /// Id.
    pub id: String,
    /// Project name.
    pub name: String,
    /// Organisation name.
    pub org_name: String,
    /// Description.
    pub description: String,
    /// The caller may manage members, tokens and allocation requests (lead, org admin).
    pub can_manage: bool,
    /// The caller may request and release slices (member, lead, org admin).
    pub can_use: bool,
}

/// Loads a project's head for the caller (404 for a project it may not see).
pub async fn project_head(svc: &Services, caller: &Caller, id: Uuid) -> WebResult<ProjectHead> {
    let project = projects::get(svc, caller, ProjectId(id)).await?;
    let org = organizations::get(svc, caller, project.organization_id).await?;
    let can_use = leases::can_use(caller, org.id, project.id);
    Ok(ProjectHead {
        id: project.id.to_string(),
        name: project.name,
        org_name: org.name,
        description: project.description,
        can_manage: caller.can_manage_project(org.id, project.id),
        can_use,
    })
}

/// A grant row.
pub struct GrantRow {
    /// GPU model.
    pub gpu_model: String,
    /// Hours allocated.
    pub allocated: String,
    /// Used.
    pub used: String,
    /// Held by live leases.
    pub held: String,
    /// Left.
    pub left: String,
    /// Valid from–until.
    pub valid: String,
}

/// A lease row.
pub struct LeaseRow {
    /// Id.
    pub id: String,
    /// `2 × 1g.10gb`.
    pub what: String,
    /// GPU model.
    pub gpu_model: String,
    /// State name.
    pub state: &'static str,
    /// Whether it still holds resources (then it may be released).
    pub live: bool,
    /// Requested at.
    pub created: String,
    /// Ends at.
    pub ends: String,
}

#[derive(Template)]
#[template(path = "console/project.html")]
struct ProjectPage {
    c: Chrome,
    p: ProjectHead,
    grants: Vec<GrantRow>,
    leases: Vec<LeaseRow>,
    states: Vec<&'static str>,
    state: String,
    next: Option<String>,
    profiles: Vec<ProfileOption>,
    form: LeaseForm,
    idem: String,
    errors: FormErrors,
}

/// `?state=&cursor=&notice=` of the project page.
#[derive(Debug, Deserialize)]
pub struct ProjectQuery {
    /// Only leases in this state.
    pub state: Option<String>,
    /// Next page.
    pub cursor: Option<String>,
    /// Confirmation to show.
    pub notice: Option<String>,
}

/// Notices this page shows.
const NOTICES: &[&str] = &["console.lease_released"];

async fn render(
    s: &Session,
    state: &WebState,
    id: Uuid,
    q: &ProjectQuery,
    form: LeaseForm,
    errors: FormErrors,
) -> WebResult<ProjectPage> {
    let svc = &state.services;
    let t = s.t;
    let head = project_head(svc, &s.caller, id).await?;
    let now = svc.clock.now();
    let grant_list = grants::current_for_project(svc, &s.caller, ProjectId(id)).await?;
    let models: Vec<_> = grant_list
        .iter()
        .filter(|g| g.valid_from <= now && now < g.valid_until)
        .map(|g| g.gpu_model)
        .collect();
    let grant_rows = grant_list
        .into_iter()
        .map(|g| GrantRow {
            gpu_model: g.gpu_model.to_string(),
            allocated: format::gpu_hours(t, g.standing.allocated()),
            used: format::gpu_hours(t, g.standing.used),
            held: format::gpu_hours(t, g.standing.held),
            left: format::gpu_hours(t, g.standing.balance),
            valid: format!(
                "{} – {}",
                format::time(g.valid_from),
                format::time(g.valid_until)
            ),
        })
        .collect();
    let filter = forms::optional(q.state.as_deref())
        .map(|raw| LeaseState::parse("state", raw))
        .transpose()?;
    let page = PageRequest::parse(Some(LEASES_PER_PAGE), q.cursor.as_deref())?;
    let lease_page = leases::list(svc, &s.caller, ProjectId(id), filter, &page).await?;
    let state_name = filter.map(|f| f.as_str().to_owned()).unwrap_or_default();
    let next = lease_page.next_cursor.as_deref().map(|c| {
        forms::link(
            &format!("/console/projects/{id}"),
            &[("state", Some(&state_name)), ("cursor", Some(c))],
        )
    });
    let lease_rows = lease_page
        .items
        .into_iter()
        .map(|l| LeaseRow {
            id: l.id.to_string(),
            what: format!("{} × {}", l.count, l.profile),
            gpu_model: l.gpu_model,
            state: l.state.as_str(),
            live: l.state.is_live(),
            created: format::time(l.created_at),
            ends: format::maybe_time(l.ends_at),
        })
        .collect();
    Ok(ProjectPage {
        c: Chrome::new(s, "console").with_notice(q.notice.as_deref(), NOTICES),
        p: head,
        grants: grant_rows,
        leases: lease_rows,
        states: LeaseState::ALL.iter().map(|s| s.as_str()).collect(),
        state: state_name,
        next,
        profiles: profile_options(&models),
        form,
        idem: forms::new_idempotency_key(),
        errors,
    })
}

/// `GET /console/projects/{id}`: anyone who may see the project.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<ProjectQuery>,
) -> WebResult<HttpResponse> {
    let page = render(
        &s,
        &state,
        id.into_inner(),
        &q,
        LeaseForm::blank(),
        FormErrors::default(),
    )
    .await?;
    html(page.render())
}

/// `POST /console/projects/{id}/leases`: requests slices (project members and leads,
/// organisation admins: the domain decides); on success, the new lease's page.
pub async fn create_lease(
    post: FormPost<LeaseForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let id = id.into_inner();
    let FormPost { session: s, form } = post;
    let errors = match form.parse()? {
        Ok(cmd) => {
            let key = forms::idempotency_key(form.idem.as_deref())?;
            match leases::create(&state.services, &s.caller, ProjectId(id), cmd, key.as_ref()).await
            {
                Ok(lease) => {
                    return Ok(see_other(&forms::with_notice(
                        &format!("/console/leases/{}", lease.id),
                        "console.lease_requested",
                    )));
                }
                Err(e) => super::request_form::errors_of(e)?,
            }
        }
        Err(errors) => errors,
    };
    let q = ProjectQuery {
        state: None,
        cursor: None,
        notice: None,
    };
    let page = render(&s, &state, id, &q, form, errors).await?;
    forms::invalid(page.render())
}
