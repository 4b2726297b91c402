//! The reconcile loop: long-poll the desired state, compare it with what the GPU backend
//! reports, apply the [`plan`](crate::plan) and report status. One reconcile at a time;
//! errors back off exponentially with jitter; cut off from the control plane the agent
//! keeps reconciling with the last desired state it knew, under the offline rules.
//!
//! Drive it with [`Agent::run`] (until the shutdown channel says `true`), or one pass at a
//! time with [`Agent::reconcile_once`]; [`Agent::apply_desired`] applies a desired state
//! without a control plane (tests, simulations). [`Agent::progress`] shows each pass.

pub mod apply;
pub mod report;

use crate::backend::GpuBackend;
use crate::client::{AgentClient, Credential, CredentialStore};
use crate::config::AgentConfig;
use crate::plan::Desired;
use crate::{Error, Result};
use aion_api_types::{AgentGpu, AgentRegister, DesiredState};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify, watch};
use tracing::Instrument;
use uuid::Uuid;

pub use apply::Applied;

use report::Reports;

/// Where the time comes from (injected so tests can move it).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What the last reconcile did, published after each one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Reconciles done since start.
    pub reconciles: u64,
    /// The node, once registered.
    pub node_id: Option<Uuid>,
    /// Revision of the desired state last applied.
    pub revision: Option<i64>,
    /// Whether that desired state was fresh and the status report went through.
    pub online: bool,
    /// Actions applied by the last reconcile.
    pub actions: usize,
    /// Actions that failed in the last reconcile.
    pub failed: usize,
    /// Whether the node matched the desired state after the last reconcile.
    pub converged: bool,
}

/// The agent: one per node.
pub struct Agent {
    config: AgentConfig,
    backend: Arc<dyn GpuBackend>,
    client: AgentClient,
    store: CredentialStore,
    clock: Arc<dyn Clock>,
    state: Mutex<LoopState>,
    progress: watch::Sender<Progress>,
    wake: Notify,
    reports: Mutex<Reports>,
}

#[derive(Default)]
struct LoopState {
    credential: Option<Credential>,
    desired: Option<(DesiredState, Desired)>,
    term_sent: HashMap<u32, DateTime<Utc>>,
    /// The last status report the control plane acknowledged.
    last_report: Option<SentReport>,
    /// What the devices file holds, as this agent last wrote it.
    published: Option<crate::exec::NodeDevices>,
}

/// A status report as sent: for the desired revision it answered, its body, and when.
struct SentReport {
    revision: Option<i64>,
    body: String,
    at: std::time::Instant,
}

/// An unchanged status report (same body, same desired revision) is sent again only
/// after this long: the long-poll already heartbeats, and at 36,000 nodes a report per
/// 30 s cycle is 1,200 write transactions a second that say nothing new. Any change of
/// the desired state or of what the GPUs hold is reported at once.
const UNCHANGED_REPORT_EVERY: Duration = Duration::from_secs(300);

impl Agent {
    /// An agent for `backend`, with the last desired state saved in the state directory
    /// (so a restarted agent that cannot reach the control plane still knows its leases).
    pub fn new(config: AgentConfig, backend: Arc<dyn GpuBackend>) -> Result<Self> {
        config.validate()?;
        let client = AgentClient::new(&config.server_url, config.request_timeout)?;
        let store = CredentialStore::new(&config.state_dir);
        let mut state = LoopState::default();
        if let Some(wire) = load_desired(&desired_path(&config)) {
            match Desired::parse(&wire) {
                Ok(parsed) => state.desired = Some((wire, parsed)),
                Err(e) => tracing::warn!(error = %e, "ignoring the saved desired state"),
            }
        }
        let reports = Reports::load(&config.state_dir);
        Ok(Self {
            reports: Mutex::new(reports),
            config,
            backend,
            client,
            store,
            clock: Arc::new(SystemClock),
            state: Mutex::new(state),
            progress: watch::Sender::new(Progress::default()),
            wake: Notify::new(),
        })
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Talks through `client` instead of its own (many agents in one process share one
    /// HTTP client and its connection pool).
    pub fn with_client(mut self, client: AgentClient) -> Self {
        self.client = client;
        self
    }

    /// Samples usage every `sample` and closes and sends intervals every `report`
    /// (defaults: 10 s and 60 s).
    pub fn with_usage_intervals(self, sample: Duration, report: Duration) -> Self {
        if let Ok(mut r) = self.reports.try_lock() {
            r.sample_every = sample;
            r.report_every = report;
        }
        self
    }

    /// Published after every reconcile.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Ends the running long-poll early so [`Agent::run`] reconciles now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The node credential: the one in memory, else the saved one, else a new one from
    /// registering with the join token.
    pub async fn credential(&self) -> Result<Credential> {
        let mut st = self.state.lock().await;
        self.ensure_credential(&mut st).await
    }

    /// One pass: fetch the desired state (without waiting), apply it, report status.
    /// Unreachable, it applies the last known state under the offline rules and answers
    /// the progress; other errors are returned.
    pub async fn reconcile_once(&self) -> Result<Progress> {
        let fetched = self.fetch(Duration::ZERO).await;
        self.after_fetch(fetched).await
    }

    /// Applies `desired` to the backend without a control plane (`online` chooses the
    /// rules); nothing is reported.
    pub async fn apply_desired(&self, desired: DesiredState, online: bool) -> Result<Progress> {
        let parsed = Desired::parse(&desired)?;
        // Kept like a fetched one, so a restart knows it too.
        self.save_desired(&desired);
        self.state.lock().await.desired = Some((desired, parsed));
        self.reconcile(online, false).await
    }

    /// Runs until `shutdown` holds `true` (or its sender is dropped), the usage sampler
    /// beside the loop. Returns an error only when the agent cannot work at all (no
    /// credential and no join token).
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let sampler = self.sample_loop(shutdown.clone());
        tokio::select! {
            r = self.reconcile_loop(shutdown) => r,
            () = sampler => Ok(()),
        }
    }

    async fn reconcile_loop(&self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut pending = false;
        // The first fetch does not wait: a restarted agent that knows a revision must
        // reconcile (and report) at once, not after a whole long-poll.
        let mut now = true;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let wait = match (now, pending) {
                (true, _) => Duration::ZERO,
                (false, true) => self.config.pending_recheck,
                (false, false) => self.config.poll_wait,
            };
            now = false;
            let fetched = tokio::select! {
                r = self.fetch(wait) => r,
                () = self.wake.notified() => {
                    now = true;
                    continue;
                }
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { return Ok(()); }
                    continue;
                }
            };
            if let Err(e @ Error::Config(_)) = fetched {
                return Err(e);
            }
            let delay = match self.after_fetch(fetched).await {
                Ok(p) if p.online && p.failed == 0 => {
                    backoff.reset();
                    pending = !p.converged;
                    None
                }
                Ok(_) => Some(backoff.next_delay()),
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile failed");
                    Some(backoff.next_delay())
                }
            };
            if let Some(delay) = delay {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    async fn after_fetch(&self, fetched: Result<()>) -> Result<Progress> {
        let progress = self.apply_fetched(fetched).await;
        if let Ok(p) = &progress
            && p.online
            && let Err(e) = self.flush_reports().await
        {
            tracing::info!(error = %e, "usage and enforcement reports stay queued");
        }
        progress
    }

    async fn apply_fetched(&self, fetched: Result<()>) -> Result<Progress> {
        match fetched {
            Ok(()) => match self.reconcile(true, true).await {
                Err(e) if is_control_plane(&e) => {
                    tracing::warn!(error = %e, "status report failed");
                    let mut p = self.progress.borrow().clone();
                    p.online = false;
                    self.progress.send_replace(p.clone());
                    Ok(p)
                }
                other => other,
            },
            Err(e)
                if is_control_plane(&e)
                    || matches!(e, Error::Protocol(_) | Error::State { .. }) =>
            {
                if let Error::Unauthorized { .. } | Error::State { .. } = e {
                    tracing::error!(error = %e, path = %self.store.path().display(),
                        "the control plane rejects this node's credential; register the node again with a new join token");
                } else {
                    tracing::warn!(error = %e, "desired state unavailable; offline rules apply");
                }
                self.reconcile(false, false).await
            }
            Err(e) => Err(e),
        }
    }

    async fn ensure_credential(&self, st: &mut LoopState) -> Result<Credential> {
        if st.credential.is_none() {
            st.credential = self.store.load()?;
        }
        let cred = match st.credential.clone() {
            Some(c) => c,
            None => self.register().await?,
        };
        let cred = if cred.renew_due(self.clock.now()) {
            match self.client.renew(&cred).await {
                Ok(new) => {
                    self.store.save(&new)?;
                    tracing::info!(node_id = %new.node_id, "node credential renewed");
                    new
                }
                Err(e) => {
                    tracing::warn!(error = %e, "credential renewal failed; retrying later");
                    cred
                }
            }
        } else {
            cred
        };
        st.credential = Some(cred.clone());
        self.progress.send_if_modified(|p| {
            let changed = p.node_id != Some(cred.node_id);
            p.node_id = Some(cred.node_id);
            changed
        });
        Ok(cred)
    }

    async fn register(&self) -> Result<Credential> {
        let token = self.config.join_token.clone().ok_or_else(|| {
            Error::Config(format!(
                "no node credential at {} and no join token to register with",
                self.store.path().display()
            ))
        })?;
        let gpus = blocking(&self.backend, |b| b.inventory()).await?;
        let body = AgentRegister {
            hostname: self.config.resolved_hostname(),
            gpus: gpus
                .into_iter()
                .map(|g| AgentGpu {
                    uuid: g.uuid,
                    index: i64::from(g.index),
                    model: g.product_name,
                    memory_mib: i64::try_from(g.memory_mib).unwrap_or(i64::MAX),
                    mig_enabled: g.mig_enabled,
                })
                .collect(),
        };
        let cred = self.client.register(&token, &body).await?;
        self.store.save(&cred)?;
        tracing::info!(node_id = %cred.node_id, "node registered");
        Ok(cred)
    }

    /// Long-polls the desired state and keeps it (and saves it when it changed).
    async fn fetch(&self, wait: Duration) -> Result<()> {
        let (cred, known) = {
            let mut st = self.state.lock().await;
            let cred = self.ensure_credential(&mut st).await?;
            (cred, st.desired.as_ref().map(|(w, _)| w.revision))
        };
        let wait_for = if known.is_some() {
            wait
        } else {
            Duration::ZERO
        };
        let wire = self.client.desired_state(&cred, known, wait_for).await?;
        let parsed = Desired::parse(&wire)?;
        if known != Some(wire.revision) {
            self.save_desired(&wire);
        }
        self.state.lock().await.desired = Some((wire, parsed));
        Ok(())
    }

    /// Plans and applies the known desired state; reports status when `report`.
    async fn reconcile(&self, online: bool, report: bool) -> Result<Progress> {
        let mut st = self.state.lock().await;
        let node_id = st.credential.as_ref().map(|c| c.node_id);
        let revision = st.desired.as_ref().map(|(w, _)| w.revision);
        let span = tracing::info_span!("reconcile", node_id = ?node_id, revision = ?revision,
            online, actions = tracing::field::Empty);
        async {
            let Some((_, desired)) = st.desired.clone() else {
                // Never seen a desired state: acting now could destroy a tenant's slice.
                tracing::info!("no desired state known yet; not touching the GPUs");
                return Ok(self.publish(node_id, None, online, Applied::default()));
            };
            if !online {
                // Cut off: after it, report in full once, whatever the report says.
                st.last_report = None;
            }
            let term_sent = std::mem::take(&mut st.term_sent);
            let now = self.clock.now();
            let grace = chrono::Duration::from_std(self.config.kill_grace)
                .unwrap_or(chrono::Duration::seconds(10));
            let backend = Arc::clone(&self.backend);
            let state_dir = self.config.state_dir.clone();
            let (applied, term_sent, events) = tokio::task::spawn_blocking(move || {
                apply::track_workloads(&*backend, &state_dir);
                let mut term_sent = term_sent;
                let recorder = crate::usage::Recorder::new(&*backend, &desired, now);
                let r = apply::reconcile(&recorder, &desired, &mut term_sent, now, online, grace);
                (r, term_sent, recorder.into_events())
            })
            .await
            .map_err(|e| Error::Backend(format!("reconcile task: {e}")))?;
            st.term_sent = term_sent;
            self.queue_events(events).await;
            let applied = applied?;
            let LoopState {
                desired, published, ..
            } = &mut *st;
            apply::publish(&self.backend, &self.config, desired, published).await;
            tracing::Span::current().record("actions", applied.actions);
            if report {
                let cred = self.ensure_credential(&mut st).await?;
                let status = blocking(&self.backend, apply::status_report).await?;
                let body = serde_json::to_string(&status)
                    .map_err(|e| Error::Backend(format!("status report: {e}")))?;
                let unchanged = st.last_report.as_ref().is_some_and(|last| {
                    last.revision == revision
                        && last.body == body
                        && last.at.elapsed() < UNCHANGED_REPORT_EVERY
                });
                if !unchanged {
                    // Forgotten until acknowledged: a failed report is sent again.
                    st.last_report = None;
                    let ack = self.client.status(&cred, &status).await?;
                    if Some(ack.revision) != revision {
                        tracing::debug!(ack = ack.revision, "desired state changed meanwhile");
                    }
                    st.last_report = Some(SentReport {
                        revision,
                        body,
                        at: std::time::Instant::now(),
                    });
                }
            }
            Ok(self.publish(node_id, revision, online, applied))
        }
        .instrument(span)
        .await
    }

    fn publish(
        &self,
        node_id: Option<Uuid>,
        revision: Option<i64>,
        online: bool,
        applied: Applied,
    ) -> Progress {
        let mut p = self.progress.borrow().clone();
        p.reconciles += 1;
        p.node_id = node_id.or(p.node_id);
        p.revision = revision;
        p.online = online;
        p.actions = applied.actions;
        p.failed = applied.failed;
        p.converged = applied.converged;
        self.progress.send_replace(p.clone());
        p
    }
}

fn is_control_plane(e: &Error) -> bool {
    matches!(
        e,
        Error::Unreachable(_) | Error::Unauthorized { .. } | Error::Refused { .. }
    )
}

impl Agent {
    /// Saves the desired state (mode 0600) so that a restarted agent cut off from the
    /// control plane still knows its leases.
    fn save_desired(&self, wire: &DesiredState) {
        let path = desired_path(&self.config);
        if let Err(e) = serde_json::to_vec(wire)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::client::write_private(&path, &b))
        {
            tracing::warn!(error = %e, path = %path.display(), "cannot save the desired state");
        }
    }
}

fn desired_path(config: &AgentConfig) -> PathBuf {
    config.state_dir.join("desired-state.json")
}

fn load_desired(path: &std::path::Path) -> Option<DesiredState> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(
            |e| tracing::warn!(error = %e, path = %path.display(), "unreadable desired state"),
        )
        .ok()
}

/// Runs a backend call off the async threads (NVML blocks).
async fn blocking<T: Send + 'static>(
    backend: &Arc<dyn GpuBackend>,
    f: impl FnOnce(&dyn GpuBackend) -> Result<T> + Send + 'static,
) -> Result<T> {
    let backend = Arc::clone(backend);
    tokio::task::spawn_blocking(move || f(&*backend))
        .await
        .map_err(|e| Error::Backend(format!("backend task: {e}")))?
}

/// Exponential backoff with jitter: each delay is drawn in `[d/2, d]`, `d` doubling from
/// `min` up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    /// From `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: None,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        let d = self
            .current
            .map_or(self.min, |c| c.saturating_mul(2).min(self.max));
        self.current = Some(d);
        rand::thread_rng().gen_range(d / 2..=d)
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.current = None;
    }
}
