//! Leases: MIG slices held by a project. Creation admits against quota and budget in one
//! transaction (see `lease_admission`); the scheduler places pending leases; the node's
//! agent makes them active; release and expiry end them.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Caller, ProjectRole};
use crate::entities::{lease_placements, leases};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{GrantId, LeaseId, NodeId, OrganizationId, ProjectId};
use crate::lease_admission::{self as admission, Ask};
use crate::lease_lifecycle;
use crate::lease_state::LeaseState;
use crate::ledger;
use crate::pagination::{Page, PageRequest};
use crate::projects;
use crate::validate::{Validator, missing};
use crate::values::Slug;
use aion_mig::GpuModel;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Shortest and longest lease durations.
pub const MIN_DURATION_S: i64 = 60;
/// 30 days.
pub const MAX_DURATION_S: i64 = 30 * 24 * 3600;
/// Duration when none is asked for: 8 hours.
pub const DEFAULT_DURATION_S: i64 = 8 * 3600;
/// Most instances in one lease (a gang of whole nodes of 8 GPUs × 7 slices).
pub const MAX_COUNT: i64 = 64;
/// Longest long-poll on a lease.
pub const MAX_WAIT_S: u64 = 60;

/// One placed MIG instance of a lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Node.
    pub node_id: NodeId,
    /// GPU UUID.
    pub gpu_uuid: String,
    /// NVML profile id.
    pub profile_id: i32,
    /// First memory slice.
    pub start: i32,
    /// MIG device UUID, once the node made it.
    pub mig_device_uuid: Option<String>,
}

/// A lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Id.
    pub id: LeaseId,
    /// Project holding it.
    pub project_id: ProjectId,
    /// The project's organisation.
    pub organization_id: OrganizationId,
    /// Grant whose budget it holds.
    pub grant_id: Option<GrantId>,
    /// Profile name.
    pub profile: String,
    /// GPU model.
    pub gpu_model: String,
    /// Instances.
    pub count: i32,
    /// Compute slices of all instances.
    pub compute_slices: i64,
    /// Site constraint.
    pub site: Option<String>,
    /// Gang on one node.
    pub same_node: bool,
    /// May be preempted for guaranteed leases.
    pub preemptible: bool,
    /// Requested duration.
    pub duration_s: i64,
    /// State.
    pub state: LeaseState,
    /// Why it is pending, failed or preempted.
    pub state_reason: Option<String>,
    /// Budget held while live (slice-seconds).
    pub held_slice_seconds: i64,
    /// Budget used once ended (slice-seconds).
    pub charged_slice_seconds: i64,
    /// Timestamps of the transitions.
    pub created_at: DateTime<Utc>,
    /// Placed at.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Usable since.
    pub active_at: Option<DateTime<Utc>>,
    /// Release asked at.
    pub releasing_at: Option<DateTime<Utc>>,
    /// Ended at.
    pub ended_at: Option<DateTime<Utc>>,
    /// Reaches its duration at.
    pub ends_at: Option<DateTime<Utc>>,
    /// Where it runs.
    pub placements: Vec<Placement>,
}

/// A validated lease request.
#[derive(Clone, Debug, Serialize)]
pub struct NewLease {
    profile: String,
    gpu_model: Option<String>,
    count: i64,
    site: Option<String>,
    same_node: bool,
    preemptible: bool,
    duration_s: i64,
}

impl NewLease {
    /// Profile name as asked.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Instances.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// Site constraint.
    pub fn site(&self) -> Option<&str> {
        self.site.as_deref()
    }

    /// Whether it may be preempted.
    pub fn preemptible(&self) -> bool {
        self.preemptible
    }

    /// Requested duration in seconds.
    pub fn duration_s(&self) -> i64 {
        self.duration_s
    }

    /// Validates what can be checked without the project (the model may come from its grant).
    pub fn parse(
        profile: &str,
        count: Option<i64>,
        gpu_model: Option<&str>,
        site: Option<&str>,
        same_node: Option<bool>,
        preemptible: Option<bool>,
        duration_s: Option<i64>,
    ) -> Result<Self> {
        let mut v = Validator::default();
        let model = gpu_model.and_then(|m| v.check(crate::values::parse_gpu_model("gpu_model", m)));
        if let Some(model) = model {
            v.check(
                model
                    .parse_profile(profile)
                    .map(|_| ())
                    .map_err(|e| Error::invalid("profile", e.to_string())),
            );
        }
        let count = count.unwrap_or(1);
        if !(1..=MAX_COUNT).contains(&count) {
            v.check::<()>(Err(Error::invalid(
                "count",
                format!("must be between 1 and {MAX_COUNT}"),
            )));
        }
        let site = site
            .and_then(|s| v.check(Slug::parse("site", s)))
            .map(|s| s.as_str().to_owned());
        let duration_s = duration_s.unwrap_or(DEFAULT_DURATION_S);
        if !(MIN_DURATION_S..=MAX_DURATION_S).contains(&duration_s) {
            v.check::<()>(Err(Error::invalid(
                "duration_s",
                format!("must be between {MIN_DURATION_S} and {MAX_DURATION_S}"),
            )));
        }
        v.finish()?;
        Ok(Self {
            profile: profile.trim().to_owned(),
            gpu_model: model.map(|m| m.to_string()),
            count,
            site,
            same_node: same_node.unwrap_or(false),
            preemptible: preemptible.unwrap_or(false),
            duration_s,
        })
    }
}

fn placement_of(p: lease_placements::Model) -> Placement {
    Placement {
        node_id: NodeId(p.node_id),
        gpu_uuid: p.gpu_uuid,
        profile_id: p.profile_id,
        start: p.start,
        mig_device_uuid: p.mig_device_uuid,
    }
}

pub(crate) fn lease_of(m: leases::Model, placements: Vec<Placement>) -> Result<Lease> {
    Ok(Lease {
        id: LeaseId(m.id),
        project_id: ProjectId(m.project_id),
        organization_id: OrganizationId(m.organization_id),
        grant_id: m.grant_id.map(GrantId),
        state: LeaseState::parse("state", &m.state)
            .map_err(|_| Error::Internal(format!("lease {} has a bad state", m.id)))?,
        profile: m.profile,
        gpu_model: m.gpu_model,
        count: m.count,
        compute_slices: m.compute_slices,
        site: m.site,
        same_node: m.same_node,
        preemptible: m.preemptible,
        duration_s: m.duration_s,
        state_reason: m.state_reason,
        held_slice_seconds: m.held_slice_seconds,
        charged_slice_seconds: m.charged_slice_seconds,
        created_at: m.created_at,
        scheduled_at: m.scheduled_at,
        active_at: m.active_at,
        releasing_at: m.releasing_at,
        ended_at: m.ended_at,
        ends_at: m.ends_at,
        placements,
    })
}

async fn with_placements(db: &impl ConnectionTrait, m: leases::Model) -> Result<Lease> {
    let placements = lease_placements::Entity::find()
        .filter(lease_placements::Column::LeaseId.eq(m.id))
        .order_by_asc(lease_placements::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(placement_of)
        .collect();
    lease_of(m, placements)
}

/// May use the project's resources: project members and leads, organisation admins,
/// platform admins.
pub fn can_use(caller: &Caller, org: OrganizationId, project: ProjectId) -> bool {
    caller.can_admin_org(org)
        || matches!(
            caller.project_role(project),
            Some(ProjectRole::Member | ProjectRole::Lead)
        )
}

/// The lease's GPU model: as asked, or that of the project's grant valid now that ends
/// first.
pub(crate) fn resolve_model(
    valid: &[crate::entities::grants::Model],
    cmd: &NewLease,
) -> Result<GpuModel> {
    if let Some(m) = &cmd.gpu_model {
        return crate::values::parse_gpu_model("gpu_model", m);
    }
    let grant = valid.first().ok_or_else(|| {
        Error::invalid(
            "gpu_model",
            "required: the project has no grant valid now to take it from",
        )
    })?;
    crate::values::parse_gpu_model("gpu_model", &grant.gpu_model)
}

/// Admits a lease: quota and budget checked and held in the same transaction that records
/// it as `pending`; the scheduler is woken after commit. Concurrent requests are admitted
/// together in one transaction (see `lease_batch`).
#[tracing::instrument(skip_all, err, fields(project_id = %project_id))]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    project_id: ProjectId,
    cmd: NewLease,
    idem: Option<&IdempotencyKey>,
) -> Result<Lease> {
    svc.admission
        .admit(svc, caller, project_id, cmd, idem)
        .await
}

/// The one-lease admission: the reference the batched path follows, and its fallback.
pub(crate) async fn create_one(
    svc: &Services,
    caller: &Caller,
    project_id: ProjectId,
    cmd: NewLease,
    idem: Option<&IdempotencyKey>,
) -> Result<Lease> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let project = projects::load_visible(&txn, caller, project_id).await?;
    let org = project.organization_id;
    caller.require(true, can_use(caller, org, project_id), "project")?;
    let op = format!("lease.create:{project_id}");
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(lease) => return Ok(lease),
        idempotency::Begin::Proceed(slot) => slot,
    };
    let valid_grants = admission::valid_grants(&txn, project_id, now).await?;
    let model = resolve_model(&valid_grants, &cmd)?;
    let profile = model
        .parse_profile(&cmd.profile)
        .map_err(|e| Error::invalid("profile", e.to_string()))?;
    let compute_slices = cmd.count * i64::from(profile.geometry().compute_slices);
    let ask = Ask {
        profile: profile.name,
        gpu_model: model,
        count: cmd.count,
        compute_slices,
        site: cmd.site.as_deref(),
        preemptible: cmd.preemptible,
        hold: compute_slices.saturating_mul(cmd.duration_s),
    };
    admission::lock_org(&txn, org).await?;
    admission::check_quota(&txn, org, project_id, &ask).await?;
    let grant = admission::pick_grant(&txn, &valid_grants, &ask).await?;
    let row = pending_row(
        LeaseId::new(),
        project_id,
        org,
        grant,
        &profile,
        model,
        &cmd,
        compute_slices,
        ask.hold,
        caller,
        now,
    )?;
    let lease = pending_lease(&row)?;
    leases::Entity::insert(row).exec(&txn).await?;
    let hold = ledger::Posting::hold(grant.0, lease.id.0, ask.hold);
    let moved = ledger::post(&txn, now, &caller.actor.key(), vec![hold]).await?;
    ledger::raise_warnings(&txn, now, &svc.budget, &moved).await?;
    audit::append(&txn, now, caller, created_record(&lease, grant)).await?;
    idempotency::finish(&txn, slot, &lease).await?;
    txn.commit().await?;
    svc.events.lease_changed();
    svc.events.wake_scheduler();
    Ok(lease)
}

/// The row of a newly admitted, pending lease.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pending_row(
    id: LeaseId,
    project_id: ProjectId,
    org: OrganizationId,
    grant: GrantId,
    profile: &aion_mig::Profile,
    model: GpuModel,
    cmd: &NewLease,
    compute_slices: i64,
    hold: i64,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<leases::ActiveModel> {
    Ok(leases::ActiveModel {
        id: Set(id.0),
        project_id: Set(project_id.0),
        organization_id: Set(org.0),
        grant_id: Set(Some(grant.0)),
        profile: Set(profile.name.to_owned()),
        profile_id: Set(i32::from(profile.id().get())),
        gpu_model: Set(model.to_string()),
        count: Set(i32::try_from(cmd.count).map_err(|_| missing())?),
        compute_slices: Set(compute_slices),
        site: Set(cmd.site.clone()),
        same_node: Set(cmd.same_node),
        preemptible: Set(cmd.preemptible),
        duration_s: Set(cmd.duration_s),
        state: Set(LeaseState::Pending.as_str().to_owned()),
        state_reason: Set(None),
        held_slice_seconds: Set(hold),
        charged_slice_seconds: Set(0),
        created_by: Set(caller.actor.key()),
        created_at: Set(now),
        scheduled_at: Set(None),
        active_at: Set(None),
        releasing_at: Set(None),
        ended_at: Set(None),
        ends_at: Set(None),
        updated_at: Set(now),
    })
}

/// The lease a [`pending_row`] describes.
pub(crate) fn pending_lease(row: &leases::ActiveModel) -> Result<Lease> {
    let model = leases::Model::try_from(row.clone())
        .map_err(|e| Error::Internal(format!("incomplete lease row: {e}")))?;
    lease_of(model, Vec::new())
}

/// The audit record of a lease's admission.
pub(crate) fn created_record(lease: &Lease, grant: GrantId) -> Record {
    Record {
        action: "lease.create",
        target_kind: "lease",
        target_id: lease.id.to_string(),
        organization_id: Some(lease.organization_id),
        project_id: Some(lease.project_id),
        details: json!({"profile": lease.profile, "gpu_model": lease.gpu_model, "count": lease.count,
            "preemptible": lease.preemptible, "duration_s": lease.duration_s, "grant_id": grant}),
    }
}

/// The lease if the caller may see it; another tenant's lease is not found.
pub(crate) async fn load_visible(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: LeaseId,
) -> Result<leases::Model> {
    match leases::Entity::find_by_id(id.0).one(db).await? {
        Some(m)
            if caller
                .can_see_project(OrganizationId(m.organization_id), ProjectId(m.project_id)) =>
        {
            Ok(m)
        }
        _ => Err(Error::NotFound("lease")),
    }
}

/// Reads a lease; with `wait`, long-polls until it leaves `pending`/`scheduled` or the
/// wait ends (woken by change notices, re-reading the database each time).
pub async fn get(svc: &Services, caller: &Caller, id: LeaseId, wait_s: u64) -> Result<Lease> {
    let mut changes = svc.events.leases();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s.min(MAX_WAIT_S));
    loop {
        let m = load_visible(&svc.db, caller, id).await?;
        let settled = !matches!(m.state.as_str(), "pending" | "scheduled");
        if settled || wait_s == 0 {
            return with_placements(&svc.db, m).await;
        }
        // Lost notices are harmless: the loop re-reads at least once a second.
        let tick = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        let _ = tokio::time::timeout_at(tick, changes.changed()).await;
        if tokio::time::Instant::now() >= deadline {
            return with_placements(&svc.db, load_visible(&svc.db, caller, id).await?).await;
        }
    }
}

/// Lists a project's leases, newest first, optionally in one state.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    project_id: ProjectId,
    state: Option<LeaseState>,
    page: &PageRequest,
) -> Result<Page<Lease>> {
    projects::load_visible(&svc.db, caller, project_id).await?;
    let mut query = leases::Entity::find().filter(leases::Column::ProjectId.eq(project_id.0));
    if let Some(state) = state {
        query = query.filter(leases::Column::State.eq(state.as_str()));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(leases::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(leases::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    // The page's placements in one query, not one per lease.
    let mut placed: std::collections::HashMap<uuid::Uuid, Vec<Placement>> =
        std::collections::HashMap::new();
    if !rows.is_empty() {
        for p in lease_placements::Entity::find()
            .filter(lease_placements::Column::LeaseId.is_in(rows.iter().map(|m| m.id)))
            .order_by_asc(lease_placements::Column::Id)
            .all(&svc.db)
            .await?
        {
            placed.entry(p.lease_id).or_default().push(placement_of(p));
        }
    }
    let items = rows
        .into_iter()
        .map(|m| {
            let placements = placed.remove(&m.id).unwrap_or_default();
            lease_of(m, placements)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |l: &Lease| l.id.to_string()))
}

/// Releases a lease: a pending one ends at once; a placed one becomes `releasing` and its
/// node tears it down; an ended one is returned unchanged (releasing twice is harmless).
#[tracing::instrument(skip_all, err, fields(lease_id = %id))]
pub async fn release(svc: &Services, caller: &Caller, id: LeaseId) -> Result<Lease> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let m = load_visible(&txn, caller, id).await?;
    let (org, project) = (OrganizationId(m.organization_id), ProjectId(m.project_id));
    caller.require(true, can_use(caller, org, project), "lease")?;
    let state = LeaseState::parse("state", &m.state).map_err(|_| missing())?;
    let to = match state {
        LeaseState::Pending => Some(LeaseState::Released),
        LeaseState::Scheduled | LeaseState::Active => Some(LeaseState::Releasing),
        _ => None,
    };
    let mut nodes: Vec<uuid::Uuid> = Vec::new();
    if let Some(to) = to {
        lease_lifecycle::transition(
            &txn,
            now,
            caller,
            &m,
            to,
            Some("released by its project".into()),
        )
        .await?;
        nodes = lease_placements::Entity::find()
            .filter(lease_placements::Column::LeaseId.eq(m.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|p| p.node_id)
            .collect();
        lease_lifecycle::bump_nodes(&txn, &nodes, now).await?;
    }
    let lease = with_placements(&txn, lease_lifecycle::load(&txn, id).await?).await?;
    txn.commit().await?;
    svc.events.lease_changed();
    svc.events.nodes_changed(nodes);
    svc.events.wake_scheduler();
    Ok(lease)
}
