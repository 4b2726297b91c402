//! Building the running control plane: database, migrations, bootstrap, HTTP server.
//! `main` and the integration tests use the same [`Application::build`], so tests start
//! exactly the server users run.

use crate::config::Config;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};
use aion_api::AppState;
use aion_services::clock::Clock;
use aion_services::oidc::OidcVerifier;
use aion_services::scheduler::{self, SchedulerConfig};
use aion_services::{Services, bootstrap, db, seed};
use anyhow::Context;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Production: refuses a database with pending migrations unless `migrate` is set.
    Serve,
    /// Embedded default: always migrates and seeds demo data.
    Dev,
}

/// A built, bound, not yet running control plane.
pub struct Application {
    server: Server,
    port: u16,
    /// The domain layer (tests use it to inspect state).
    pub services: Services,
    /// The bootstrap admin token, when this start created it.
    pub bootstrap_token: Option<String>,
    /// Where the bootstrap token was written.
    pub admin_token_path: PathBuf,
    /// Organisations seeded (dev mode, first start).
    pub seeded: Vec<String>,
    /// Simulated GPU nodes run beside the server (dev mode).
    dev_nodes: Option<crate::dev_nodes::DevNodes>,
    scheduler: SchedulerConfig,
}

impl Application {
    /// Connects, checks or applies migrations, bootstraps and binds the server.
    pub async fn build(config: &Config, mode: Mode) -> anyhow::Result<Self> {
        let clock = match (mode, config.dev_clock_start) {
            (Mode::Dev, Some(start)) => Clock::manual(start),
            _ => Clock::System,
        };
        Self::build_with_clock(config, mode, clock).await
    }

    /// Like [`Application::build`] with an injected clock (tests drive time with it).
    pub async fn build_with_clock(
        config: &Config,
        mode: Mode,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
        let conn = db::connect(&config.database_url(), config.db_max_connections).await?;
        let pending = db::pending_migrations(&conn).await?;
        if !pending.is_empty() {
            anyhow::ensure!(
                mode == Mode::Dev || config.migrate,
                "the database is behind: {} migration(s) pending ({}); run `aion migrate` or start with --migrate",
                pending.len(),
                pending.join(", ")
            );
            tracing::info!(count = pending.len(), "applying migrations");
            db::migrate(&conn).await?;
        }
        let oidc = OidcVerifier::new(
            config.oidc_issuers.clone(),
            config.oidc_leeway_s,
            clock.clone(),
        )?;
        let services = Services {
            db: conn,
            clock,
            oidc: Arc::new(oidc),
            events: Arc::default(),
            admission: Arc::default(),
            budget: Arc::new(config.budget()),
            tokens: Arc::default(),
            node_credentials: Arc::default(),
            heartbeats: Arc::default(),
        };
        let admin_token_path = config.data_dir.join("admin-token");
        let bootstrap_token = bootstrap::admin_token_if_empty(&services).await?;
        if let Some(token) = &bootstrap_token {
            write_secret_file(&admin_token_path, token)?;
        }
        let seeded = match mode {
            Mode::Dev => seed::demo_if_empty(&services).await?.organizations,
            Mode::Serve => Vec::new(),
        };
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let dev_clock = mode == Mode::Dev && matches!(services.clock, Clock::Manual(_));
        let web = aion_web::WebState::new(services.clone(), config.web(port, mode == Mode::Dev)?)
            .context("console settings")?;
        let server = http_server(listener, services.clone(), web, dev_clock)?;
        let dev_nodes = match mode {
            Mode::Dev if config.dev_nodes > 0 => {
                let mut ip = config.listen.ip();
                if ip.is_unspecified() {
                    ip = std::net::Ipv4Addr::LOCALHOST.into();
                }
                let url = format!("http://{}", std::net::SocketAddr::new(ip, port));
                let nodes = crate::dev_nodes::DevNodes::prepare(
                    &services,
                    &config.data_dir,
                    &url,
                    config.dev_nodes,
                )
                .await?;
                Some(nodes)
            }
            _ => None,
        };
        Ok(Self {
            server,
            port,
            services,
            bootstrap_token,
            admin_token_path,
            seeded,
            dev_nodes,
            scheduler: config.scheduler(),
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Simulated GPU nodes this process runs (dev mode).
    pub fn dev_node_count(&self) -> usize {
        self.dev_nodes.as_ref().map_or(0, |n| n.len())
    }

    /// Serves until the process is stopped (SIGINT/SIGTERM shut down gracefully), with
    /// the scheduler running beside the server (it leads or waits to lead).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        aion_services::notify_bridge::spawn(self.services.clone(), stopped.clone());
        // Seals audit events into the hash chain shortly after their mutations commit.
        tokio::spawn(aion_services::audit_chain::run(
            self.services.db.clone(),
            std::time::Duration::from_millis(250),
            stopped.clone(),
        ));
        if let Some(nodes) = self.dev_nodes {
            tokio::spawn(nodes.run(stopped.clone()));
        }
        let scheduler = tokio::spawn(scheduler::run(self.services, self.scheduler, stopped));
        let result = self.server.await;
        let _ = stop.send(true);
        if let Err(e) = scheduler.await {
            tracing::error!(error = %e, "the scheduler task failed");
        }
        result
    }
}

/// The domain layer for one-shot CLI commands: an up-to-date database is required.
pub async fn services_for_cli(config: &Config) -> anyhow::Result<Services> {
    let conn = db::connect(&config.database_url(), 2).await?;
    let pending = db::pending_migrations(&conn).await?;
    anyhow::ensure!(
        pending.is_empty(),
        "the database is behind; run `aion migrate` first"
    );
    let clock = Clock::System;
    let oidc = OidcVerifier::new(Vec::new(), config.oidc_leeway_s, clock.clone())?;
    Ok(Services {
        db: conn,
        clock,
        oidc: Arc::new(oidc),
        events: Arc::default(),
        admission: Arc::default(),
        budget: Arc::new(config.budget()),
        tokens: Arc::default(),
        node_credentials: Arc::default(),
        heartbeats: Arc::default(),
    })
}

fn http_server(
    listener: TcpListener,
    services: Services,
    console: aion_web::WebState,
    dev_clock: bool,
) -> anyhow::Result<Server> {
    let state = web::Data::new(AppState { services });
    let console = web::Data::new(console);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(console.clone())
            .wrap(middleware::from_fn(aion_api::error::finish_problems))
            .wrap(middleware::from_fn(aion_web::error::localize_errors))
            .wrap(middleware::from_fn(aion_web::headers::security_headers))
            .wrap(tracing_actix_web::TracingLogger::default())
            .configure(|cfg| {
                if dev_clock {
                    aion_api::configure_dev_clock(cfg);
                }
            })
            .configure(aion_api::configure)
            .configure(aion_web::configure)
            .default_service(web::to(aion_api::not_found))
    })
    // Every node's agent holds a long-poll open: allow far more than actix's default of
    // 25,000 connections per worker (the open-file limit is the real bound).
    .max_connections(200_000)
    .backlog(8192)
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

/// Writes a secret readable by its owner only (mode 0600), replacing any older file.
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(file, "{secret}")?;
    Ok(())
}
