//! `/console`: the researcher's dashboard: their projects, each project's grants (hours
//! used and left) and its live leases.

use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::authz::{Grant, OrgRole};
use aion_services::{console, organizations};
use askama::Template;

/// A grant as the dashboard shows it.
pub struct GrantRow {
    /// GPU model.
    pub gpu_model: String,
    /// Hours allocated, used, held and left.
    pub allocated: String,
    /// Used.
    pub used: String,
    /// Held by live leases.
    pub held: String,
    /// Left.
    pub left: String,
    /// Committed percentage (held + used), for the meter.
    pub committed_pct: u32,
    /// Valid until.
    pub valid_until: String,
}

/// A live lease as the dashboard shows it.
pub struct LeaseRow {
    /// Id.
    pub id: String,
    /// `3 × 1g.10gb`.
    pub what: String,
    /// State name.
    pub state: &'static str,
    /// Since.
    pub since: String,
}

/// A project card.
pub struct ProjectCard {
    /// Id.
    pub id: String,
    /// `org / project`.
    pub title: String,
    /// Caller's role.
    pub role: String,
    /// Grants.
    pub grants: Vec<GrantRow>,
    /// Live leases.
    pub leases: Vec<LeaseRow>,
    /// Live leases not listed (see the project page).
    pub more_leases: usize,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    c: Chrome,
    projects: Vec<ProjectCard>,
    /// (id, name) of the organisations whose billing the person reads.
    billing: Vec<(String, String)>,
}

/// `GET /console`.
pub async fn show(s: Session, state: web::Data<WebState>) -> WebResult<HttpResponse> {
    let svc = &state.services;
    let t = s.t;
    let mine = console::my_projects(svc, &s.caller).await?;
    // A few queries for every project at once: the page is refreshed every few seconds.
    let mut board = console::dashboard(svc, &mine).await?;
    let mut cards = Vec::with_capacity(mine.len());
    for m in mine {
        let id = m.project.id;
        let grant_rows = board
            .grants
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|g| GrantRow {
                gpu_model: g.gpu_model.to_string(),
                allocated: format::gpu_hours(t, g.standing.allocated()),
                used: format::gpu_hours(t, g.standing.used),
                held: format::gpu_hours(t, g.standing.held),
                left: format::gpu_hours(t, g.standing.balance),
                committed_pct: format::percent(
                    g.standing.used + g.standing.held,
                    g.standing.allocated(),
                ),
                valid_until: format::time(g.valid_until),
            })
            .collect();
        let lease_rows = board
            .live_leases
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|l| LeaseRow {
                id: l.id.to_string(),
                what: format!("{} × {}", l.count, l.profile),
                state: l.state.as_str(),
                since: format::time(l.created_at),
            })
            .collect();
        cards.push(ProjectCard {
            id: id.to_string(),
            title: format!("{} / {}", m.organization.name, m.project.name),
            role: m.role,
            grants: grant_rows,
            leases: lease_rows,
            more_leases: board.more_leases.remove(&id).unwrap_or(0),
        });
    }
    let mut billing = Vec::new();
    for g in &s.caller.grants {
        if let Grant::Organization(org, OrgRole::Admin | OrgRole::Billing) = g {
            let o = organizations::get(svc, &s.caller, *org).await?;
            billing.push((o.id.to_string(), o.name));
        }
    }
    html(
        Dashboard {
            c: Chrome::new(&s, "console"),
            projects: cards,
            billing,
        }
        .render(),
    )
}
