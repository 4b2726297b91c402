//! Reading and setting quotas: platform admins set organisations' quotas; organisation
//! admins set their projects' quotas, never above the organisation's.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::clock::next_version;
use crate::entities::quotas;
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId, QuotaId};
use crate::organizations::load_visible as load_org;
use crate::projects::load_visible as load_project;
use crate::quotas::{Quota, QuotaLimits, of_org, of_project, row, scope_key};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// Reads an organisation's quota (anyone who sees the organisation).
pub async fn get_org(svc: &Services, caller: &Caller, org: OrganizationId) -> Result<Quota> {
    load_org(&svc.db, caller, org).await?;
    of_org(&svc.db, org).await
}

/// Reads a project's quota (anyone who sees the project).
pub async fn get_project(svc: &Services, caller: &Caller, project: ProjectId) -> Result<Quota> {
    let p = load_project(&svc.db, caller, project).await?;
    of_project(&svc.db, p.organization_id, project).await
}

/// Sets an organisation's quota (platform admins).
#[tracing::instrument(skip_all, err, fields(organization_id = %org))]
pub async fn set_org(
    svc: &Services,
    caller: &Caller,
    org: OrganizationId,
    limits: QuotaLimits,
    if_match: Option<&str>,
) -> Result<Quota> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    load_org(&txn, caller, org).await?;
    caller.require(true, caller.is_platform_admin(), "organization")?;
    let current = of_org(&txn, org).await?;
    let quota = store(&txn, now, caller, current, limits, if_match).await?;
    txn.commit().await?;
    Ok(quota)
}

/// Sets a project's quota (its organisation's admins), within the organisation's quota.
#[tracing::instrument(skip_all, err, fields(project_id = %project))]
pub async fn set_project(
    svc: &Services,
    caller: &Caller,
    project: ProjectId,
    limits: QuotaLimits,
    if_match: Option<&str>,
) -> Result<Quota> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let p = load_project(&txn, caller, project).await?;
    caller.require(true, caller.can_admin_org(p.organization_id), "project")?;
    limits.check_within(&of_org(&txn, p.organization_id).await?.limits)?;
    let current = of_project(&txn, p.organization_id, project).await?;
    let quota = store(&txn, now, caller, current, limits, if_match).await?;
    txn.commit().await?;
    Ok(quota)
}

fn to_json(map: &std::collections::BTreeMap<String, i64>) -> Option<String> {
    (!map.is_empty()).then(|| json!(map).to_string())
}

/// Inserts or updates the quota row of `current`'s scope, checking `If-Match`.
async fn store(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    caller: &Caller,
    current: Quota,
    limits: QuotaLimits,
    if_match: Option<&str>,
) -> Result<Quota> {
    if if_match.is_some_and(|v| v != current.version()) {
        return Err(Error::PreconditionFailed);
    }
    let key = scope_key(current.organization_id, current.project_id);
    let updated_at = current
        .updated_at
        .map_or(now, |prev| next_version(now, prev));
    let mut model = quotas::ActiveModel {
        max_compute_slices: Set(limits.max_compute_slices),
        max_preemptible_compute_slices: Set(limits.max_preemptible_compute_slices),
        per_profile: Set(to_json(&limits.per_profile)),
        per_site: Set(to_json(&limits.per_site)),
        updated_at: Set(updated_at),
        ..Default::default()
    };
    match current.updated_at {
        // A concurrent first PUT of the same scope loses on the unique scope key (409).
        None => {
            model.id = Set(QuotaId::new().0);
            model.scope_key = Set(key.clone());
            model.organization_id = Set(current.organization_id.0);
            model.project_id = Set(current.project_id.map(|p| p.0));
            model.insert(txn).await?;
        }
        Some(prev) => {
            let res = quotas::Entity::update_many()
                .set(model)
                .filter(quotas::Column::ScopeKey.eq(key.clone()))
                .filter(quotas::Column::UpdatedAt.eq(prev))
                .exec(txn)
                .await?;
            if res.rows_affected != 1 {
                return Err(Error::PreconditionFailed);
            }
        }
    }
    let stored = row(txn, &key)
        .await?
        .ok_or_else(|| Error::Internal("quota row vanished".into()))?;
    let rec = Record {
        action: "quota.set",
        target_kind: "quota",
        target_id: key,
        organization_id: Some(current.organization_id),
        project_id: current.project_id,
        details: json!(limits),
    };
    audit::append(txn, now, caller, rec).await?;
    Ok(Quota {
        organization_id: current.organization_id,
        project_id: current.project_id,
        limits,
        is_default: false,
        updated_at: Some(stored.updated_at),
    })
}
