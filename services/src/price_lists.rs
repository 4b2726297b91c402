//! Stored price list versions: publish (platform admins), read, withdraw a future version,
//! and find the version that prices an organisation at an instant.
//!
//! Immutability: a version whose `effective_from` has come may have rated usage, so it is
//! never edited or deleted; prices change by publishing a successor. A new version may
//! not take effect in the past (one minute of slack for clock skew), so an already rated
//! period can never be re-priced. A future version may be withdrawn before it applies.
//!
//! Visibility: kind-wide lists are public to every authenticated caller; a contract list
//! only to platform admins and auditors and to its organisation's `admin` and `billing`
//! members. Anyone else gets 404, as for another tenant's object.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Caller, OrgRole};
use crate::entities::{price_list_entries as entries, price_lists as lists};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{OrganizationId, PriceListId};
use crate::organizations;
use crate::pagination::{Page, PageRequest};
use crate::pricing::{
    CURRENCY, DiscountPercent, ModelPrices, NewPriceList, Price, PriceList, PriceScope,
};
use crate::values::{OrganizationKind, stored_gpu_model};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use std::collections::BTreeMap;

/// How far in the past a new version may take effect (clock skew between caller and us).
pub const PAST_SLACK_S: i64 = 60;

/// Whether the caller may read contract list of `org`.
fn sees_contract(caller: &Caller, org: OrganizationId) -> bool {
    caller.reads_everything()
        || matches!(
            caller.org_role(org),
            Some(OrgRole::Admin | OrgRole::Billing)
        )
}

fn visible(caller: &Caller, m: &lists::Model) -> bool {
    m.organization_id
        .is_none_or(|org| sees_contract(caller, org.into()))
}

fn scope_of(m: &lists::Model) -> Result<PriceScope> {
    match (&m.organization_kind, m.organization_id) {
        (Some(kind), None) => OrganizationKind::parse("organization_kind", kind)
            .map(PriceScope::OrganizationKind)
            .map_err(|_| Error::Internal(format!("price list {} has a bad kind", m.id))),
        (None, Some(org)) => Ok(PriceScope::Organization(org.into())),
        _ => Err(Error::Internal(format!("price list {} has no scope", m.id))),
    }
}

/// Rebuilds a version from its row and its entry rows.
fn from_rows(m: lists::Model, rows: Vec<entries::Model>) -> Result<PriceList> {
    // GPU model → (GPU-hour price, profile overrides).
    type Prices = (Option<Price>, Vec<(String, Price)>);
    let mut models: BTreeMap<String, Prices> = BTreeMap::new();
    for row in rows {
        let slot = models.entry(row.gpu_model).or_default();
        let price = Price::stored(&row.price)?;
        if row.profile.is_empty() {
            slot.0 = Some(price);
        } else {
            slot.1.push((row.profile, price));
        }
    }
    let entries = models
        .into_iter()
        .map(|(model, (gpu_hour_price, profile_prices))| {
            Ok(ModelPrices {
                gpu_model: stored_gpu_model(&model)?,
                gpu_hour_price: gpu_hour_price.ok_or_else(|| {
                    Error::Internal(format!("price list {} lacks a GPU-hour price", m.id))
                })?,
                profile_prices,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PriceList {
        id: m.id.into(),
        scope: scope_of(&m)?,
        name: m.name,
        currency: m.currency,
        effective_from: m.effective_from,
        preemptible_discount_percent: DiscountPercent::stored(&m.preemptible_discount_percent)?,
        entries,
        created_by: m.created_by,
        created_at: m.created_at,
    })
}

/// Loads the entries of `rows` in one query and rebuilds the versions, in order.
async fn with_entries(
    db: &impl ConnectionTrait,
    rows: Vec<lists::Model>,
) -> Result<Vec<PriceList>> {
    let ids: Vec<_> = rows.iter().map(|m| m.id).collect();
    let mut by_list: BTreeMap<uuid::Uuid, Vec<entries::Model>> = BTreeMap::new();
    if !ids.is_empty() {
        let found = entries::Entity::find()
            .filter(entries::Column::PriceListId.is_in(ids))
            .order_by_asc(entries::Column::GpuModel)
            .order_by_asc(entries::Column::Profile)
            .all(db)
            .await?;
        for e in found {
            by_list.entry(e.price_list_id).or_default().push(e);
        }
    }
    rows.into_iter()
        .map(|m| {
            let e = by_list.remove(&m.id).unwrap_or_default();
            from_rows(m, e)
        })
        .collect()
}

async fn insert(txn: &impl ConnectionTrait, list: &PriceList) -> Result<()> {
    let (kind, org) = match list.scope {
        PriceScope::OrganizationKind(k) => (Some(k.as_str().to_owned()), None),
        PriceScope::Organization(o) => (None, Some(o.0)),
    };
    lists::ActiveModel {
        id: Set(list.id.0),
        scope_key: Set(list.scope.key()),
        organization_kind: Set(kind),
        organization_id: Set(org),
        name: Set(list.name.clone()),
        currency: Set(list.currency.clone()),
        effective_from: Set(list.effective_from),
        preemptible_discount_percent: Set(list.preemptible_discount_percent.get().to_string()),
        created_by: Set(list.created_by.clone()),
        created_at: Set(list.created_at),
    }
    .insert(txn)
    .await?;
    let mut rows = Vec::new();
    for e in &list.entries {
        let model = e.gpu_model.name().to_owned();
        rows.push((model.clone(), String::new(), e.gpu_hour_price));
        for (profile, price) in &e.profile_prices {
            rows.push((model.clone(), profile.clone(), *price));
        }
    }
    entries::Entity::insert_many(rows.into_iter().map(|(gpu_model, profile, price)| {
        entries::ActiveModel {
            price_list_id: Set(list.id.0),
            gpu_model: Set(gpu_model),
            profile: Set(profile),
            price: Set(price.get().to_string()),
        }
    }))
    .exec(txn)
    .await?;
    Ok(())
}

/// Publishes a new version (platform admins only).
#[tracing::instrument(skip_all, err, fields(scope = %cmd.scope().key()))]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cmd: NewPriceList,
    idem: Option<&IdempotencyKey>,
) -> Result<PriceList> {
    if !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins publish price lists".into(),
        ));
    }
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let slot = match idempotency::begin(&txn, now, caller, "price_list.create", idem, &cmd).await? {
        idempotency::Begin::Replay(list) => return Ok(list),
        idempotency::Begin::Proceed(slot) => slot,
    };
    if cmd.effective_from < now - Duration::seconds(PAST_SLACK_S) {
        return Err(Error::invalid(
            "effective_from",
            "must not be in the past: a period that may already have been rated is never re-priced; publish a version effective from now or later",
        ));
    }
    if let PriceScope::Organization(org) = cmd.scope {
        organizations::load_visible(&txn, caller, org).await?;
    }
    let clash = lists::Entity::find()
        .filter(lists::Column::ScopeKey.eq(cmd.scope.key()))
        .filter(lists::Column::EffectiveFrom.eq(cmd.effective_from))
        .one(&txn)
        .await?;
    if let Some(other) = clash {
        return Err(Error::Conflict(format!(
            "price list {} of the same scope already takes effect at {}; choose another effective_from",
            other.id,
            cmd.effective_from.to_rfc3339()
        )));
    }
    let list = PriceList {
        id: PriceListId::new(),
        scope: cmd.scope,
        name: cmd.name.clone(),
        currency: CURRENCY.to_owned(),
        effective_from: cmd.effective_from,
        preemptible_discount_percent: cmd.preemptible_discount_percent,
        entries: cmd.entries.clone(),
        created_by: caller.actor.key(),
        created_at: now,
    };
    insert(&txn, &list).await?;
    audit::append(&txn, now, caller, record("price_list.create", &list)).await?;
    idempotency::finish(&txn, slot, &list).await?;
    txn.commit().await?;
    Ok(list)
}

fn record(action: &'static str, list: &PriceList) -> Record {
    let organization_id = match list.scope {
        PriceScope::Organization(org) => Some(org),
        PriceScope::OrganizationKind(_) => None,
    };
    Record {
        action,
        target_kind: "price_list",
        target_id: list.id.to_string(),
        organization_id,
        project_id: None,
        details: json!({
            "scope": list.scope.key(),
            "name": list.name,
            "effective_from": list.effective_from.to_rfc3339(),
        }),
    }
}

async fn load_visible(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: PriceListId,
) -> Result<PriceList> {
    match lists::Entity::find_by_id(id.0).one(db).await? {
        Some(m) if visible(caller, &m) => with_entries(db, vec![m])
            .await?
            .pop()
            .ok_or(Error::NotFound("price list")),
        _ => Err(Error::NotFound("price list")),
    }
}

/// Reads one version.
pub async fn get(svc: &Services, caller: &Caller, id: PriceListId) -> Result<PriceList> {
    load_visible(&svc.db, caller, id).await
}

fn refuse_change(list: &PriceList, now: DateTime<Utc>) -> Error {
    if list.effective_from <= now {
        Error::Conflict(format!(
            "price list {} took effect at {} and may have rated usage: it is never edited or withdrawn; publish a successor version with a later effective_from",
            list.id,
            list.effective_from.to_rfc3339()
        ))
    } else {
        Error::Conflict(format!(
            "price list {} is never edited: withdraw it (DELETE) before it takes effect at {} and publish a new version",
            list.id,
            list.effective_from.to_rfc3339()
        ))
    }
}

/// Refuses an edit: versions are immutable. Says what to do instead.
pub async fn edit(svc: &Services, caller: &Caller, id: PriceListId) -> Result<PriceList> {
    let list = load_visible(&svc.db, caller, id).await?;
    caller.require(true, caller.is_platform_admin(), "price list")?;
    Err(refuse_change(&list, svc.clock.now()))
}

/// Withdraws a version that has not taken effect yet (platform admins only).
#[tracing::instrument(skip_all, err, fields(price_list_id = %id))]
pub async fn withdraw(svc: &Services, caller: &Caller, id: PriceListId) -> Result<()> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let list = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.is_platform_admin(), "price list")?;
    if list.effective_from <= now {
        return Err(refuse_change(&list, now));
    }
    entries::Entity::delete_many()
        .filter(entries::Column::PriceListId.eq(id.0))
        .exec(&txn)
        .await?;
    lists::Entity::delete_by_id(id.0).exec(&txn).await?;
    audit::append(&txn, now, caller, record("price_list.withdraw", &list)).await?;
    txn.commit().await?;
    Ok(())
}

/// Which versions a list shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilter {
    /// Only the versions of this kind.
    pub organization_kind: Option<OrganizationKind>,
    /// Only the contract versions of this organisation.
    pub organization_id: Option<OrganizationId>,
}

/// Lists the versions the caller may see, oldest published first.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    filter: ListFilter,
    page: &PageRequest,
) -> Result<Page<PriceList>> {
    let mut query = lists::Entity::find();
    if !caller.reads_everything() {
        let contracts: Vec<_> = caller
            .visible_orgs()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| sees_contract(caller, *o))
            .map(|o| o.0)
            .collect();
        query = query.filter(
            Condition::any()
                .add(lists::Column::OrganizationId.is_null())
                .add(lists::Column::OrganizationId.is_in(contracts)),
        );
    }
    if let Some(kind) = filter.organization_kind {
        query = query.filter(lists::Column::ScopeKey.eq(PriceScope::OrganizationKind(kind).key()));
    }
    if let Some(org) = filter.organization_id {
        query = query.filter(lists::Column::OrganizationId.eq(org.0));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(lists::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(lists::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = with_entries(&svc.db, rows).await?;
    Ok(Page::from_rows(items, page, |l| l.id.to_string()))
}

async fn latest(
    db: &impl ConnectionTrait,
    scope: PriceScope,
    at: DateTime<Utc>,
) -> Result<Option<lists::Model>> {
    Ok(lists::Entity::find()
        .filter(lists::Column::ScopeKey.eq(scope.key()))
        .filter(lists::Column::EffectiveFrom.lte(at))
        .order_by_desc(lists::Column::EffectiveFrom)
        .one(db)
        .await?)
}

/// Every version that may price organisation `org` of `kind` (its contract lists and
/// its kind's), with their entries: what [`pricing::price_steps`] needs for any period.
pub(crate) async fn versions_for(
    db: &impl ConnectionTrait,
    org: OrganizationId,
    kind: OrganizationKind,
) -> Result<Vec<PriceList>> {
    let keys = [
        PriceScope::Organization(org).key(),
        PriceScope::OrganizationKind(kind).key(),
    ];
    let rows = lists::Entity::find()
        .filter(lists::Column::ScopeKey.is_in(keys))
        .order_by_asc(lists::Column::EffectiveFrom)
        .all(db)
        .await?;
    with_entries(db, rows).await
}

/// The version that prices organisation `org` at `at` (default: now): its contract list
/// in effect, else its kind's. Members who may not read contract prices get 403.
pub async fn for_organization(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    at: Option<DateTime<Utc>>,
) -> Result<PriceList> {
    let organization = organizations::load_visible(&svc.db, caller, org).await?;
    let at = at.unwrap_or_else(|| svc.clock.now());
    let row = match latest(&svc.db, PriceScope::Organization(org), at).await? {
        Some(contract) if !sees_contract(caller, org) => {
            return Err(Error::Forbidden(format!(
                "organisation {org} is priced by contract list {}; only its admin and billing members read it",
                contract.id
            )));
        }
        Some(contract) => contract,
        None => latest(&svc.db, PriceScope::OrganizationKind(organization.kind), at)
            .await?
            .ok_or_else(|| {
                Error::NotPriced(format!(
                    "no price list covers organisation {org} at {}",
                    at.to_rfc3339()
                ))
            })?,
    };
    with_entries(&svc.db, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound("price list"))
}
