//! The real agent binary (`aion agent run --backend sim`) killed with SIGKILL in the
//! middle of its work: restarted with the same state directory, it converges without
//! touching the slice that was already running. The simulated GPUs keep their state in
//! the state directory (`sim-state.json`), as real GPUs outlive a killed agent.
//!
//! [`AgentProcess`] and the other helpers here are shared with `agent_outage.rs`.

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

on_both_databases!(an_agent_killed_mid_reconcile_and_restarted_keeps_the_running_slice);

/// How long the agent may take to make a lease `active`, or to catch up after a restart.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// One `aion agent run --backend sim` process; killed (SIGKILL) when dropped if running.
pub struct AgentProcess {
    child: Child,
    log: PathBuf,
    exited: bool,
}

impl AgentProcess {
    /// Starts the agent on a simulated node of 2 H100-80GB (seed `seed`) with short
    /// timings; `join` is needed for the first start only. Its output goes to
    /// `<state_dir>/../agent-<n>.log`.
    pub fn start(server: &str, state_dir: &Path, join: Option<&str>, seed: u64) -> Self {
        let parent = state_dir.parent().unwrap();
        let n = std::fs::read_dir(parent)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("agent-"))
            })
            .count();
        let log = parent.join(format!("agent-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aion"));
        cmd.args(["agent", "run", "--backend", "sim", "--sim-gpus", "2"])
            .args(["--sim-seed", &seed.to_string()])
            .args(["--server", server])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--hostname", &format!("sim-proc-{seed}")])
            .args(["--kill-grace-s", "1", "--retry-max-s", "1"])
            .args(["--usage-sample-s", "0.5", "--usage-report-s", "2"])
            .env("AION_LOG", "info,aion_agent=debug")
            .env("NO_COLOR", "1")
            .env_remove("AION_AGENT_JOIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(token) = join {
            cmd.args(["--join-token", token]);
        }
        let child = cmd.spawn().expect("spawning aion agent run");
        Self {
            child,
            log,
            exited: false,
        }
    }

    /// Its whole output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its output, for failure messages.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- agent log {} (last 60 lines) ---\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }

    /// Sends `sig` (`TERM`, `KILL`) and waits until it has exited.
    pub async fn signal_and_wait(&mut self, sig: &str) -> std::process::ExitStatus {
        signal(self.child.id(), sig);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = true;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit after SIG{sig}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails the test with the logs if the agent has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            self.exited = true;
            panic!("the agent exited ({status})\n{}", self.logs());
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `aion agent exec --lease ID --state-dir D -- sleep 300`, killed when dropped.
pub struct ExecProcess {
    pub child: Child,
    state_dir: PathBuf,
}

impl ExecProcess {
    pub fn start(state_dir: &Path, lease: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_aion"))
            .args(["agent", "exec", "--lease", lease])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--", "sleep", "300"])
            .env("AION_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning aion agent exec");
        Self {
            child,
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// The workload's pid (the `sleep`, as `exec` registered it with the agent).
    pub async fn workload_pid(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("aion agent exec exited ({status}): {err}");
            }
            let dir = self.state_dir.join("workloads");
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = name.strip_suffix(".json").and_then(|p| p.parse().ok()) {
                        return pid;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "aion agent exec registered no workload"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `aion agent exec` still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until `aion agent exec` exits (its command ended).
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "aion agent exec still runs after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal (`TERM`, `KILL`) with `kill(1)`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -s {sig} {pid} failed");
}

/// Whether OS process `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// The simulated node as its state file holds it: (instances as (gpu, profile, start,
/// MIG device), processes as (pid, MIG device)).
pub type SimInstances = Vec<(String, i64, i64, String)>;
pub fn sim_state(state_dir: &Path) -> (SimInstances, Vec<(u32, String)>) {
    let Ok(bytes) = std::fs::read(state_dir.join("sim-state.json")) else {
        return (Vec::new(), Vec::new());
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let mut instances = Vec::new();
    for gpu in v["gpus"].as_array().unwrap() {
        for i in gpu["instances"].as_array().unwrap() {
            instances.push((
                gpu["uuid"].as_str().unwrap().to_owned(),
                i["profile"].as_i64().unwrap(),
                i["start"].as_i64().unwrap(),
                i["mig_device_uuid"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let processes = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                u32::try_from(p["pid"].as_u64().unwrap()).unwrap(),
                p["mig_device_uuid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (instances, processes)
}

/// Polls `check` every 20 ms until it answers `Some`, for at most `within`.
pub async fn poll<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A partner organisation and project with a grant of H100-80GB hours; returns (project,
/// member token).
async fn partner(app: &TestApp) -> (String, String) {
    let org = app.create_org("acme", "industry").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 500,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-9"}),
    )
    .await
    .expect(201);
    let member = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;
    (project, member)
}

/// Requests a `1g.10gb` slice for an hour; returns the lease id.
async fn request(app: &TestApp, project: &str, token: &str) -> String {
    app.post(
        &format!("/v1/projects/{project}/leases"),
        token,
        json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600}),
    )
    .await
    .expect(201)
    .id()
}

/// Waits until the lease is in `state`; returns its body.
async fn until_state(app: &TestApp, agent: &mut AgentProcess, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let res = app
            .get(&format!("/v1/leases/{id}"), &app.admin)
            .await
            .expect(200);
        if res.body["state"] == state {
            return res.body;
        }
        agent.assert_running();
        assert!(
            Instant::now() < deadline,
            "lease {id} is not {state} after {CONVERGE:?}: {}\n{}",
            res.body,
            agent.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The audit events of `action` (every page is one: tests make few).
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/audit-events?action={action}&limit=100"),
            &app.admin,
        )
        .await
        .expect(200);
    res.body["items"].as_array().unwrap().clone()
}

async fn an_agent_killed_mid_reconcile_and_restarted_keeps_the_running_slice(backend: Backend) {
    // Arrange: a control plane, the agent binary on a simulated node, a partner's lease
    // active on it with a real workload started by `aion agent exec`.
    let app = TestApp::spawn(backend).await;
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("node");
    let token = join_token(&app, "par-1").await;
    let mut first = AgentProcess::start(&app.base, &state, Some(&token), 11);
    let (project, member) = partner(&app).await;
    let lease1 = request(&app, &project, &member).await;
    let active = until_state(&app, &mut first, &lease1, "active").await;
    let device1 = active["placements"][0]["mig_device_uuid"]
        .as_str()
        .unwrap_or_else(|| panic!("no MIG device in {active}"))
        .to_owned();
    let slot1 = poll(CONVERGE, "the node publishes the lease", || {
        let (instances, _) = sim_state(&state);
        instances.into_iter().find(|i| i.3 == device1)
    })
    .await;
    poll(CONVERGE, "exec sees the lease's device", || {
        let devices = std::fs::read_to_string(state.join("devices.json")).ok()?;
        devices.contains(&device1).then_some(())
    })
    .await;
    let mut workload = ExecProcess::start(&state, &lease1);
    let pid = workload.workload_pid().await;
    poll(
        CONVERGE,
        "the agent tracks the workload on the device",
        || {
            let (_, processes) = sim_state(&state);
            processes.contains(&(pid, device1.clone())).then_some(())
        },
    )
    .await;

    // Act: a second lease, and the agent is killed as soon as it has created the second
    // instance (before or while it reports it: the kill lands mid-reconcile).
    let lease2 = request(&app, &project, &member).await;
    poll(CONVERGE, "the agent creates the second instance", || {
        let (instances, _) = sim_state(&state);
        (instances.len() == 2).then_some(())
    })
    .await;
    let status = first.signal_and_wait("KILL").await;
    assert!(!status.success(), "killed: {status:?}");
    let (instances_at_kill, _) = sim_state(&state);
    let lease2_at_kill = app
        .get(&format!("/v1/leases/{lease2}"), &app.admin)
        .await
        .expect(200)
        .body["state"]
        .clone();
    assert!(
        workload.is_running() && alive(pid),
        "SIGKILL of the agent leaves the workload alone"
    );
    eprintln!("lease 2 was {lease2_at_kill} when the agent was killed");

    // The agent restarts on the same state directory, without a join token.
    let mut second = AgentProcess::start(&app.base, &state, None, 11);
    let active2 = until_state(&app, &mut second, &lease2, "active").await;

    // Assert: the second lease is active on the instance created before the kill (it
    // was adopted, not re-created); the first lease kept its instance, MIG device and
    // workload; nothing was stopped or destroyed.
    let device2 = active2["placements"][0]["mig_device_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        instances_at_kill.iter().any(|i| i.3 == device2),
        "lease 2 ({lease2_at_kill} at the kill) runs on the instance made before the kill: \
         {device2} not in {instances_at_kill:?}"
    );
    let again = app
        .get(&format!("/v1/leases/{lease1}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(again.body["state"], "active");
    assert_eq!(again.body["placements"][0]["mig_device_uuid"], device1);
    // A few more reconciles of the restarted agent (it reports status each time).
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.assert_running();
    let (instances, processes) = sim_state(&state);
    assert!(instances.contains(&slot1), "{instances:?}");
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(processes.contains(&(pid, device1.clone())), "{processes:?}");
    assert!(
        workload.is_running() && alive(pid),
        "the workload survived the kill and the restart\n{}",
        second.logs()
    );
    for action in ["node.instance_destroyed", "node.process_terminated"] {
        let events = audit(&app, action).await;
        assert!(events.is_empty(), "{action}: {events:?}");
    }
    let created = audit(&app, "node.instance_created").await;
    let leases_created: Vec<&str> = created
        .iter()
        .filter_map(|e| e["target_id"].as_str())
        .collect();
    assert_eq!(
        leases_created
            .iter()
            .filter(|l| **l == lease1.as_str())
            .count(),
        1,
        "lease 1's instance was created once: {created:?}"
    );

    // The workload still ends with its lease.
    app.delete(&format!("/v1/leases/{lease1}"), &member).await;
    let status = workload.wait_exit(CONVERGE).await;
    assert!(!status.success(), "stopped by a signal: {status:?}");
    until_state(&app, &mut second, &lease1, "released").await;
    let _ = Uuid::parse_str(&lease2).unwrap();
    second.signal_and_wait("TERM").await;
}
