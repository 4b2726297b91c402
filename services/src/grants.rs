//! Grants: approved budgets of GPU-hours on a GPU model for a project, valid from–to,
//! funded by an allocator's call or by a commercial contract (platform admins).

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::budget::{GpuHours, SliceSeconds};
use crate::entities::grants;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{AllocationRequestId, CallId, GrantId, OrganizationId, ProjectId};
use crate::ledger::{self, GrantWarning, Standing};
use crate::pagination::{Page, PageRequest};
use crate::projects::load_visible as load_project;
use crate::validate::{Validator, missing};
use crate::values::{parse_gpu_model, parse_name, stored_gpu_model};
use aion_mig::GpuModel;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Where a grant's hours come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// An approved allocation request on a call.
    Call,
    /// A commercial contract entered by a platform admin.
    Contract,
}

impl GrantSource {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Contract => "contract",
        }
    }

    fn stored(raw: &str) -> Result<Self> {
        match raw {
            "call" => Ok(Self::Call),
            "contract" => Ok(Self::Contract),
            _ => Err(Error::Internal(format!("unknown grant source {raw}"))),
        }
    }
}

/// A grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// Id.
    pub id: GrantId,
    /// Project that may spend it.
    pub project_id: ProjectId,
    /// The project's organisation.
    pub organization_id: OrganizationId,
    /// GPU model the hours are on.
    pub gpu_model: GpuModel,
    /// The budget.
    pub amount: SliceSeconds,
    /// Valid from.
    pub valid_from: DateTime<Utc>,
    /// Valid until.
    pub valid_until: DateTime<Utc>,
    /// Call or contract.
    pub source: GrantSource,
    /// The call, for call grants.
    pub call_id: Option<CallId>,
    /// The approved request, for call grants.
    pub request_id: Option<AllocationRequestId>,
    /// The allocating organisation that funds it; `None` for commercial contracts.
    pub funded_by: Option<OrganizationId>,
    /// Contract reference (empty for call grants).
    pub reference: String,
    /// Actor who created it.
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Balance, held and used, from the grant's ledger.
    pub standing: Standing,
    /// Warnings the grant has raised.
    pub warnings: Vec<GrantWarning>,
    /// Since when its balance is below zero, if it is.
    pub overdrawn_since: Option<DateTime<Utc>>,
}

/// A validated commercial-contract grant.
#[derive(Clone, Debug, Serialize)]
pub struct NewContractGrant {
    project_id: ProjectId,
    gpu_model: GpuModel,
    hours: GpuHours,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    reference: String,
}

impl NewContractGrant {
    /// Validates raw input, reporting every bad field.
    pub fn parse(
        project_id: Uuid,
        gpu_model: &str,
        gpu_hours: i64,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
        reference: &str,
    ) -> Result<Self> {
        let mut v = Validator::default();
        let gpu_model = v.check(parse_gpu_model("gpu_model", gpu_model));
        let hours = v.check(GpuHours::parse("gpu_hours", gpu_hours));
        let reference = v.check(parse_name("reference", reference, 200));
        if valid_until <= valid_from {
            v.check::<()>(Err(Error::invalid(
                "valid_until",
                "must be after valid_from",
            )));
        }
        v.finish()?;
        match (gpu_model, hours, reference) {
            (Some(gpu_model), Some(hours), Some(reference)) => Ok(Self {
                project_id: project_id.into(),
                gpu_model,
                hours,
                valid_from,
                valid_until,
                reference,
            }),
            _ => Err(missing()),
        }
    }
}

/// Grant rows with their ledger standing and warnings (two reads for the whole list).
pub(crate) async fn with_ledger(
    db: &impl ConnectionTrait,
    rows: Vec<grants::Model>,
) -> Result<Vec<Grant>> {
    let ids: BTreeSet<Uuid> = rows.iter().map(|g| g.id).collect();
    let standings = ledger::standings(db, &ids).await?;
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut warnings = ledger::warnings_of(db, &ids).await?;
    rows.into_iter()
        .map(|m| {
            let standing = standings.get(&m.id).copied().unwrap_or_default();
            let warned = warnings.remove(&m.id).unwrap_or_default();
            from_model(m, standing, warned)
        })
        .collect()
}

fn from_model(m: grants::Model, standing: Standing, warnings: Vec<GrantWarning>) -> Result<Grant> {
    Ok(Grant {
        id: m.id.into(),
        project_id: m.project_id.into(),
        organization_id: m.organization_id.into(),
        gpu_model: stored_gpu_model(&m.gpu_model)?,
        amount: SliceSeconds::from_stored(m.slice_seconds)?,
        source: GrantSource::stored(&m.source)?,
        valid_from: m.valid_from,
        valid_until: m.valid_until,
        call_id: m.call_id.map(Into::into),
        request_id: m.request_id.map(Into::into),
        funded_by: m.funded_by_org_id.map(Into::into),
        reference: m.reference,
        created_by: m.created_by,
        created_at: m.created_at,
        standing,
        warnings,
        overdrawn_since: m.overdrawn_since,
    })
}

/// Records a grant inside the caller's transaction (approvals and contracts).
pub(crate) async fn insert(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    g: Grant,
) -> Result<Grant> {
    let model = grants::ActiveModel {
        id: Set(g.id.0),
        project_id: Set(g.project_id.0),
        organization_id: Set(g.organization_id.0),
        gpu_model: Set(g.gpu_model.name().to_owned()),
        slice_seconds: Set(g.amount.get()),
        valid_from: Set(g.valid_from),
        valid_until: Set(g.valid_until),
        source: Set(g.source.as_str().to_owned()),
        call_id: Set(g.call_id.map(|c| c.0)),
        request_id: Set(g.request_id.map(|r| r.0)),
        funded_by_org_id: Set(g.funded_by.map(|o| o.0)),
        reference: Set(g.reference),
        created_by: Set(g.created_by),
        created_at: Set(g.created_at),
        overdrawn_since: Set(None),
    }
    .insert(txn)
    .await?;
    let allocation = ledger::Posting::allocation(model.id, model.slice_seconds);
    let moved = ledger::post(txn, now, &caller.actor.key(), vec![allocation]).await?;
    let standing = moved.first().map(|m| m.after).unwrap_or_default();
    let grant = from_model(model, standing, Vec::new())?;
    let details = json!({"gpu_model": grant.gpu_model.name(), "slice_seconds": grant.amount.get(), "source": grant.source.as_str()});
    let rec = Record {
        action: "grant.create",
        target_kind: "grant",
        target_id: grant.id.to_string(),
        organization_id: Some(grant.organization_id),
        project_id: Some(grant.project_id),
        details,
    };
    audit::append(txn, now, caller, rec).await?;
    Ok(grant)
}

/// Creates a commercial-contract grant (platform admins only).
#[tracing::instrument(skip_all, err, fields(project_id = %cmd.project_id))]
pub async fn create_contract(
    svc: &Services,
    caller: &Caller,
    cmd: NewContractGrant,
    idem: Option<&IdempotencyKey>,
) -> Result<Grant> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let project = load_project(&txn, caller, cmd.project_id).await?;
    caller.require(true, caller.is_platform_admin(), "project")?;
    let slot = match idempotency::begin(&txn, now, caller, "grant.create", idem, &cmd).await? {
        idempotency::Begin::Replay(grant) => return Ok(grant),
        idempotency::Begin::Proceed(slot) => slot,
    };
    let grant = Grant {
        id: GrantId::new(),
        project_id: project.id,
        organization_id: project.organization_id,
        gpu_model: cmd.gpu_model,
        amount: cmd.hours.slice_seconds(),
        valid_from: cmd.valid_from,
        valid_until: cmd.valid_until,
        source: GrantSource::Contract,
        call_id: None,
        request_id: None,
        funded_by: None,
        reference: cmd.reference.clone(),
        created_by: caller.actor.key(),
        created_at: now,
        standing: Standing::default(),
        warnings: Vec::new(),
        overdrawn_since: None,
    };
    let grant = insert(&txn, now, caller, grant).await?;
    idempotency::finish(&txn, slot, &grant).await?;
    txn.commit().await?;
    Ok(grant)
}

/// Reads one grant (the project's members, and the allocators who fund it).
pub async fn get(svc: &Services, caller: &Caller, id: GrantId) -> Result<Grant> {
    let found = grants::Entity::find_by_id(id.0).one(&svc.db).await?;
    match found {
        Some(m)
            if caller.can_see_project(m.organization_id.into(), m.project_id.into())
                || m.funded_by_org_id
                    .is_some_and(|o| caller.reviews_calls_of(o.into())) =>
        {
            let mut found = with_ledger(&svc.db, vec![m]).await?;
            found.pop().ok_or(Error::NotFound("grant"))
        }
        _ => Err(Error::NotFound("grant")),
    }
}

/// Most grants [`current_for_project`] returns.
pub const MAX_CURRENT_GRANTS: u64 = 200;

/// A project's grants that have not ended (valid now or later), ending soonest first:
/// what a project page shows and what its lease requests can draw on.
pub async fn current_for_project(
    svc: &Services,
    caller: &Caller,
    project: ProjectId,
) -> Result<Vec<Grant>> {
    load_project(&svc.db, caller, project).await?;
    let rows = grants::Entity::find()
        .filter(grants::Column::ProjectId.eq(project.0))
        .filter(grants::Column::ValidUntil.gt(svc.clock.now()))
        .order_by_asc(grants::Column::ValidUntil)
        .limit(MAX_CURRENT_GRANTS)
        .all(&svc.db)
        .await?;
    with_ledger(&svc.db, rows).await
}

/// Lists a project's grants, oldest first.
pub async fn list_for_project(
    svc: &Services,
    caller: &Caller,
    project: ProjectId,
    page: &PageRequest,
) -> Result<Page<Grant>> {
    load_project(&svc.db, caller, project).await?;
    let mut query = grants::Entity::find().filter(grants::Column::ProjectId.eq(project.0));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(grants::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(grants::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = with_ledger(&svc.db, rows).await?;
    Ok(Page::from_rows(items, page, |g| g.id.to_string()))
}
