//! Status reports of the real agent against a real server, counted on the wire by a byte
//! relay in front of the server: an unchanged report is not sent again every cycle, and a
//! change (here a GPU turning unhealthy) is reported at the next pass. The server sees the
//! change.

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use aion_agent::backend::GpuBackend;
use aion_agent::backend::sim::{Fault, SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

on_both_databases!(an_unchanged_status_is_sent_once_and_a_change_at_the_next_pass);

const STATUS_REQUEST: &[u8] = b"POST /v1/agent/status ";

/// A TCP relay to `target` that counts the status requests passing through it.
async fn counting_relay(target: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                // The tail of the previous read, so a request line split across two
                // reads is still seen once.
                let mut carry: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut window = std::mem::take(&mut carry);
                    window.extend_from_slice(&buf[..n]);
                    let found = window
                        .windows(STATUS_REQUEST.len())
                        .filter(|w| *w == STATUS_REQUEST)
                        .count();
                    count.fetch_add(found, Ordering::SeqCst);
                    let keep = window.len().min(STATUS_REQUEST.len() - 1);
                    carry = window[window.len() - keep..].to_vec();
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn an_unchanged_status_is_sent_once_and_a_change_at_the_next_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let target = app.base.trim_start_matches("http://").to_owned();
    let (relay, status_requests) = counting_relay(target).await;
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 2,
        seed: 7,
        mig_enabled: true,
    }));
    let mut config = AgentConfig::new(&relay, dir.path());
    config.join_token = Some(join_token(&app, "par-1").await);
    config.hostname = Some("sim-reports-1".into());
    config.cdi_dir = Some(dir.path().join("cdi"));
    config.request_timeout = Duration::from_secs(5);
    let backend: Arc<dyn GpuBackend> = sim.clone();
    let agent = Agent::new(config, backend).unwrap();

    // Registers, fetches the desired state, reports: one report.
    let p = agent.reconcile_once().await.unwrap();
    assert!(p.online, "{p:?}");
    assert_eq!(status_requests.load(Ordering::SeqCst), 1);

    // Nothing changed on either side: passes send no report.
    for _ in 0..3 {
        assert!(agent.reconcile_once().await.unwrap().online);
    }
    assert_eq!(status_requests.load(Ordering::SeqCst), 1);

    // A GPU turns unhealthy: reported at the next pass, and the server records it.
    let gpu = sim.inventory().unwrap()[0].uuid.clone();
    sim.inject(Fault::Unhealthy(gpu.clone())).unwrap();
    assert!(agent.reconcile_once().await.unwrap().online);
    assert_eq!(status_requests.load(Ordering::SeqCst), 2);
    let node = p.node_id.unwrap();
    let detail = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    let gpus = detail.body["gpus"].as_array().unwrap();
    let reported = gpus.iter().find(|g| g["uuid"] == gpu.as_str()).unwrap();
    assert_eq!(reported["health"], "unhealthy", "{}", detail.body);
}
