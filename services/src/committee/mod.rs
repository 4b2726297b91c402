//! Read models of the allocation committee's panel: the calls of the organisations a
//! person allocates for, each call's review queue with the requesting projects' history
//! (their requests to and grants from the same organisation), and the consumption of the
//! grants a call funded (running totals of each grant's ledger over time). Only the
//! organisation's allocators and platform admins see them; another organisation's call
//! answers 404, as everywhere.

mod consumption;
mod review;

pub use consumption::{GrantConsumption, consumption};
pub use review::{ReviewItem, review_queue};

use crate::Services;
use crate::allocation_requests::RequestState;
use crate::authz::{Caller, Grant as Role, OrgRole};
use crate::calls::{self, Call};
use crate::entities::{allocation_requests as requests, calls as call_rows, grants};
use crate::entities::{organizations, projects};
use crate::error::{Error, Result};
use crate::ids::{CallId, OrganizationId, ProjectId};
use crate::ledger::{self, Standing};
use crate::pagination::{Page, PageRequest};
use crate::values::OrganizationKind;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// Most earlier requests and grants shown per project in the review queue.
pub const HISTORY_LIMIT: u64 = 50;
/// Most grants of one call whose consumption is charted.
pub const GRANTS_LIMIT: u64 = 500;
/// Most ledger entries read to draw one call's consumption (the most recent ones).
pub const LEDGER_LIMIT: u64 = 20_000;

/// The organisations whose calls the caller runs: `None` for platform admins (all).
/// Fails with 403 for anyone else: the panel is not theirs.
pub fn committee_orgs(caller: &Caller) -> Result<Option<Vec<OrganizationId>>> {
    if caller.is_platform_admin() {
        return Ok(None);
    }
    let orgs: Vec<OrganizationId> = caller
        .grants
        .iter()
        .filter_map(|g| match g {
            Role::Organization(o, OrgRole::Allocator) => Some(*o),
            _ => None,
        })
        .collect();
    if orgs.is_empty() {
        return Err(Error::Forbidden(
            "the allocation committee's panel is for allocators of an allocating organisation"
                .into(),
        ));
    }
    Ok(Some(orgs))
}

/// An organisation by id and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgName {
    /// Id.
    pub id: OrganizationId,
    /// Display name.
    pub name: String,
}

/// The allocating organisations the caller may create calls for.
#[tracing::instrument(skip_all, err)]
pub async fn allocator_orgs(svc: &Services, caller: &Caller) -> Result<Vec<OrgName>> {
    let mut query = organizations::Entity::find()
        .filter(organizations::Column::Kind.eq(OrganizationKind::Allocator.as_str()));
    if let Some(orgs) = committee_orgs(caller)? {
        query = query.filter(organizations::Column::Id.is_in(orgs.into_iter().map(|o| o.0)));
    }
    let rows = query
        .order_by_asc(organizations::Column::Name)
        .limit(200)
        .all(&svc.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|m| OrgName {
            id: m.id.into(),
            name: m.name,
        })
        .collect())
}

/// A call as the committee lists it.
#[derive(Clone, Debug)]
pub struct CommitteeCall {
    /// The call, with its granted hours.
    pub call: Call,
    /// Name of its organisation.
    pub organization: String,
    /// Requests waiting for a decision.
    pub pending: u64,
}

/// A page of the calls of the caller's organisations (every call for platform admins).
#[tracing::instrument(skip_all, err)]
pub async fn calls(
    svc: &Services,
    caller: &Caller,
    page: &PageRequest,
) -> Result<Page<CommitteeCall>> {
    let mut query = call_rows::Entity::find()
        .select_only()
        .column(call_rows::Column::Id);
    if let Some(orgs) = committee_orgs(caller)? {
        query =
            query.filter(call_rows::Column::AllocatorOrgId.is_in(orgs.into_iter().map(|o| o.0)));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(call_rows::Column::Id.gt(after));
    }
    let ids: Vec<Uuid> = query
        .order_by_asc(call_rows::Column::Id)
        .limit(page.fetch())
        .into_tuple()
        .all(&svc.db)
        .await?;
    let pending: HashMap<Uuid, i64> = requests::Entity::find()
        .select_only()
        .column(requests::Column::CallId)
        .column_as(requests::Column::Id.count(), "pending")
        .filter(requests::Column::CallId.is_in(ids.iter().copied()))
        .filter(requests::Column::State.eq(RequestState::Submitted.as_str()))
        .group_by(requests::Column::CallId)
        .into_tuple()
        .all(&svc.db)
        .await?
        .into_iter()
        .collect();
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(CommitteeCall {
            call: calls::get(svc, caller, id.into()).await?,
            organization: String::new(),
            pending: pending.get(&id).copied().unwrap_or(0).max(0).unsigned_abs(),
        });
    }
    let names = org_names(&svc.db, items.iter().map(|c| c.call.allocator_org_id.0)).await?;
    for item in &mut items {
        item.organization = names
            .get(&item.call.allocator_org_id.0)
            .cloned()
            .unwrap_or_default();
    }
    Ok(Page::from_rows(items, page, |c| c.call.id.to_string()))
}

/// A call the caller reviews (404 when it is another organisation's).
#[tracing::instrument(skip_all, err, fields(call_id = %id))]
pub async fn reviewed_call(svc: &Services, caller: &Caller, id: CallId) -> Result<Call> {
    committee_orgs(caller)?;
    let call = calls::get(svc, caller, id).await?;
    if !caller.can_allocate(call.allocator_org_id) {
        return Err(Error::NotFound("call"));
    }
    Ok(call)
}

/// A grant as the committee sees it: what was granted and where it stands.
#[derive(Clone, Debug)]
pub struct GrantSummary {
    /// Id.
    pub id: Uuid,
    /// The project.
    pub project_id: ProjectId,
    /// The project's organisation.
    pub organization_id: OrganizationId,
    /// The call that funded it, if any.
    pub call_id: Option<CallId>,
    /// GPU model name.
    pub gpu_model: String,
    /// Valid from.
    pub valid_from: DateTime<Utc>,
    /// Valid until.
    pub valid_until: DateTime<Utc>,
    /// Balance, held and used now (slice-seconds).
    pub standing: Standing,
}

/// Grants with their current standing.
pub(super) async fn summaries(
    db: &impl ConnectionTrait,
    rows: Vec<grants::Model>,
) -> Result<Vec<GrantSummary>> {
    let ids: BTreeSet<Uuid> = rows.iter().map(|g| g.id).collect();
    let standings = ledger::standings(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|g| GrantSummary {
            id: g.id,
            project_id: g.project_id.into(),
            organization_id: g.organization_id.into(),
            call_id: g.call_id.map(Into::into),
            gpu_model: g.gpu_model,
            valid_from: g.valid_from,
            valid_until: g.valid_until,
            standing: standings.get(&g.id).copied().unwrap_or_default(),
        })
        .collect())
}

pub(super) async fn project_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>> {
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    Ok(projects::Entity::find()
        .select_only()
        .column(projects::Column::Id)
        .column(projects::Column::Name)
        .filter(projects::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

pub(super) async fn org_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>> {
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    Ok(organizations::Entity::find()
        .select_only()
        .column(organizations::Column::Id)
        .column(organizations::Column::Name)
        .filter(organizations::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Actor, PlatformRole, ProjectRole};

    fn caller(grants: Vec<Role>) -> Caller {
        Caller {
            actor: Actor::System,
            grants,
            request_id: "t".into(),
        }
    }

    #[test]
    fn allocators_run_their_organisations_calls_and_platform_admins_all() {
        let (genci, cnrs) = (OrganizationId::new(), OrganizationId::new());
        let gaspard = caller(vec![
            Role::Organization(genci, OrgRole::Allocator),
            Role::Organization(cnrs, OrgRole::Member),
        ]);
        assert_eq!(committee_orgs(&gaspard).unwrap(), Some(vec![genci]));
        let admin = caller(vec![Role::Platform(PlatformRole::PlatformAdmin)]);
        assert_eq!(committee_orgs(&admin).unwrap(), None);
    }

    #[test]
    fn researchers_and_auditors_are_refused_the_panel() {
        let org = OrganizationId::new();
        let alice = caller(vec![
            Role::Organization(org, OrgRole::Admin),
            Role::Project(org, ProjectId::new(), ProjectRole::Lead),
        ]);
        assert!(matches!(committee_orgs(&alice), Err(Error::Forbidden(_))));
        let auditor = caller(vec![Role::Platform(PlatformRole::Auditor)]);
        assert!(matches!(committee_orgs(&auditor), Err(Error::Forbidden(_))));
    }
}
