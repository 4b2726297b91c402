//! Test harness: spawn the real application, talk to it over HTTP, and start the real
//! OpenID provider from `testing/oidc-provider`.

use aion::config::{Config, DatabaseUrl};
use aion::startup::{Application, Mode};
use aion_services::Services;
use aion_services::clock::Clock;
use aion_services::oidc::TrustedIssuer;
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per database, as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("AION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped when this is dropped.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        use sea_orm::ConnectionTrait;
        let admin = postgres_admin_url();
        let name = format!("aion_test_{}", uuid::Uuid::new_v4().simple());
        let conn = sea_orm::Database::connect(&admin)
            .await
            .expect("PostgreSQL for tests (AION_TEST_POSTGRES_URL)");
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                if let Ok(conn) = sea_orm::Database::connect(&postgres_admin_url()).await {
                    let _ = conn
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = conn.close().await;
                }
            })
        })
        .join();
    }
}

/// A database for one test: a SQLite file in a temporary folder, or a fresh PostgreSQL db.
pub struct TestDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}/aion.db?mode=rwc", dir.path().display()),
                dir,
                _pg: None,
            },
            Backend::Postgres => {
                let pg = PgDatabase::create().await;
                Self {
                    url: pg.url.clone(),
                    dir,
                    _pg: Some(pg),
                }
            }
        }
    }

    /// A configuration for this database on a random port.
    pub fn config(&self) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.dir.path().to_path_buf(),
            database_url: Some(DatabaseUrl(self.url.clone())),
            db_max_connections: 5,
            migrate: true,
            oidc_leeway_s: 0,
            ..Config::default()
        }
    }
}

/// A running control plane.
pub struct TestApp {
    pub base: String,
    /// The bootstrap platform-admin token.
    pub admin: String,
    pub services: Services,
    pub clock: Clock,
    pub client: reqwest::Client,
    pub db: TestDatabase,
}

/// An HTTP answer, body parsed as JSON when possible.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// Asserts a status, printing the body on mismatch.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{}",
            self.body
        );
        self
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap().to_owned()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let clock = Clock::manual(chrono::Utc::now());
        Self::spawn_in(backend, Mode::Serve, clock, tweak).await
    }

    /// `aion dev`: seeded demo data, the console's development sign-in, and
    /// `dev_nodes` simulated nodes running in-process on the real clock.
    pub async fn spawn_dev(
        backend: Backend,
        dev_nodes: u32,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_in(backend, Mode::Dev, Clock::System, |c: &mut Config| {
            c.dev_nodes = dev_nodes;
            tweak(c);
        })
        .await
    }

    async fn spawn_in(
        backend: Backend,
        mode: Mode,
        clock: Clock,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let db = TestDatabase::new(backend).await;
        let mut config = db.config();
        tweak(&mut config);
        let app = Application::build_with_clock(&config, mode, clock.clone())
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let admin = app
            .bootstrap_token
            .clone()
            .expect("a fresh database gets a bootstrap token");
        let services = app.services.clone();
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            admin,
            services,
            clock,
            client: reqwest::Client::new(),
            db,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), None, &[])
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(token), Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.request(Method::DELETE, path, Some(token), None, &[])
            .await
    }

    pub async fn create_org(&self, slug: &str, kind: &str) -> String {
        self.post(
            "/v1/organizations",
            &self.admin,
            json!({"slug": slug, "name": slug, "kind": kind}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn create_project(&self, org: &str, slug: &str) -> String {
        self.post(
            &format!("/v1/organizations/{org}/projects"),
            &self.admin,
            json!({"slug": slug, "name": slug}),
        )
        .await
        .expect(201)
        .id()
    }

    /// Creates a token at `scope` (`/v1/projects/{id}` or `/v1/organizations/{id}`) and
    /// returns its secret.
    pub async fn token(&self, scope: &str, role: &str) -> String {
        let res = self
            .post(
                &format!("{scope}/tokens"),
                &self.admin,
                json!({"name": format!("{role} token"), "role": role}),
            )
            .await
            .expect(201);
        res.body["secret"].as_str().unwrap().to_owned()
    }
}

/// A running instance of the test OpenID provider (`testing/oidc-provider`).
pub struct Provider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
}

/// The API audience the provider puts in tokens by default.
pub const AUDIENCE: &str = "https://api.aion.test";

impl Provider {
    pub fn start() -> Self {
        let script = std::env::var("AION_TEST_OIDC_PROVIDER").unwrap_or_else(|_| {
            format!(
                "{}/testing/oidc-provider/provider.mjs",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        let mut child = Command::new("node")
            .arg(&script)
            .args(["--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node and testing/oidc-provider (run scripts/test.sh once to install it)");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("provider did not start: {line:?}"));
        Self {
            child,
            _stdin: stdin,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
        }
    }

    pub fn trusted(&self) -> TrustedIssuer {
        TrustedIssuer {
            issuer: self.issuer.clone(),
            audience: AUDIENCE.into(),
        }
    }

    /// A client_credentials access token (JWT) for `client`, for `resource` (default the API).
    pub async fn token(&self, client: &str, resource: Option<&str>) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", "secret"),
            ("resource", resource.unwrap_or(AUDIENCE)),
        ];
        let res: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {res}"))
            .to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
