//! Calls: an allocating organisation (GENCI, CNRS) offers a pool of GPU-hours on one GPU
//! model for an allocation period; projects file requests while the call is open.
//! Open and closed calls are public inside the consortium; drafts only to their owner.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::budget::{GpuHours, SliceSeconds};
use crate::call_input::{CallPatch, NewCall};
use crate::clock::next_version;
use crate::entities::{allocation_requests as requests, calls};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{CallId, OrganizationId};
use crate::organizations::load_visible as load_org;
use crate::pagination::{Page, PageRequest};
use crate::values::{OrganizationKind, stored_gpu_model};
use aion_mig::GpuModel;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

pub use crate::call_input::CallState;

/// A call, with how much of its pool is granted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Id.
    pub id: CallId,
    /// The allocating organisation that runs the call and funds its grants.
    pub allocator_org_id: OrganizationId,
    /// Title.
    pub title: String,
    /// Description (rules, eligibility).
    pub description: String,
    /// GPU model the hours are on.
    pub gpu_model: GpuModel,
    /// The whole pool.
    pub pool: SliceSeconds,
    /// Sum of approved requests.
    pub granted: SliceSeconds,
    /// Requests accepted from.
    pub opens_at: DateTime<Utc>,
    /// Requests accepted until.
    pub closes_at: DateTime<Utc>,
    /// Grants valid from.
    pub period_start: DateTime<Utc>,
    /// Grants valid until.
    pub period_end: DateTime<Utc>,
    /// Lifecycle state.
    pub state: CallState,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at (also by approvals); the version for `If-Match`.
    pub updated_at: DateTime<Utc>,
}

impl Call {
    /// The version tag used for `ETag` / `If-Match`.
    pub fn version(&self) -> String {
        self.updated_at.timestamp_micros().to_string()
    }

    /// What is left of the pool.
    pub fn remaining(&self) -> SliceSeconds {
        self.pool.saturating_sub(self.granted)
    }
}

/// Sum of approved hours per call.
async fn granted(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> Result<HashMap<Uuid, SliceSeconds>> {
    let rows: Vec<(Uuid, Option<i64>)> = requests::Entity::find()
        .select_only()
        .column(requests::Column::CallId)
        .column(requests::Column::GrantedSliceSeconds)
        .filter(requests::Column::CallId.is_in(ids))
        .filter(requests::Column::State.eq("approved"))
        .into_tuple()
        .all(db)
        .await?;
    let mut sums: HashMap<Uuid, Vec<SliceSeconds>> = HashMap::new();
    for (call, amount) in rows {
        sums.entry(call)
            .or_default()
            .push(SliceSeconds::from_stored(amount.unwrap_or(0))?);
    }
    sums.into_iter()
        .map(|(k, v)| Ok((k, SliceSeconds::sum(v)?)))
        .collect()
}

fn from_model(m: calls::Model, granted: SliceSeconds) -> Result<Call> {
    Ok(Call {
        id: m.id.into(),
        allocator_org_id: m.allocator_org_id.into(),
        gpu_model: stored_gpu_model(&m.gpu_model)?,
        pool: SliceSeconds::from_stored(m.pool_slice_seconds)?,
        state: CallState::stored(&m.state)?,
        granted,
        title: m.title,
        description: m.description,
        opens_at: m.opens_at,
        closes_at: m.closes_at,
        period_start: m.period_start,
        period_end: m.period_end,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn visible(caller: &Caller, m: &calls::Model) -> bool {
    m.state != CallState::Draft.as_str() || caller.can_see_org(m.allocator_org_id.into())
}

/// Loads a call the caller may see (404 otherwise), with its granted hours.
pub(crate) async fn load_visible(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: CallId,
) -> Result<Call> {
    match calls::Entity::find_by_id(id.0).one(db).await? {
        Some(m) if visible(caller, &m) => {
            let sum = granted(db, vec![id.0])
                .await?
                .remove(&id.0)
                .unwrap_or_default();
            from_model(m, sum)
        }
        _ => Err(Error::NotFound("call")),
    }
}

/// Takes the call's row lock (PostgreSQL) or the write lock (SQLite) with a no-op update,
/// so concurrent approvals on one call queue and each sees the others' grants.
pub(crate) async fn lock(db: &impl ConnectionTrait, id: CallId) -> Result<()> {
    calls::Entity::update_many()
        .col_expr(calls::Column::State, Expr::col(calls::Column::State))
        .filter(calls::Column::Id.eq(id.0))
        .exec(db)
        .await?;
    Ok(())
}

/// Moves the call's version on (an approval changed its granted hours).
pub(crate) async fn touch(
    db: &impl ConnectionTrait,
    call: &Call,
    now: DateTime<Utc>,
) -> Result<()> {
    calls::Entity::update_many()
        .col_expr(
            calls::Column::UpdatedAt,
            Expr::value(next_version(now, call.updated_at)),
        )
        .filter(calls::Column::Id.eq(call.id.0))
        .exec(db)
        .await?;
    Ok(())
}

fn record(action: &'static str, call: &Call, details: serde_json::Value) -> Record {
    Record {
        action,
        target_kind: "call",
        target_id: call.id.to_string(),
        organization_id: Some(call.allocator_org_id),
        project_id: None,
        details,
    }
}

/// Creates a draft call (allocators of the organisation and platform admins).
#[tracing::instrument(skip_all, err, fields(organization_id = %cmd.organization_id))]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cmd: NewCall,
    idem: Option<&IdempotencyKey>,
) -> Result<Call> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let org = load_org(&txn, caller, cmd.organization_id).await?;
    caller.require(true, caller.can_allocate(org.id), "organization")?;
    if org.kind != OrganizationKind::Allocator {
        return Err(Error::invalid(
            "organization_id",
            "must be an organisation of kind allocator",
        ));
    }
    let slot = match idempotency::begin(&txn, now, caller, "call.create", idem, &cmd).await? {
        idempotency::Begin::Replay(call) => return Ok(call),
        idempotency::Begin::Proceed(slot) => slot,
    };
    let model = calls::ActiveModel {
        id: Set(CallId::new().0),
        allocator_org_id: Set(org.id.0),
        title: Set(cmd.title.clone()),
        description: Set(cmd.description.clone()),
        gpu_model: Set(cmd.gpu_model.name().to_owned()),
        pool_slice_seconds: Set(cmd.pool.slice_seconds().get()),
        opens_at: Set(cmd.opens_at),
        closes_at: Set(cmd.closes_at),
        period_start: Set(cmd.period_start),
        period_end: Set(cmd.period_end),
        state: Set(CallState::Draft.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let call = from_model(model, SliceSeconds::ZERO)?;
    let details = json!({"title": call.title, "gpu_model": call.gpu_model.name(), "pool_gpu_hours": cmd.pool.get()});
    audit::append(&txn, now, caller, record("call.create", &call, details)).await?;
    idempotency::finish(&txn, slot, &call).await?;
    txn.commit().await?;
    Ok(call)
}

/// Reads one call.
pub async fn get(svc: &Services, caller: &Caller, id: CallId) -> Result<Call> {
    load_visible(&svc.db, caller, id).await
}

/// Lists the calls the caller may see, oldest first, optionally in one state.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    state: Option<CallState>,
    page: &PageRequest,
) -> Result<Page<Call>> {
    let mut query = calls::Entity::find();
    if let Some(orgs) = caller.visible_orgs() {
        query = query.filter(
            Condition::any()
                .add(calls::Column::State.ne(CallState::Draft.as_str()))
                .add(calls::Column::AllocatorOrgId.is_in(orgs.into_iter().map(|o| o.0))),
        );
    }
    if let Some(state) = state {
        query = query.filter(calls::Column::State.eq(state.as_str()));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(calls::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(calls::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let mut sums = granted(&svc.db, rows.iter().map(|m| m.id).collect()).await?;
    let items = rows
        .into_iter()
        .map(|m| {
            let sum = sums.remove(&m.id).unwrap_or_default();
            from_model(m, sum)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |c| c.id.to_string()))
}

/// Changes a draft call, or raises the pool of an open or closed one.
#[tracing::instrument(skip_all, err, fields(call_id = %id))]
pub async fn update(
    svc: &Services,
    caller: &Caller,
    id: CallId,
    patch: CallPatch,
    if_match: Option<&str>,
) -> Result<Call> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    lock(&txn, id).await?;
    let current = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.can_allocate(current.allocator_org_id), "call")?;
    if if_match.is_some_and(|v| v != current.version()) {
        return Err(Error::PreconditionFailed);
    }
    let model = patch.apply(&current)?;
    let mut active = calls::ActiveModel::from(model).reset_all();
    active.updated_at = Set(next_version(now, current.updated_at));
    let updated = from_model(active.update(&txn).await?, current.granted)?;
    let details = json!({"pool_gpu_hours": patch.pool.map(GpuHours::get), "title": patch.title});
    audit::append(&txn, now, caller, record("call.update", &updated, details)).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Opens a draft call for requests, or closes an open one.
#[tracing::instrument(skip_all, err, fields(call_id = %id, to = to.as_str()))]
pub async fn transition(
    svc: &Services,
    caller: &Caller,
    id: CallId,
    to: CallState,
) -> Result<Call> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    lock(&txn, id).await?;
    let current = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.can_allocate(current.allocator_org_id), "call")?;
    let from = current.state;
    match (from, to) {
        (CallState::Draft, CallState::Open) if current.closes_at <= now => {
            return Err(Error::Conflict(
                "the call's closing date has passed; change closes_at first".into(),
            ));
        }
        (CallState::Draft, CallState::Open) | (CallState::Open, CallState::Closed) => {}
        _ => {
            return Err(Error::Conflict(format!(
                "a {} call cannot become {}",
                from.as_str(),
                to.as_str()
            )));
        }
    }
    calls::Entity::update_many()
        .col_expr(calls::Column::State, Expr::value(to.as_str()))
        .col_expr(
            calls::Column::UpdatedAt,
            Expr::value(next_version(now, current.updated_at)),
        )
        .filter(calls::Column::Id.eq(id.0))
        .exec(&txn)
        .await?;
    let updated = load_visible(&txn, caller, id).await?;
    let action = if to == CallState::Open {
        "call.open"
    } else {
        "call.close"
    };
    audit::append(
        &txn,
        now,
        caller,
        record(action, &updated, json!({"from": from.as_str()})),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}
