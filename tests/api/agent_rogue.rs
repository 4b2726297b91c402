//! A rogue process: a real OS process on a MIG device that no lease holds is stopped by
//! the agent (TERM, then KILL after the grace), its instance destroyed once it is gone,
//! and the control plane's audit log shows the enforcement as done by the node
//! (`node.rogue_process`, `node.process_terminated`, `node.instance_destroyed`).

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use aion_agent::backend::GpuBackend;
use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use aion_mig::ProfileId;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

on_both_databases!(a_rogue_process_on_a_slice_of_no_lease_is_killed_and_reported);

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/audit-events?action={action}"), &app.admin)
        .await
        .expect(200);
    res.body["items"].as_array().unwrap().clone()
}

async fn a_rogue_process_on_a_slice_of_no_lease_is_killed_and_reported(backend: Backend) {
    // Arrange: a node registered by the real agent, running, with no lease.
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 1,
        seed: 31,
        mig_enabled: true,
    }));
    let mut config = AgentConfig::new(&app.base, dir.path());
    config.join_token = Some(join_token(&app, "par-1").await);
    config.hostname = Some("sim-rogue-1".into());
    config.poll_wait = Duration::from_secs(5);
    config.pending_recheck = Duration::from_millis(200);
    config.kill_grace = Duration::from_secs(1);
    config.backoff_min = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    let b: Arc<dyn GpuBackend> = sim.clone();
    let agent = Arc::new(Agent::new(config, b).unwrap());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn({
        let a = Arc::clone(&agent);
        async move { a.run(stopped).await }
    });
    let mut progress = agent.progress();
    let node = tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|p| p.node_id.is_some() && p.online && p.converged),
    )
    .await
    .expect("the agent registers and reconciles")
    .unwrap()
    .node_id
    .unwrap();

    // Act: someone creates a slice behind the control plane's back and runs a real
    // process on it (one that ignores TERM, so KILL is needed).
    let gpu = sim.inventory().unwrap()[0].uuid.clone();
    let made = sim.create_instance(&gpu, ProfileId::new(19), 2).unwrap();
    let mut rogue = std::process::Command::new("sh")
        .args(["-c", "trap '' TERM; while true; do sleep 0.1; done"])
        .spawn()
        .unwrap();
    let pid = rogue.id();
    sim.attach_process(&made.mig_device_uuid, pid, 2048)
        .unwrap();
    agent.wake();

    // Assert: the process is killed, then the instance destroyed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = rogue.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the rogue process still runs after 30 s"
        );
        agent.wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sim.instances().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the rogue instance is not destroyed"
        );
        agent.wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And the control plane knows: one rogue_process event, a TERM and a KILL, the
    // destroyed instance, all by the node, aimed at the node (no lease holds the slice).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (rogues, terminated, destroyed) = loop {
        let found = (
            audit(&app, "node.rogue_process").await,
            audit(&app, "node.process_terminated").await,
            audit(&app, "node.instance_destroyed").await,
        );
        if !found.0.is_empty() && found.1.len() >= 2 && !found.2.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "enforcement not audited: {found:?}"
        );
        agent.wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rogues.len(), 1, "{rogues:?}");
    let r = &rogues[0];
    assert_eq!(r["actor"], format!("node:{node}"));
    assert_eq!(r["target_kind"], "node");
    assert_eq!(r["target_id"], node.to_string());
    assert_eq!(r["details"]["pid"], i64::from(pid));
    assert_eq!(r["details"]["mig_device_uuid"], made.mig_device_uuid);
    let mut signals: Vec<&str> = terminated
        .iter()
        .map(|e| e["details"]["signal"].as_str().unwrap())
        .collect();
    signals.sort_unstable();
    assert_eq!(signals, ["KILL", "TERM"], "{terminated:?}");
    assert!(
        terminated
            .iter()
            .all(|e| e["details"]["pid"] == i64::from(pid))
    );
    assert_eq!(destroyed.len(), 1, "{destroyed:?}");
    assert_eq!(
        destroyed[0]["details"]["mig_device_uuid"],
        made.mig_device_uuid
    );
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
