//! Configuration: one typed struct, filled from defaults, then a TOML file (`--config`),
//! then `AION_*` environment variables and command-line flags (clap reads both; a flag
//! wins over its variable). Unknown keys in the file are rejected. The database URL is
//! redacted wherever the configuration is printed or logged.

use aion_services::oidc::TrustedIssuer;
use anyhow::Context;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (production).
    Json,
}

/// A database URL; its password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                write!(f, "{}://***{}", &self.0[..scheme], &self.0[at..])
            }
            _ => write!(f, "{}", self.0),
        }
    }
}

/// The whole configuration of `aion serve` / `aion dev` / `aion migrate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database and the bootstrap admin token.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// Size of the database connection pool.
    pub db_max_connections: u32,
    /// Apply pending migrations at start instead of refusing to start.
    pub migrate: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// OIDC issuers whose access tokens are accepted, each with the audience to require.
    pub oidc_issuers: Vec<TrustedIssuer>,
    /// Tolerated clock skew when checking `exp`/`nbf`, in seconds.
    pub oidc_leeway_s: u32,
    /// Most pending leases the scheduler places per batch.
    pub scheduler_batch_size: u64,
    /// Scheduler tick when nothing wakes it, in milliseconds.
    pub scheduler_tick_ms: u64,
    /// Seconds a lease may stay pending before it fails.
    pub pending_timeout_s: u64,
    /// A node silent for this many seconds becomes unreachable.
    pub node_timeout_s: u64,
    /// Simulated nodes (8 × H100-80GB each) `aion dev` runs in-process; 0: none.
    pub dev_nodes: u32,
    /// Committed percentages of a grant (held + used) that raise a warning once each.
    pub budget_warn_at_percent: Vec<u8>,
    /// Seconds before a grant's end at which it warns.
    pub grant_end_warning_s: u64,
    /// Seconds the leases of an overdrawn grant go on before they are ended.
    pub overdraft_grace_s: u64,
    /// `aion dev` only: a simulated clock starting at this instant, moved only through
    /// `POST /v1/dev/clock/advance` (needs `dev_nodes = 0`: simulated agents run on
    /// real time).
    pub dev_clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// The site's public URL (`https://aion.example`): the console's OpenID redirect URI
    /// is `{public_url}/auth/callback`, and its cookies are `Secure` when it is HTTPS.
    /// Default: `http://` and the listen address.
    pub public_url: Option<String>,
    /// OpenID providers people sign in to the console with (`[[web_providers]]` in the
    /// file: name, display_name, issuer, client_id, client_secret, scopes).
    pub web_providers: Vec<aion_web::ProviderConfig>,
    /// Rules giving roles from ID-token claims at sign-in (`[[web_claim_rules]]`:
    /// provider, claim, value, grant = {scope, organization, project, role}).
    pub web_claim_rules: Vec<aion_web::ClaimRule>,
    /// Hours a console session may stay unused.
    pub web_session_idle_h: u32,
    /// Hours after sign-in at which every console session ends.
    pub web_session_max_h: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".aion"),
            database_url: None,
            db_max_connections: 16,
            migrate: false,
            log_format: LogFormat::Text,
            oidc_issuers: Vec::new(),
            oidc_leeway_s: 30,
            scheduler_batch_size: 256,
            scheduler_tick_ms: 500,
            pending_timeout_s: 900,
            node_timeout_s: aion_services::nodes::HEARTBEAT_TIMEOUT_S as u64,
            dev_nodes: 4,
            budget_warn_at_percent: vec![80, 90, 100],
            grant_end_warning_s: 7 * 24 * 3600,
            overdraft_grace_s: 900,
            dev_clock_start: None,
            public_url: None,
            web_providers: Vec::new(),
            web_claim_rules: Vec::new(),
            web_session_idle_h: 8,
            web_session_max_h: 24,
        }
    }
}

impl Config {
    /// The scheduler's settings.
    pub fn scheduler(&self) -> aion_services::scheduler::SchedulerConfig {
        aion_services::scheduler::SchedulerConfig {
            batch_size: self.scheduler_batch_size,
            tick: std::time::Duration::from_millis(self.scheduler_tick_ms),
            pending_timeout: std::time::Duration::from_secs(self.pending_timeout_s),
            node_timeout: std::time::Duration::from_secs(self.node_timeout_s),
            ..Default::default()
        }
    }

    /// Budget warnings and the overdraft grace.
    pub fn budget(&self) -> aion_services::ledger::BudgetPolicy {
        aion_services::ledger::BudgetPolicy {
            warn_at_percent: self.budget_warn_at_percent.clone(),
            grant_end_warning: std::time::Duration::from_secs(self.grant_end_warning_s),
            overdraft_grace: std::time::Duration::from_secs(self.overdraft_grace_s),
        }
    }

    /// The console's settings; `port` is the bound port (the default public URL uses it).
    pub fn web(&self, port: u16, dev_sign_in: bool) -> anyhow::Result<aion_web::WebConfig> {
        let public_url = match &self.public_url {
            Some(u) => u.clone(),
            None => {
                let mut ip = self.listen.ip();
                if ip.is_unspecified() {
                    ip = std::net::Ipv4Addr::LOCALHOST.into();
                }
                format!("http://{}", std::net::SocketAddr::new(ip, port))
            }
        };
        Ok(aion_web::WebConfig {
            providers: self.web_providers.clone(),
            claim_rules: self.web_claim_rules.clone(),
            public_url: url::Url::parse(&public_url).context("public_url")?,
            dev_sign_in,
            sessions: aion_services::web_sessions::SessionPolicy {
                idle: chrono::Duration::hours(i64::from(self.web_session_idle_h)),
                absolute: chrono::Duration::hours(i64::from(self.web_session_max_h)),
            },
        })
    }

    /// The database URL to use: the configured one, or SQLite in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.0.clone(),
            None => format!("sqlite://{}/aion.db?mode=rwc", self.data_dir.display()),
        }
    }
}

/// Flags (and their `AION_*` variables) that override the file; every option has one.
#[derive(Clone, Debug, Default, Serialize, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "AION_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AION_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data folder [default: ./.aion].
    #[arg(long, env = "AION_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://…) [default: SQLite in the data folder].
    #[arg(long, env = "AION_DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    /// Database connection pool size [default: 16].
    #[arg(long, env = "AION_DB_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_max_connections: Option<u32>,
    /// Apply pending migrations at start.
    #[arg(long, env = "AION_MIGRATE", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate: Option<bool>,
    /// Log format [default: text].
    #[arg(long, env = "AION_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Trusted OIDC issuer as ISSUER=AUDIENCE; repeat, or comma-separate in the variable.
    #[arg(long = "oidc-issuer", env = "AION_OIDC_ISSUERS", value_delimiter = ',', value_parser = parse_issuer)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oidc_issuers: Vec<TrustedIssuer>,
    /// Clock skew tolerated on token times, seconds [default: 30].
    #[arg(long, env = "AION_OIDC_LEEWAY_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_leeway_s: Option<u32>,
    /// Most pending leases placed per scheduler batch [default: 256].
    #[arg(long, env = "AION_SCHEDULER_BATCH_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_batch_size: Option<u64>,
    /// Scheduler tick when nothing wakes it, milliseconds [default: 500].
    #[arg(long, env = "AION_SCHEDULER_TICK_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_tick_ms: Option<u64>,
    /// Seconds a lease may stay pending before it fails [default: 900].
    #[arg(long, env = "AION_PENDING_TIMEOUT_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_timeout_s: Option<u64>,
    /// Seconds without heartbeat after which a node is unreachable [default: 90].
    #[arg(long, env = "AION_NODE_TIMEOUT_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_timeout_s: Option<u64>,
    /// Simulated GPU nodes `aion dev` starts in-process, 0 for none [default: 4].
    #[arg(long, env = "AION_DEV_NODES", value_parser = clap::value_parser!(u32).range(0..=64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_nodes: Option<u32>,
    /// Committed percentages of a grant that raise a warning [default: 80,90,100].
    #[arg(long, env = "AION_BUDGET_WARN_AT_PERCENT", value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_warn_at_percent: Option<Vec<u8>>,
    /// Seconds before a grant's end at which it warns [default: 604800].
    #[arg(long, env = "AION_GRANT_END_WARNING_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_end_warning_s: Option<u64>,
    /// Seconds an overdrawn grant's leases go on before they end [default: 900].
    #[arg(long, env = "AION_OVERDRAFT_GRACE_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdraft_grace_s: Option<u64>,
    /// `aion dev` only: start a simulated clock at this RFC 3339 instant, advanced by
    /// platform admins through POST /v1/dev/clock/advance (requires --dev-nodes 0).
    #[arg(long, env = "AION_DEV_CLOCK_START")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Public URL of the site (https://aion.example) [default: http:// + the listen address].
    #[arg(long, env = "AION_PUBLIC_URL", value_parser = parse_public_url)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Hours a console session may stay unused [default: 8].
    #[arg(long, env = "AION_WEB_SESSION_IDLE_H", value_parser = clap::value_parser!(u32).range(1..=720))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_session_idle_h: Option<u32>,
    /// Hours after sign-in at which console sessions end [default: 24].
    #[arg(long, env = "AION_WEB_SESSION_MAX_H", value_parser = clap::value_parser!(u32).range(1..=720))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_session_max_h: Option<u32>,
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    match url::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none() =>
        {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "expected an http(s) URL without query, got '{raw}'"
        )),
    }
}

fn parse_database_url(raw: &str) -> Result<DatabaseUrl, String> {
    if raw.starts_with("postgres://")
        || raw.starts_with("postgresql://")
        || raw.starts_with("sqlite:")
    {
        Ok(DatabaseUrl(raw.to_owned()))
    } else {
        Err("expected a postgres://… or sqlite:… URL".into())
    }
}

fn parse_issuer(raw: &str) -> Result<TrustedIssuer, String> {
    let (issuer, audience) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected ISSUER=AUDIENCE, got '{raw}'"))?;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) || audience.is_empty() {
        return Err(format!(
            "expected an http(s) issuer URL and a non-empty audience, got '{raw}'"
        ));
    }
    Ok(TrustedIssuer {
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
    })
}

impl ConfigArgs {
    /// Merges defaults, the file and these flags into one checked configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &self.config {
            anyhow::ensure!(
                path.is_file(),
                "configuration file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            .merge(Serialized::defaults(self))
            .extract()
            .context("invalid configuration")?;
        anyhow::ensure!(
            config.db_max_connections > 0,
            "db_max_connections must be at least 1"
        );
        anyhow::ensure!(
            config.scheduler_batch_size > 0 && config.scheduler_tick_ms > 0,
            "scheduler_batch_size and scheduler_tick_ms must be at least 1"
        );
        anyhow::ensure!(
            config
                .budget_warn_at_percent
                .iter()
                .all(|p| (1..=100).contains(p)),
            "budget_warn_at_percent values must be between 1 and 100"
        );
        anyhow::ensure!(
            config.dev_clock_start.is_none() || config.dev_nodes == 0,
            "dev_clock_start needs dev_nodes = 0: the simulated nodes' agents run on real time (play the nodes through the agent API instead)"
        );
        if let Some(url) = &config.public_url {
            parse_public_url(url).map_err(|e| anyhow::anyhow!("public_url: {e}"))?;
        }
        anyhow::ensure!(
            (1..=720).contains(&config.web_session_idle_h)
                && (1..=720).contains(&config.web_session_max_h),
            "web_session_idle_h and web_session_max_h must be between 1 and 720"
        );
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let f = file("listen = \"0.0.0.0:9000\"\ndb_max_connections = 4\n");
        let args = ConfigArgs {
            config: Some(f.path().into()),
            db_max_connections: Some(8),
            ..Default::default()
        };
        let config = args.load().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.db_max_connections, 8);
        assert_eq!(config.oidc_leeway_s, 30);
    }

    #[test]
    fn scheduler_options_have_defaults_and_can_be_set() {
        let f = file("scheduler_tick_ms = 100\n");
        let config = ConfigArgs {
            config: Some(f.path().into()),
            pending_timeout_s: Some(60),
            ..Default::default()
        }
        .load()
        .unwrap();
        let s = config.scheduler();
        assert_eq!(s.batch_size, 256);
        assert_eq!(s.tick.as_millis(), 100);
        assert_eq!(s.pending_timeout.as_secs(), 60);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_rejected() {
        let f = file("listn = \"0.0.0.0:9000\"\n");
        let err = ConfigArgs {
            config: Some(f.path().into()),
            ..Default::default()
        }
        .load()
        .unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }

    #[test]
    fn issuers_come_from_the_file_as_tables() {
        let f = file(
            "[[oidc_issuers]]\nissuer = \"https://idp.example\"\naudience = \"https://api.example\"\n",
        );
        let config = ConfigArgs {
            config: Some(f.path().into()),
            ..Default::default()
        }
        .load()
        .unwrap();
        assert_eq!(config.oidc_issuers[0].audience, "https://api.example");
    }

    #[test]
    fn an_issuer_flag_without_audience_is_rejected() {
        assert!(parse_issuer("https://idp.example").is_err());
        assert!(parse_issuer("https://idp.example=https://api").is_ok());
    }

    #[test]
    fn the_database_password_never_shows_in_debug_output() {
        let config = Config {
            database_url: Some(DatabaseUrl("postgres://aion:hunter2@db:5432/aion".into())),
            ..Default::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("@db:5432"));
    }
}
