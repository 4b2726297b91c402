//! Domain values → wire types. Kept here so `services` never depends on the wire format.

use aion_api_types as wire;
use aion_services::authz::{Actor, Grant};
use aion_services::budget::{SliceSeconds, gpu_equivalents};
use aion_services::values::OrganizationKind;
use aion_services::{
    allocation_requests, audit, call_input, calls, grants, identity, members, organizations,
    projects, quotas, tokens,
};

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

/// Call state.
pub fn call_state(s: call_input::CallState) -> wire::CallState {
    match s {
        call_input::CallState::Draft => wire::CallState::Draft,
        call_input::CallState::Open => wire::CallState::Open,
        call_input::CallState::Closed => wire::CallState::Closed,
    }
}

/// Call, with its pool consumption.
pub fn call(c: calls::Call) -> wire::Call {
    let remaining = c.remaining();
    wire::Call {
        id: c.id.0,
        organization_id: c.allocator_org_id.0,
        title: c.title,
        description: c.description,
        gpu_model: c.gpu_model.name().to_owned(),
        state: call_state(c.state),
        pool_gpu_hours: c.pool.gpu_hours(),
        pool_slice_seconds: c.pool.get(),
        granted_gpu_hours: c.granted.gpu_hours(),
        granted_slice_seconds: c.granted.get(),
        remaining_gpu_hours: remaining.gpu_hours(),
        remaining_slice_seconds: remaining.get(),
        opens_at: c.opens_at,
        closes_at: c.closes_at,
        period_start: c.period_start,
        period_end: c.period_end,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// Allocation request.
pub fn allocation_request(r: allocation_requests::AllocationRequest) -> wire::AllocationRequest {
    use allocation_requests::RequestState as S;
    wire::AllocationRequest {
        id: r.id.0,
        call_id: r.call_id.0,
        project_id: r.project_id.0,
        organization_id: r.organization_id.0,
        requested_gpu_hours: r.requested.gpu_hours(),
        requested_slice_seconds: r.requested.get(),
        justification: r.justification,
        state: match r.state {
            S::Submitted => wire::AllocationRequestState::Submitted,
            S::Approved => wire::AllocationRequestState::Approved,
            S::Rejected => wire::AllocationRequestState::Rejected,
            S::Withdrawn => wire::AllocationRequestState::Withdrawn,
        },
        granted_gpu_hours: r.granted.map(SliceSeconds::gpu_hours),
        granted_slice_seconds: r.granted.map(SliceSeconds::get),
        decision_reason: r.decision_reason,
        decided_by: r.decided_by,
        decided_at: r.decided_at,
        created_at: r.created_at,
    }
}

/// Grant of GPU-hours.
pub fn budget_grant(g: grants::Grant) -> wire::Grant {
    wire::Grant {
        id: g.id.0,
        project_id: g.project_id.0,
        organization_id: g.organization_id.0,
        gpu_model: g.gpu_model.name().to_owned(),
        gpu_hours: g.amount.gpu_hours(),
        slice_seconds: g.amount.get(),
        valid_from: g.valid_from,
        valid_until: g.valid_until,
        source: match g.source {
            grants::GrantSource::Call => wire::GrantSource::Call,
            grants::GrantSource::Contract => wire::GrantSource::Contract,
        },
        call_id: g.call_id.map(|c| c.0),
        request_id: g.request_id.map(|r| r.0),
        funded_by: g.funded_by.map(|o| o.0),
        reference: g.reference,
        created_by: g.created_by,
        created_at: g.created_at,
        balance_slice_seconds: g.standing.balance,
        held_slice_seconds: g.standing.held,
        used_slice_seconds: g.standing.used,
        gpu_hours_left: g.standing.balance as f64
            / aion_services::budget::SLICE_SECONDS_PER_GPU_HOUR as f64,
        committed_percent: g.standing.committed_percent(),
        warnings: g
            .warnings
            .into_iter()
            .map(|w| wire::GrantWarning {
                warning: w.warning,
                raised_at: w.raised_at,
            })
            .collect(),
        overdrawn_since: g.overdrawn_since,
    }
}

/// Ledger entry.
pub fn ledger_entry(e: aion_services::ledger::LedgerEntry) -> wire::LedgerEntry {
    use aion_services::ledger::EntryKind as K;
    wire::LedgerEntry {
        id: e.id,
        grant_id: e.grant_id.0,
        seq: e.seq,
        kind: match e.kind {
            K::Allocation => wire::LedgerEntryKind::Allocation,
            K::Hold => wire::LedgerEntryKind::Hold,
            K::HoldRelease => wire::LedgerEntryKind::HoldRelease,
            K::Usage => wire::LedgerEntryKind::Usage,
            K::Adjustment => wire::LedgerEntryKind::Adjustment,
        },
        amount_slice_seconds: e.amount,
        balance_slice_seconds: e.standing.balance,
        held_slice_seconds: e.standing.held,
        used_slice_seconds: e.standing.used,
        lease_id: e.lease_id.map(|l| l.0),
        reason: e.reason,
        actor: e.actor,
        created_at: e.created_at,
    }
}

/// Quota.
pub fn quota(q: quotas::Quota) -> wire::Quota {
    wire::Quota {
        organization_id: q.organization_id.0,
        project_id: q.project_id.map(|p| p.0),
        max_gpu_equivalents: gpu_equivalents(q.limits.max_compute_slices),
        max_compute_slices: q.limits.max_compute_slices,
        max_preemptible_gpu_equivalents: gpu_equivalents(q.limits.max_preemptible_compute_slices),
        max_preemptible_compute_slices: q.limits.max_preemptible_compute_slices,
        per_profile: q.limits.per_profile,
        per_site: q.limits.per_site,
        is_default: q.is_default,
        updated_at: q.updated_at,
    }
}

/// Lease.
pub fn lease(l: aion_services::leases::Lease) -> wire::Lease {
    wire::Lease {
        id: l.id.0,
        project_id: l.project_id.0,
        organization_id: l.organization_id.0,
        grant_id: l.grant_id.map(|g| g.0),
        profile: l.profile,
        gpu_model: l.gpu_model,
        count: l.count,
        gpu_equivalents: aion_services::budget::gpu_equivalents(l.compute_slices),
        compute_slices: l.compute_slices,
        site: l.site,
        same_node: l.same_node,
        preemptible: l.preemptible,
        duration_s: l.duration_s,
        state: l.state.as_str().to_owned(),
        state_reason: l.state_reason,
        held_slice_seconds: l.held_slice_seconds,
        charged_slice_seconds: l.charged_slice_seconds,
        created_at: l.created_at,
        scheduled_at: l.scheduled_at,
        active_at: l.active_at,
        releasing_at: l.releasing_at,
        ended_at: l.ended_at,
        ends_at: l.ends_at,
        placements: l
            .placements
            .into_iter()
            .map(|p| wire::LeasePlacement {
                node_id: p.node_id.0,
                gpu_uuid: p.gpu_uuid,
                profile_id: p.profile_id,
                start: p.start,
                mig_device_uuid: p.mig_device_uuid,
            })
            .collect(),
    }
}
