//! The scope of a membership or token: an organisation or a project, and its roles.

use crate::authz::{Caller, OrgRole, ProjectRole};
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId};
use crate::values::OrganizationKind;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

/// Where a membership or token applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// An organisation.
    Organization(OrganizationId),
    /// A project.
    Project(ProjectId),
}

/// A scope checked against the caller, with its organisation.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    /// The organisation (of the project, for project scopes).
    pub organization_id: OrganizationId,
    /// The project, for project scopes.
    pub project_id: Option<ProjectId>,
    /// Kind of the organisation (allocator roles need an allocator organisation).
    pub organization_kind: OrganizationKind,
    /// Whether the caller may manage members and tokens here.
    pub manageable: bool,
}

/// A role valid in some scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopedRole {
    /// Organisation role.
    Organization(OrgRole),
    /// Project role.
    Project(ProjectRole),
}

impl ScopedRole {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopedRole::Organization(r) => r.as_str(),
            ScopedRole::Project(r) => r.as_str(),
        }
    }
}

impl Scope {
    /// The `memberships.scope_key` value.
    pub fn key(&self) -> String {
        match self {
            Scope::Organization(id) => format!("org:{id}"),
            Scope::Project(id) => format!("project:{id}"),
        }
    }

    /// Checks the caller may see the scope (404 otherwise) and says whether it may manage it.
    pub async fn resolve(&self, db: &impl ConnectionTrait, caller: &Caller) -> Result<Resolved> {
        match *self {
            Scope::Organization(org) => {
                let o = crate::organizations::load_visible(db, caller, org).await?;
                Ok(Resolved {
                    organization_id: org,
                    project_id: None,
                    organization_kind: o.kind,
                    manageable: caller.can_admin_org(org),
                })
            }
            Scope::Project(project) => {
                let p = crate::projects::load_visible(db, caller, project).await?;
                // The caller may see the project, hence its organisation's kind.
                let org =
                    crate::organizations::load_visible(db, &Caller::system(""), p.organization_id)
                        .await?;
                Ok(Resolved {
                    organization_id: p.organization_id,
                    project_id: Some(project),
                    organization_kind: org.kind,
                    manageable: caller.can_manage_project(p.organization_id, project),
                })
            }
        }
    }

    /// Parses a role name valid in this scope. The allocator role needs an allocator
    /// organisation and a platform admin granting it.
    pub fn parse_role(
        &self,
        resolved: &Resolved,
        caller: &Caller,
        raw: &str,
    ) -> Result<ScopedRole> {
        match self {
            Scope::Project(_) => Ok(ScopedRole::Project(ProjectRole::parse("role", raw)?)),
            Scope::Organization(_) => {
                let role = OrgRole::parse("role", raw)?;
                if role == OrgRole::Allocator {
                    if resolved.organization_kind != OrganizationKind::Allocator {
                        return Err(Error::invalid(
                            "role",
                            "allocator is only valid in an organisation of kind allocator",
                        ));
                    }
                    if !caller.is_platform_admin() {
                        return Err(Error::Forbidden(
                            "only platform admins grant the allocator role".into(),
                        ));
                    }
                }
                Ok(ScopedRole::Organization(role))
            }
        }
    }

    /// Parses a stored role name for this scope.
    pub fn stored_role(&self, raw: &str) -> Result<ScopedRole> {
        match self {
            Scope::Project(_) => ProjectRole::parse("role", raw).map(ScopedRole::Project),
            Scope::Organization(_) => OrgRole::parse("role", raw).map(ScopedRole::Organization),
        }
        .map_err(|_| Error::Internal(format!("unknown stored role {raw}")))
    }
}
