//! Integration test of the whole lease lifecycle through the API, with the scheduler of
//! `aion serve` placing and the node side played by this test over the agent API.

use crate::agent::register;
use crate::helpers::*;
use crate::on_both_databases;
use serde_json::{Value, json};

on_both_databases!(a_partner_requests_waits_uses_and_releases_slices);

async fn desired(app: &TestApp, cred: &str) -> Value {
    app.get("/v1/agent/desired-state", cred)
        .await
        .expect(200)
        .body
}

/// Polls until the scheduler has placed the lease (a `?wait=` would wait until active).
async fn until_placed(app: &TestApp, token: &str, id: &str) -> Resp {
    for _ in 0..300 {
        let res = app
            .get(&format!("/v1/leases/{id}"), token)
            .await
            .expect(200);
        if res.body["state"] != "pending" {
            return res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("lease {id} was never placed");
}

async fn a_partner_requests_waits_uses_and_releases_slices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (node, cred) = register(&app, "gpu-0001", 1).await;
    let org = app.create_org("acme", "startup").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 50,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "PO-42"}),
    )
    .await
    .expect(201);
    let partner = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;

    // Request a gang of two 3g slices on one node, then wait for it to be placed.
    let lease = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "3g.40gb", "count": 2, "same_node": true, "duration_s": 3600}),
        )
        .await
        .expect(201);
    let id = lease.id();
    let placed = until_placed(&app, &partner, &id).await;
    assert_eq!(placed.body["state"], "scheduled", "{}", placed.body);
    let placements = placed.body["placements"].as_array().unwrap().clone();
    assert_eq!(placements.len(), 2);
    let mut starts: Vec<i64> = placements
        .iter()
        .map(|p| p["start"].as_i64().unwrap())
        .collect();
    starts.sort();
    assert_eq!(starts, [0, 4], "two 3g.40gb fill one GPU at starts 0 and 4");
    assert!(
        placements
            .iter()
            .all(|p| p["node_id"] == node.as_str() && p["profile_id"] == 9)
    );
    // The project's list shows the same placements (read for the whole page at once).
    let listed = app
        .get(&format!("/v1/projects/{project}/leases"), &partner)
        .await
        .expect(200);
    let item = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(item["placements"], placed.body["placements"]);

    // The node sees the lease in its desired state, creates the instances and reports.
    let state = desired(&app, &cred).await;
    let mine = state["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lease_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["instances"].as_array().unwrap().len(), 2);
    let instances: Vec<Value> = mine["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            json!({"gpu_uuid": i["gpu_uuid"], "profile_id": i["profile_id"], "start": i["start"],
            "mig_device_uuid": format!("MIG-{}-{}", i["gpu_uuid"].as_str().unwrap(), i["start"])})
        })
        .collect();
    app.post(
        "/v1/agent/status",
        &cred,
        json!({"instances": instances, "gpus": [{"uuid": "GPU-gpu-0001-0", "health": "ok"}]}),
    )
    .await
    .expect(200);
    let active = app
        .get(&format!("/v1/leases/{id}"), &partner)
        .await
        .expect(200);
    assert_eq!(active.body["state"], "active", "{}", active.body);
    assert!(active.body["ends_at"].is_string());
    assert!(
        active.body["placements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["mig_device_uuid"].as_str().unwrap().starts_with("MIG-"))
    );

    // Ten minutes of use, then release: the node tears down and confirms.
    app.clock.advance(chrono::Duration::minutes(10));
    let releasing = app
        .delete(&format!("/v1/leases/{id}"), &partner)
        .await
        .expect(200);
    assert_eq!(releasing.body["state"], "releasing");
    let state = desired(&app, &cred).await;
    let mine = state["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lease_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["state"], "releasing");
    app.post(
        "/v1/agent/status",
        &cred,
        json!({"instances": [], "gpus": [{"uuid": "GPU-gpu-0001-0", "health": "ok"}]}),
    )
    .await
    .expect(200);
    let released = app
        .get(&format!("/v1/leases/{id}"), &partner)
        .await
        .expect(200);
    assert_eq!(released.body["state"], "released", "{}", released.body);
    assert_eq!(released.body["held_slice_seconds"], 0);
    assert_eq!(
        released.body["charged_slice_seconds"],
        600 * 6,
        "10 minutes × 6 compute slices"
    );
    // The slots are free again: the same gang is placed anew.
    let again = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            &partner,
            json!({"profile": "3g.40gb", "count": 2, "same_node": true}),
        )
        .await
        .expect(201)
        .id();
    let placed = until_placed(&app, &partner, &again).await;
    assert_eq!(placed.body["state"], "scheduled", "{}", placed.body);
    let audit = app
        .get(
            &format!("/v1/audit-events?target_id={id}&limit=200"),
            &app.admin,
        )
        .await
        .expect(200);
    let moves: Vec<String> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "lease.transition")
        .map(|e| e["details"]["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        moves,
        ["released", "releasing", "active", "scheduled"],
        "every transition audited, newest first"
    );
}
