//! Read models of the web console that no API route needs as such: the projects a
//! person works in, across organisations.

use crate::Services;
use crate::authz::{Caller, Grant};
use crate::entities::{organizations as orgs, projects};
use crate::error::Result;
use crate::organizations::Organization;
use crate::projects::Project;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

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
