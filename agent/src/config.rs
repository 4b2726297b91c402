//! The agent's settings: where the control plane is, how to join it the first time,
//! where to keep the node credential, and the loop's timings.

use crate::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Agent settings. Durations are given in seconds (fractions allowed) in files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the control plane, e.g. `https://aion.example.org`.
    pub server_url: String,
    /// `aionjoin_…`, needed only for the first registration (a join token works once).
    #[serde(default)]
    pub join_token: Option<String>,
    /// Directory of the node credential and the last desired state (created 0700).
    pub state_dir: PathBuf,
    /// Host name to register with (default: the kernel's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// How long one desired-state long-poll waits for a change (the server allows 60 s).
    #[serde(default = "defaults::poll_wait", with = "secs")]
    pub poll_wait: Duration,
    /// How soon to look again while work is pending (processes being stopped, creates
    /// waiting for a place).
    #[serde(default = "defaults::pending_recheck", with = "secs")]
    pub pending_recheck: Duration,
    /// Time between TERM and KILL for a process on a slice without a live lease.
    #[serde(default = "defaults::kill_grace", with = "secs")]
    pub kill_grace: Duration,
    /// First retry delay after an error; doubles up to `backoff_max`.
    #[serde(default = "defaults::backoff_min", with = "secs")]
    pub backoff_min: Duration,
    /// Longest retry delay.
    #[serde(default = "defaults::backoff_max", with = "secs")]
    pub backoff_max: Duration,
    /// Time limit of a request (the long-poll gets its wait on top).
    #[serde(default = "defaults::request_timeout", with = "secs")]
    pub request_timeout: Duration,
    /// Directory of the CDI specs written per live lease (`/etc/cdi`); none: not written.
    #[serde(default)]
    pub cdi_dir: Option<PathBuf>,
}

impl AgentConfig {
    /// Settings with the default timings.
    pub fn new(server_url: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            server_url: server_url.into(),
            join_token: None,
            state_dir: state_dir.into(),
            hostname: None,
            poll_wait: defaults::poll_wait(),
            pending_recheck: defaults::pending_recheck(),
            kill_grace: defaults::kill_grace(),
            backoff_min: defaults::backoff_min(),
            backoff_max: defaults::backoff_max(),
            request_timeout: defaults::request_timeout(),
            cdi_dir: None,
        }
    }

    /// Sets the join token.
    pub fn with_join_token(mut self, token: impl Into<String>) -> Self {
        self.join_token = Some(token.into());
        self
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<()> {
        if !(self.server_url.starts_with("http://") || self.server_url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "server_url `{}` must start with http:// or https://",
                self.server_url
            )));
        }
        if self.poll_wait > Duration::from_secs(60) {
            return Err(Error::Config("poll_wait must be at most 60 s".into()));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(Error::Config(
                "backoff_min must be positive and at most backoff_max".into(),
            ));
        }
        Ok(())
    }

    /// The host name to register with.
    pub fn resolved_hostname(&self) -> String {
        self.hostname
            .clone()
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "localhost".into())
    }
}

mod defaults {
    use std::time::Duration;
    pub fn poll_wait() -> Duration {
        Duration::from_secs(30)
    }
    pub fn pending_recheck() -> Duration {
        Duration::from_secs(2)
    }
    pub fn kill_grace() -> Duration {
        Duration::from_secs(10)
    }
    pub fn backoff_min() -> Duration {
        Duration::from_millis(500)
    }
    pub fn backoff_max() -> Duration {
        Duration::from_secs(30)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(15)
    }
}

/// Durations as seconds (`1.5`) in settings files.
mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)
    }
}
