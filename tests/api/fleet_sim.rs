//! `aion fleet-sim` against a real server: 20 simulated nodes register through join
//! tokens made with the admin token, reconcile through the real agent API, and a partner's
//! lease becomes `active` on one of them; a rerun reuses the saved credentials.

use crate::helpers::*;
use crate::on_both_databases;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

on_both_databases!(fleet_sim_registers_every_node_and_a_lease_becomes_active_on_one);

const NODES: usize = 20;

fn fleet_sim(app: &TestApp, state: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aion"));
    cmd.args([
        "fleet-sim",
        "--server",
        &app.base,
        "--admin-token",
        &app.admin,
    ])
    .args(["--nodes", &NODES.to_string(), "--gpus-per-node", "2"])
    .args([
        "--site",
        "fleet-test",
        "--poll-wait-s",
        "5",
        "--ramp-s",
        "0.2",
    ])
    .args(["--report-every-s", "1"])
    .arg("--state-dir")
    .arg(state)
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    cmd
}

async fn node_hostnames(app: &TestApp) -> Vec<String> {
    let nodes = app.get("/v1/nodes?limit=100", &app.admin).await.expect(200);
    nodes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["hostname"].as_str().unwrap().to_owned())
        .collect()
}

async fn fleet_sim_registers_every_node_and_a_lease_becomes_active_on_one(backend: Backend) {
    // Arrange: a control plane and a partner with a grant.
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let org = app.create_org("fleet", "startup").await;
    let project = app.create_project(&org, "load").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 50,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-F"}),
    )
    .await
    .expect(201);
    let partner = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;

    // Act: the fleet starts; every node registers.
    let mut fleet = fleet_sim(&app, dir.path(), &[]).spawn().unwrap();
    let mut hosts = Vec::new();
    for _ in 0..300 {
        hosts = node_hostnames(&app).await;
        if hosts.len() == NODES {
            break;
        }
        assert!(
            fleet.try_wait().unwrap().is_none(),
            "fleet-sim exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600}),
        )
        .await
        .expect(201)
        .id();
    let mut lease = serde_json::Value::Null;
    for _ in 0..3 {
        lease = app
            .get(&format!("/v1/leases/{id}?wait=30"), &partner)
            .await
            .expect(200)
            .body;
        if lease["state"] == "active" {
            break;
        }
    }

    // Assert: 20 simulated nodes, the lease active on a MIG device one of them made.
    hosts.sort();
    let expected: Vec<String> = (1..=NODES)
        .map(|n| format!("fleet-test-sim-{n:06}"))
        .collect();
    assert_eq!(hosts, expected);
    assert_eq!(lease["state"], "active", "{lease}");
    let device = lease["placements"][0]["mig_device_uuid"]
        .as_str()
        .unwrap_or_default();
    assert!(device.starts_with("MIG-"), "{lease}");
    fleet.kill().await.unwrap();

    // A rerun reuses the saved credentials: no new node, and it runs cleanly (its agents
    // know a desired state, so they come online after their first long-poll).
    let out = fleet_sim(&app, dir.path(), &["--duration-s", "7"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{NODES}/{NODES} online")),
        "{stdout}"
    );
    assert_eq!(node_hostnames(&app).await.len(), NODES);
}
