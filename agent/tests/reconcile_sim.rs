//! The reconcile loop's apply step against the simulated node: creation, adoption after a
//! restart, teardown of a releasing lease, offline rules, and a restarted agent that
//! cannot reach the control plane.

use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::backend::{GpuBackend, InstanceInfo};
use aion_agent::client::{Credential, CredentialStore};
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use aion_api_types::{DesiredInstance, DesiredLease, DesiredState};
use aion_mig::GpuModel;
use chrono::{Duration, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sim() -> Arc<SimBackend> {
    Arc::new(SimBackend::new(SimConfig {
        model: GpuModel::H100_80GB,
        gpus: 2,
        seed: 7,
        mig_enabled: true,
    }))
}

fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("aion-agent-test-{}", Uuid::new_v4()))
}

/// An agent whose control plane does not exist (port 9 on loopback refuses).
fn agent(backend: Arc<SimBackend>, dir: &PathBuf) -> Result<Agent, aion_agent::Error> {
    let mut config = AgentConfig::new("http://127.0.0.1:9", dir);
    config.request_timeout = std::time::Duration::from_secs(2);
    Agent::new(config, backend)
}

fn desired(revision: i64, leases: Vec<DesiredLease>) -> DesiredState {
    DesiredState {
        revision,
        node_state: "ready".into(),
        leases,
    }
}

fn lease(state: &str, gpu: &str, profile_id: i32, starts: &[i32]) -> DesiredLease {
    DesiredLease {
        lease_id: Uuid::new_v4(),
        state: state.into(),
        ends_at: None,
        instances: starts
            .iter()
            .map(|&start| DesiredInstance {
                placement_id: Uuid::new_v4(),
                gpu_uuid: gpu.into(),
                gpu_index: 0,
                profile_id,
                profile: "3g.40gb".into(),
                start,
            })
            .collect(),
    }
}

fn gpu0(b: &SimBackend) -> Result<String, aion_agent::Error> {
    Ok(b.inventory()?.remove(0).uuid)
}

fn device(instances: &[InstanceInfo], start: u8) -> String {
    instances
        .iter()
        .find(|i| i.start == start)
        .map(|i| i.mig_device_uuid.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_agent_creates_a_scheduled_lease_s_instances_and_then_is_converged() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let a = agent(b.clone(), &state_dir())?;
    let d = desired(1, vec![lease("scheduled", &gpu, 9, &[0, 4])]);
    let p = a.apply_desired(d.clone(), true).await?;
    assert_eq!((p.actions, p.failed), (2, 0));
    assert_eq!(b.instances()?.len(), 2);
    let again = a.apply_desired(d, true).await?;
    assert_eq!(again.actions, 0);
    assert!(again.converged);
    Ok(())
}

#[tokio::test]
async fn a_restarted_agent_adopts_running_slices_and_leaves_their_processes_alone() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let d = desired(1, vec![lease("active", &gpu, 9, &[0])]);
    agent(b.clone(), &state_dir())?
        .apply_desired(d.clone(), true)
        .await?;
    let before = b.instances()?;
    b.attach_virtual_process(&device(&before, 0), 4242, 1000)?;

    let restarted = agent(b.clone(), &state_dir())?;
    let p = restarted.apply_desired(d, true).await?;
    assert_eq!(p.actions, 0, "nothing destroyed or signalled");
    assert_eq!(b.instances()?, before);
    assert_eq!(b.processes()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_releasing_lease_s_processes_are_stopped_then_its_instance_destroyed() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let mut l = lease("active", &gpu, 9, &[4]);
    let a = agent(b.clone(), &state_dir())?;
    a.apply_desired(desired(1, vec![l.clone()]), true).await?;
    b.attach_virtual_process(&device(&b.instances()?, 4), 77, 10)?;

    l.state = "releasing".into();
    let first = a.apply_desired(desired(2, vec![l.clone()]), true).await?;
    assert_eq!(first.actions, 1, "TERM only");
    assert_eq!(b.instances()?.len(), 1, "not destroyed while a process ran");
    let second = a.apply_desired(desired(2, vec![l]), true).await?;
    assert_eq!(second.actions, 1, "destroy");
    assert!(b.instances()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn offline_the_agent_keeps_running_leases_and_tears_down_ended_ones() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let mut keep = lease("active", &gpu, 9, &[0]);
    let mut ended = lease("active", &gpu, 9, &[4]);
    let a = agent(b.clone(), &state_dir())?;
    a.apply_desired(desired(1, vec![keep.clone(), ended.clone()]), true)
        .await?;
    keep.ends_at = Some(Utc::now() + Duration::hours(1));
    ended.ends_at = Some(Utc::now() - Duration::minutes(1));
    let fresh = lease("scheduled", &gpu, 19, &[6]);

    let p = a
        .apply_desired(desired(2, vec![keep, ended, fresh]), false)
        .await?;
    assert_eq!(p.actions, 1, "only the ended lease's instance goes");
    let left = b.instances()?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].start, 0);
    Ok(())
}

#[tokio::test]
async fn a_restarted_agent_that_cannot_reach_the_control_plane_touches_nothing() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let dir = state_dir();
    // Online, the control plane decides when a lease ends: both instances are made, even
    // the one whose `ends_at` has passed.
    let mut ended = lease("active", &gpu, 9, &[4]);
    ended.ends_at = Some(Utc::now() - Duration::minutes(1));
    agent(b.clone(), &dir)?
        .apply_desired(
            desired(1, vec![lease("active", &gpu, 9, &[0]), ended]),
            true,
        )
        .await?;
    assert_eq!(b.instances()?.len(), 2);
    CredentialStore::new(&dir).save(&Credential {
        node_id: Uuid::new_v4(),
        secret: "aionnode_test".into(),
        expires_at: Utc::now() + Duration::days(1),
        renew_after: Utc::now() + Duration::hours(12),
    })?;

    // A new agent on the same state dir with the control plane unreachable works from the
    // saved desired state: it keeps the live slice and tears down the ended one.
    let restarted = agent(b.clone(), &dir)?;
    let p = restarted.reconcile_once().await?;
    assert!(!p.online);
    assert_eq!(p.actions, 1, "only the ended lease's instance goes");
    let left = b.instances()?;
    assert_eq!(left.len(), 1, "the tenant's slice survives");
    assert_eq!(left[0].start, 0);
    Ok(())
}

#[tokio::test]
async fn without_a_credential_or_join_token_the_agent_says_so() -> TestResult {
    let a = agent(sim(), &state_dir())?;
    let err = a.reconcile_once().await.err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("no join token")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_loop_keeps_reconciling_offline_with_backoff_and_stops_on_shutdown() -> TestResult {
    let b = sim();
    let dir = state_dir();
    CredentialStore::new(&dir).save(&Credential {
        node_id: Uuid::new_v4(),
        secret: "aionnode_test".into(),
        expires_at: Utc::now() + Duration::days(1),
        renew_after: Utc::now() + Duration::hours(12),
    })?;
    let mut config = AgentConfig::new("http://127.0.0.1:9", &dir);
    config.backoff_min = std::time::Duration::from_millis(10);
    config.backoff_max = std::time::Duration::from_millis(50);
    let a = Arc::new(Agent::new(config, b)?);
    let mut progress = a.progress();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.run(shutdown).await }
    });

    let seen = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        progress.wait_for(|p| p.reconciles >= 3),
    )
    .await??
    .clone();
    assert!(!seen.online);
    assert!(seen.node_id.is_some());
    stop.send(true)?;
    tokio::time::timeout(std::time::Duration::from_secs(10), running).await???;
    Ok(())
}

#[tokio::test]
async fn the_devices_file_is_written_again_only_when_what_it_lists_changes() -> TestResult {
    let b = sim();
    let gpu = gpu0(&b)?;
    let dir = state_dir();
    let a = agent(b.clone(), &dir)?;
    let l = lease("active", &gpu, 9, &[0]);
    a.apply_desired(desired(1, vec![l.clone()]), true).await?;
    let first = aion_agent::exec::read_devices(&dir)?;
    assert_eq!(first.leases.len(), 1);
    assert_eq!(first.leases[0].lease_id, l.lease_id);
    // The same leases at the same revision: the file (and its time) stay as they were.
    a.apply_desired(desired(1, vec![l.clone()]), true).await?;
    assert_eq!(aion_agent::exec::read_devices(&dir)?, first);
    // Removed behind the agent's back: written again, same content, later time.
    std::fs::remove_file(aion_agent::exec::devices_path(&dir))?;
    a.apply_desired(desired(1, vec![l.clone()]), true).await?;
    let rewritten = aion_agent::exec::read_devices(&dir)?;
    assert_eq!(rewritten.leases, first.leases);
    assert!(rewritten.written_at > first.written_at);
    // A new revision is written, and so is a lease that is no longer live.
    a.apply_desired(desired(2, vec![l.clone()]), true).await?;
    let second = aion_agent::exec::read_devices(&dir)?;
    assert_eq!(second.revision, 2);
    assert!(second.written_at > first.written_at);
    let mut ended = l;
    ended.ends_at = Some(Utc::now() - Duration::seconds(1));
    a.apply_desired(desired(2, vec![ended]), true).await?;
    assert!(aion_agent::exec::read_devices(&dir)?.leases.is_empty());
    Ok(())
}
