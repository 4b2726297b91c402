//! Read models of the allocation committee's panel: the calls of the organisations a
//! person allocates for, each call's review queue with the requesting projects' history
//! (their requests to and grants from the same organisation), and the consumption of the
//! grants a call funded (running totals of each grant's ledger over time). Only the
//! organisation's allocators and platform admins see them; another organisation's call
//! answers 404, as everywhere.

use crate::Services;
use crate::allocation_requests::{AllocationRequest, RequestState, from_model as request_from};
use crate::authz::{Caller, Grant as Role, OrgRole};
use crate::calls::{self, Call};
use crate::entities::{allocation_requests as requests, calls as call_rows, grant_ledger, grants};
use crate::entities::{organizations, projects};
use crate::error::{Error, Result};
use crate::ids::{CallId, OrganizationId, ProjectId};
use crate::ledger::{self, Standing};
use crate::pagination::{Page, PageRequest};
use crate::values::OrganizationKind;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
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
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        let call = calls::get(svc, caller, id.into()).await?;
        let pending = requests::Entity::find()
            .filter(requests::Column::CallId.eq(id))
            .filter(requests::Column::State.eq(RequestState::Submitted.as_str()))
            .count(&svc.db)
            .await?;
        items.push(CommitteeCall {
            call,
            organization: String::new(),
            pending,
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

/// A pending request with what the committee needs to decide it.
#[derive(Clone, Debug)]
pub struct ReviewItem {
    /// The request.
    pub request: AllocationRequest,
    /// Project name.
    pub project: String,
    /// Organisation of the project.
    pub organization: String,
    /// The project's other requests to this organisation's calls, newest first, with
    /// the title of their call.
    pub earlier_requests: Vec<(AllocationRequest, String)>,
    /// The project's grants funded by this organisation, newest first.
    pub grants: Vec<GrantSummary>,
}

/// A page of a call's pending requests, oldest first, each with the project's history.
#[tracing::instrument(skip_all, err, fields(call_id = %id))]
pub async fn review_queue(
    svc: &Services,
    caller: &Caller,
    id: CallId,
    page: &PageRequest,
) -> Result<Page<ReviewItem>> {
    let call = reviewed_call(svc, caller, id).await?;
    let db = &svc.db;
    let mut query = requests::Entity::find()
        .filter(requests::Column::CallId.eq(id.0))
        .filter(requests::Column::State.eq(RequestState::Submitted.as_str()));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(requests::Column::Id.gt(after));
    }
    let pending = query
        .order_by_asc(requests::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?
        .into_iter()
        .map(request_from)
        .collect::<Result<Vec<_>>>()?;
    let project_ids: BTreeSet<Uuid> = pending.iter().map(|r| r.project_id.0).collect();
    let projects = project_names(db, project_ids.iter().copied()).await?;
    let orgs = org_names(db, pending.iter().map(|r| r.organization_id.0)).await?;
    // Every call of the organisation, for the titles of earlier requests.
    let org_calls: HashMap<Uuid, String> = call_rows::Entity::find()
        .select_only()
        .column(call_rows::Column::Id)
        .column(call_rows::Column::Title)
        .filter(call_rows::Column::AllocatorOrgId.eq(call.allocator_org_id.0))
        .limit(1000)
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut items = Vec::with_capacity(pending.len());
    for request in pending {
        let project = request.project_id.0;
        let earlier = requests::Entity::find()
            .filter(requests::Column::ProjectId.eq(project))
            .filter(requests::Column::CallId.is_in(org_calls.keys().copied()))
            .filter(requests::Column::Id.ne(request.id.0))
            .order_by_desc(requests::Column::CreatedAt)
            .limit(HISTORY_LIMIT)
            .all(db)
            .await?
            .into_iter()
            .map(|m| {
                let title = org_calls.get(&m.call_id).cloned().unwrap_or_default();
                Ok((request_from(m)?, title))
            })
            .collect::<Result<Vec<_>>>()?;
        let grant_rows = grants::Entity::find()
            .filter(grants::Column::ProjectId.eq(project))
            .filter(grants::Column::FundedByOrgId.eq(call.allocator_org_id.0))
            .order_by_desc(grants::Column::CreatedAt)
            .limit(HISTORY_LIMIT)
            .all(db)
            .await?;
        items.push(ReviewItem {
            project: projects.get(&project).cloned().unwrap_or_default(),
            organization: orgs
                .get(&request.organization_id.0)
                .cloned()
                .unwrap_or_default(),
            earlier_requests: earlier,
            grants: summaries(db, grant_rows).await?,
            request,
        });
    }
    Ok(Page::from_rows(items, page, |i| i.request.id.to_string()))
}

/// One grant of a call and how its use grew.
#[derive(Clone, Debug)]
pub struct GrantConsumption {
    /// The grant now.
    pub grant: GrantSummary,
    /// Project name.
    pub project: String,
    /// Organisation of the project.
    pub organization: String,
    /// `used` (slice-seconds) after each usage entry of the grant's ledger, in time order.
    pub used_over_time: Vec<(DateTime<Utc>, i64)>,
}

/// The grants a call funded (up to [`GRANTS_LIMIT`]) with their use over time.
#[tracing::instrument(skip_all, err, fields(call_id = %id))]
pub async fn consumption(
    svc: &Services,
    caller: &Caller,
    id: CallId,
) -> Result<Vec<GrantConsumption>> {
    reviewed_call(svc, caller, id).await?;
    let db = &svc.db;
    let rows = grants::Entity::find()
        .filter(grants::Column::CallId.eq(id.0))
        .order_by_asc(grants::Column::CreatedAt)
        .limit(GRANTS_LIMIT)
        .all(db)
        .await?;
    let projects = project_names(db, rows.iter().map(|g| g.project_id)).await?;
    let orgs = org_names(db, rows.iter().map(|g| g.organization_id)).await?;
    let ids: Vec<Uuid> = rows.iter().map(|g| g.id).collect();
    // The most recent usage entries; each carries the running total, so older ones
    // beyond the limit only lose the start of the curve.
    let mut entries: Vec<(Uuid, DateTime<Utc>, i64)> = grant_ledger::Entity::find()
        .select_only()
        .column(grant_ledger::Column::GrantId)
        .column(grant_ledger::Column::CreatedAt)
        .column(grant_ledger::Column::Used)
        .filter(grant_ledger::Column::GrantId.is_in(ids))
        .filter(grant_ledger::Column::Kind.eq(ledger::EntryKind::Usage.as_str()))
        .order_by_desc(grant_ledger::Column::CreatedAt)
        .limit(LEDGER_LIMIT)
        .into_tuple()
        .all(db)
        .await?;
    entries.reverse();
    let mut points: HashMap<Uuid, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for (grant, at, used) in entries {
        points.entry(grant).or_default().push((at, used));
    }
    let summaries = summaries(db, rows).await?;
    Ok(summaries
        .into_iter()
        .map(|g| GrantConsumption {
            project: projects.get(&g.project_id.0).cloned().unwrap_or_default(),
            organization: orgs.get(&g.organization_id.0).cloned().unwrap_or_default(),
            used_over_time: points.remove(&g.id).unwrap_or_default(),
            grant: g,
        })
        .collect())
}

/// Grants with their current standing.
async fn summaries(
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

async fn project_names(
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

async fn org_names(
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
