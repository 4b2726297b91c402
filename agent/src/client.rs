//! HTTP client of the agent protocol (`/v1/agent/*`) and the node credential kept on
//! disk. Errors tell "could not reach the control plane" (go on offline, retry) from
//! "it refused" (a problem+json answer) and from "it rejected our credential" (401).

use crate::{Error, Result};
use aion_api_types::{
    AgentRegister, DesiredState, NodeCredential, Problem, StatusAck, StatusReport,
};
use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// A node credential. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The node.
    pub node_id: Uuid,
    /// `aionnode_…`, the bearer secret.
    pub secret: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Renew after this time.
    pub renew_after: DateTime<Utc>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("node_id", &self.node_id)
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("renew_after", &self.renew_after)
            .finish()
    }
}

impl From<NodeCredential> for Credential {
    fn from(c: NodeCredential) -> Self {
        Self {
            node_id: c.node_id,
            secret: c.credential,
            expires_at: c.expires_at,
            renew_after: c.renew_after,
        }
    }
}

impl Credential {
    /// Whether it is time to renew.
    pub fn renew_due(&self, now: DateTime<Utc>) -> bool {
        now >= self.renew_after
    }
}

/// The credential file in the state directory (`node-credential.json`, mode 0600).
#[derive(Clone, Debug)]
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    /// The store in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("node-credential.json"),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved credential, if any.
    pub fn load(&self) -> Result<Option<Credential>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Saves the credential atomically, readable by the agent's user only.
    pub fn save(&self, credential: &Credential) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(credential).map_err(|e| self.io(std::io::Error::other(e)))?;
        write_private(&self.path, &bytes).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::State {
            path: self.path.clone(),
            source,
        }
    }
}

/// Writes `bytes` to `path` through a 0600 temporary file and a rename, creating the
/// directory (0700) when missing.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Client of the agent API.
#[derive(Clone, Debug)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl AgentClient {
    /// A client of the control plane at `base_url`; each request gets `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// A client over an existing HTTP client (shared by many agents: the fleet simulator).
    pub fn with_http(http: reqwest::Client, base_url: &str, timeout: Duration) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// `POST /v1/agent/register` with a one-time join token.
    pub async fn register(&self, join_token: &str, body: &AgentRegister) -> Result<Credential> {
        let req = self
            .request(Method::POST, "/v1/agent/register", join_token)
            .json(body);
        self.send::<NodeCredential>(req).await.map(Credential::from)
    }

    /// `POST /v1/agent/renew`: a new credential (the old one works 5 more minutes).
    pub async fn renew(&self, credential: &Credential) -> Result<Credential> {
        let req = self.request(Method::POST, "/v1/agent/renew", &credential.secret);
        self.send::<NodeCredential>(req).await.map(Credential::from)
    }

    /// `GET /v1/agent/desired-state`: waits up to `wait` for a revision other than
    /// `revision` (answers at once when `revision` is `None`).
    pub async fn desired_state(
        &self,
        credential: &Credential,
        revision: Option<i64>,
        wait: Duration,
    ) -> Result<DesiredState> {
        let mut query = vec![("wait", wait.as_secs().to_string())];
        if let Some(r) = revision {
            query.push(("revision", r.to_string()));
        }
        let req = self
            .request(Method::GET, "/v1/agent/desired-state", &credential.secret)
            .query(&query)
            .timeout(self.timeout + wait);
        self.send(req).await
    }

    /// `POST /v1/agent/status`: the instances present and GPU health.
    pub async fn status(
        &self,
        credential: &Credential,
        report: &StatusReport,
    ) -> Result<StatusAck> {
        let req = self
            .request(Method::POST, "/v1/agent/status", &credential.secret)
            .json(report);
        self.send(req).await
    }

    /// `POST /v1/agent/usage`: usage records (idempotent by lease and sequence).
    pub async fn usage(
        &self,
        credential: &Credential,
        batch: &aion_api_types::UsageBatch,
    ) -> Result<aion_api_types::UsageAck> {
        let req = self
            .request(Method::POST, "/v1/agent/usage", &credential.secret)
            .json(batch);
        self.send(req).await
    }

    /// `POST /v1/agent/events`: enforcement events (idempotent by event id).
    pub async fn events(
        &self,
        credential: &Credential,
        batch: &aion_api_types::AgentEventBatch,
    ) -> Result<aion_api_types::AgentEventsAck> {
        let req = self
            .request(Method::POST, "/v1/agent/events", &credential.secret)
            .json(batch);
        self.send(req).await
    }

    fn request(&self, method: Method, path: &str, bearer: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .timeout(self.timeout)
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| Error::Protocol(format!("answer of status {status}: {e}")));
        }
        Err(refusal(status, &body))
    }
}

fn transport(e: reqwest::Error) -> Error {
    // The chain says why (connection refused, DNS, timeout); the top message alone
    // does not.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    Error::Unreachable(msg)
}

/// Maps an error answer: 401 → [`Error::Unauthorized`], 502/503/504 →
/// [`Error::Unreachable`], anything else → [`Error::Refused`] with the problem's fields.
pub fn refusal(status: StatusCode, body: &[u8]) -> Error {
    let problem: Option<Problem> = serde_json::from_slice(body).ok();
    let (type_uri, title, detail, code) = match problem {
        Some(p) => (p.type_uri, p.title, p.detail, Some(p.code)),
        None => (
            "about:blank".to_owned(),
            status.canonical_reason().unwrap_or("error").to_owned(),
            String::from_utf8_lossy(body).chars().take(500).collect(),
            None,
        ),
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized { title, detail },
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Error::Unreachable(format!("{} {title}: {detail}", status.as_u16()))
        }
        _ => Error::Refused {
            status: status.as_u16(),
            type_uri,
            title,
            detail,
            code,
        },
    }
}
