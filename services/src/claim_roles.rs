//! Roles given by an identity provider's claims at sign-in (the console's claim rules,
//! e.g. "members of the `genci-committee` group are allocators of GENCI"). A rule only
//! adds what is missing: roles given by hand are never changed or taken away here, and a
//! rule naming an unknown organisation or project, or a role its scope refuses, is logged
//! and skipped, so a stale rule cannot lock people out. Rules are parsed when the server
//! starts ([`RoleBySlug::parse`]), so a malformed one stops the start, not the sign-ins.

use crate::Services;
use crate::authz::{Caller, OrgRole, PlatformRole, ProjectRole};
use crate::entities::{memberships, organizations, projects};
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId, UserId};
use crate::members::{self, MemberRef};
use crate::scope::Scope;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// A role named by slugs, as a claim rule gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleBySlug {
    /// A platform role.
    Platform(PlatformRole),
    /// A role in an organisation.
    Organization {
        /// Organisation slug.
        organization: String,
        /// Role name.
        role: String,
    },
    /// A role in a project.
    Project {
        /// Organisation slug.
        organization: String,
        /// Project slug.
        project: String,
        /// Role name.
        role: String,
    },
}

impl RoleBySlug {
    /// Parses a rule's grant: scope `platform` (role), `organization` (organisation,
    /// role) or `project` (organisation, project, role).
    pub fn parse(
        scope: &str,
        organization: Option<&str>,
        project: Option<&str>,
        role: &str,
    ) -> Result<Self> {
        match (scope, organization, project) {
            ("platform", None, None) => Ok(Self::Platform(PlatformRole::parse("role", role)?)),
            ("organization", Some(o), None) => Ok(Self::Organization {
                organization: o.to_owned(),
                role: OrgRole::parse("role", role)?.as_str().to_owned(),
            }),
            ("project", Some(o), Some(p)) => Ok(Self::Project {
                organization: o.to_owned(),
                project: p.to_owned(),
                role: ProjectRole::parse("role", role)?.as_str().to_owned(),
            }),
            _ => Err(Error::invalid(
                "grant",
                "scope must be platform (role), organization (organization, role) or project (organization, project, role)",
            )),
        }
    }
}

async fn org_by_slug(svc: &Services, slug: &str) -> Result<Option<OrganizationId>> {
    Ok(organizations::Entity::find()
        .filter(organizations::Column::Slug.eq(slug))
        .one(&svc.db)
        .await?
        .map(|o| OrganizationId(o.id)))
}

async fn scope_of(svc: &Services, role: &RoleBySlug) -> Result<Option<Scope>> {
    match role {
        RoleBySlug::Platform(_) => Ok(None),
        RoleBySlug::Organization { organization, .. } => Ok(org_by_slug(svc, organization)
            .await?
            .map(Scope::Organization)),
        RoleBySlug::Project {
            organization,
            project,
            ..
        } => {
            let Some(org) = org_by_slug(svc, organization).await? else {
                return Ok(None);
            };
            Ok(projects::Entity::find()
                .filter(projects::Column::OrganizationId.eq(org.0))
                .filter(projects::Column::Slug.eq(project.as_str()))
                .one(&svc.db)
                .await?
                .map(|p| Scope::Project(ProjectId(p.id))))
        }
    }
}

/// Gives `user` each role of `roles` it does not hold yet at that scope, audited as
/// done by Aion; returns how many were added.
#[tracing::instrument(skip_all, err, fields(user = %user))]
pub async fn grant_missing(
    svc: &Services,
    user: UserId,
    roles: &[RoleBySlug],
    request_id: &str,
) -> Result<usize> {
    let system = Caller::system(request_id);
    let held = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.0))
        .all(&svc.db)
        .await?;
    let mut added = 0;
    // One platform role per person: the first matching rule gives it, and a role held
    // already (given by hand) is never replaced.
    let mut has_platform = held.iter().any(|m| m.scope_key == "platform");
    for role in roles {
        if let RoleBySlug::Platform(p) = role {
            if has_platform {
                continue;
            }
            has_platform = true;
            crate::identity::give_platform_role(svc, &system, MemberRef::User(user), *p).await?;
            added += 1;
            continue;
        }
        let Some(scope) = scope_of(svc, role).await? else {
            tracing::warn!(
                ?role,
                "a claim rule names an unknown organisation or project"
            );
            continue;
        };
        if held.iter().any(|m| m.scope_key == scope.key()) {
            continue;
        }
        let name = match role {
            RoleBySlug::Organization { role, .. } | RoleBySlug::Project { role, .. } => role,
            RoleBySlug::Platform(_) => continue,
        };
        match members::add(svc, &system, scope, MemberRef::User(user), name, None).await {
            Ok(_) => added += 1,
            // A concurrent sign-in of the same person added it first.
            Err(Error::Conflict(_)) => {}
            // A rule that does not fit its scope (an allocator role in an organisation
            // that allocates nothing…) is skipped like an unknown slug: sign-in goes on.
            Err(Error::Validation(fields)) => {
                tracing::warn!(
                    ?role,
                    ?fields,
                    "a claim rule gives a role its scope refuses"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_a_bad_scope_or_role_are_refused_when_parsed() {
        assert!(RoleBySlug::parse("organization", Some("genci"), None, "allocator").is_ok());
        assert!(RoleBySlug::parse("project", Some("lab"), Some("llm"), "lead").is_ok());
        assert!(RoleBySlug::parse("platform", None, None, "platform-admin").is_ok());
        for (scope, org, project, role) in [
            ("organization", Some("genci"), None, "alocator"),
            ("project", Some("lab"), Some("llm"), "admin"),
            ("platform", None, None, "lead"),
            ("project", Some("lab"), None, "lead"),
            ("tenant", Some("lab"), None, "member"),
        ] {
            assert!(
                RoleBySlug::parse(scope, org, project, role).is_err(),
                "{scope} {role}"
            );
        }
    }
}
