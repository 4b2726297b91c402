//! The fleet simulator: many virtual nodes in one process, each a real [`Agent`] over its
//! own [`SimBackend`], speaking the real HTTP agent protocol to a control plane. Nodes
//! register through join tokens made with an operator token (bounded concurrency), keep
//! their credentials in `<state dir>/node-<n>` so a rerun reuses them, and share one HTTP
//! client (and its connection pool) so a virtual node costs a few kilobytes.
//!
//! Beside the agents, a probe times the agent protocol as the nodes see it: every
//! `probe_every` it takes a few nodes at random and times a desired-state fetch without
//! wait and a status report with that node's credential.

use crate::backend::sim::{SimBackend, SimConfig};
use crate::client::{AgentClient, CredentialStore};
use crate::config::AgentConfig;
use crate::reconcile::{Agent, Progress, apply};
use crate::{Error, Result};
use aion_api_types::{CreatedJoinToken, JoinTokenCreate};
use aion_mig::GpuModel;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Control plane URL.
    pub server_url: String,
    /// Operator (platform-admin) token that creates the join tokens.
    pub admin_token: String,
    /// Number of nodes.
    pub nodes: u32,
    /// GPUs per node.
    pub gpus_per_node: usize,
    /// GPU model of every GPU.
    pub model: GpuModel,
    /// Where each node keeps its state (`node-<n>` below it).
    pub state_dir: PathBuf,
    /// Site of the nodes (also part of their host names).
    pub site: String,
    /// Long-poll wait of each agent.
    pub poll_wait: Duration,
    /// Join tokens and registrations in flight at once.
    pub register_concurrency: usize,
    /// Agent starts are spread over this time (so the fleet does not poll in step).
    pub ramp: Duration,
    /// Time between two probes.
    pub probe_every: Duration,
    /// Nodes timed per probe.
    pub probe_nodes: usize,
}

/// Round-trip times seen by the probe, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Desired-state fetches without wait.
    pub desired: Vec<f64>,
    /// Status reports.
    pub status: Vec<f64>,
    /// Probe requests that failed.
    pub errors: u64,
}

/// A count of the fleet's agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Nodes.
    pub nodes: usize,
    /// Agents whose last reconcile was online (desired state fetched, status reported).
    pub online: usize,
    /// Agents that reconciled at least once.
    pub reconciled: usize,
}

struct Node {
    agent: Agent,
    backend: Arc<SimBackend>,
    progress: watch::Receiver<Progress>,
}

/// A node and its running agent, once started.
struct Slot {
    node: Arc<Node>,
    running: Option<tokio::task::JoinHandle<()>>,
}

/// A registered fleet, ready to run.
pub struct Fleet {
    nodes: Vec<Arc<Node>>,
    /// Agents started as soon as their node registered (see [`Fleet::prepare`]).
    started: Mutex<Vec<Option<tokio::task::JoinHandle<()>>>>,
    client: AgentClient,
    config: FleetConfig,
    timings: Mutex<Timings>,
}

/// The HTTP client shared by the fleet: a pool that keeps one idle connection per node.
pub fn http_client(nodes: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(nodes + 64)
        .pool_idle_timeout(Duration::from_secs(120))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// Where node `n` keeps its state.
pub fn node_dir(state_dir: &Path, n: u32) -> PathBuf {
    state_dir.join(format!("node-{n}"))
}

/// The host name of node `n`.
pub fn hostname(site: &str, n: u32) -> String {
    format!("{site}-sim-{n:06}")
}

/// A seed that differs per site, so two fleets on one control plane get distinct GPUs.
fn seed(site: &str, n: u32) -> u64 {
    let h = site.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h << 24) ^ u64::from(n)
}

impl Fleet {
    /// Builds every node and registers those without a saved credential (join token
    /// first), `register_concurrency` at a time; `progress` is called after each node
    /// with the number done. A node that registers now starts its agent at once, as a
    /// real node does (a registered node that stayed silent until the whole fleet had
    /// registered would be marked unreachable); nodes with a saved credential start in
    /// [`Fleet::run`], spread over the ramp (a control-plane restart as agents see it).
    pub async fn prepare(
        config: FleetConfig,
        shutdown: watch::Receiver<bool>,
        progress: impl Fn(usize) + Sync,
    ) -> Result<Self> {
        let http = http_client(config.nodes as usize)?;
        let client =
            AgentClient::with_http(http.clone(), &config.server_url, Duration::from_secs(60));
        let limit = Arc::new(Semaphore::new(config.register_concurrency.max(1)));
        let done = AtomicUsize::new(0);
        let mut slots: Vec<Option<Slot>> = (0..config.nodes).map(|_| None).collect();
        let mut tasks = Vec::with_capacity(config.nodes as usize);
        for n in 1..=config.nodes {
            let (config, http, client, limit) = (&config, &http, &client, Arc::clone(&limit));
            let done = &done;
            let progress = &progress;
            let shutdown = shutdown.clone();
            tasks.push(async move {
                let _permit = limit
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Config(format!("registration: {e}")))?;
                let (node, registered_now) = prepare_node(config, http, client, n).await?;
                let node = Arc::new(node);
                let running = registered_now
                    .then(|| tokio::spawn(run_node(Arc::clone(&node), shutdown, Duration::ZERO)));
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                Ok::<_, Error>((n, Slot { node, running }))
            });
        }
        // Polled together on this task, bounded by the semaphore (no task per node).
        let results = futures::future::join_all(tasks).await;
        let mut failed = None;
        for r in results {
            match r {
                Ok((n, slot)) => slots[(n - 1) as usize] = Some(slot),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            // The agents already started stop with the fleet that failed to form.
            for slot in slots.iter().flatten() {
                if let Some(running) = &slot.running {
                    running.abort();
                }
            }
            return Err(e);
        }
        let (nodes, started) = slots
            .into_iter()
            .flatten()
            .map(|slot| (slot.node, slot.running))
            .unzip();
        Ok(Self {
            nodes,
            started: Mutex::new(started),
            client,
            config,
            timings: Mutex::new(Timings::default()),
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// How many agents are online and have reconciled.
    pub fn counts(&self) -> FleetCounts {
        let mut c = FleetCounts {
            nodes: self.nodes.len(),
            ..FleetCounts::default()
        };
        for n in &self.nodes {
            let p = n.progress.borrow();
            c.online += usize::from(p.online);
            c.reconciled += usize::from(p.reconciles > 0);
        }
        c
    }

    /// The probe timings so far (and clears them when `take`).
    pub fn timings(&self, take: bool) -> Timings {
        let mut t = self
            .timings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if take {
            std::mem::take(&mut *t)
        } else {
            t.clone()
        }
    }

    /// Runs every agent not started yet (starts spread over the ramp) and the probe
    /// until `shutdown` says `true`, then waits for every agent to stop.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        let started = std::mem::take(
            &mut *self
                .started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let waiting = started.iter().filter(|s| s.is_none()).count().max(1) as u32;
        let mut early = Vec::new();
        let mut i = 0;
        for (node, running) in self.nodes.iter().zip(started) {
            match running {
                Some(handle) => early.push(handle),
                None => {
                    let delay = self.config.ramp / waiting * i;
                    i += 1;
                    tasks.spawn(run_node(Arc::clone(node), shutdown.clone(), delay));
                }
            }
        }
        tasks.spawn(async move {
            for handle in early {
                if let Err(e) = handle.await {
                    tracing::error!(error = %e, "a simulated node task failed");
                }
            }
        });
        let probe = Arc::clone(&self);
        let stop = shutdown.clone();
        tasks.spawn(async move { probe.probe_loop(stop).await });
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a simulated node task failed");
            }
        }
    }

    async fn probe_loop(&self, mut shutdown: watch::Receiver<bool>) {
        use rand::seq::SliceRandom;
        if self.config.probe_nodes == 0 || self.nodes.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(self.config.probe_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let picked: Vec<Arc<Node>> = self
                .nodes
                .choose_multiple(&mut rand::thread_rng(), self.config.probe_nodes)
                .cloned()
                .collect();
            for node in picked {
                if !node.progress.borrow().online {
                    continue;
                }
                let r = self.probe(&node).await;
                let mut t = self
                    .timings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match r {
                    Ok((d, s)) => {
                        t.desired.push(d);
                        t.status.push(s);
                    }
                    Err(e) => {
                        t.errors += 1;
                        tracing::debug!(error = %e, "probe failed");
                    }
                }
            }
        }
    }

    async fn probe(&self, node: &Node) -> Result<(f64, f64)> {
        let cred = node.agent.credential().await?;
        let t = Instant::now();
        self.client
            .desired_state(&cred, None, Duration::ZERO)
            .await?;
        let desired = t.elapsed().as_secs_f64() * 1000.0;
        let backend = Arc::clone(&node.backend);
        let report = tokio::task::spawn_blocking(move || apply::status_report(&*backend))
            .await
            .map_err(|e| Error::Backend(format!("status report task: {e}")))??;
        let t = Instant::now();
        self.client.status(&cred, &report).await?;
        Ok((desired, t.elapsed().as_secs_f64() * 1000.0))
    }
}

/// Runs one node's agent after `delay` until `stop` says `true`.
async fn run_node(node: Arc<Node>, mut stop: watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    if let Err(e) = node.agent.run(stop).await {
        tracing::error!(error = %e, "a simulated node stopped");
    }
}

/// Builds node `n` and registers it if it has no saved credential (then `true`).
async fn prepare_node(
    fleet: &FleetConfig,
    http: &reqwest::Client,
    client: &AgentClient,
    n: u32,
) -> Result<(Node, bool)> {
    let state_dir = node_dir(&fleet.state_dir, n);
    let mut config = AgentConfig::new(&fleet.server_url, &state_dir);
    config.hostname = Some(hostname(&fleet.site, n));
    config.poll_wait = fleet.poll_wait;
    config.request_timeout = Duration::from_secs(60);
    let register = CredentialStore::new(&state_dir).load()?.is_none();
    if register {
        config.join_token = Some(join_token(fleet, http, n).await?);
    }
    let backend = Arc::new(SimBackend::new(SimConfig {
        model: fleet.model,
        gpus: fleet.gpus_per_node,
        seed: seed(&fleet.site, n),
        mig_enabled: true,
    }));
    let agent = Agent::new(
        config,
        Arc::clone(&backend) as Arc<dyn crate::backend::GpuBackend>,
    )?
    .with_client(client.clone());
    // Registers now (bounded by the caller) rather than when the agent starts.
    agent.credential().await?;
    let progress = agent.progress();
    Ok((
        Node {
            agent,
            backend,
            progress,
        },
        register,
    ))
}

async fn join_token(fleet: &FleetConfig, http: &reqwest::Client, n: u32) -> Result<String> {
    let body = JoinTokenCreate {
        site: fleet.site.clone(),
        labels: BTreeMap::from([("fleet-sim".to_owned(), n.to_string())]),
        expires_in_s: Some(86_400),
    };
    let url = format!("{}/v1/join-tokens", fleet.server_url.trim_end_matches('/'));
    let resp = http
        .post(url)
        .bearer_auth(&fleet.admin_token)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| Error::Unreachable(format!("creating a join token: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Error::Unreachable(format!("creating a join token: {e}")))?;
    if !status.is_success() {
        return Err(crate::client::refusal(status, &bytes));
    }
    let created: CreatedJoinToken = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Protocol(format!("join token answer: {e}")))?;
    created
        .secret
        .ok_or_else(|| Error::Protocol("a new join token comes with its secret".into()))
}

/// Percentile `p` (0–1) of `values` (sorted in place); 0 when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values[i.min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_per_site_and_node() {
        assert_ne!(seed("a", 1), seed("a", 2));
        assert_ne!(seed("a", 1), seed("b", 1));
    }

    #[test]
    fn percentiles() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.99), 5.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
