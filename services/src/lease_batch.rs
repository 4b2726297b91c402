//! Group commit of lease admissions. Concurrent `POST …/leases` queue up here and one
//! worker admits whatever has queued in a single transaction: the rows every admission
//! reads (projects, grants, quotas, held compute, grant usage) are read once per batch, the
//! decisions are taken one after another in memory with running totals, and the leases,
//! their audit events and idempotency keys are written with one multi-row insert each.
//! Under load that turns about a dozen statements and a commit per lease into a dozen per
//! batch; an idle server still answers a lone request at once (a batch of one).
//!
//! The rules are those of the one-lease path (`leases::create_one`), which stays the
//! reference: a batch whose transaction fails for any database reason (a concurrent
//! replica's identical Idempotency-Key, a serialisation failure) is replayed lease by lease
//! through it, so every request still gets its own, correct answer.

use crate::Services;
use crate::audit;
use crate::authz::Caller;
use crate::entities::leases as lease_rows;
use crate::entities::{audit_inbox, grants, idempotency_keys, organizations, projects};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey, RETENTION_HOURS};
use crate::ids::{GrantId, LeaseId, OrganizationId, ProjectId};
use crate::lease_admission::{self as admission, Ask};
use crate::lease_state::LeaseState;
use crate::leases::{self, Lease, NewLease};
use crate::ledger;
use crate::pg_array;
use crate::quotas::{self, EffectiveQuota};
use crate::values::OrganizationKind;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::collections::HashMap;
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

/// Most admissions in one transaction.
pub const MAX_BATCH: usize = 128;

/// Longest wait for the rest of a wave of requests (see the worker).
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// A queue empty for this long means the waves are over.
const QUIET: std::time::Duration = std::time::Duration::from_millis(50);

/// One queued `POST …/leases`.
struct Job {
    caller: Caller,
    project_id: ProjectId,
    cmd: NewLease,
    idem: Option<IdempotencyKey>,
    reply: oneshot::Sender<Result<Lease>>,
}

/// The admission queue of one process; its worker starts with the first lease request.
#[derive(Default)]
pub struct AdmissionQueue {
    sender: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl AdmissionQueue {
    /// Queues a lease request and waits for its admission (or refusal).
    pub(crate) async fn admit(
        &self,
        svc: &Services,
        caller: &Caller,
        project_id: ProjectId,
        cmd: NewLease,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Lease> {
        let sender = self.sender.get_or_init(|| start_worker(svc));
        let (reply, answer) = oneshot::channel();
        let job = Job {
            caller: caller.clone(),
            project_id,
            cmd,
            idem: idem.cloned(),
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = sender.send(job) {
            // The worker is gone (its runtime shut down): admit on this task instead.
            return leases::create_one(
                svc,
                &job.caller,
                job.project_id,
                job.cmd,
                job.idem.as_ref(),
            )
            .await;
        }
        answer
            .await
            .map_err(|_| Error::Unavailable("lease admission stopped; retry".into()))?
    }
}

/// Spawns the worker. It holds its own `Services` whose queue is never used, so dropping
/// the last user's `Services` closes the channel and ends the worker.
fn start_worker(svc: &Services) -> mpsc::UnboundedSender<Job> {
    let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
    let svc = Services {
        admission: std::sync::Arc::default(),
        ..svc.clone()
    };
    tokio::spawn(async move {
        // Sizes of the last two batches: together, about how many requests are in
        // flight under the load.
        let (mut last, mut before) = (1usize, 0usize);
        loop {
            let waited = std::time::Instant::now();
            let Some(first) = jobs.recv().await else {
                break;
            };
            if waited.elapsed() >= QUIET {
                // A quiet spell ends any wave: a lone request is admitted at once.
                (last, before) = (1, 0);
            }
            let mut batch = vec![first];
            take_queued(&mut jobs, &mut batch);
            // Under load, requests come in waves: a batch's answers go out together and
            // their clients send again together, so the batch after a large one starts
            // with the few that came meanwhile and pays a whole batch's fixed cost for
            // them. Waiting a moment for the wave to land halves the batches. After a
            // quiet spell (see `QUIET`) a request never waits.
            let demand = last + before;
            if batch.len() * 2 < demand {
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < demand.min(MAX_BATCH) {
                    match tokio::time::timeout_at(deadline, jobs.recv()).await {
                        Ok(Some(job)) => {
                            batch.push(job);
                            take_queued(&mut jobs, &mut batch);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            (before, last) = (last, batch.len());
            run_batch(&svc, batch).await;
        }
    });
    sender
}

/// Moves whatever is queued into `batch`, up to [`MAX_BATCH`].
fn take_queued(jobs: &mut mpsc::UnboundedReceiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// What became of one job inside the batch transaction.
enum Outcome {
    /// Refused, or an earlier answer replayed: final whatever the commit does.
    Done(Result<Lease>),
    /// Admitted: final once the batch commits.
    Admitted(Lease),
    /// Same Idempotency-Key as an earlier job of this batch: run alone after the commit,
    /// so it replays that job's answer (or is admitted if that one was refused).
    After,
}

#[tracing::instrument(name = "lease_admission_batch", skip_all, fields(size = jobs.len()))]
async fn run_batch(svc: &Services, jobs: Vec<Job>) {
    let now = svc.clock.now();
    match admit_batch(svc, now, &jobs).await {
        Ok(outcomes) => {
            if outcomes.iter().any(|o| matches!(o, Outcome::Admitted(_))) {
                svc.events.lease_changed();
                svc.events.wake_scheduler();
            }
            let mut later = Vec::new();
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Done(answer) => {
                        let _ = job.reply.send(answer);
                    }
                    Outcome::Admitted(lease) => {
                        let _ = job.reply.send(Ok(lease));
                    }
                    Outcome::After => later.push(job),
                }
            }
            one_by_one(svc, later).await;
        }
        Err(e) => {
            tracing::debug!(error = %e, "batch admission failed; admitting one by one");
            one_by_one(svc, jobs).await;
        }
    }
}

async fn one_by_one(svc: &Services, jobs: Vec<Job>) {
    for job in jobs {
        let answer =
            leases::create_one(svc, &job.caller, job.project_id, job.cmd, job.idem.as_ref()).await;
        let _ = job.reply.send(answer);
    }
}

/// Running totals of one batch: what the database held at its start plus what the batch
/// admitted so far.
#[derive(Default)]
struct Totals {
    /// (project, preemptible) → compute slices held.
    project: HashMap<(ProjectId, bool), i64>,
    /// (organisation, preemptible) → compute slices held.
    organization: HashMap<(OrganizationId, bool), i64>,
    /// Grant → balance left (its ledger's, less the holds this batch admitted).
    grant: HashMap<uuid::Uuid, i64>,
    /// (scope, profile) → instances admitted by this batch (per-profile caps).
    profile: HashMap<(uuid::Uuid, String), i64>,
    /// (scope, site) → compute slices admitted by this batch (per-site caps).
    site: HashMap<(uuid::Uuid, String), i64>,
    /// The candidate grants' ledger heads, read under their locks at the batch's start.
    heads: ledger::Heads,
}

async fn admit_batch(svc: &Services, now: DateTime<Utc>, jobs: &[Job]) -> Result<Vec<Outcome>> {
    let txn = svc.write_txn().await?;
    let mut outcomes: Vec<Option<Outcome>> = jobs.iter().map(|_| None).collect();

    // Who may use which project: one read of all the batch's projects.
    let backend = txn.get_database_backend();
    let job_projects = distinct(jobs.iter().map(|j| j.project_id.0));
    let project_rows: HashMap<uuid::Uuid, projects::Model> = projects::Entity::find()
        .filter(pg_array::uuid_in(
            backend,
            projects::Column::Id,
            &job_projects,
        ))
        .all(&txn)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    for (i, job) in jobs.iter().enumerate() {
        let visible = project_rows.get(&job.project_id.0).filter(|p| {
            job.caller
                .can_see_project(p.organization_id.into(), job.project_id)
        });
        let refusal = match visible {
            None => Some(Error::NotFound("project")),
            Some(p) => {
                let org = OrganizationId(p.organization_id);
                job.caller
                    .require(
                        true,
                        leases::can_use(&job.caller, org, job.project_id),
                        "project",
                    )
                    .err()
            }
        };
        if let Some(e) = refusal {
            outcomes[i] = Some(Outcome::Done(Err(e)));
        }
    }

    // Idempotency keys: one read for all, replays answered, duplicates inside the batch
    // deferred, expired keys forgotten.
    let fingerprints = claim_keys(&txn, now, jobs, &mut outcomes).await?;

    let open: Vec<usize> = (0..jobs.len()).filter(|i| outcomes[*i].is_none()).collect();
    let open_projects = distinct(open.iter().map(|i| jobs[*i].project_id.0));
    let orgs = distinct(
        open.iter()
            .filter_map(|i| project_rows.get(&jobs[*i].project_id.0))
            .map(|p| p.organization_id),
    );
    let kinds = lock_orgs(&txn, &orgs).await?;
    let valid = lock_valid_grants(&txn, &open_projects, now).await?;
    let pairs: Vec<(OrganizationId, ProjectId)> = open_projects
        .iter()
        .filter_map(|p| project_rows.get(p))
        .map(|p| (OrganizationId(p.organization_id), ProjectId(p.id)))
        .collect();
    let caps = quotas::effective_many(&txn, &kinds, &pairs).await?;
    let mut totals = read_totals(&txn, &orgs, &valid).await?;

    let mut rows = Vec::new();
    let mut events = Vec::new();
    let mut keys = Vec::new();
    let mut holds = Vec::new();
    for i in open {
        let job = &jobs[i];
        let Some(project) = project_rows.get(&job.project_id.0) else {
            continue;
        };
        let org = OrganizationId(project.organization_id);
        let no_grants = Vec::new();
        let grants = valid.get(&job.project_id.0).unwrap_or(&no_grants);
        let decided = decide(
            &txn,
            job,
            org,
            grants,
            caps.get(&job.project_id),
            &mut totals,
            now,
        )
        .await;
        match decided {
            Ok((row, lease, grant)) => {
                events.push(audit_row(now, job, &lease, grant));
                holds.push(ledger::Posting::hold(
                    grant.0,
                    lease.id.0,
                    lease.held_slice_seconds,
                ));
                if let (Some(key), Some(fp)) = (&job.idem, fingerprints.get(&i)) {
                    keys.push(idempotency_keys::ActiveModel {
                        principal_key: Set(job.caller.actor.key()),
                        operation: Set(operation(job.project_id)),
                        idem_key: Set(key.as_str().to_owned()),
                        fingerprint: Set(fp.clone()),
                        response: Set(serde_json::to_string(&lease).map_err(|e| {
                            Error::Internal(format!("cannot store idempotent answer: {e}"))
                        })?),
                        created_at: Set(now),
                    });
                }
                rows.push(row);
                outcomes[i] = Some(Outcome::Admitted(lease));
            }
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(e),
            Err(e) => outcomes[i] = Some(Outcome::Done(Err(e))),
        }
    }
    if !rows.is_empty() {
        pg_array::insert_many(&txn, rows).await?;
        pg_array::insert_many(&txn, events).await?;
        // Holds are posted by the system: the callers are in the audit events.
        let heads = std::mem::take(&mut totals.heads);
        let moved = ledger::post_locked(&txn, now, "system:admission", holds, heads).await?;
        ledger::raise_warnings(&txn, now, &svc.budget, &moved).await?;
    }
    pg_array::insert_many(&txn, keys).await?;
    txn.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::After))
        .collect())
}

fn distinct(ids: impl Iterator<Item = uuid::Uuid>) -> Vec<uuid::Uuid> {
    let mut ids: Vec<_> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn operation(project: ProjectId) -> String {
    format!("lease.create:{project}")
}

/// Looks up every job's Idempotency-Key in one query. Answers replays and mismatches,
/// defers a second use of a key inside the batch, deletes expired keys; returns the
/// fingerprints of the jobs that go on.
async fn claim_keys(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    jobs: &[Job],
    outcomes: &mut [Option<Outcome>],
) -> Result<HashMap<usize, String>> {
    let keyed: Vec<usize> = (0..jobs.len())
        .filter(|i| outcomes[*i].is_none() && jobs[*i].idem.is_some())
        .collect();
    let mut fingerprints = HashMap::new();
    if keyed.is_empty() {
        return Ok(fingerprints);
    }
    let triple = |job: &Job| {
        (
            job.caller.actor.key(),
            operation(job.project_id),
            job.idem
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
        )
    };
    let any = if txn.get_database_backend() == DatabaseBackend::Postgres {
        // Three arrays: one statement text whatever the number of keys.
        let mut columns = [(); 3].map(|_| pg_array::ArrayLiteral::with_capacity(keyed.len()));
        for i in &keyed {
            let (principal, op, key) = triple(&jobs[*i]);
            columns[0].text(&principal);
            columns[1].text(&op);
            columns[2].text(&key);
        }
        Condition::all().add(Expr::cust_with_values(
            "(\"idempotency_keys\".\"principal_key\", \"idempotency_keys\".\"operation\", \
             \"idempotency_keys\".\"idem_key\") IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
            columns.map(pg_array::ArrayLiteral::finish),
        ))
    } else {
        let mut any = Condition::any();
        for i in &keyed {
            let (principal, op, key) = triple(&jobs[*i]);
            any = any.add(
                Condition::all()
                    .add(idempotency_keys::Column::PrincipalKey.eq(principal))
                    .add(idempotency_keys::Column::Operation.eq(op))
                    .add(idempotency_keys::Column::IdemKey.eq(key)),
            );
        }
        any
    };
    let stored: HashMap<(String, String, String), idempotency_keys::Model> =
        idempotency_keys::Entity::find()
            .filter(any)
            .all(txn)
            .await?
            .into_iter()
            .map(|m| {
                (
                    (
                        m.principal_key.clone(),
                        m.operation.clone(),
                        m.idem_key.clone(),
                    ),
                    m,
                )
            })
            .collect();
    let mut seen = std::collections::HashSet::new();
    for i in keyed {
        let job = &jobs[i];
        let id = triple(job);
        if !seen.insert(id.clone()) {
            outcomes[i] = Some(Outcome::After);
            continue;
        }
        let fp = idempotency::fingerprint(&id.1, &job.cmd);
        match stored.get(&id) {
            Some(row) if row.created_at > now - chrono::Duration::hours(RETENTION_HOURS) => {
                outcomes[i] = Some(Outcome::Done(if row.fingerprint != fp {
                    Err(Error::IdempotencyMismatch)
                } else {
                    serde_json::from_str(&row.response).map_err(|e| {
                        Error::Internal(format!("stored idempotent answer unreadable: {e}"))
                    })
                }));
            }
            Some(_) => {
                idempotency_keys::Entity::delete_many()
                    .filter(idempotency_keys::Column::PrincipalKey.eq(id.0.clone()))
                    .filter(idempotency_keys::Column::Operation.eq(id.1.clone()))
                    .filter(idempotency_keys::Column::IdemKey.eq(id.2.clone()))
                    .exec(txn)
                    .await?;
                fingerprints.insert(i, fp);
            }
            None => {
                fingerprints.insert(i, fp);
            }
        }
    }
    Ok(fingerprints)
}

/// Takes the admission locks of the batch's organisations, in id order so that two
/// replicas' batches cannot deadlock, and reads their kinds (for default quotas). On
/// SQLite the write transaction already excludes every other writer.
async fn lock_orgs(
    txn: &impl ConnectionTrait,
    orgs: &[uuid::Uuid],
) -> Result<HashMap<OrganizationId, OrganizationKind>> {
    let mut find = organizations::Entity::find()
        .filter(pg_array::uuid_in(
            txn.get_database_backend(),
            organizations::Column::Id,
            orgs,
        ))
        .order_by_asc(organizations::Column::Id);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    find.all(txn)
        .await?
        .into_iter()
        .map(|m| {
            let kind = OrganizationKind::parse("kind", &m.kind)
                .map_err(|_| Error::Internal(format!("organisation {} has unknown kind", m.id)))?;
            Ok((OrganizationId(m.id), kind))
        })
        .collect()
}

/// The grants of these projects valid at `now`, per project, soonest ending first. On
/// PostgreSQL the same read row-locks them for the ledger, after the organisations' locks
/// and in id order, as every ledger writer does (`ledger::lock`); one round trip for both.
async fn lock_valid_grants(
    txn: &impl ConnectionTrait,
    projects: &[uuid::Uuid],
    now: DateTime<Utc>,
) -> Result<HashMap<uuid::Uuid, Vec<grants::Model>>> {
    let mut find = grants::Entity::find()
        .filter(pg_array::uuid_in(
            txn.get_database_backend(),
            grants::Column::ProjectId,
            projects,
        ))
        .filter(grants::Column::ValidFrom.lte(now))
        .filter(grants::Column::ValidUntil.gt(now))
        .order_by_asc(grants::Column::Id);
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    let mut valid: HashMap<uuid::Uuid, Vec<grants::Model>> = HashMap::new();
    for g in find.all(txn).await? {
        valid.entry(g.project_id).or_default().push(g);
    }
    for list in valid.values_mut() {
        list.sort_by_key(|g| (g.valid_until, g.id));
    }
    Ok(valid)
}

/// Compute slices held per project and organisation, and what each candidate grant has
/// used and holds, at the start of the batch (after the locks: nothing changes them now
/// but this batch).
async fn read_totals(
    txn: &impl ConnectionTrait,
    orgs: &[uuid::Uuid],
    valid: &HashMap<uuid::Uuid, Vec<grants::Model>>,
) -> Result<Totals> {
    let mut totals = Totals::default();
    let held: Vec<(uuid::Uuid, uuid::Uuid, bool, i64)> = lease_rows::Entity::find()
        .select_only()
        .column(lease_rows::Column::OrganizationId)
        .column(lease_rows::Column::ProjectId)
        .column(lease_rows::Column::Preemptible)
        .column_as(Expr::cust("CAST(SUM(compute_slices) AS BIGINT)"), "held")
        .filter(pg_array::uuid_in(
            txn.get_database_backend(),
            lease_rows::Column::OrganizationId,
            orgs,
        ))
        .filter(lease_rows::Column::State.is_in(LeaseState::live_names()))
        .group_by(lease_rows::Column::OrganizationId)
        .group_by(lease_rows::Column::ProjectId)
        .group_by(lease_rows::Column::Preemptible)
        .into_tuple()
        .all(txn)
        .await?;
    for (org, project, preemptible, slices) in held {
        *totals
            .organization
            .entry((OrganizationId(org), preemptible))
            .or_default() += slices;
        *totals
            .project
            .entry((ProjectId(project), preemptible))
            .or_default() += slices;
    }
    // Grant balances: the last ledger entry of each, under the grants' locks (taken by
    // `lock_valid_grants`).
    let grant_ids = valid.values().flatten().map(|g| g.id).collect();
    totals.heads = ledger::heads(txn, &grant_ids).await?;
    for (id, (_, standing)) in &totals.heads {
        totals.grant.insert(*id, standing.balance);
    }
    Ok(totals)
}

/// Decides one job against the running totals; on admission, counts it in them.
async fn decide(
    txn: &impl ConnectionTrait,
    job: &Job,
    org: OrganizationId,
    valid: &[grants::Model],
    caps: Option<&EffectiveQuota>,
    totals: &mut Totals,
    now: DateTime<Utc>,
) -> Result<(lease_rows::ActiveModel, Lease, GrantId)> {
    let cmd = &job.cmd;
    let model = leases::resolve_model(valid, cmd)?;
    let profile = model
        .parse_profile(cmd.profile())
        .map_err(|e| Error::invalid("profile", e.to_string()))?;
    let compute_slices = cmd.count() * i64::from(profile.geometry().compute_slices);
    let ask = Ask {
        profile: profile.name,
        gpu_model: model,
        count: cmd.count(),
        compute_slices,
        site: cmd.site(),
        preemptible: cmd.preemptible(),
        hold: compute_slices.saturating_mul(cmd.duration_s()),
    };
    let caps = caps.ok_or(Error::NotFound("project"))?;
    let project = job.project_id;
    let scopes = [
        (&caps.project, project.0, "project"),
        (&caps.organization, org.0, "organisation"),
    ];
    let held = [
        totals
            .project
            .get(&(project, ask.preemptible))
            .copied()
            .unwrap_or(0),
        totals
            .organization
            .get(&(org, ask.preemptible))
            .copied()
            .unwrap_or(0),
    ];
    for ((limits, scope_id, name), held) in scopes.iter().zip(held) {
        admission::main_cap(limits, held, &ask, name)?;
        let in_scope = || {
            Condition::all().add(if *name == "project" {
                lease_rows::Column::ProjectId.eq(*scope_id)
            } else {
                lease_rows::Column::OrganizationId.eq(*scope_id)
            })
        };
        if let Some(max) = limits.per_profile.get(ask.profile) {
            let scope = in_scope().add(lease_rows::Column::Profile.eq(ask.profile));
            let stored = admission::live_sum(txn, scope, "count").await?;
            let added = totals
                .profile
                .get(&(*scope_id, ask.profile.to_owned()))
                .copied()
                .unwrap_or(0);
            admission::profile_cap(*max, stored + added, &ask, name)?;
        }
        if let Some(site) = ask.site
            && let Some(max) = limits.per_site.get(site)
        {
            let scope = in_scope().add(lease_rows::Column::Site.eq(site));
            let stored = admission::live_sum(txn, scope, "compute_slices").await?;
            let added = totals
                .site
                .get(&(*scope_id, site.to_owned()))
                .copied()
                .unwrap_or(0);
            admission::site_cap(*max, stored + added, &ask, site, name)?;
        }
    }
    let candidates = admission::candidates_on_model(valid, &ask)?;
    let grant = admission::choose_grant(
        &candidates,
        |g| totals.grant.get(&g).copied().unwrap_or(0),
        &ask,
    )?;
    // Admitted: count it in the running totals.
    *totals.grant.entry(grant.0).or_default() -= ask.hold;
    *totals
        .project
        .entry((project, ask.preemptible))
        .or_default() += compute_slices;
    *totals
        .organization
        .entry((org, ask.preemptible))
        .or_default() += compute_slices;
    for scope_id in [project.0, org.0] {
        *totals
            .profile
            .entry((scope_id, ask.profile.to_owned()))
            .or_default() += ask.count;
        if let Some(site) = ask.site {
            *totals.site.entry((scope_id, site.to_owned())).or_default() += compute_slices;
        }
    }
    let row = leases::pending_row(
        LeaseId::new(),
        project,
        org,
        grant,
        &profile,
        model,
        cmd,
        compute_slices,
        ask.hold,
        &job.caller,
        now,
    )?;
    let lease = leases::pending_lease(&row)?;
    Ok((row, lease, grant))
}

fn audit_row(
    now: DateTime<Utc>,
    job: &Job,
    lease: &Lease,
    grant: GrantId,
) -> audit_inbox::ActiveModel {
    audit::inbox_row(now, &job.caller, leases::created_record(lease, grant))
}
