//! Who may do what. Every decision about access is made here, never in handlers.
//!
//! Rule of visibility: a caller who may not *see* an object gets [`Error::NotFound`] (so
//! other tenants' ids reveal nothing); a caller who sees it but may not change it gets
//! [`Error::Forbidden`].

use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId, TokenId, UserId};
use serde::{Deserialize, Serialize};

/// Roles that apply to the whole platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformRole {
    /// Operates the platform: every action.
    PlatformAdmin,
    /// Reads everything, changes nothing.
    Auditor,
}

/// Roles in an organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrgRole {
    /// Reads the organisation and its projects.
    Member,
    /// Reads the organisation, its projects and (later) its invoices.
    Billing,
    /// Manages the organisation, its projects, members and tokens.
    Admin,
    /// Sits on an allocating organisation's committee (granted by platform admins only).
    Allocator,
}

/// Roles in a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProjectRole {
    /// Reads the project.
    Viewer,
    /// Uses the project's resources.
    Member,
    /// Manages the project, its members and tokens.
    Lead,
}

macro_rules! role_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stored and wire name of the role.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
            /// Parses a stored or wire name.
            pub fn parse(field: &str, raw: &str) -> Result<Self> {
                match raw {
                    $($name => Ok(Self::$variant),)*
                    _ => Err(Error::invalid(field, concat!("must be one of: ", $($name, " "),*).trim_end().to_owned())),
                }
            }
        }
    };
}
role_names!(PlatformRole { PlatformAdmin => "platform-admin", Auditor => "auditor" });
role_names!(OrgRole { Member => "member", Billing => "billing", Admin => "admin", Allocator => "allocator" });
role_names!(ProjectRole { Viewer => "viewer", Member => "member", Lead => "lead" });

/// One role held at one scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grant {
    /// A platform-wide role.
    Platform(PlatformRole),
    /// A role in one organisation.
    Organization(OrganizationId, OrgRole),
    /// A role in one project (with its organisation, so org-level reads can be decided).
    Project(OrganizationId, ProjectId, ProjectRole),
}

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A person signed in through OIDC.
    User(UserId),
    /// An Aion API token.
    Token(TokenId),
    /// Aion itself (bootstrap, seeding, scheduler).
    System,
}

impl Actor {
    /// The stable text used in audit events and idempotency scopes.
    pub fn key(&self) -> String {
        match self {
            Actor::User(id) => format!("user:{id}"),
            Actor::Token(id) => format!("token:{id}"),
            Actor::System => "system".to_owned(),
        }
    }
}

/// An authenticated caller with everything needed to decide access and audit actions.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who is acting.
    pub actor: Actor,
    /// Roles the actor holds.
    pub grants: Vec<Grant>,
    /// The request this action belongs to (also in logs and problems).
    pub request_id: String,
}

impl Caller {
    /// Aion itself, with platform-admin rights.
    pub fn system(request_id: impl Into<String>) -> Self {
        Self {
            actor: Actor::System,
            grants: vec![Grant::Platform(PlatformRole::PlatformAdmin)],
            request_id: request_id.into(),
        }
    }

    /// The caller's platform role, if any.
    pub fn platform_role(&self) -> Option<PlatformRole> {
        self.grants.iter().find_map(|g| match g {
            Grant::Platform(role) => Some(*role),
            _ => None,
        })
    }

    /// Whether the caller is a platform admin.
    pub fn is_platform_admin(&self) -> bool {
        self.platform_role() == Some(PlatformRole::PlatformAdmin)
    }

    /// Whether the caller reads everything (platform admin or auditor).
    pub fn reads_everything(&self) -> bool {
        self.platform_role().is_some()
    }

    /// The caller's role in `org`, if any.
    pub fn org_role(&self, org: OrganizationId) -> Option<OrgRole> {
        self.grants.iter().find_map(|g| match g {
            Grant::Organization(o, role) if *o == org => Some(*role),
            _ => None,
        })
    }

    /// The caller's role in `project`, if any.
    pub fn project_role(&self, project: ProjectId) -> Option<ProjectRole> {
        self.grants.iter().find_map(|g| match g {
            Grant::Project(_, p, role) if *p == project => Some(*role),
            _ => None,
        })
    }

    /// May see the organisation (any role in it or in one of its projects).
    pub fn can_see_org(&self, org: OrganizationId) -> bool {
        self.reads_everything()
            || self.grants.iter().any(|g| match g {
                Grant::Organization(o, _) | Grant::Project(o, _, _) => *o == org,
                Grant::Platform(_) => false,
            })
    }

    /// The projects of `org` the caller may see when it sees only some of them (a role
    /// on projects, none on the organisation); `None` when it sees them all.
    pub fn projects_seen_in(&self, org: OrganizationId) -> Option<Vec<ProjectId>> {
        if self.reads_everything() || self.org_role(org).is_some() {
            return None;
        }
        Some(
            self.grants
                .iter()
                .filter_map(|g| match g {
                    Grant::Project(o, p, _) if *o == org => Some(*p),
                    _ => None,
                })
                .collect(),
        )
    }

    /// May change the organisation, its members, tokens and projects.
    pub fn can_admin_org(&self, org: OrganizationId) -> bool {
        self.is_platform_admin() || self.org_role(org) == Some(OrgRole::Admin)
    }

    /// May see the project.
    pub fn can_see_project(&self, org: OrganizationId, project: ProjectId) -> bool {
        self.reads_everything()
            || self.org_role(org).is_some()
            || self.project_role(project).is_some()
    }

    /// May change the project, its members and tokens.
    pub fn can_manage_project(&self, org: OrganizationId, project: ProjectId) -> bool {
        self.can_admin_org(org) || self.project_role(project) == Some(ProjectRole::Lead)
    }

    /// May run the calls of allocating organisation `org`: create, edit, open and close
    /// them and decide their requests (its allocators and platform admins).
    pub fn can_allocate(&self, org: OrganizationId) -> bool {
        self.is_platform_admin() || self.org_role(org) == Some(OrgRole::Allocator)
    }

    /// Reads every request of `org`'s calls and the grants they fund (its allocators,
    /// platform admins and auditors): that is how a committee reviews.
    pub fn reviews_calls_of(&self, org: OrganizationId) -> bool {
        self.reads_everything() || self.org_role(org) == Some(OrgRole::Allocator)
    }

    /// Organisations whose objects the caller may list (`None`: all of them).
    pub fn visible_orgs(&self) -> Option<Vec<OrganizationId>> {
        if self.reads_everything() {
            return None;
        }
        let mut orgs: Vec<_> = self
            .grants
            .iter()
            .filter_map(|g| match g {
                Grant::Organization(o, _) | Grant::Project(o, _, _) => Some(*o),
                Grant::Platform(_) => None,
            })
            .collect();
        orgs.sort();
        orgs.dedup();
        Some(orgs)
    }

    /// Fails with `NotFound(what)` unless `visible`, then `Forbidden` unless `allowed`.
    pub fn require(&self, visible: bool, allowed: bool, what: &'static str) -> Result<()> {
        if !visible {
            return Err(Error::NotFound(what));
        }
        if !allowed {
            return Err(Error::Forbidden(format!("you may not change this {what}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(grants: Vec<Grant>) -> Caller {
        Caller {
            actor: Actor::System,
            grants,
            request_id: "t".into(),
        }
    }

    #[test]
    fn a_project_member_sees_its_organisation_but_cannot_administer_it() {
        let (org, project) = (OrganizationId::new(), ProjectId::new());
        let c = caller(vec![Grant::Project(org, project, ProjectRole::Member)]);
        assert!(c.can_see_org(org));
        assert!(!c.can_admin_org(org));
        assert!(c.can_see_project(org, project));
        assert!(!c.can_manage_project(org, project));
    }

    #[test]
    fn another_tenant_sees_nothing() {
        let c = caller(vec![Grant::Organization(
            OrganizationId::new(),
            OrgRole::Admin,
        )]);
        let (org, project) = (OrganizationId::new(), ProjectId::new());
        assert!(!c.can_see_org(org));
        assert!(!c.can_see_project(org, project));
        assert!(matches!(
            c.require(false, false, "project"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn an_auditor_reads_everything_and_changes_nothing() {
        let c = caller(vec![Grant::Platform(PlatformRole::Auditor)]);
        let (org, project) = (OrganizationId::new(), ProjectId::new());
        assert!(c.can_see_project(org, project));
        assert!(!c.can_manage_project(org, project));
        assert!(matches!(
            c.require(true, false, "project"),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn an_org_admin_manages_every_project_of_its_organisation() {
        let (org, project) = (OrganizationId::new(), ProjectId::new());
        let c = caller(vec![Grant::Organization(org, OrgRole::Admin)]);
        assert!(c.can_manage_project(org, project));
    }

    #[test]
    fn an_allocator_runs_its_own_calls_only_and_an_org_admin_does_not() {
        let (genci, cnrs) = (OrganizationId::new(), OrganizationId::new());
        let c = caller(vec![Grant::Organization(genci, OrgRole::Allocator)]);
        assert!(c.can_allocate(genci) && c.reviews_calls_of(genci));
        assert!(!c.can_allocate(cnrs) && !c.reviews_calls_of(cnrs));
        let admin = caller(vec![Grant::Organization(genci, OrgRole::Admin)]);
        assert!(!admin.can_allocate(genci));
        let auditor = caller(vec![Grant::Platform(PlatformRole::Auditor)]);
        assert!(auditor.reviews_calls_of(genci) && !auditor.can_allocate(genci));
    }

    #[test]
    fn role_names_round_trip_and_unknown_names_are_rejected() {
        for r in [ProjectRole::Viewer, ProjectRole::Member, ProjectRole::Lead] {
            assert_eq!(ProjectRole::parse("role", r.as_str()).unwrap(), r);
        }
        assert!(OrgRole::parse("role", "owner").is_err());
    }
}
