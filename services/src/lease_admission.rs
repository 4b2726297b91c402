//! Lease admission: quota and budget are checked in the same transaction that records the
//! lease as `pending`, so concurrent requests can never overrun a quota or a grant.
//! Admissions of one organisation queue on its row (a no-op update takes the row lock on
//! PostgreSQL; SQLite writers are serialised already by `BEGIN IMMEDIATE`).

use crate::entities::{grants, leases, organizations};
use crate::error::{Error, Result};
use crate::ids::{GrantId, OrganizationId, ProjectId};
use crate::lease_state::LeaseState;
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
async fn live_sum(txn: &impl ConnectionTrait, scope: Condition, expr: &str) -> Result<i64> {
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

/// Checks the project's and organisation's caps against their live leases plus `ask`,
/// with aggregate queries (admission cost does not grow with the number of leases read).
pub async fn check_quota(
    txn: &impl ConnectionTrait,
    org: OrganizationId,
    project: ProjectId,
    ask: &Ask<'_>,
) -> Result<()> {
    let caps = quotas::effective(txn, project).await?;
    let project_scope = Condition::all().add(leases::Column::ProjectId.eq(project.0));
    let org_scope = Condition::all().add(leases::Column::OrganizationId.eq(org.0));
    within(txn, &caps.project, project_scope, ask, "project").await?;
    within(txn, &caps.organization, org_scope, ask, "organisation").await
}

async fn within(
    txn: &impl ConnectionTrait,
    caps: &QuotaLimits,
    scope: Condition,
    ask: &Ask<'_>,
    name: &str,
) -> Result<()> {
    let same_kind = scope
        .clone()
        .add(leases::Column::Preemptible.eq(ask.preemptible));
    let held = live_sum(txn, same_kind, "compute_slices").await?;
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
    if let Some(max) = caps.per_profile.get(ask.profile) {
        let of_profile = scope.clone().add(leases::Column::Profile.eq(ask.profile));
        let count = live_sum(txn, of_profile, "count").await?;
        if count + ask.count > *max {
            return Err(Error::QuotaExceeded(format!(
                "the {name} holds {count} of at most {max} {} instances",
                ask.profile
            )));
        }
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
        if at_site + ask.compute_slices > *max {
            return Err(Error::QuotaExceeded(format!(
                "the {name} holds {at_site} of at most {max} compute slices at site {site}"
            )));
        }
    }
    Ok(())
}

/// Picks the grant that funds the lease: valid now, on its GPU model, with at least the
/// hold left (used = holds of live leases + charges of ended ones), the one ending first.
pub async fn pick_grant(
    txn: &impl ConnectionTrait,
    project: ProjectId,
    now: DateTime<Utc>,
    ask: &Ask<'_>,
) -> Result<GrantId> {
    let candidates = grants::Entity::find()
        .filter(grants::Column::ProjectId.eq(project.0))
        .filter(grants::Column::GpuModel.eq(ask.gpu_model.to_string()))
        .filter(grants::Column::ValidFrom.lte(now))
        .filter(grants::Column::ValidUntil.gt(now))
        .order_by_asc(grants::Column::ValidUntil)
        .all(txn)
        .await?;
    if candidates.is_empty() {
        return Err(Error::BudgetExhausted(format!(
            "the project has no grant valid now on {}",
            ask.gpu_model
        )));
    }
    let mut best_left = 0;
    for grant in candidates {
        let used: i64 = leases::Entity::find()
            .select_only()
            .column_as(
                Expr::cust(
                    "CAST(COALESCE(SUM(held_slice_seconds + charged_slice_seconds), 0) AS BIGINT)",
                ),
                "used",
            )
            .filter(leases::Column::GrantId.eq(grant.id))
            .into_tuple()
            .one(txn)
            .await?
            .unwrap_or(0);
        let left = grant.slice_seconds - used;
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
