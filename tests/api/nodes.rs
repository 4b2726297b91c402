//! Integration tests of the node registry: join tokens, registration rules, cordon,
//! uncordon, drain and unreachable nodes.

use crate::agent::{join_token, register, registration};
use crate::helpers::*;
use crate::on_both_databases;
use serde_json::json;

on_both_databases!(
    a_join_token_registers_one_node_once_and_expired_or_revoked_ones_are_refused,
    only_platform_admins_create_join_tokens_within_seven_days,
    a_registration_with_bad_input_is_a_400_problem_and_a_known_hostname_a_409,
    nodes_are_listed_cordoned_drained_and_uncordoned_with_audit,
    nodes_that_miss_heartbeats_become_unreachable_and_come_back_when_they_report,
);

async fn a_join_token_registers_one_node_once_and_expired_or_revoked_ones_are_refused(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/v1/join-tokens",
            &app.admin,
            json!({"site": "par-1", "labels": {"rack": "r7"}}),
        )
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("aionjoin_") && secret.len() == 9 + 43);
    assert_eq!(created.body["join_token"]["state"], "active");
    let listed = app.get("/v1/join-tokens", &app.admin).await.expect(200);
    assert_eq!(listed.body["items"][0]["site"], "par-1");
    assert!(!listed.body.to_string().contains(&secret));
    // One use: the node gets the token's site and labels.
    let res = app
        .post("/v1/agent/register", &secret, registration("gpu-001", 8))
        .await
        .expect(201);
    let node = res.body["node_id"].as_str().unwrap().to_owned();
    let detail = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(detail.body["site"], "par-1");
    assert_eq!(detail.body["labels"]["rack"], "r7");
    assert_eq!(detail.body["state"], "ready");
    assert_eq!(detail.body["desired_revision"], 1);
    assert_eq!(detail.body["gpus"].as_array().unwrap().len(), 8);
    app.post("/v1/agent/register", &secret, registration("gpu-002", 8))
        .await
        .expect_problem(401, "unauthenticated");
    let listed = app.get("/v1/join-tokens", &app.admin).await.expect(200);
    assert_eq!(listed.body["items"][0]["state"], "used");
    assert_eq!(listed.body["items"][0]["node_id"], node);
    // Expired.
    let expiring = join_token(&app, "par-1").await;
    app.clock.advance(chrono::Duration::seconds(3601));
    app.post("/v1/agent/register", &expiring, registration("gpu-003", 1))
        .await
        .expect_problem(401, "unauthenticated");
    // Revoked.
    let revoked = app
        .post("/v1/join-tokens", &app.admin, json!({"site": "par-1"}))
        .await
        .expect(201);
    let id = revoked.body["join_token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = app
        .delete(&format!("/v1/join-tokens/{id}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(gone.body["state"], "expired");
    app.post(
        "/v1/agent/register",
        revoked.body["secret"].as_str().unwrap(),
        registration("gpu-004", 1),
    )
    .await
    .expect_problem(401, "unauthenticated");
    // Wrong kinds of token: an API token, a node credential, garbage.
    app.post("/v1/agent/register", &app.admin, registration("gpu-005", 1))
        .await
        .expect_problem(401, "unauthenticated");
    let cred = res.body["credential"].as_str().unwrap();
    app.post("/v1/agent/register", cred, registration("gpu-005", 1))
        .await
        .expect_problem(401, "unauthenticated");
    app.post(
        "/v1/agent/register",
        "aionjoin_nope",
        registration("gpu-005", 1),
    )
    .await
    .expect_problem(401, "unauthenticated");
    let audit = app
        .get("/v1/audit-events?action=node.register", &app.admin)
        .await
        .expect(200);
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1);
}

async fn only_platform_admins_create_join_tokens_within_seven_days(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let org_admin = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    app.post("/v1/join-tokens", &org_admin, json!({"site": "par-1"}))
        .await
        .expect_problem(403, "forbidden");
    app.get("/v1/join-tokens", &org_admin)
        .await
        .expect_problem(403, "forbidden");
    app.post(
        "/v1/join-tokens",
        &app.admin,
        json!({"site": "par-1", "expires_in_s": 7 * 24 * 3600 + 1}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post("/v1/join-tokens", &app.admin, json!({"site": "Paris 1"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(
        "/v1/join-tokens",
        &app.admin,
        json!({"site": "par-1", "extra": true}),
    )
    .await
    .expect_problem(400, "bad_request");
    let week = app
        .post(
            "/v1/join-tokens",
            &app.admin,
            json!({"site": "par-1", "expires_in_s": 7 * 24 * 3600}),
        )
        .await
        .expect(201);
    assert_eq!(week.body["join_token"]["state"], "active");
}

async fn a_registration_with_bad_input_is_a_400_problem_and_a_known_hostname_a_409(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let token = join_token(&app, "par-1").await;
    let gpu = |uuid: &str, index: u32, model: &str| json!({"uuid": uuid, "index": index, "model": model, "memory_mib": 81_559, "mig_enabled": true});
    let cases = [
        (
            "bad hostname",
            json!({"hostname": "-bad_host", "gpus": [gpu("GPU-1", 0, "H100-80GB")]}),
            "hostname",
        ),
        (
            "duplicate uuid",
            json!({"hostname": "n1", "gpus": [gpu("GPU-1", 0, "H100-80GB"), gpu("GPU-1", 1, "H100-80GB")]}),
            "gpus[1].uuid",
        ),
        (
            "unknown model",
            json!({"hostname": "n1", "gpus": [gpu("GPU-1", 0, "RTX-4090")]}),
            "gpus[0].model",
        ),
        ("no GPU", json!({"hostname": "n1", "gpus": []}), "gpus"),
        ("17 GPUs", registration("n1", 17), "gpus"),
        (
            "two models",
            json!({"hostname": "n1", "gpus": [gpu("GPU-1", 0, "H100-80GB"), gpu("GPU-2", 1, "A100-40GB")]}),
            "gpus",
        ),
    ];
    for (what, body, field) in cases {
        let res = app
            .post("/v1/agent/register", &token, body)
            .await
            .expect_problem(400, "validation_failed");
        assert!(
            res.body["errors"].get(field).is_some(),
            "{what}: {}",
            res.body
        );
    }
    // The token was not used up by the failures; NVML product names are accepted.
    let nvml = json!({"hostname": "gpu-001.par1.aion.eu", "gpus": [gpu("GPU-9", 0, "NVIDIA H100 80GB HBM3")]});
    let res = app
        .post("/v1/agent/register", &token, nvml)
        .await
        .expect(201);
    let node = res.body["node_id"].as_str().unwrap();
    let detail = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(detail.body["gpu_model"], "H100-80GB");
    let again = join_token(&app, "par-1").await;
    app.post(
        "/v1/agent/register",
        &again,
        json!({"hostname": "GPU-001.par1.aion.eu", "gpus": [gpu("GPU-10", 0, "H100-80GB")]}),
    )
    .await
    .expect_problem(409, "conflict");
}

async fn nodes_are_listed_cordoned_drained_and_uncordoned_with_audit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (node, _) = register(&app, "gpu-001", 1).await;
    let (_other, _) = register(&app, "gpu-002", 1).await;
    let all = app.get("/v1/nodes?limit=1", &app.admin).await.expect(200);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    let cursor = all.body["next_cursor"].as_str().unwrap().to_owned();
    let next = app
        .get(&format!("/v1/nodes?limit=1&cursor={cursor}"), &app.admin)
        .await
        .expect(200);
    assert_ne!(next.body["items"][0]["id"], all.body["items"][0]["id"]);
    let path = format!("/v1/nodes/{node}");
    let cordoned = app
        .post(&format!("{path}/cordon"), &app.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(cordoned.body["state"], "cordoned");
    assert_eq!(cordoned.body["desired_revision"], 2);
    let only = app
        .get("/v1/nodes?state=cordoned&site=par-1", &app.admin)
        .await
        .expect(200);
    assert_eq!(only.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(only.body["items"][0]["id"], node);
    app.get("/v1/nodes?state=sleeping", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    let draining = app
        .post(&format!("{path}/drain"), &app.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(draining.body["state"], "draining");
    assert_eq!(draining.body["desired_revision"], 3);
    app.post(&format!("{path}/cordon"), &app.admin, json!({}))
        .await
        .expect_problem(409, "conflict");
    let ready = app
        .post(&format!("{path}/uncordon"), &app.admin, json!({}))
        .await
        .expect(200);
    assert_eq!(ready.body["state"], "ready");
    for action in ["node.cordon", "node.drain", "node.uncordon"] {
        let events = app
            .get(
                &format!("/v1/audit-events?action={action}&target_id={node}"),
                &app.admin,
            )
            .await
            .expect(200);
        assert_eq!(
            events.body["items"].as_array().unwrap().len(),
            1,
            "{action}"
        );
    }
    // Others may neither read nor change nodes.
    let org = app.create_org("lab", "academic").await;
    let org_admin = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    app.get("/v1/nodes", &org_admin)
        .await
        .expect_problem(403, "forbidden");
    app.post(&format!("{path}/cordon"), &org_admin, json!({}))
        .await
        .expect_problem(403, "forbidden");
    app.get(&format!("/v1/nodes/{}", uuid::Uuid::now_v7()), &app.admin)
        .await
        .expect_problem(404, "not_found");
}

async fn nodes_that_miss_heartbeats_become_unreachable_and_come_back_when_they_report(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (quiet, quiet_cred) = register(&app, "gpu-quiet", 1).await;
    let (alive, alive_cred) = register(&app, "gpu-alive", 1).await;
    let (cordoned, _) = register(&app, "gpu-cordoned", 1).await;
    app.post(
        &format!("/v1/nodes/{cordoned}/cordon"),
        &app.admin,
        json!({}),
    )
    .await
    .expect(200);
    // The node timeout is 90 s: `quiet` is silent 100 s; `alive` polled 40 s ago (its
    // heartbeat still in the replica's memory: the sweep writes it first).
    app.clock.advance(chrono::Duration::seconds(60));
    app.get("/v1/agent/desired-state", &alive_cred)
        .await
        .expect(200);
    app.clock.advance(chrono::Duration::seconds(40));
    aion_services::nodes::mark_unreachable(&app.services, app.clock.now())
        .await
        .unwrap();
    let state = |id: String| {
        let app = &app;
        async move {
            app.get(&format!("/v1/nodes/{id}"), &app.admin)
                .await
                .expect(200)
                .body
        }
    };
    let q = state(quiet.clone()).await;
    assert_eq!(q["state"], "unreachable");
    assert_eq!(q["desired_revision"], 2);
    assert_eq!(state(alive.clone()).await["state"], "ready");
    assert_eq!(state(cordoned.clone()).await["state"], "cordoned");
    let events = app
        .get(
            &format!("/v1/audit-events?action=node.unreachable&target_id={quiet}"),
            &app.admin,
        )
        .await
        .expect(200);
    assert_eq!(events.body["items"].as_array().unwrap().len(), 1);
    // It reports again: ready, and its agent sees the new revision.
    let ack = app
        .post("/v1/agent/status", &quiet_cred, json!({}))
        .await
        .expect(200);
    assert_eq!(ack.body["revision"], 3);
    assert_eq!(state(quiet).await["state"], "ready");
}
