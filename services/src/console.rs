//! Read models of the web console that no API route needs as such: the projects a
//! person works in, across organisations, and what the dashboard shows of them.

use crate::Services;
use crate::authz::{Caller, Grant};
use crate::entities::{grants, leases, organizations as orgs, projects};
use crate::error::Result;
use crate::ids::ProjectId;
use crate::lease_state::LeaseState;
use crate::organizations::Organization;
use crate::projects::Project;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;

/// Most projects the dashboard lists.
pub const MAX_MY_PROJECTS: u64 = 200;

/// A project the caller works in, with its organisation and the caller's role there.
#[derive(Clone, Debug)]
pub struct MyProject {
    /// The project.
    pub project: Project,
    /// Its organisation.
    pub organization: Organization,
    /// The caller's project role, or its organisation role when it reaches the project
    /// through the organisation.
    pub role: String,
}

/// The projects the caller is a member of, directly or through an organisation role
/// (allocator roles excepted: reviewing a call is not working in its projects), by
/// organisation then project slug.
pub async fn my_projects(svc: &Services, caller: &Caller) -> Result<Vec<MyProject>> {
    let mut cond = Condition::any();
    let mut any = false;
    for g in &caller.grants {
        match g {
            Grant::Project(_, p, _) => {
                cond = cond.add(projects::Column::Id.eq(p.0));
                any = true;
            }
            Grant::Organization(o, role) if *role != crate::authz::OrgRole::Allocator => {
                cond = cond.add(projects::Column::OrganizationId.eq(o.0));
                any = true;
            }
            _ => {}
        }
    }
    if !any {
        return Ok(Vec::new());
    }
    let rows = projects::Entity::find()
        .filter(cond)
        .order_by_asc(projects::Column::Slug)
        .limit(MAX_MY_PROJECTS)
        .all(&svc.db)
        .await?;
    let org_ids: Vec<uuid::Uuid> = rows.iter().map(|p| p.organization_id).collect();
    let org_rows = orgs::Entity::find()
        .filter(orgs::Column::Id.is_in(org_ids))
        .all(&svc.db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(org) = org_rows.iter().find(|o| o.id == row.organization_id) else {
            continue;
        };
        let organization = crate::organizations::from_model(org.clone())?;
        let project = crate::projects::from_model(row);
        let role = caller
            .project_role(project.id)
            .map(|r| r.as_str().to_owned())
            .or_else(|| {
                caller
                    .org_role(organization.id)
                    .map(|r| r.as_str().to_owned())
            })
            .unwrap_or_default();
        out.push(MyProject {
            project,
            organization,
            role,
        });
    }
    out.sort_by(|a, b| {
        (&a.organization.slug, &a.project.slug).cmp(&(&b.organization.slug, &b.project.slug))
    });
    Ok(out)
}

/// How many live leases the dashboard shows per project.
pub const DASHBOARD_LEASES_PER_PROJECT: usize = 50;

/// What the dashboard shows of the caller's projects, read in a few queries for all of
/// them: the grants that have not ended (with their ledger standing) and the live leases.
#[derive(Debug, Default)]
pub struct Dashboard {
    /// Grants that have not ended (valid now or later), by project, ending soonest first.
    pub grants: HashMap<ProjectId, Vec<crate::grants::Grant>>,
    /// Live leases, by project, newest first (at most [`DASHBOARD_LEASES_PER_PROJECT`]).
    pub live_leases: HashMap<ProjectId, Vec<LiveLease>>,
    /// Live leases per project beyond those listed.
    pub more_leases: HashMap<ProjectId, usize>,
}

/// A live lease as the dashboard lists it.
#[derive(Clone, Debug)]
pub struct LiveLease {
    /// Id.
    pub id: crate::ids::LeaseId,
    /// Profile name.
    pub profile: String,
    /// Instances.
    pub count: i32,
    /// State (one of the live ones).
    pub state: LeaseState,
    /// Requested at.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Reads the dashboard of `mine` (the result of [`my_projects`], so already visible).
#[tracing::instrument(skip_all, err, fields(projects = mine.len()))]
pub async fn dashboard(svc: &Services, mine: &[MyProject]) -> Result<Dashboard> {
    let ids: Vec<uuid::Uuid> = mine.iter().map(|m| m.project.id.0).collect();
    let mut out = Dashboard::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let now = svc.clock.now();
    let rows = grants::Entity::find()
        .filter(grants::Column::ProjectId.is_in(ids.clone()))
        .filter(grants::Column::ValidUntil.gt(now))
        .order_by_asc(grants::Column::ValidUntil)
        .all(&svc.db)
        .await?;
    for g in crate::grants::with_ledger(&svc.db, rows).await? {
        out.grants.entry(g.project_id).or_default().push(g);
    }
    let live = leases::Entity::find()
        .filter(leases::Column::ProjectId.is_in(ids))
        .filter(leases::Column::State.is_in(LeaseState::live_names()))
        .order_by_desc(leases::Column::Id)
        .all(&svc.db)
        .await?;
    for l in live {
        let project = ProjectId(l.project_id);
        let list = out.live_leases.entry(project).or_default();
        if list.len() < DASHBOARD_LEASES_PER_PROJECT {
            list.push(LiveLease {
                id: l.id.into(),
                profile: l.profile,
                count: l.count,
                state: LeaseState::parse("state", &l.state).map_err(|_| {
                    crate::Error::Internal(format!("unknown lease state {}", l.state))
                })?,
                created_at: l.created_at,
            });
        } else {
            *out.more_leases.entry(project).or_default() += 1;
        }
    }
    Ok(out)
}
