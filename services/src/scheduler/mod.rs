//! The scheduler: places pending leases on the GPUs of registered nodes.
//!
//! One leader among the replicas ([`leader`]) keeps the fleet in memory as an
//! [`aion_mig::Engine`] restored from the database ([`restore`]). Each tick it ends the
//! leases whose time is up ([`ends`]), then takes up to `batch_size` pending leases in
//! creation order, places them (preempting preemptible leases for guaranteed ones when
//! that is the only way) and commits the whole batch in one transaction ([`batch`]). The
//! database stays the truth: on any failure the engine is rebuilt from it, and the
//! `gpu_slot_claims` primary key refuses a double booking even if the engine were wrong.

mod batch;
mod commit;
mod ends;
pub mod leader;
mod restore;

pub use leader::Leadership;
pub use restore::PLACEABLE_LABEL;

use crate::Services;
use crate::error::Result;
use chrono::{DateTime, Utc};
use restore::{Fingerprint, FleetView};
use std::time::Duration;
use tokio::sync::watch;

/// How often a follower tries to become the leader.
const FOLLOWER_RETRY: Duration = Duration::from_secs(3);
/// How often the fleet is rebuilt from the database even when nothing seems to change.
const RESYNC: chrono::Duration = chrono::Duration::seconds(60);
/// How often the leader's ticks also do the work that does not depend on the batch: the
/// leadership probe, unreachable nodes, leases at their end, grant warnings and leases
/// ended elsewhere. Under load the scheduler ticks once per admission batch (hundreds
/// of times a second); those reads then cost more than placing. Placement safety does not
/// depend on them: the batch commit is fenced by the epoch, and a lease that ended
/// elsewhere only keeps its slots in the engine a little longer. Leases still expire
/// within this of their end (plus one tick).
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

/// Settings of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Most pending leases taken per batch.
    pub batch_size: u64,
    /// Time between ticks when nothing wakes the scheduler.
    pub tick: Duration,
    /// How long a lease may stay pending before it fails.
    pub pending_timeout: Duration,
    /// A node silent for this long becomes `unreachable` (agents heartbeat by long-polling).
    pub node_timeout: Duration,
    /// A rebuild reads every node and GPU (about 1.4 s at 288,000 GPUs, during which
    /// nothing is placed). After a change of the fleet, the next rebuild waits until this
    /// many times the last one's duration has passed, so rebuilds take at most a fifth of
    /// the scheduler's time however often nodes change; small fleets (a rebuild in
    /// milliseconds) see changes at once. Meanwhile each batch checks that its target
    /// nodes and GPUs are still placeable before it commits.
    pub rebuild_spacing: u32,
    /// A rebuild that took at least this long is done in the background next time: the
    /// scheduler goes on placing with the view it has (checking targets, as above) and
    /// swaps in the new one once read, with the placements it committed meanwhile. At
    /// 288,000 GPUs a rebuild in the tick stopped placing for 0.7 to 2 s each time a
    /// node came or went, and once a minute for the periodic resync.
    pub background_rebuild_above: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            tick: Duration::from_millis(500),
            pending_timeout: Duration::from_secs(900),
            node_timeout: Duration::from_secs(crate::nodes::HEARTBEAT_TIMEOUT_S as u64),
            rebuild_spacing: 4,
            background_rebuild_above: Duration::from_millis(50),
        }
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Pending leases examined.
    pub examined: usize,
    /// Leases placed (now `scheduled`).
    pub placed: usize,
    /// Leases left pending.
    pub pending: usize,
    /// Leases preempted for guaranteed ones.
    pub preempted: usize,
    /// Pending leases failed after the timeout (or with a request that can never fit).
    pub failed: usize,
    /// Active leases expired at their end.
    pub expired: usize,
}

/// The leader's memory between ticks: the fleet view (rebuilt when stale) and settings.
pub struct SchedulerState {
    config: SchedulerConfig,
    view: Option<FleetView>,
    /// Placed leases in the database that the engine cannot hold (e.g. on a GPU since
    /// removed); counted so that they do not look like a change every tick.
    unaccounted: usize,
    /// Id after which the next batch starts (set after a full batch).
    cursor: Option<uuid::Uuid>,
    /// The leader's fencing epoch; every batch commits only while it is current. `None`
    /// only where nothing else schedules (tests driving `run_once` directly).
    fence: Option<i64>,
    /// When the last rebuild ended and how long it took.
    last_rebuild: Option<(std::time::Instant, Duration)>,
    /// The fleet revision moved since the view was read (its rebuild put off, see
    /// [`SchedulerConfig::rebuild_spacing`], or running in the background): batches
    /// check that their target nodes and GPUs are still placeable.
    behind: bool,
    /// A view being read in the background, with what was committed meanwhile.
    loading: Option<Loading>,
    /// See [`SchedulerState::last_background_swap_adopted`].
    last_swap_adopted: Option<usize>,
}

/// A fleet view read on its own task while the scheduler goes on with the old one.
struct Loading {
    /// The view and how long reading it took.
    task: tokio::task::JoinHandle<Result<(FleetView, Duration)>>,
    started: std::time::Instant,
    /// Leases placed and committed since the read began: the new view may have read the
    /// database before they were, so they are adopted into it before it is used.
    committed: Vec<restore::Committed>,
}

impl Drop for Loading {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SchedulerState {
    /// A state with no fleet yet; the first tick restores it from the database.
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            config,
            view: None,
            unaccounted: 0,
            cursor: None,
            fence: None,
            last_rebuild: None,
            behind: false,
            loading: None,
            last_swap_adopted: None,
        }
    }

    /// Commits batches only while `epoch` is the current fencing epoch.
    pub fn fenced(mut self, epoch: i64) -> Self {
        self.fence = Some(epoch);
        self
    }

    /// Forgets the fleet so the next tick rebuilds it from the database (a background
    /// read under way is dropped: it may predate what made the view wrong).
    pub fn invalidate(&mut self) {
        self.view = None;
        self.loading = None;
    }

    /// Whether the batch's reason to rebuild is only that the view is behind and a read
    /// is under way already (it will be swapped in; no need for one in the tick).
    fn rebuild_coming(&self) -> bool {
        self.loading.is_some()
    }

    /// Whether a fleet view is being read in the background and not swapped in yet.
    pub fn rebuilding_in_background(&self) -> bool {
        self.loading.is_some()
    }

    /// Whether the background read, if any, has finished (the next tick swaps it in).
    pub fn background_rebuild_done(&self) -> bool {
        self.loading.as_ref().is_some_and(|l| l.task.is_finished())
    }

    /// Leases the fleet view holds.
    pub fn placed_in_view(&self) -> usize {
        self.view.as_ref().map_or(0, FleetView::placed_count)
    }

    /// Notes leases just committed, for a view being read in the background.
    fn committed(&mut self, placed: &[commit::Placed]) {
        if let Some(loading) = self.loading.as_mut() {
            loading
                .committed
                .extend(placed.iter().map(restore::Committed::of));
            // Placed now: no longer let go of, whatever an earlier batch did with it.
            if let Some(forgotten) = self.view.as_mut().and_then(|v| v.forgotten.as_mut()) {
                for p in placed {
                    forgotten.remove(&p.lease.id);
                }
            }
        }
    }

    /// Swaps in a view read in the background, once read: the leases the old view let go
    /// of meanwhile are let go of in the new one, then what was committed meanwhile (and
    /// is still held) is adopted. Answers whether it swapped. A read that failed, or ran
    /// past [`RESYNC`], is dropped and the next rebuild is done in the tick (where an
    /// error fails the tick, as before); so is a view that cannot adopt a committed
    /// placement.
    async fn swap_loaded(&mut self) -> bool {
        let Some(loading) = self.loading.as_ref() else {
            return false;
        };
        if !loading.task.is_finished() {
            if loading.started.elapsed() > RESYNC.to_std().unwrap_or(Duration::MAX) {
                tracing::warn!(
                    "scheduler: the background fleet read is taking too long; rebuilding in the tick"
                );
                self.loading = None;
                self.last_rebuild = None;
            }
            return false;
        }
        let Some(mut loading) = self.loading.take() else {
            return false;
        };
        let forgotten = self
            .view
            .as_mut()
            .and_then(|v| v.forgotten.take())
            .unwrap_or_default();
        let (mut view, took) = match (&mut loading.task).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "scheduler: reading the fleet in the background failed; rebuilding in the tick");
                self.last_rebuild = None;
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: the background fleet read ended; rebuilding in the tick");
                self.last_rebuild = None;
                return false;
            }
        };
        self.last_rebuild = Some((std::time::Instant::now(), took));
        for lease in &forgotten {
            view.forget(*lease);
        }
        let committed: Vec<restore::Committed> = std::mem::take(&mut loading.committed)
            .into_iter()
            .filter(|c| !forgotten.contains(&c.lease))
            .collect();
        match view.adopt(&committed) {
            Ok(adopted) => self.last_swap_adopted = Some(adopted),
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: a placement committed during the background read does not fit; rebuilding");
                self.last_swap_adopted = None;
                self.invalidate();
                return false;
            }
        }
        tracing::debug!(
            leases = view.placed_count(),
            gpus = view.gpus.len(),
            forgotten = forgotten.len(),
            adopted = committed.len(),
            took_ms = took.as_millis() as u64,
            "fleet restored in the background"
        );
        self.unaccounted = 0;
        self.view = Some(view);
        true
    }

    /// How many committed leases the last swap of a background read adopted (`None`
    /// before any, or when the last one fell back to a rebuild in the tick).
    pub fn last_background_swap_adopted(&self) -> Option<usize> {
        self.last_swap_adopted
    }

    /// Rebuilds the view when missing, when the fleet revision moved, or periodically;
    /// then, with `housekeeping`, releases in the engine the leases that ended elsewhere.
    async fn refresh(
        &mut self,
        svc: &Services,
        now: DateTime<Utc>,
        housekeeping: bool,
    ) -> Result<()> {
        let swapped = self.swap_loaded().await;
        let (resync, moved) = match &self.view {
            None => (true, true),
            Some(v) => (
                now - v.built_at >= RESYNC,
                Fingerprint::read(&svc.db).await? != v.fingerprint,
            ),
        };
        let spaced = match self.last_rebuild {
            None => true,
            Some((ended, took)) => took
                .checked_mul(self.config.rebuild_spacing)
                .is_some_and(|wait| ended.elapsed() >= wait),
        };
        let slow = self
            .last_rebuild
            .is_some_and(|(_, took)| took >= self.config.background_rebuild_above);
        let mut stale = swapped;
        if self.view.is_none() || ((resync || moved) && spaced && !slow) {
            self.loading = None;
            let started = std::time::Instant::now();
            let view = FleetView::load(&svc.db, now).await?;
            let took = started.elapsed();
            self.last_rebuild = Some((std::time::Instant::now(), took));
            self.behind = false;
            tracing::debug!(
                leases = view.placed_count(),
                gpus = view.gpus.len(),
                took_ms = took.as_millis() as u64,
                "fleet restored"
            );
            self.unaccounted = 0;
            self.view = Some(view);
            stale = true;
        } else {
            self.behind = moved;
            if (resync || moved) && spaced && self.loading.is_none() {
                let db = svc.db.clone();
                if let Some(v) = self.view.as_mut() {
                    v.forgotten = Some(std::collections::HashSet::new());
                }
                self.loading = Some(Loading {
                    task: tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let view = FleetView::load(&db, now).await?;
                        Ok((view, started.elapsed()))
                    }),
                    started: std::time::Instant::now(),
                    committed: Vec::new(),
                });
            }
        }
        let Some(view) = self.view.as_mut() else {
            return Ok(());
        };
        if !housekeeping && !stale {
            return Ok(());
        }
        let in_db = usize::try_from(restore::placed_lease_count(&svc.db).await?).unwrap_or(0);
        if in_db != view.placed_count() + self.unaccounted {
            let live: std::collections::HashSet<uuid::Uuid> = restore::placed_lease_ids(&svc.db)
                .await?
                .into_iter()
                .collect();
            let gone: Vec<uuid::Uuid> = view
                .keys
                .keys()
                .filter(|l| !live.contains(l))
                .copied()
                .collect();
            for lease in &gone {
                view.forget(*lease);
            }
            self.unaccounted = live.len().saturating_sub(view.placed_count());
            tracing::debug!(released = gone.len(), "leases ended elsewhere released");
        }
        Ok(())
    }
}

/// One tick: refresh the fleet, end leases whose time is up, place a batch of pending
/// leases. On an error the fleet is rebuilt from the database on the next tick.
pub async fn run_once(
    svc: &Services,
    state: &mut SchedulerState,
    now: DateTime<Utc>,
) -> Result<BatchReport> {
    run_tick(svc, state, now, true).await
}

/// One tick; without `housekeeping` only the fleet revision is checked and a batch
/// placed (see [`HOUSEKEEPING_EVERY`]).
async fn run_tick(
    svc: &Services,
    state: &mut SchedulerState,
    now: DateTime<Utc>,
    housekeeping: bool,
) -> Result<BatchReport> {
    let result = tick(svc, state, now, housekeeping).await;
    if result.is_err() {
        state.invalidate();
    }
    result
}

async fn tick(
    svc: &Services,
    state: &mut SchedulerState,
    now: DateTime<Utc>,
    housekeeping: bool,
) -> Result<BatchReport> {
    if housekeeping {
        // Nodes that stopped heartbeating leave the placeable set (the refresh sees them).
        let timeout =
            chrono::Duration::from_std(state.config.node_timeout).unwrap_or(chrono::Duration::MAX);
        match crate::nodes::mark_unreachable_after(svc, now, timeout).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(nodes = n, "scheduler: nodes marked unreachable"),
            Err(e) => tracing::warn!(error = %e, "scheduler: cannot mark unreachable nodes"),
        }
    }
    state.refresh(svc, now, housekeeping).await?;
    let mut expired = 0;
    if housekeeping {
        expired = ends::expire_active(svc, state, now).await?;
        if let Err(e) = ends::warn_grants_ending(svc, now).await {
            tracing::warn!(error = %e, "scheduler: cannot raise grant end warnings");
        }
    }
    let mut report = batch::place_pending(svc, state, now).await?;
    report.expired = expired;
    Ok(report)
}

/// Runs the scheduler until `shutdown` turns true: competes for leadership, and while
/// leading, ticks on every wake-up and at least every `config.tick`.
pub async fn run(svc: Services, config: SchedulerConfig, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match Leadership::try_acquire(&svc).await {
            Ok(Some(lead)) => {
                tracing::info!("scheduler: gained leadership");
                lead_until_lost(&svc, &config, lead, &mut shutdown).await;
                if *shutdown.borrow() {
                    return;
                }
                tracing::warn!("scheduler: lost leadership");
            }
            Ok(None) => tracing::debug!("scheduler: another replica leads"),
            Err(e) => tracing::warn!(error = %e, "scheduler: cannot try for leadership"),
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOWER_RETRY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn lead_until_lost(
    svc: &Services,
    config: &SchedulerConfig,
    mut lead: Leadership,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut state = SchedulerState::new(config.clone()).fenced(lead.epoch());
    let mut last_housekeeping: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            lead.resign().await;
            return;
        }
        let housekeeping = last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY);
        if housekeeping {
            if !lead.is_held().await {
                return;
            }
            last_housekeeping = Some(tokio::time::Instant::now());
        }
        let more = match run_tick(svc, &mut state, svc.clock.now(), housekeeping).await {
            // A full batch means more may be waiting, and a batch dropped for an out of
            // date view (the view is gone) waits for the rebuild: go on at once.
            Ok(r) => {
                (r.examined as u64 >= config.batch_size && r.placed + r.failed > 0)
                    || (r.examined > 0 && state.view.is_none())
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler tick failed; rebuilding from the database");
                if leader::current_epoch(&svc.db).await.ok() != Some(lead.epoch()) {
                    // Another replica took over while this one still thought it led.
                    lead.abandon();
                    return;
                }
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = svc.events.scheduler_woken() => {}
            _ = tokio::time::sleep(config.tick) => {}
            _ = shutdown.changed() => {}
        }
    }
}
