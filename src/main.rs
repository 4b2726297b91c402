//! `aion`: the control plane (`serve`, `dev`), its database (`migrate`), the audit chain
//! check (`audit verify`), the node agent (`agent`) and offline MIG tables (`mig`).

mod agent_cli;
mod fleet_sim;
mod mig_cli;

use aion::config::{ConfigArgs, LogFormat};
use aion::startup::{Application, Mode};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the server allocates per request and per row, and
/// malloc/free were a fifth of its CPU under the lease benchmark (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Aion: control plane of a sovereign GPU cloud.
#[derive(Parser)]
#[command(name = "aion", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API) against the configured database.
    Serve(ConfigArgs),
    /// Run the embedded default: SQLite in ./.aion, demo data, no external service.
    Dev(ConfigArgs),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArgs),
    /// Operator tools that act on the database directly.
    Admin {
        #[command(subcommand)]
        cmd: AdminCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        cmd: AuditCommand,
    },
    /// The node agent: `run` on every GPU node, `exec` to run a command on a lease's slice.
    Agent {
        #[command(subcommand)]
        cmd: agent_cli::AgentCommand,
    },
    /// Many simulated nodes in one process, each a real agent over HTTP (load tests).
    FleetSim(fleet_sim::FleetSimArgs),
    /// Offline MIG tables: profiles and valid configurations per GPU model.
    Mig {
        #[command(subcommand)]
        cmd: mig_cli::MigCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Give a person (OIDC issuer + subject) a platform role: platform-admin or auditor.
    PlatformRole {
        /// OIDC issuer URL of the person.
        #[arg(long)]
        issuer: String,
        /// Subject of the person at that issuer.
        #[arg(long)]
        subject: String,
        /// platform-admin or auditor.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain; exits non-zero if it is broken.
    Verify(ConfigArgs),
}

/// Logs to stderr, filtered by `AION_LOG` or else at `default_level`.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AION_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Raises this process's open-file limit to its hard limit (each agent long-poll holds a
/// connection); answers the limit now in force.
pub(crate) fn raise_nofile_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
        return Some(soft);
    }
    Some(hard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mig { cmd } => mig_cli::run(cmd),
        Command::Agent {
            cmd: agent_cli::AgentCommand::Exec(args),
        } => return agent_cli::exec(args),
        Command::Agent {
            cmd: agent_cli::AgentCommand::Probe(args),
        } => {
            // Warnings from the backend (a skipped GPU model) go to stderr.
            init_logging(LogFormat::Text, "warn");
            match agent_cli::probe(args) {
                Ok(code) => return code,
                Err(e) => Err(e),
            }
        }
        other => run_async(other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("aion: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve(args, Mode::Serve).await,
            Command::Dev(args) => serve(args, Mode::Dev).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Audit {
                cmd: AuditCommand::Verify(args),
            } => verify_audit(args).await,
            Command::Admin {
                cmd:
                    AdminCommand::PlatformRole {
                        issuer,
                        subject,
                        role,
                        config,
                    },
            } => grant_platform_role(config, &issuer, &subject, &role).await,
            Command::FleetSim(args) => {
                init_logging(LogFormat::Text, "error");
                fleet_sim::run(args).await
            }
            Command::Agent {
                cmd: agent_cli::AgentCommand::Run(args),
            } => {
                init_logging(LogFormat::Text, "info");
                agent_cli::run(args).await
            }
            // Handled before a runtime is built: they need none.
            Command::Mig { .. }
            | Command::Agent {
                cmd: agent_cli::AgentCommand::Exec(_) | agent_cli::AgentCommand::Probe(_),
            } => Ok(()),
        }
    })
}

async fn serve(args: ConfigArgs, mode: Mode) -> anyhow::Result<()> {
    let config = args.load()?;
    init_logging(config.log_format, "info");
    let nofile = raise_nofile_limit();
    tracing::info!(?config, ?mode, ?nofile, "starting");
    let app = Application::build(&config, mode).await?;
    let base = format!("http://{}:{}", config.listen.ip(), app.port());
    println!("Aion control plane listening on {base}");
    println!("  web console:    {base}/console");
    if mode == Mode::Dev {
        println!(
            "                  (development sign-in: alice or bob, researchers; gaspard, GENCI committee; olga, operator)"
        );
    }
    println!("  API:            {base}/v1");
    println!("  API reference:  {base}/v1/docs/");
    println!("  OpenAPI:        {base}/v1/openapi.json");
    if !app.seeded.is_empty() {
        println!("  demo data:      organisations {}", app.seeded.join(", "));
    }
    if mode == Mode::Dev {
        println!(
            "  GPU nodes:      {} simulated node(s) × {} H100-80GB (set with --dev-nodes)",
            app.dev_node_count(),
            aion::dev_nodes::GPUS_PER_NODE
        );
    }
    match &app.bootstrap_token {
        Some(token) => {
            println!(
                "  admin token (shown once, also in {}):",
                app.admin_token_path.display()
            );
            println!("    {token}");
            println!(
                "  try: curl -H \"Authorization: Bearer $(cat {})\" {base}/v1/organizations",
                app.admin_token_path.display()
            );
        }
        None => println!(
            "  admin token:    see {} (created on first start)",
            app.admin_token_path.display()
        ),
    }
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(args: ConfigArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    init_logging(config.log_format, "info");
    let conn = aion_services::db::connect(&config.database_url(), 2).await?;
    let pending = aion_services::db::pending_migrations(&conn).await?;
    aion_services::db::migrate(&conn).await?;
    println!(
        "applied {} migration(s){}",
        pending.len(),
        if pending.is_empty() {
            String::new()
        } else {
            format!(": {}", pending.join(", "))
        }
    );
    Ok(())
}

async fn grant_platform_role(
    args: ConfigArgs,
    issuer: &str,
    subject: &str,
    role: &str,
) -> anyhow::Result<()> {
    let config = args.load()?;
    let role = aion_services::authz::PlatformRole::parse("role", role)?;
    let services = aion::startup::services_for_cli(&config).await?;
    let system = aion_services::authz::Caller::system("cli");
    let user =
        aion_services::identity::grant_platform_role(&services, &system, issuer, subject, role)
            .await?;
    println!(
        "user {user} ({issuer} / {subject}) is now {}",
        role.as_str()
    );
    Ok(())
}

async fn verify_audit(args: ConfigArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    let conn = aion_services::db::connect(&config.database_url(), 2).await?;
    // Bring the chain up to date with the inbox, then check all of it.
    aion_services::audit_chain::seal_pending(&conn).await?;
    let report = aion_services::audit::verify(&conn).await?;
    match report.first_bad_seq {
        None => {
            println!("audit chain intact: {} event(s) verified", report.events);
            Ok(())
        }
        Some(seq) => anyhow::bail!(
            "audit chain broken at event {seq}: {} ({} event(s) verified before it)",
            report.problem.unwrap_or_default(),
            report.events
        ),
    }
}
