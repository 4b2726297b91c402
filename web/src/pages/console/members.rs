//! `/console/projects/{id}/members`: who works in a project and with which role; its
//! leads (and organisation admins) add people (a member of the organisation, or an
//! identity: issuer and subject, as the API allows), change roles and remove people.

use super::member_form::{AddForm, FIELDS, parse_who};
use super::project::{ProjectHead, project_head};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms::Empty;
use crate::forms::{self, FormErrors};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::authz::Caller;
use aion_services::identity::User;
use aion_services::ids::{ProjectId, UserId};
use aion_services::members::{self, Member};
use aion_services::pagination::PageRequest;
use aion_services::scope::Scope;
use aion_services::{Error, Services, projects};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// Members per page.
const PER_PAGE: u64 = 50;
/// Project roles, least first.
pub const ROLES: [&str; 3] = ["viewer", "member", "lead"];

/// A member as listed.
pub struct MemberRow {
    /// User id.
    pub user_id: String,
    /// Name to show.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// `issuer` / `subject`.
    pub identity: String,
    /// Role.
    pub role: String,
    /// Since.
    pub since: String,
    /// The signed-in person themself.
    pub is_me: bool,
}

/// Someone of the organisation who could be added.
pub struct Candidate {
    /// User id.
    pub user_id: String,
    /// Name to show.
    pub name: String,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    c: Chrome,
    p: ProjectHead,
    members: Vec<MemberRow>,
    next: Option<String>,
    candidates: Vec<Candidate>,
    roles: [&'static str; 3],
    form: AddForm,
    idem: String,
    errors: FormErrors,
}

fn name_of(u: &User) -> String {
    u.display_name
        .clone()
        .or_else(|| u.email.clone())
        .unwrap_or_else(|| u.subject.clone())
}

/// `?cursor=&notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Next page.
    pub cursor: Option<String>,
    /// Confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: &[&str] = &[
    "console.member_added",
    "console.member_changed",
    "console.member_removed",
];

async fn render(
    s: &Session,
    state: &WebState,
    id: Uuid,
    q: &PageQuery,
    form: AddForm,
    errors: FormErrors,
) -> WebResult<MembersPage> {
    let svc = &state.services;
    let head = project_head(svc, &s.caller, id).await?;
    let page = PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref())?;
    let found = members::list(svc, &s.caller, Scope::Project(ProjectId(id)), &page).await?;
    let in_project: Vec<UserId> = found.items.iter().map(|m| m.user.id).collect();
    let candidates = if head.can_manage {
        org_people(svc, &s.caller, id)
            .await?
            .into_iter()
            .filter(|m| !in_project.contains(&m.user.id))
            .map(|m| Candidate {
                user_id: m.user.id.to_string(),
                name: name_of(&m.user),
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows = found
        .items
        .into_iter()
        .map(|m| MemberRow {
            user_id: m.user.id.to_string(),
            name: name_of(&m.user),
            email: m.user.email.clone().unwrap_or_default(),
            identity: format!("{} / {}", m.user.issuer, m.user.subject),
            role: m.role,
            since: format::time(m.since),
            is_me: m.user.id == s.user.id,
        })
        .collect();
    let next = found.next_cursor.as_deref().map(|c| {
        forms::link(
            &format!("/console/projects/{id}/members"),
            &[("cursor", Some(c))],
        )
    });
    Ok(MembersPage {
        c: Chrome::new(s, "console").with_notice(q.notice.as_deref(), NOTICES),
        p: head,
        members: rows,
        next,
        candidates,
        roles: ROLES,
        form,
        idem: forms::new_idempotency_key(),
        errors,
    })
}

/// The members of the project's organisation (at most 200), whom its leads may add by
/// name or e-mail; empty when the caller may not list them.
async fn org_people(svc: &Services, caller: &Caller, project: Uuid) -> WebResult<Vec<Member>> {
    let p = projects::get(svc, caller, ProjectId(project)).await?;
    let all = PageRequest::parse(Some(200), None)?;
    match members::list(svc, caller, Scope::Organization(p.organization_id), &all).await {
        Ok(page) => Ok(page.items),
        // A lead without a role in the organisation may not list it: nobody to offer.
        Err(Error::NotFound(_) | Error::Forbidden(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /console/projects/{id}/members`: anyone who may see the project; the forms only
/// for those who manage it.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    // Colleagues usually sign in through the same institution: offer its issuer (when
    // it is one people can be added by).
    let issuer = s
        .user
        .issuer
        .starts_with("https://")
        .then(|| s.user.issuer.clone());
    let form = AddForm {
        issuer,
        role: "member".into(),
        ..AddForm::default()
    };
    let page = render(&s, &state, *id, &q, form, FormErrors::default()).await?;
    html(page.render())
}

/// `POST /console/projects/{id}/members`: adds a person.
pub async fn add(
    post: FormPost<AddForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let id = *id;
    let FormPost { session: s, form } = post;
    let scope = Scope::Project(ProjectId(id));
    let people = org_people(&state.services, &s.caller, id).await?;
    let result = match (
        parse_who(&form, &people),
        forms::idempotency_key(form.idem.as_deref())?,
    ) {
        (Ok(who), key) => {
            members::add(
                &state.services,
                &s.caller,
                scope,
                who,
                &form.role,
                key.as_ref(),
            )
            .await
        }
        (Err(e), _) => Err(e),
    };
    let errors = match result {
        Ok(_) => {
            return Ok(see_other(&forms::with_notice(
                &format!("/console/projects/{id}/members"),
                "console.member_added",
            )));
        }
        // A person outside the organisation chosen by id is "not found": say it here.
        Err(Error::NotFound("user")) => {
            let mut errors = FormErrors::default();
            errors.add("user", "this person is not in the organisation");
            errors
        }
        Err(e) => FormErrors::from_service(e, FIELDS)?,
    };
    let page = render(&s, &state, id, &PageQuery::default(), form, errors).await?;
    forms::invalid(page.render())
}

/// What the role form posts.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    /// The new role.
    pub role: String,
}

/// `POST /console/projects/{id}/members/{user}/role`: changes a member's role.
pub async fn set_role(
    post: FormPost<RoleForm>,
    state: web::Data<WebState>,
    path: web::Path<(Uuid, Uuid)>,
) -> WebResult<HttpResponse> {
    let (id, user) = path.into_inner();
    members::set_role(
        &state.services,
        &post.session.caller,
        Scope::Project(ProjectId(id)),
        UserId(user),
        &post.form.role,
    )
    .await?;
    Ok(see_other(&forms::with_notice(
        &format!("/console/projects/{id}/members"),
        "console.member_changed",
    )))
}

/// `POST /console/projects/{id}/members/{user}/remove`: removes a member.
pub async fn remove(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    path: web::Path<(Uuid, Uuid)>,
) -> WebResult<HttpResponse> {
    let (id, user) = path.into_inner();
    members::remove(
        &state.services,
        &post.session.caller,
        Scope::Project(ProjectId(id)),
        UserId(user),
    )
    .await?;
    Ok(see_other(&forms::with_notice(
        &format!("/console/projects/{id}/members"),
        "console.member_removed",
    )))
}
