//! The newcomer flow of `aion dev`: the demo data give the demo projects a contract grant
//! on H100-80GB and quotas, so the README's lease request (the admin token, the demo
//! project found by its organisation's slug, `{"profile":"1g.10gb"}`) becomes `active` on
//! a simulated node at once.

use crate::agent::join_token;
use crate::helpers::*;
use crate::on_both_databases;
use aion_agent::backend::GpuBackend;
use aion_agent::backend::sim::{SimBackend, SimConfig};
use aion_agent::config::AgentConfig;
use aion_agent::reconcile::Agent;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

on_both_databases!(the_readme_lease_request_on_the_demo_data_becomes_active);

async fn the_readme_lease_request_on_the_demo_data_becomes_active(backend: Backend) {
    // Arrange: the demo data of `aion dev` and one simulated node.
    let app = TestApp::spawn(backend).await;
    let seeded = aion_services::seed::demo_if_empty(&app.services)
        .await
        .unwrap();
    assert!(seeded.organizations.contains(&"helios-ai".to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 8,
        seed: 1,
        mig_enabled: true,
    }));
    let mut config = AgentConfig::new(&app.base, dir.path());
    config.join_token = Some(join_token(&app, "dev").await);
    config.pending_recheck = Duration::from_millis(200);
    let b: Arc<dyn GpuBackend> = sim.clone();
    let agent = Arc::new(Agent::new(config, b).unwrap());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn({
        let a = Arc::clone(&agent);
        async move { a.run(stopped).await }
    });

    // Act: what the README does, for each demo project.
    let orgs = app.get("/v1/organizations", &app.admin).await.expect(200);
    for slug in ["helios-ai", "hyperion-lab"] {
        let org = orgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["slug"] == slug)
            .unwrap_or_else(|| panic!("no {slug} in {}", orgs.body))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let projects = app
            .get(&format!("/v1/organizations/{org}/projects"), &app.admin)
            .await
            .expect(200);
        let project = projects.body["items"][0]["id"].as_str().unwrap().to_owned();
        // The demo data price every organisation kind, so usage can be rated.
        app.get(&format!("/v1/organizations/{org}/price-list"), &app.admin)
            .await
            .expect(200);
        let grants = app
            .get(&format!("/v1/projects/{project}/grants"), &app.admin)
            .await;
        let id = app
            .post(
                &format!("/v1/projects/{project}/leases"),
                &app.admin,
                json!({"profile": "1g.10gb"}),
            )
            .await
            .expect(201)
            .id();

        // Assert: active within seconds, on the simulated node.
        let mut state = String::new();
        for _ in 0..10 {
            let res = app
                .get(&format!("/v1/leases/{id}?wait=30"), &app.admin)
                .await
                .expect(200);
            state = res.body["state"].as_str().unwrap().to_owned();
            if state == "active" {
                let device = res.body["placements"][0]["mig_device_uuid"]
                    .as_str()
                    .unwrap();
                assert!(
                    sim.instances()
                        .unwrap()
                        .iter()
                        .any(|i| i.mig_device_uuid == device)
                );
                break;
            }
            assert!(
                state == "pending" || state == "scheduled",
                "{slug}: {} (grants: {})",
                res.body,
                grants.body
            );
        }
        assert_eq!(state, "active", "{slug}");
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
