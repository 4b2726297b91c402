//! The control plane down, then back: a real `aion serve` process on PostgreSQL and the
//! real agent binary on a simulated node. While the server is stopped (SIGTERM) the agent
//! keeps the active lease's instance and workload and queues its usage; a new server on
//! the same database and port takes over, the agent catches up (its queued usage is
//! counted once), and a release made through the new server stops the workload, destroys
//! the instance and ends the lease `released`.

use crate::agent_kill::{AgentProcess, CONVERGE, ExecProcess, alive, poll, sim_state};
use crate::helpers::PgDatabase;
use crate::serve::ServeProcess;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts `aion serve` on `port` and waits until it listens.
async fn start_server(name: &str, db_url: &str, port: u16, root: &Path) -> ServeProcess {
    ServeProcess::start(name, db_url, &format!("127.0.0.1:{port}"), root, &[]).await
}

/// A control plane reached over HTTP.
struct Api {
    client: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn must(&self, method: Method, path: &str, body: Option<Value>, expect: u16) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(status, expect, "{path}: {body}");
        body
    }

    async fn lease(&self, id: &str) -> Value {
        self.must(Method::GET, &format!("/v1/leases/{id}"), None, 200)
            .await
    }

    async fn until_state(&self, agent: &mut AgentProcess, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let lease = self.lease(id).await;
            if lease["state"] == state {
                return lease;
            }
            agent.assert_running();
            assert!(
                Instant::now() < deadline,
                "lease {id} is not {state} after {CONVERGE:?}: {lease}\n{}",
                agent.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Total usage records and allocated seconds the control plane stored for a lease.
    async fn usage(&self, id: &str) -> (i64, i64) {
        let now = chrono::Utc::now();
        let from =
            (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to =
            (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = self
            .must(
                Method::GET,
                &format!("/v1/leases/{id}/usage?from={from}&to={to}"),
                None,
                200,
            )
            .await;
        (
            body["total"]["records"].as_i64().unwrap_or(0),
            body["total"]["allocated_seconds"].as_i64().unwrap_or(0),
        )
    }

    async fn audit(&self, action: &str, target: &str) -> Vec<Value> {
        let body = self
            .must(
                Method::GET,
                &format!("/v1/audit-events?action={action}&limit=200"),
                None,
                200,
            )
            .await;
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target_id"] == target)
            .cloned()
            .collect()
    }
}

/// The agent's usage outbox: (records queued for `lease`, sequences numbered for it).
fn outbox(state_dir: &Path, lease: &str) -> (usize, i64) {
    let Ok(bytes) = std::fs::read(state_dir.join("usage-outbox.json")) else {
        return (0, 0);
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let queued = v["records"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["lease_id"] == lease).count());
    (queued, v["sequences"][lease]["next"].as_i64().unwrap_or(0))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_down_then_back_the_agent_keeps_the_slice_and_catches_up() {
    // Arrange: a server process on PostgreSQL on a port chosen up front (the agent's
    // server URL is fixed), a partner with a grant, the agent binary on a simulated node.
    let pg = PgDatabase::create().await;
    let root = tempfile::tempdir().unwrap();
    let migrated = Command::new(env!("CARGO_BIN_EXE_aion"))
        .args(["migrate", "--database-url", &pg.url])
        .arg("--data-dir")
        .arg(root.path().join("migrate"))
        .env("AION_LOG", "warn")
        .output()
        .expect("running aion migrate");
    assert!(
        migrated.status.success(),
        "aion migrate: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let port = free_port();
    let mut first = start_server("first", &pg.url, port, root.path()).await;
    let admin = std::fs::read_to_string(first.dir.join("data/admin-token"))
        .expect("the first server writes the admin token")
        .trim()
        .to_owned();
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        admin,
    };
    let org = api
        .must(
            Method::POST,
            "/v1/organizations",
            Some(json!({"slug": "lab", "name": "lab", "kind": "industry"})),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = api
        .must(
            Method::POST,
            &format!("/v1/organizations/{org}/projects"),
            Some(json!({"slug": "training", "name": "training"})),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = chrono::Utc::now();
    api.must(
        Method::POST,
        "/v1/grants",
        Some(
            json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 100,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "C-2"}),
        ),
        201,
    )
    .await;
    let join = api
        .must(
            Method::POST,
            "/v1/join-tokens",
            Some(json!({"site": "par-1", "labels": {"rack": "r1"}})),
            201,
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = root.path().join("node");
    let mut agent = AgentProcess::start(&api.base, &state, Some(&join), 21);

    // A lease active with a workload on it, and some usage counted.
    let lease = api
        .must(
            Method::POST,
            &format!("/v1/projects/{project}/leases"),
            Some(json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600})),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let active = api.until_state(&mut agent, &lease, "active").await;
    let device = active["placements"][0]["mig_device_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    poll(CONVERGE, "exec sees the lease's device", || {
        let devices = std::fs::read_to_string(state.join("devices.json")).ok()?;
        devices.contains(&device).then_some(())
    })
    .await;
    let mut workload = ExecProcess::start(&state, &lease);
    let pid = workload.workload_pid().await;
    poll(CONVERGE, "the agent tracks the workload", || {
        sim_state(&state)
            .1
            .contains(&(pid, device.clone()))
            .then_some(())
    })
    .await;
    let deadline = Instant::now() + CONVERGE;
    while api.usage(&lease).await.0 == 0 {
        assert!(Instant::now() < deadline, "no usage\n{}", agent.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Act 1: the control plane stops.
    first.stop().await;

    // Assert 1: the agent keeps the slice and the workload, and queues its usage.
    poll(CONVERGE, "usage is queued while offline", || {
        (outbox(&state, &lease).0 >= 2).then_some(())
    })
    .await;
    agent.assert_running();
    let (instances, processes) = sim_state(&state);
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0].3, device);
    assert!(processes.contains(&(pid, device.clone())), "{processes:?}");
    assert!(workload.is_running() && alive(pid), "the workload runs on");
    let log = agent.log_text();
    assert!(
        log.contains("offline rules apply") || log.contains("status report failed"),
        "the agent noticed the outage\n{}",
        agent.logs()
    );

    // Act 2: a new server on the same database and port.
    let mut second = start_server("second", &pg.url, port, root.path()).await;

    // Assert 2: the agent catches up: the queued usage is sent and counted once.
    poll(CONVERGE, "the queued usage is sent", || {
        (outbox(&state, &lease).0 == 0).then_some(())
    })
    .await;

    // Act 3: the lease is released through the new server.
    let (status, body) = api
        .call(Method::DELETE, &format!("/v1/leases/{lease}"), None)
        .await;
    assert!((200..300).contains(&status), "release: {status} {body}");

    // Assert 3: workload stopped, instance destroyed, lease released.
    let status = workload.wait_exit(CONVERGE).await;
    assert!(!status.success(), "stopped by a signal: {status:?}");
    assert!(!alive(pid));
    poll(CONVERGE, "the instance is destroyed", || {
        sim_state(&state).0.is_empty().then_some(())
    })
    .await;
    api.until_state(&mut agent, &lease, "released").await;
    // The interval open at the release is closed by the next report (every 2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    poll(CONVERGE, "the last usage is sent", || {
        (outbox(&state, &lease).0 == 0).then_some(())
    })
    .await;
    // Every interval the agent numbered is stored exactly once.
    let (_, numbered) = outbox(&state, &lease);
    let (records, seconds) = api.usage(&lease).await;
    assert_eq!(
        records, numbered,
        "stored usage records = intervals numbered by the agent"
    );
    assert!(seconds > 0);
    for action in ["node.process_terminated", "node.instance_destroyed"] {
        let events = api.audit(action, &lease).await;
        assert!(!events.is_empty(), "no {action} for the lease");
    }
    agent.signal_and_wait("TERM").await;
    second.stop().await;
}
