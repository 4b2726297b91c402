//! `aion fleet-sim`: many simulated nodes in one process (see `aion_agent::fleet_sim`),
//! each a real agent over HTTP, with progress, the fleet's memory and the agent protocol's
//! round-trip times printed every few seconds (and written to `--stats-file` as JSON).

use aion_agent::fleet_sim::{Fleet, FleetConfig, percentile};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `aion fleet-sim`.
#[derive(clap::Args, Debug)]
pub struct FleetSimArgs {
    /// Control plane URL.
    #[arg(long)]
    server: String,
    /// Platform-admin token that creates the join tokens.
    #[arg(long, env = "AION_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// File holding that token (e.g. the `admin-token` of the server's data directory).
    #[arg(long, conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// GPUs per node.
    #[arg(long, default_value_t = 8)]
    gpus_per_node: usize,
    /// GPU model.
    #[arg(long, default_value = "H100-80GB")]
    model: String,
    /// State of the nodes (credentials, desired state); a rerun reuses it.
    #[arg(long, default_value = ".aion/fleet-sim")]
    state_dir: PathBuf,
    /// Site of the nodes.
    #[arg(long, default_value = "sim")]
    site: String,
    /// Long-poll wait of each agent, in seconds.
    #[arg(long, default_value_t = 30)]
    poll_wait_s: u64,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 32)]
    register_concurrency: usize,
    /// Spread agent starts over this many seconds (default: one per millisecond, at most
    /// the poll wait).
    #[arg(long)]
    ramp_s: Option<f64>,
    /// Time between two probes, in seconds.
    #[arg(long, default_value_t = 0.5)]
    probe_every_s: f64,
    /// Nodes timed per probe (desired-state fetch and status report each).
    #[arg(long, default_value_t = 4)]
    probe_nodes: usize,
    /// Print (and write the stats file) every this many seconds.
    #[arg(long, default_value_t = 10)]
    report_every_s: u64,
    /// Write the latest figures here as JSON.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
}

/// Runs the fleet until Ctrl-C (or `--duration-s`).
pub async fn run(args: FleetSimArgs) -> anyhow::Result<()> {
    let nofile = crate::raise_nofile_limit();
    let admin_token = match (&args.admin_token, &args.admin_token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => anyhow::bail!("--admin-token or --admin-token-file is needed"),
    };
    let model = args
        .model
        .parse()
        .map_err(|e| anyhow::anyhow!("--model {}: {e}", args.model))?;
    if let Some(limit) = nofile
        && u64::from(args.nodes) + 256 > limit
    {
        eprintln!(
            "warning: {} nodes hold about one connection each, and this process may open {limit} files",
            args.nodes
        );
    }
    let poll_wait = Duration::from_secs(args.poll_wait_s);
    let ramp = args.ramp_s.map_or_else(
        || Duration::from_millis(u64::from(args.nodes)).min(poll_wait),
        Duration::from_secs_f64,
    );
    let config = FleetConfig {
        server_url: args.server.clone(),
        admin_token,
        nodes: args.nodes,
        gpus_per_node: args.gpus_per_node,
        model,
        state_dir: args.state_dir.clone(),
        site: args.site.clone(),
        poll_wait,
        register_concurrency: args.register_concurrency,
        ramp,
        probe_every: Duration::from_secs_f64(args.probe_every_s.max(0.01)),
        probe_nodes: args.probe_nodes,
    };
    let rss_before = rss_kib().unwrap_or(0);
    let started = Instant::now();
    let total = args.nodes as usize;
    let step = (total / 20).max(1);
    println!(
        "fleet-sim: {} nodes × {} {} at {} (state in {})",
        args.nodes,
        args.gpus_per_node,
        args.model,
        args.server,
        args.state_dir.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fleet = Fleet::prepare(config, stop_rx.clone(), |done| {
        if done % step == 0 || done == total {
            println!(
                "  registered {done}/{total} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await
    .context("registering the simulated nodes")?;
    let register_s = started.elapsed().as_secs_f64();
    let fleet = Arc::new(fleet);
    let runner = tokio::spawn(Arc::clone(&fleet).run(stop_rx));
    let deadline = args
        .duration_s
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut tick = tokio::time::interval(Duration::from_secs(args.report_every_s.max(1)));
    tick.tick().await;
    let run_started = Instant::now();
    let mut all_online_after: Option<f64> = None;
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; true }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let counts = fleet.counts();
        if all_online_after.is_none() && counts.online == counts.nodes {
            all_online_after = Some(run_started.elapsed().as_secs_f64());
            // Figures from here on are the steady state.
            fleet.timings(true);
        }
        let mut t = fleet.timings(false);
        let rss = rss_kib().unwrap_or(0);
        let per_agent = rss.saturating_sub(rss_before) as f64 / counts.nodes.max(1) as f64;
        let stats = serde_json::json!({
            "nodes": counts.nodes, "gpus": counts.nodes * args.gpus_per_node,
            "online": counts.online, "reconciled": counts.reconciled,
            "register_s": register_s, "all_online_after_s": all_online_after,
            "rss_mib": rss as f64 / 1024.0, "rss_per_node_kib": per_agent,
            "desired_state_ms": {"n": t.desired.len(), "p50": percentile(&mut t.desired, 0.5), "p99": percentile(&mut t.desired, 0.99)},
            "status_ms": {"n": t.status.len(), "p50": percentile(&mut t.status, 0.5), "p99": percentile(&mut t.status, 0.99)},
            "probe_errors": t.errors,
        });
        println!(
            "  {:>6.0} s: {}/{} online, RSS {:.0} MiB ({:.1} KiB/node), desired-state p50/p99 {:.1}/{:.1} ms, status {:.1}/{:.1} ms, probe errors {}",
            run_started.elapsed().as_secs_f64(),
            counts.online,
            counts.nodes,
            rss as f64 / 1024.0,
            per_agent,
            stats["desired_state_ms"]["p50"]
                .as_f64()
                .unwrap_or_default(),
            stats["desired_state_ms"]["p99"]
                .as_f64()
                .unwrap_or_default(),
            stats["status_ms"]["p50"].as_f64().unwrap_or_default(),
            stats["status_ms"]["p99"].as_f64().unwrap_or_default(),
            t.errors
        );
        if let Some(path) = &args.stats_file {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&stats)?)
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if stop {
            break;
        }
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(20), runner)
        .await
        .is_err()
    {
        eprintln!("fleet-sim: some agents did not stop within 20 s");
    }
    Ok(())
}

/// Resident set of this process, KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
