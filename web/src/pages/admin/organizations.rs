//! `/admin/organizations`: the consortium's organisations (paginated), one
//! organisation's projects and members, and the form that creates an organisation.

use super::{FormErrors, PageQuery, require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms;
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::organizations::{self as orgs, NewOrganization, Organization};
use aion_services::pagination::PageRequest;
use aion_services::values::OrganizationKind;
use aion_services::{operator_views, projects};
use askama::Template;
use serde::Deserialize;

/// Most projects and members an organisation page lists.
const SHOWN: u64 = 200;

#[derive(Template)]
#[template(path = "admin/organizations.html")]
struct ListPage {
    c: Chrome,
    can_act: bool,
    orgs: Vec<Organization>,
    next: Option<String>,
}

/// `GET /admin/organizations`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let page = PageRequest::parse(Some(50), q.cursor.as_deref())?;
    let page = orgs::list(&state.services, &s.caller, &page).await?;
    html(
        ListPage {
            c: Chrome::new(&s, "admin").with_notice(q.notice.as_deref(), &["admin.org.created"]),
            can_act: s.caller.is_platform_admin(),
            orgs: page.items,
            next: page.next_cursor,
        }
        .render(),
    )
}

/// The create form's fields, kept as typed when the form comes back with problems.
#[derive(Debug, Default, Deserialize)]
pub struct OrgForm {
    /// Short name.
    #[serde(default)]
    pub slug: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Country code.
    #[serde(default)]
    pub country: String,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/organization_new.html")]
struct NewPage {
    c: Chrome,
    can_act: bool,
    form: OrgForm,
    kinds: Vec<&'static str>,
    /// Idempotency key of the form, minted with the page.
    idem: String,
    problems: FormErrors,
    shown: &'static [&'static str],
}

/// Fields the form shows next to an input.
const SHOWN_FIELDS: &[&str] = &["slug", "name", "kind", "country"];

fn kinds() -> Vec<&'static str> {
    OrganizationKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// `GET /admin/organizations/new`.
pub async fn new(s: Session) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    html(
        NewPage {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            form: OrgForm {
                country: "FR".into(),
                kind: "academic".into(),
                ..OrgForm::default()
            },
            kinds: kinds(),
            idem: forms::new_idempotency_key(),
            problems: FormErrors::default(),
            shown: SHOWN_FIELDS,
        }
        .render(),
    )
}

/// `POST /admin/organizations`: creates it (platform admins), then shows it.
pub async fn create(
    post: FormPost<OrgForm>,
    state: web::Data<WebState>,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    require_operator(&s)?;
    let country = Some(form.country.trim()).filter(|c| !c.is_empty());
    let key = forms::idempotency_key(form.idem.as_deref())?;
    let created = match NewOrganization::parse(&form.slug, &form.name, &form.kind, country) {
        Ok(cmd) => orgs::create(&state.services, &s.caller, cmd, key.as_ref()).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(org) => Ok(see_other(&format!(
            "/admin/organizations/{}?notice=admin.org.created",
            org.id
        ))),
        Err(e) => unprocessable(
            NewPage {
                c: Chrome::new(&s, "admin"),
                can_act: s.caller.is_platform_admin(),
                form,
                kinds: kinds(),
                // A fresh key: the refused form created nothing.
                idem: forms::new_idempotency_key(),
                problems: FormErrors::from_error(e)?,
                shown: SHOWN_FIELDS,
            }
            .render(),
        ),
    }
}

/// A member as the organisation page lists it.
struct MemberRow {
    who: String,
    email: String,
    role: String,
    /// The project, for a project role.
    project: String,
    since: String,
}

#[derive(Template)]
#[template(path = "admin/organization.html")]
struct ShowPage {
    c: Chrome,
    can_act: bool,
    org: Organization,
    created: String,
    projects: Vec<projects::Project>,
    more_projects: bool,
    members: Vec<MemberRow>,
    more_members: bool,
}

/// `GET /admin/organizations/{id}`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let svc = &state.services;
    let org = orgs::get(svc, &s.caller, super::path_id(&id)?.into()).await?;
    let page = PageRequest::parse(Some(SHOWN), None)?;
    let projects = projects::list(svc, &s.caller, org.id, &page).await?;
    let (members, more_members) =
        operator_views::organization_members(svc, &s.caller, org.id).await?;
    html(
        ShowPage {
            c: Chrome::new(&s, "admin").with_notice(q.notice.as_deref(), &["admin.org.created"]),
            can_act: s.caller.is_platform_admin(),
            created: format::time(org.created_at),
            org,
            more_projects: projects.next_cursor.is_some(),
            projects: projects.items,
            more_members,
            members: members
                .into_iter()
                .map(|m| MemberRow {
                    who: m.who,
                    email: m.email.unwrap_or_default(),
                    role: m.role,
                    project: m.project.unwrap_or_default(),
                    since: format::time(m.since),
                })
                .collect(),
        }
        .render(),
    )
}
