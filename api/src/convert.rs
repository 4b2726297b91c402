//! Domain values → wire types. Kept here so `services` never depends on the wire format.

use aion_api_types as wire;
use aion_services::authz::{Actor, Grant};
use aion_services::values::OrganizationKind;
use aion_services::{audit, identity, members, organizations, projects, tokens};

/// Organisation kind.
pub fn kind(k: OrganizationKind) -> wire::OrganizationKind {
    match k {
        OrganizationKind::Academic => wire::OrganizationKind::Academic,
        OrganizationKind::Startup => wire::OrganizationKind::Startup,
        OrganizationKind::Industry => wire::OrganizationKind::Industry,
        OrganizationKind::Public => wire::OrganizationKind::Public,
        OrganizationKind::Allocator => wire::OrganizationKind::Allocator,
    }
}

/// Organisation.
pub fn organization(o: organizations::Organization) -> wire::Organization {
    wire::Organization {
        id: o.id.0,
        slug: o.slug,
        name: o.name,
        kind: kind(o.kind),
        country: o.country,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// Project.
pub fn project(p: projects::Project) -> wire::Project {
    wire::Project {
        id: p.id.0,
        organization_id: p.organization_id.0,
        slug: p.slug,
        name: p.name,
        description: p.description,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// User.
pub fn user(u: identity::User) -> wire::User {
    wire::User {
        id: u.id.0,
        issuer: u.issuer,
        subject: u.subject,
        email: u.email,
        display_name: u.display_name,
        created_at: u.created_at,
    }
}

/// Member.
pub fn member(m: members::Member) -> wire::Member {
    wire::Member {
        user: user(m.user),
        role: m.role,
        since: m.since,
    }
}

/// API token.
pub fn token(t: tokens::ApiToken) -> wire::ApiToken {
    wire::ApiToken {
        id: t.id.0,
        name: t.name,
        hint: t.hint,
        organization_id: t.organization_id.map(|o| o.0),
        project_id: t.project_id.map(|p| p.0),
        role: t.role,
        created_by: t.created_by,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        last_used_at: t.last_used_at,
    }
}

/// Audit event.
pub fn audit_event(e: audit::AuditEvent) -> wire::AuditEvent {
    wire::AuditEvent {
        seq: e.seq,
        id: e.id.0,
        occurred_at: e.occurred_at,
        actor: e.actor,
        action: e.action,
        target_kind: e.target_kind,
        target_id: e.target_id,
        organization_id: e.organization_id.map(|o| o.0),
        project_id: e.project_id.map(|p| p.0),
        request_id: e.request_id,
        details: e.details,
        hash: e.hash,
    }
}

/// A role held.
pub fn grant(g: Grant) -> wire::RoleGrant {
    match g {
        Grant::Platform(r) => wire::RoleGrant {
            scope: "platform".into(),
            organization_id: None,
            project_id: None,
            role: r.as_str().into(),
        },
        Grant::Organization(o, r) => wire::RoleGrant {
            scope: "organization".into(),
            organization_id: Some(o.0),
            project_id: None,
            role: r.as_str().into(),
        },
        Grant::Project(o, p, r) => wire::RoleGrant {
            scope: "project".into(),
            organization_id: Some(o.0),
            project_id: Some(p.0),
            role: r.as_str().into(),
        },
    }
}

/// `/v1/me`.
pub fn me(actor: &Actor, m: identity::Me) -> wire::Me {
    let kind = match actor {
        Actor::User(_) => "user",
        Actor::Token(_) => "token",
        Actor::System => "system",
    };
    wire::Me {
        kind: kind.into(),
        user: m.user.map(user),
        token: m.token.map(token),
        grants: m.grants.into_iter().map(grant).collect(),
    }
}
