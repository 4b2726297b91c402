//! A workload started with `aion agent exec` that the agent has not picked up yet when its
//! lease is released: the agent must still see it on the device, stop it (and report the
//! stop) before it destroys the instance — never destroy an instance with a process on it.

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use aion_agent::backend::GpuBackend;
use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::exec;
use aion_agent::reconcile::Agent;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

on_both_databases!(a_workload_not_yet_picked_up_is_stopped_and_reported_before_its_instance_goes);

fn config(server: &str, dir: &Path, join: Option<String>) -> AgentConfig {
    let mut c = AgentConfig::new(server, dir);
    c.join_token = join;
    c.hostname = Some("sim-race-1".into());
    c.kill_grace = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(5);
    c
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/audit-events?action={action}"), &app.admin)
        .await
        .expect(200);
    res.body["items"].as_array().unwrap().clone()
}

async fn a_workload_not_yet_picked_up_is_stopped_and_reported_before_its_instance_goes(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 1,
        seed: 11,
        mig_enabled: true,
    }));
    let token = join_token(&app, "par-1").await;
    let agent = Agent::new(config(&app.base, &state, Some(token)), sim.clone()).unwrap();
    agent.reconcile_once().await.unwrap(); // registers
    let org = app.create_org("acme", "startup").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 50,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-9"}),
    )
    .await
    .expect(201);
    let partner = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;
    let id = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "1g.10gb", "duration_s": 3600}),
        )
        .await
        .expect(201)
        .id();
    let lease: Uuid = id.parse().unwrap();
    // Reconcile until the lease is active on the simulated GPU.
    for _ in 0..100 {
        agent.reconcile_once().await.unwrap();
        let l = app
            .get(&format!("/v1/leases/{id}"), &partner)
            .await
            .expect(200);
        if l.body["state"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.instances().unwrap().len(), 1);

    // The workload starts, and the release comes before any reconcile picked it up.
    let command: Vec<OsString> = ["sleep", "300"].iter().map(OsString::from).collect();
    let workload = exec::spawn(&state, lease, &command).unwrap();
    assert!(sim.processes().unwrap().is_empty(), "not picked up yet");
    app.delete(&format!("/v1/leases/{id}"), &partner).await;

    // The first reconcile after the release sees the process on the device: it stops it
    // and keeps the instance until the process is gone.
    agent.reconcile_once().await.unwrap();
    assert_eq!(
        sim.instances().unwrap().len(),
        1,
        "an instance with a process on it was destroyed"
    );
    let status = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || workload.wait()),
    )
    .await
    .expect("the workload is stopped")
    .unwrap()
    .unwrap();
    assert!(!status.success(), "stopped by a signal: {status:?}");
    for _ in 0..100 {
        agent.reconcile_once().await.unwrap();
        if sim.instances().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sim.instances().unwrap().is_empty(),
        "the instance goes once empty"
    );

    // The stop is in the audit log, done by the node, about this lease.
    let mut found = Vec::new();
    for _ in 0..100 {
        agent.reconcile_once().await.unwrap();
        found = audit(&app, "node.process_terminated").await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found.iter().any(|e| e["details"].to_string().contains(&id)
            || e["target_id"] == id.as_str()
            || e["project_id"] == project.as_str()),
        "the stop was not reported: {found:?}"
    );
}
