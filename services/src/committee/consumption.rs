//! The consumption of a call's grants: each grant's standing and its use over time,
//! read from the running totals of its ledger.

use super::{
    GRANTS_LIMIT, GrantSummary, LEDGER_LIMIT, org_names, project_names, reviewed_call, summaries,
};
use crate::Services;
use crate::authz::Caller;
use crate::entities::{grant_ledger, grants};
use crate::error::Result;
use crate::ids::CallId;
use crate::ledger;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use uuid::Uuid;

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
