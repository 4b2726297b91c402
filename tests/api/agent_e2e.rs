//! End to end with the real agent: a real server, an in-process `Agent` on a simulated
//! node registered through the real API, a partner's lease that becomes `active`, a real
//! process run on it through `aion agent exec`'s logic, an agent restart and a control
//! plane outage that leave the slice alone, and a release that stops the process,
//! destroys the instance and removes the CDI spec.

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use aion_agent::backend::GpuBackend;
use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use aion_agent::{cdi, exec};
use serde_json::json;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

on_both_databases!(
    a_lease_runs_on_a_real_agent_survives_restarts_and_outages_and_ends_cleanly,
    a_spent_grant_ends_its_lease_and_the_real_agent_stops_it,
);

fn agent_config(server: &str, dir: &Path, join: Option<String>) -> AgentConfig {
    let mut c = AgentConfig::new(server, dir);
    c.join_token = join;
    c.hostname = Some("sim-node-1".into());
    c.cdi_dir = Some(dir.join("cdi"));
    c.poll_wait = Duration::from_secs(5);
    c.pending_recheck = Duration::from_millis(200);
    c.kill_grace = Duration::from_secs(2);
    c.backoff_min = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(5);
    c
}

/// An agent running in a task; `stop` ends it.
struct Running {
    agent: Arc<Agent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<aion_agent::Result<()>>,
}

fn start(config: AgentConfig, sim: &Arc<SimBackend>) -> Running {
    let backend: Arc<dyn GpuBackend> = sim.clone();
    let agent = Arc::new(Agent::new(config, backend).unwrap());
    let (stop, stopped) = watch::channel(false);
    let a = Arc::clone(&agent);
    let task = tokio::spawn(async move { a.run(stopped).await });
    Running { agent, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `check` (waking the agent each time) until it holds, for at most 30 s.
async fn until(agent: &Agent, what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        agent.wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn a_lease_runs_on_a_real_agent_survives_restarts_and_outages_and_ends_cleanly(
    backend: Backend,
) {
    // Arrange: a control plane, a simulated node registered by the real agent, and a
    // partner with a grant.
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let cdi_dir = state.join("cdi");
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 2,
        seed: 7,
        mig_enabled: true,
    }));
    let token = join_token(&app, "par-1").await;
    let first = start(agent_config(&app.base, &state, Some(token)), &sim);
    let org = app.create_org("acme", "startup").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 50,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-7"}),
    )
    .await
    .expect(201);
    let partner = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;
    let mut progress = first.agent.progress();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.node_id.is_some() && p.online),
    )
    .await
    .expect("the agent registers")
    .unwrap();

    // Act: the partner requests a slice and waits for it.
    let id = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600}),
        )
        .await
        .expect(201)
        .id();
    let active = app
        .get(&format!("/v1/leases/{id}?wait=30"), &partner)
        .await
        .expect(200);

    // Assert: active, with the MIG device the simulated node created.
    assert_eq!(active.body["state"], "active", "{}", active.body);
    let device = active.body["placements"][0]["mig_device_uuid"]
        .as_str()
        .unwrap_or_else(|| panic!("no MIG device in {}", active.body))
        .to_owned();
    assert!(device.starts_with("MIG-"), "{device}");
    let present = sim.instances().unwrap();
    assert_eq!(present.len(), 1);
    assert_eq!(present[0].mig_device_uuid, device);
    let lease: Uuid = id.parse().unwrap();
    until(&first.agent, "the CDI spec is written", || {
        cdi::spec_path(&cdi_dir, lease).exists()
    })
    .await;
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cdi::spec_path(&cdi_dir, lease)).unwrap()).unwrap();
    assert_eq!(spec["devices"][0]["name"], id);
    assert!(
        spec.to_string()
            .contains(&format!("CUDA_VISIBLE_DEVICES={device}"))
    );

    // A real process runs on the slice through exec and the agent tracks it.
    let command: Vec<OsString> = ["sleep", "300"].iter().map(OsString::from).collect();
    let workload = exec::spawn(&state, lease, &command).unwrap();
    let pid = workload.pid();
    until(&first.agent, "the workload is on the device", || {
        sim.processes()
            .unwrap()
            .iter()
            .any(|p| p.pid == pid && p.mig_device_uuid == device)
    })
    .await;
    // exec refuses a lease that is not live here.
    let err = exec::spawn(&state, Uuid::now_v7(), &command).unwrap_err();
    assert!(err.to_string().contains("not live on this node"), "{err}");

    // The agent restarts (same state dir, same node): it adopts the running slice.
    first.stop().await;
    let second = start(agent_config(&app.base, &state, None), &sim);
    let mut progress = second.agent.progress();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.reconciles >= 2 && p.online),
    )
    .await
    .expect("the restarted agent reconciles online")
    .unwrap();
    assert_eq!(sim.instances().unwrap()[0].mig_device_uuid, device);
    assert!(
        workload.workload.is_running(),
        "the workload survived the restart"
    );
    second.stop().await;

    // The control plane is unreachable (the agent points at a closed port): the known
    // lease is kept, process and all; then the agent is back online.
    let offline = Agent::new(
        agent_config("http://127.0.0.1:9", &state, None),
        sim.clone(),
    )
    .unwrap();
    let p = offline.reconcile_once().await.unwrap();
    assert!(!p.online);
    assert_eq!(sim.instances().unwrap()[0].mig_device_uuid, device);
    assert!(
        workload.workload.is_running(),
        "the workload survived the outage"
    );
    assert!(cdi::spec_path(&cdi_dir, lease).exists());
    let third = start(agent_config(&app.base, &state, None), &sim);

    // Release: the process is stopped, the instance destroyed, the lease released.
    app.delete(&format!("/v1/leases/{id}"), &partner).await;
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || workload.wait()),
    )
    .await
    .expect("the workload is stopped after the release")
    .unwrap()
    .unwrap();
    assert!(!status.success(), "stopped by a signal: {status:?}");
    until(&third.agent, "the instance is destroyed", || {
        sim.instances().unwrap().is_empty()
    })
    .await;
    let mut state_now = String::new();
    for _ in 0..300 {
        let res = app
            .get(&format!("/v1/leases/{id}"), &partner)
            .await
            .expect(200);
        state_now = res.body["state"].as_str().unwrap().to_owned();
        if state_now == "released" {
            break;
        }
        third.agent.wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state_now, "released");
    until(&third.agent, "the CDI spec is removed", || {
        !cdi::spec_path(&cdi_dir, lease).exists()
    })
    .await;
    third.stop().await;
}

/// A grant overdrawn by an adjustment: after the grace the scheduler ends its lease, the
/// simulated node's agent destroys the instance, and the ledger debits the active time
/// only (no more than what was left granted plus the grace).
async fn a_spent_grant_ends_its_lease_and_the_real_agent_stops_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.overdraft_grace_s = 30).await;
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 1,
        seed: 11,
        mig_enabled: true,
    }));
    let token = join_token(&app, "par-1").await;
    let agent = start(agent_config(&app.base, dir.path(), Some(token)), &sim);
    let org = app.create_org("acme", "startup").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    let grant = app
        .post(
            "/v1/grants",
            &app.admin,
            json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 2,
                "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
                "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-9"}),
        )
        .await
        .expect(201)
        .id();
    let partner = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;
    let id = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "1g.10gb", "duration_s": 7200}),
        )
        .await
        .expect(201)
        .id();
    let active = app
        .get(&format!("/v1/leases/{id}?wait=30"), &partner)
        .await
        .expect(200);
    assert_eq!(active.body["state"], "active", "{}", active.body);
    assert_eq!(sim.instances().unwrap().len(), 1);

    // The committee takes back what is left and an hour of the lease's hold.
    let left = app
        .get(&format!("/v1/grants/{grant}"), &partner)
        .await
        .expect(200)
        .body["balance_slice_seconds"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/v1/grants/{grant}/adjustments"),
        &app.admin,
        json!({"slice_seconds": -(left + 3_600), "reason": "allocation withdrawn"}),
    )
    .await
    .expect(201);
    app.clock.advance(chrono::Duration::seconds(31));
    until(
        &agent.agent,
        "the agent destroys the spent lease's instance",
        || sim.instances().unwrap().is_empty(),
    )
    .await;
    let ended = app
        .get(&format!("/v1/leases/{id}"), &partner)
        .await
        .expect(200);
    assert_eq!(ended.body["state"], "expired", "{}", ended.body);
    assert!(
        ended.body["state_reason"]
            .as_str()
            .unwrap()
            .contains("grant is spent")
    );
    let g = app
        .get(&format!("/v1/grants/{grant}"), &partner)
        .await
        .expect(200);
    let used = g.body["used_slice_seconds"].as_i64().unwrap();
    assert_eq!(g.body["held_slice_seconds"], 0);
    assert_eq!(
        used, 31,
        "31 s of one slice, from active to the end of the grace"
    );
    assert!(
        used <= 3_600 + 30,
        "no more than the grant left plus the grace"
    );
    agent.stop().await;
}

#[test]
fn agent_run_with_the_nvml_backend_and_no_driver_exits_non_zero_with_a_clear_message() {
    if Path::new("/dev/nvidiactl").exists() {
        return; // a driver is present: this test is about machines without one
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
        .args([
            "agent",
            "run",
            "--server",
            "http://127.0.0.1:9",
            "--backend",
            "nvml",
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NVIDIA driver"), "{stderr}");
    assert!(stderr.contains("--backend sim"), "{stderr}");
}

#[test]
fn agent_probe_reports_a_simulated_node_as_json_and_text() {
    let probe = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
            .args(["agent", "probe", "--backend", "sim", "--sim-gpus", "3"])
            .args(["--sim-model", "H200-141GB"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = probe(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["backend"], "sim");
    assert_eq!(report["gpus"].as_array().unwrap().len(), 3);
    assert_eq!(report["gpus"][0]["model"], "H200-141GB");
    assert_eq!(report["samples"].as_array().unwrap().len(), 3);
    assert_eq!(report["problems"], serde_json::json!([]));
    let out = probe(&[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GPUs: 3"), "{text}");
    assert!(text.contains("MIG enabled"), "{text}");
}

#[test]
fn agent_probe_with_the_nvml_backend_and_no_driver_exits_non_zero_with_a_clear_message() {
    if Path::new("/dev/nvidiactl").exists() {
        return; // a driver is present: this test is about machines without one
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
        .args(["agent", "probe", "--backend", "nvml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NVIDIA driver"), "{stderr}");
}

#[test]
fn agent_exec_refuses_a_lease_the_agent_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
        .args(["agent", "exec", "--lease", &Uuid::now_v7().to_string()])
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("aion agent run"), "{stderr}");
}
