//! `aion agent`: the node agent (`run`) and running a command on a lease's slice
//! (`exec`). The logic lives in `aion-agent`; this only parses flags and wires it.

use aion_agent::backend::GpuBackend;
use aion_agent::backend::nvml::NvmlBackend;
use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::probe::ProbeReport;
use aion_agent::reconcile::Agent;
use aion_mig::GpuModel;
use anyhow::Context;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Where the agent keeps its credential and state unless told otherwise.
const DEFAULT_STATE_DIR: &str = "/var/lib/aion-agent";

/// `aion agent …`.
#[derive(clap::Subcommand)]
pub enum AgentCommand {
    /// Run the node agent: register, reconcile the GPUs with the control plane until
    /// SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Run a command as a workload of a lease, on its MIG device(s); exits with the
    /// command's status.
    Exec(ExecArgs),
    /// Show what the agent sees on this node, changing nothing: GPUs, MIG instances,
    /// processes, power, and whether the driver's MIG tables match Aion's. Exits
    /// non-zero when something must be fixed before the node joins.
    Probe(ProbeArgs),
}

/// Flags of `aion agent probe`.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// GPU backend.
    #[arg(long, env = "AION_AGENT_BACKEND", value_enum, default_value = "nvml")]
    pub backend: BackendKind,
    /// Simulated GPUs (sim backend).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sim_gpus: u16,
    /// Model of the simulated GPUs (sim backend).
    #[arg(long, default_value = "H100-80GB", value_parser = parse_model)]
    pub sim_model: GpuModel,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Which GPUs the agent drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Real GPUs through the NVIDIA driver (NVML).
    Nvml,
    /// A simulated node that follows the MIG rules exactly.
    Sim,
}

/// Flags of `aion agent run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Base URL of the control plane.
    #[arg(long, env = "AION_AGENT_SERVER")]
    pub server: String,
    /// One-time join token (`aionjoin_…`), needed for the first registration only.
    #[arg(
        long,
        env = "AION_AGENT_JOIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "join_token_file"
    )]
    pub join_token: Option<String>,
    /// File holding the join token.
    #[arg(long, env = "AION_AGENT_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    /// Directory of the node credential and the agent's state.
    #[arg(long, env = "AION_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// GPU backend.
    #[arg(long, env = "AION_AGENT_BACKEND", value_enum, default_value = "nvml")]
    pub backend: BackendKind,
    /// Simulated GPUs (sim backend).
    #[arg(long, env = "AION_AGENT_SIM_GPUS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sim_gpus: u16,
    /// Model of the simulated GPUs (sim backend).
    #[arg(long, env = "AION_AGENT_SIM_MODEL", default_value = "H100-80GB", value_parser = parse_model)]
    pub sim_model: GpuModel,
    /// Seed of the simulated GPU UUIDs: the same seed gives the same GPUs (sim backend).
    #[arg(long, env = "AION_AGENT_SIM_SEED", default_value_t = 0)]
    pub sim_seed: u64,
    /// Directory of the CDI specs [default: /etc/cdi with nvml, <state-dir>/cdi with sim].
    #[arg(long, env = "AION_AGENT_CDI_DIR")]
    pub cdi_dir: Option<PathBuf>,
    /// Host name to register with [default: the kernel's].
    #[arg(long, env = "AION_AGENT_HOSTNAME")]
    pub hostname: Option<String>,
    /// Seconds between TERM and KILL for a process on a slice without a live lease.
    #[arg(long, env = "AION_AGENT_KILL_GRACE_S", default_value_t = 10.0, value_parser = parse_secs)]
    pub kill_grace_s: f64,
    /// Longest delay, in seconds, between retries after errors (the first is 0.5 s).
    #[arg(long, env = "AION_AGENT_RETRY_MAX_S", default_value_t = 30.0, value_parser = parse_secs)]
    pub retry_max_s: f64,
    /// Seconds between two usage samples.
    #[arg(long, env = "AION_AGENT_USAGE_SAMPLE_S", default_value_t = 10.0, value_parser = parse_secs)]
    pub usage_sample_s: f64,
    /// Seconds between two usage reports (intervals closed and sent).
    #[arg(long, env = "AION_AGENT_USAGE_REPORT_S", default_value_t = 60.0, value_parser = parse_secs)]
    pub usage_report_s: f64,
}

/// The simulated node's state file in the state directory (sim backend): the simulated
/// GPUs outlive the agent process, as real ones do.
pub const SIM_STATE_FILE: &str = "sim-state.json";

/// Flags of `aion agent exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The lease whose slice the command runs on.
    #[arg(long)]
    pub lease: Uuid,
    /// The agent's state directory.
    #[arg(long, env = "AION_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

fn parse_model(raw: &str) -> Result<GpuModel, String> {
    raw.parse().map_err(|e: aion_mig::MigError| e.to_string())
}

fn parse_secs(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("`{raw}` is not a number of seconds in (0, 86400]")),
    }
}

impl RunArgs {
    /// The agent's settings.
    pub fn config(&self) -> anyhow::Result<AgentConfig> {
        let mut config = AgentConfig::new(&self.server, &self.state_dir);
        let token = match (&self.join_token, &self.join_token_file) {
            (Some(t), _) => Some(t.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the join token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        config.join_token = token.filter(|t| !t.is_empty());
        config.hostname = self.hostname.clone();
        config.cdi_dir = Some(self.cdi_dir.clone().unwrap_or_else(|| match self.backend {
            BackendKind::Nvml => PathBuf::from("/etc/cdi"),
            BackendKind::Sim => self.state_dir.join("cdi"),
        }));
        config.kill_grace = Duration::from_secs_f64(self.kill_grace_s);
        config.backoff_max = Duration::from_secs_f64(self.retry_max_s).max(config.backoff_min);
        config.validate()?;
        Ok(config)
    }

    fn gpu_backend(&self) -> anyhow::Result<Arc<dyn GpuBackend>> {
        Ok(match self.backend {
            BackendKind::Nvml => Arc::new(NvmlBackend::init().context(
                "the nvml backend needs the NVIDIA driver (libnvidia-ml.so.1) and its GPUs; use --backend sim to simulate a node",
            )?),
            BackendKind::Sim => {
                let path = self.state_dir.join(SIM_STATE_FILE);
                let config = SimConfig {
                    model: self.sim_model,
                    gpus: usize::from(self.sim_gpus),
                    seed: self.sim_seed,
                    mig_enabled: true,
                };
                Arc::new(SimBackend::persistent(config, &path).with_context(|| {
                    format!(
                        "loading the simulated node from {} (remove it to start with empty GPUs)",
                        path.display()
                    )
                })?)
            }
        })
    }
}

/// `aion agent run`: reconciles until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let backend = args.gpu_backend()?;
    let agent = Agent::new(config, backend)
        .context("starting the agent")?
        .with_usage_intervals(
            Duration::from_secs_f64(args.usage_sample_s),
            Duration::from_secs_f64(args.usage_report_s),
        );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping the agent");
        let _ = stop.send(true);
    });
    tracing::info!(server = %args.server, state_dir = %args.state_dir.display(), backend = ?args.backend, "agent starting");
    agent.run(stopped).await.context("the agent stopped")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `aion agent probe`: prints the node as the agent sees it; fails on problems.
pub fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let report = match args.backend {
        BackendKind::Nvml => {
            let nvml = NvmlBackend::init()
                .context("the nvml backend needs the NVIDIA driver (libnvidia-ml.so.1)")?;
            let tables = nvml
                .driver_tables()
                .context("reading the driver's MIG tables")?;
            ProbeReport::collect("nvml", &nvml, tables)
        }
        BackendKind::Sim => {
            let sim = SimBackend::new(SimConfig {
                model: args.sim_model,
                gpus: usize::from(args.sim_gpus),
                seed: 0,
                mig_enabled: true,
            });
            ProbeReport::collect("sim", &sim, Vec::new())
        }
    }
    .context("probing the GPUs")?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.to_text())?;
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `aion agent exec`: runs the command on the lease's devices and exits with its status.
pub fn exec(args: ExecArgs) -> ExitCode {
    let running = match aion_agent::exec::spawn(&args.state_dir, args.lease, &args.command) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aion agent exec: {e}");
            return ExitCode::FAILURE;
        }
    };
    match running.wait() {
        Ok(status) => ExitCode::from(aion_agent::exec::exit_code(status)),
        Err(e) => {
            eprintln!("aion agent exec: {e}");
            ExitCode::FAILURE
        }
    }
}
