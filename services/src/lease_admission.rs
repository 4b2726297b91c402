//! Lease admission: quota and budget are checked in the same transaction that records the
//! lease as `pending`, so concurrent requests can never overrun a quota or a grant.
//! Admissions of one organisation queue on its row (a no-op update takes the row lock on
//! PostgreSQL; SQLite writers are serialised already by `BEGIN IMMEDIATE`).

use crate::entities::{grants, leases, organizations};
use crate::error::{Error, Result};
use crate::ids::{GrantId, OrganizationId, ProjectId};
use crate::lease_state::LeaseState;
use crate::ledger;
use crate::quotas::{self, QuotaLimits};
use aion_mig::GpuModel;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

/// What a new lease asks for, as admission sees it.
pub struct Ask<'a> {
    /// Profile name on the model.
    pub profile: &'a str,
    /// GPU model.
    pub gpu_model: GpuModel,
    /// Instances.
    pub count: i64,
    /// Compute slices of all instances.
    pub compute_slices: i64,
    /// Site constraint.
    pub site: Option<&'a str>,
    /// Preemptible leases count against the separate preemptible cap.
    pub preemptible: bool,
    /// Budget to hold: duration × compute slices.
    pub hold: i64,
}

/// Takes the organisation's admission lock for the rest of the transaction.
pub async fn lock_org(txn: &impl ConnectionTrait, org: OrganizationId) -> Result<()> {
    organizations::Entity::update_many()
        .col_expr(
            organizations::Column::Slug,
            Expr::col(organizations::Column::Slug),
        )
        .filter(organizations::Column::Id.eq(org.0))
        .exec(txn)
        .await?;
    Ok(())
}

fn live() -> Vec<&'static str> {
    LeaseState::live_names()
}

/// `SUM(expr)` over live leases matching `scope`, as an i64 on both engines.
pub(crate) async fn live_sum(
    txn: &impl ConnectionTrait,
    scope: Condition,
    expr: &str,
) -> Result<i64> {
    let sum: Option<i64> = leases::Entity::find()
        .select_only()
        .column_as(
            Expr::cust(format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")),
            "total",
        )
        .filter(scope)
        .filter(leases::Column::State.is_in(live()))
        .into_tuple()
        .one(txn)
        .await?;
    Ok(sum.unwrap_or(0))
}

/// Checks the project's and organisation's caps against their live leases plus `ask`.
/// One grouped query gives the compute slices held per project of the organisation, so
/// the cost does not grow with the number of leases; per-profile and per-site sums are
/// read only where such a cap exists.
pub async fn check_quota(
    txn: &impl ConnectionTrait,
    org: OrganizationId,
    project: ProjectId,
    ask: &Ask<'_>,
) -> Result<()> {
    let caps = quotas::effective_in(txn, org, project).await?;
    let per_project: Vec<(uuid::Uuid, i64)> = leases::Entity::find()
        .select_only()
        .column(leases::Column::ProjectId)
        .column_as(Expr::cust("CAST(SUM(compute_slices) AS BIGINT)"), "held")
        .filter(leases::Column::OrganizationId.eq(org.0))
        .filter(leases::Column::State.is_in(live()))
        .filter(leases::Column::Preemptible.eq(ask.preemptible))
        .group_by(leases::Column::ProjectId)
        .into_tuple()
        .all(txn)
        .await?;
    let org_held: i64 = per_project.iter().map(|(_, held)| held).sum();
    let project_held = per_project
        .iter()
        .find(|(p, _)| *p == project.0)
        .map_or(0, |(_, h)| *h);
    let project_scope = Condition::all().add(leases::Column::ProjectId.eq(project.0));
    let org_scope = Condition::all().add(leases::Column::OrganizationId.eq(org.0));
    within(
        txn,
        &caps.project,
        project_scope,
        project_held,
        ask,
        "project",
    )
    .await?;
    within(
        txn,
        &caps.organization,
        org_scope,
        org_held,
        ask,
        "organisation",
    )
    .await
}

async fn within(
    txn: &impl ConnectionTrait,
    caps: &QuotaLimits,
    scope: Condition,
    held: i64,
    ask: &Ask<'_>,
    name: &str,
) -> Result<()> {
    main_cap(caps, held, ask, name)?;
    if let Some(max) = caps.per_profile.get(ask.profile) {
        let of_profile = scope.clone().add(leases::Column::Profile.eq(ask.profile));
        let count = live_sum(txn, of_profile, "count").await?;
        profile_cap(*max, count, ask, name)?;
    }
    if let Some(site) = ask.site
        && let Some(max) = caps.per_site.get(site)
    {
        let at_site = live_sum(
            txn,
            scope.add(leases::Column::Site.eq(site)),
            "compute_slices",
        )
        .await?;
        site_cap(*max, at_site, ask, site, name)?;
    }
    Ok(())
}

/// The guaranteed or preemptible cap of `caps`, with `held` compute slices already held.
pub(crate) fn main_cap(caps: &QuotaLimits, held: i64, ask: &Ask<'_>, name: &str) -> Result<()> {
    let (cap, kind) = if ask.preemptible {
        (caps.max_preemptible_compute_slices, "preemptible")
    } else {
        (caps.max_compute_slices, "guaranteed")
    };
    if held + ask.compute_slices > cap {
        return Err(Error::QuotaExceeded(format!(
            "the {name} holds {held} of {cap} {kind} compute slices; this lease needs {}",
            ask.compute_slices
        )));
    }
    Ok(())
}

/// A per-profile cap of at most `max` instances, with `count` already held.
pub(crate) fn profile_cap(max: i64, count: i64, ask: &Ask<'_>, name: &str) -> Result<()> {
    if count + ask.count > max {
        return Err(Error::QuotaExceeded(format!(
            "the {name} holds {count} of at most {max} {} instances",
            ask.profile
        )));
    }
    Ok(())
}

/// A per-site cap of at most `max` compute slices, with `at_site` already held there.
pub(crate) fn site_cap(
    max: i64,
    at_site: i64,
    ask: &Ask<'_>,
    site: &str,
    name: &str,
) -> Result<()> {
    if at_site + ask.compute_slices > max {
        return Err(Error::QuotaExceeded(format!(
            "the {name} holds {at_site} of at most {max} compute slices at site {site}"
        )));
    }
    Ok(())
}

/// The project's grants valid at `now`, the one ending first first.
pub async fn valid_grants(
    txn: &impl ConnectionTrait,
    project: ProjectId,
    now: DateTime<Utc>,
) -> Result<Vec<grants::Model>> {
    Ok(grants::Entity::find()
        .filter(grants::Column::ProjectId.eq(project.0))
        .filter(grants::Column::ValidFrom.lte(now))
        .filter(grants::Column::ValidUntil.gt(now))
        .order_by_asc(grants::Column::ValidUntil)
        .all(txn)
        .await?)
}

/// The grants of `valid` on the lease's GPU model; refused when there is none.
pub(crate) fn candidates_on_model<'g>(
    valid: &'g [grants::Model],
    ask: &Ask<'_>,
) -> Result<Vec<&'g grants::Model>> {
    let model = ask.gpu_model.to_string();
    let candidates: Vec<_> = valid.iter().filter(|g| g.gpu_model == model).collect();
    if candidates.is_empty() {
        return Err(Error::BudgetExhausted(format!(
            "the project has no grant valid now on {model}"
        )));
    }
    Ok(candidates)
}

/// Picks the grant that funds the lease among `valid` (see [`valid_grants`]): on its GPU
/// model, with at least the hold left (its ledger balance, read from the last entry
/// under the grant's lock), the one ending first.
pub async fn pick_grant(
    txn: &impl ConnectionTrait,
    valid: &[grants::Model],
    ask: &Ask<'_>,
) -> Result<GrantId> {
    let candidates = candidates_on_model(valid, ask)?;
    let ids = candidates.iter().map(|g| g.id).collect();
    ledger::lock(txn, &ids).await?;
    let heads = ledger::heads(txn, &ids).await?;
    choose_grant(
        &candidates,
        |g| heads.get(&g).map_or(0, |(_, s)| s.balance),
        ask,
    )
}

/// Among `candidates` (valid, on the lease's model, the one ending first first), the first
/// with at least the hold left; `left` gives a grant's balance.
pub(crate) fn choose_grant(
    candidates: &[&grants::Model],
    left: impl Fn(uuid::Uuid) -> i64,
    ask: &Ask<'_>,
) -> Result<GrantId> {
    let mut best_left = 0;
    for grant in candidates {
        let left = left(grant.id);
        if left >= ask.hold {
            return Ok(GrantId(grant.id));
        }
        best_left = best_left.max(left);
    }
    Err(Error::BudgetExhausted(format!(
        "no grant has enough GPU-hours left: this lease holds {:.2} GPU-hours, the best grant has {:.2} left",
        crate::budget::gpu_equivalents(ask.hold) / 3600.0,
        crate::budget::gpu_equivalents(best_left) / 3600.0,
    )))
}
