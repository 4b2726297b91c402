//! Simulated GPU nodes for `aion dev`: a few in-process agents, each with a simulated
//! node of 8 × H100-80GB, that register through the real agent API (a join token made
//! through the services layer, then `POST /v1/agent/register` over HTTP) and reconcile
//! like real ones, so a newcomer's lease requests become `active`.
//!
//! Each node keeps its state (credential, desired state, CDI specs) in
//! `<data dir>/dev-nodes/node-<n>`: a restarted `aion dev` reuses the registered nodes
//! instead of registering new ones.

use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::client::CredentialStore;
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use aion_mig::GpuModel;
use aion_services::Services;
use aion_services::authz::Caller;
use aion_services::join_tokens::{self, NewJoinToken};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// GPUs per simulated node.
pub const GPUS_PER_NODE: usize = 8;
/// Site of the simulated nodes.
pub const SITE: &str = aion_services::seed::DEMO_SITE;
/// How often dev nodes sample usage.
pub const DEV_USAGE_SAMPLE: Duration = Duration::from_secs(2);
/// How often dev nodes report usage intervals.
pub const DEV_USAGE_REPORT: Duration = Duration::from_secs(6);

/// Simulated nodes ready to run.
pub struct DevNodes {
    nodes: Vec<Agent>,
}

impl DevNodes {
    /// Prepares `count` nodes with state under `data_dir`, talking to `server_url`;
    /// nodes without a saved credential get a fresh join token.
    pub async fn prepare(
        services: &Services,
        data_dir: &Path,
        server_url: &str,
        count: u32,
    ) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for n in 1..=count {
            let state_dir = node_dir(data_dir, n);
            let mut config = AgentConfig::new(server_url, &state_dir);
            config.hostname = Some(format!("dev-node-{n}"));
            config.cdi_dir = Some(state_dir.join("cdi"));
            config.poll_wait = Duration::from_secs(20);
            config.pending_recheck = Duration::from_millis(500);
            config.kill_grace = Duration::from_secs(5);
            let registered = CredentialStore::new(&state_dir)
                .load()
                .with_context(|| format!("reading the credential of dev node {n}"))?
                .is_some();
            if !registered {
                config.join_token = Some(join_token(services, n).await?);
            }
            // The simulated GPUs keep their instances across restarts of `aion dev`, as
            // real GPUs keep theirs across restarts of the agent.
            let backend = Arc::new(
                SimBackend::persistent(
                    SimConfig {
                        model: GpuModel::H100_80GB,
                        gpus: GPUS_PER_NODE,
                        seed: u64::from(n),
                        mig_enabled: true,
                    },
                    state_dir.join("sim-state.json"),
                )
                .with_context(|| format!("loading the simulated GPUs of dev node {n}"))?,
            );
            // Usage is sampled and reported faster than on a real node (10 s / 60 s), so a
            // newcomer's usage chart fills within seconds of a slice becoming active.
            let agent = Agent::new(config, backend)
                .context("starting a dev node")?
                .with_usage_intervals(DEV_USAGE_SAMPLE, DEV_USAGE_REPORT);
            nodes.push(agent);
        }
        Ok(Self { nodes })
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Runs every node's agent until `stop` says `true`.
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .nodes
            .into_iter()
            .enumerate()
            .map(|(i, agent)| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = agent.run(stop).await {
                        tracing::error!(error = %e, node = i + 1, "dev node stopped");
                    }
                })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a dev node task failed");
            }
        }
    }
}

/// Where dev node `n` keeps its state.
pub fn node_dir(data_dir: &Path, n: u32) -> PathBuf {
    data_dir.join("dev-nodes").join(format!("node-{n}"))
}

async fn join_token(services: &Services, n: u32) -> anyhow::Result<String> {
    let labels = BTreeMap::from([("dev-node".to_owned(), n.to_string())]);
    let cmd = NewJoinToken::parse(SITE, labels, None)?;
    let created = join_tokens::create(services, &Caller::system("dev-nodes"), cmd, None)
        .await
        .context("creating a join token for a dev node")?;
    created
        .secret
        .context("a new join token comes with its secret")
}
