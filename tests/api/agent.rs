//! Integration tests of the agent protocol, with the node side played by the test over
//! HTTP: registration, desired-state long-polls, status reports, node isolation.

use crate::helpers::*;
use crate::on_both_databases;
use aion_services::entities::{gpu_slot_claims, gpus, lease_placements, leases};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    a_registered_node_long_polls_its_desired_state_and_is_woken_by_a_cordon,
    a_node_credential_reaches_only_its_own_node_and_only_agent_routes,
    status_reports_move_a_lease_from_scheduled_to_active_and_from_releasing_to_released,
    a_renewed_credential_replaces_the_old_one_after_a_grace_period,
);

/// Creates a join token for `site` and returns its secret.
pub async fn join_token(app: &TestApp, site: &str) -> String {
    let res = app
        .post(
            "/v1/join-tokens",
            &app.admin,
            json!({"site": site, "labels": {"rack": "r1"}}),
        )
        .await
        .expect(201);
    res.body["secret"].as_str().unwrap().to_owned()
}

/// A registration body with `n` H100 GPUs named after the host.
pub fn registration(hostname: &str, n: usize) -> Value {
    let gpus: Vec<Value> = (0..n)
        .map(|i| {
            json!({"uuid": format!("GPU-{hostname}-{i}"), "index": i, "model": "H100-80GB",
                   "memory_mib": 81_559, "mig_enabled": true})
        })
        .collect();
    json!({"hostname": hostname, "gpus": gpus})
}

/// Registers a node with a fresh join token; returns (node id, credential).
pub async fn register(app: &TestApp, hostname: &str, gpus: usize) -> (String, String) {
    let token = join_token(app, "par-1").await;
    let res = app
        .post("/v1/agent/register", &token, registration(hostname, gpus))
        .await
        .expect(201);
    assert!(
        res.body["credential"]
            .as_str()
            .unwrap()
            .starts_with("aionnode_")
    );
    (
        res.body["node_id"].as_str().unwrap().to_owned(),
        res.body["credential"].as_str().unwrap().to_owned(),
    )
}

/// Places a `1g.10gb` lease in `state` on GPU `gpu_uuid` at start 0, claiming slot 0,
/// directly in the database (as the scheduler would).
pub async fn place_lease(
    app: &TestApp,
    project: &str,
    node: &str,
    gpu_uuid: &str,
    state: &str,
) -> Uuid {
    let db = &app.services.db;
    let now = app.clock.now();
    let org = app
        .get(&format!("/v1/projects/{project}"), &app.admin)
        .await
        .body["organization_id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    let gpu = gpus::Entity::find()
        .filter(gpus::Column::Uuid.eq(gpu_uuid))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let lease = Uuid::now_v7();
    leases::ActiveModel {
        id: Set(lease),
        project_id: Set(project.parse().unwrap()),
        organization_id: Set(org),
        grant_id: Set(None),
        profile: Set("1g.10gb".into()),
        profile_id: Set(19),
        gpu_model: Set("H100-80GB".into()),
        count: Set(1),
        compute_slices: Set(1),
        site: Set(None),
        same_node: Set(false),
        preemptible: Set(false),
        duration_s: Set(3600),
        state: Set(state.into()),
        state_reason: Set(None),
        held_slice_seconds: Set(3600),
        charged_slice_seconds: Set(0),
        created_by: Set("test".into()),
        created_at: Set(now),
        scheduled_at: Set(Some(now)),
        active_at: Set(None),
        releasing_at: Set(None),
        ended_at: Set(None),
        ends_at: Set(None),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    lease_placements::ActiveModel {
        id: Set(Uuid::now_v7()),
        lease_id: Set(lease),
        node_id: Set(node.parse().unwrap()),
        gpu_id: Set(gpu.id),
        gpu_uuid: Set(gpu_uuid.into()),
        profile_id: Set(19),
        start: Set(0),
        mig_device_uuid: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    gpu_slot_claims::ActiveModel {
        gpu_id: Set(gpu.id),
        slot: Set(0),
        lease_id: Set(lease),
    }
    .insert(db)
    .await
    .unwrap();
    lease
}

async fn lease_state(app: &TestApp, lease: Uuid) -> leases::Model {
    leases::Entity::find_by_id(lease)
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap()
}

async fn a_registered_node_long_polls_its_desired_state_and_is_woken_by_a_cordon(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (node, cred) = register(&app, "gpu-001", 8).await;
    let first = app.get("/v1/agent/desired-state", &cred).await.expect(200);
    assert_eq!(first.body["revision"], 1);
    assert_eq!(first.body["node_state"], "ready");
    assert_eq!(first.body["leases"], json!([]));
    // Nothing changes: the poll ends with the wait, unchanged.
    let same = app
        .get("/v1/agent/desired-state?revision=1&wait=2", &cred)
        .await
        .expect(200);
    assert_eq!(same.body["revision"], 1);
    // A cordon from another task wakes the poll at once with the new revision.
    let (base, admin) = (app.base.clone(), app.admin.clone());
    let cordon = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        reqwest::Client::new()
            .post(format!("{base}/v1/nodes/{node}/cordon"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let woken = app
        .get("/v1/agent/desired-state?revision=1&wait=30", &cred)
        .await
        .expect(200);
    assert_eq!(cordon.await.unwrap(), 200);
    assert_eq!(woken.body["revision"], 2);
    assert_eq!(woken.body["node_state"], "cordoned");
    app.get("/v1/agent/desired-state?wait=61", &cred)
        .await
        .expect_problem(400, "validation_failed");
}

async fn a_node_credential_reaches_only_its_own_node_and_only_agent_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (_a, cred_a) = register(&app, "gpu-a", 1).await;
    let (b, cred_b) = register(&app, "gpu-b", 1).await;
    let lease = place_lease(&app, &project, &b, "GPU-gpu-b-0", "scheduled").await;
    // A sees none of B's leases; B sees its own.
    let a_state = app
        .get("/v1/agent/desired-state", &cred_a)
        .await
        .expect(200);
    assert_eq!(a_state.body["leases"], json!([]));
    let b_state = app
        .get("/v1/agent/desired-state", &cred_b)
        .await
        .expect(200);
    assert_eq!(b_state.body["leases"][0]["lease_id"], lease.to_string());
    assert_eq!(
        b_state.body["leases"][0]["instances"][0]["gpu_uuid"],
        "GPU-gpu-b-0"
    );
    assert_eq!(
        b_state.body["leases"][0]["instances"][0]["profile"],
        "1g.10gb"
    );
    // A cannot report B's GPU, neither its instance nor its health; nothing changes.
    let report = json!({"instances": [{"gpu_uuid": "GPU-gpu-b-0", "profile_id": 19, "start": 0, "mig_device_uuid": "MIG-x"}]});
    app.post("/v1/agent/status", &cred_a, report)
        .await
        .expect_problem(400, "validation_failed");
    app.post(
        "/v1/agent/status",
        &cred_a,
        json!({"gpus": [{"uuid": "GPU-gpu-b-0", "health": "unhealthy"}]}),
    )
    .await
    .expect_problem(400, "validation_failed");
    assert_eq!(lease_state(&app, lease).await.state, "scheduled");
    let gpu_b = gpus::Entity::find()
        .filter(gpus::Column::Uuid.eq("GPU-gpu-b-0"))
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gpu_b.health, "ok");
    // A node credential is no user credential, and a user token is no node credential.
    app.get("/v1/me", &cred_a)
        .await
        .expect_problem(401, "unauthenticated");
    app.get("/v1/organizations", &cred_a)
        .await
        .expect_problem(401, "unauthenticated");
    app.get(&format!("/v1/nodes/{b}"), &cred_a)
        .await
        .expect_problem(401, "unauthenticated");
    app.get("/v1/agent/desired-state", &app.admin)
        .await
        .expect_problem(401, "unauthenticated");
    app.request(Method::GET, "/v1/agent/desired-state", None, None, &[])
        .await
        .expect_problem(401, "unauthenticated");
    // A join token is no node credential either.
    let join = join_token(&app, "par-1").await;
    app.get("/v1/agent/desired-state", &join)
        .await
        .expect_problem(401, "unauthenticated");
}

async fn status_reports_move_a_lease_from_scheduled_to_active_and_from_releasing_to_released(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 2).await;
    let lease = place_lease(&app, &project, &node, "GPU-gpu-001-1", "scheduled").await;
    let desired = app.get("/v1/agent/desired-state", &cred).await.expect(200);
    let revision = desired.body["revision"].as_i64().unwrap();
    assert_eq!(desired.body["leases"][0]["state"], "scheduled");
    assert_eq!(desired.body["leases"][0]["instances"][0]["gpu_index"], 1);
    // The agent created the instance and reports it: the lease becomes active.
    let present = json!({
        "instances": [{"gpu_uuid": "GPU-gpu-001-1", "profile_id": 19, "start": 0, "mig_device_uuid": "MIG-1111"}],
        "gpus": [{"uuid": "GPU-gpu-001-0", "health": "ok"}, {"uuid": "GPU-gpu-001-1", "health": "ok"}],
    });
    let ack = app
        .post("/v1/agent/status", &cred, present.clone())
        .await
        .expect(200);
    assert!(ack.body["revision"].as_i64().unwrap() > revision);
    let row = lease_state(&app, lease).await;
    assert_eq!(row.state, "active");
    assert!(row.active_at.is_some());
    let detail = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    let inst = &detail.body["gpus"][1]["instances"][0];
    assert_eq!(inst["lease_id"], lease.to_string());
    assert_eq!(inst["mig_device_uuid"], "MIG-1111");
    assert_eq!(inst["profile"], "1g.10gb");
    // Reporting again changes nothing.
    app.post("/v1/agent/status", &cred, present.clone())
        .await
        .expect(200);
    assert_eq!(lease_state(&app, lease).await.state, "active");
    // Release asked: the agent still runs it, so it stays releasing...
    let mut releasing: leases::ActiveModel = lease_state(&app, lease).await.into();
    releasing.state = Set("releasing".into());
    releasing.releasing_at = Set(Some(app.clock.now()));
    releasing.update(&app.services.db).await.unwrap();
    let desired = app.get("/v1/agent/desired-state", &cred).await.expect(200);
    assert_eq!(desired.body["leases"][0]["state"], "releasing");
    app.post("/v1/agent/status", &cred, present)
        .await
        .expect(200);
    assert_eq!(lease_state(&app, lease).await.state, "releasing");
    // ...until the instance is gone: released, slot claims freed.
    app.post(
        "/v1/agent/status",
        &cred,
        json!({"instances": [], "gpus": []}),
    )
    .await
    .expect(200);
    let row = lease_state(&app, lease).await;
    assert_eq!(row.state, "released");
    assert!(row.ended_at.is_some());
    let claims = gpu_slot_claims::Entity::find()
        .filter(gpu_slot_claims::Column::LeaseId.eq(lease))
        .all(&app.services.db)
        .await
        .unwrap();
    assert!(claims.is_empty());
    let desired = app.get("/v1/agent/desired-state", &cred).await.expect(200);
    assert_eq!(desired.body["leases"], json!([]));
    // An unhealthy GPU is recorded.
    app.post(
        "/v1/agent/status",
        &cred,
        json!({"gpus": [{"uuid": "GPU-gpu-001-0", "health": "unhealthy"}]}),
    )
    .await
    .expect(200);
    let detail = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(detail.body["gpus"][0]["health"], "unhealthy");
    app.post(
        "/v1/agent/status",
        &cred,
        json!({"gpus": [{"uuid": "GPU-gpu-001-0", "health": "meh"}]}),
    )
    .await
    .expect_problem(400, "validation_failed");
}

async fn a_renewed_credential_replaces_the_old_one_after_a_grace_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (node, old) = register(&app, "gpu-001", 1).await;
    let renewed = app
        .post("/v1/agent/renew", &old, json!({}))
        .await
        .expect(200);
    let new = renewed.body["credential"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(renewed.body["node_id"], node);
    // The old one works during the grace period, then no more.
    app.get("/v1/agent/desired-state", &old).await.expect(200);
    app.clock.advance(chrono::Duration::minutes(6));
    app.get("/v1/agent/desired-state", &old)
        .await
        .expect_problem(401, "unauthenticated");
    app.get("/v1/agent/desired-state", &new).await.expect(200);
    // Credentials expire after a day.
    app.clock.advance(chrono::Duration::hours(25));
    app.get("/v1/agent/desired-state", &new)
        .await
        .expect_problem(401, "unauthenticated");
}

/// Two replicas on one PostgreSQL: a change made through one wakes a long-poll served by
/// the other (LISTEN/NOTIFY; the in-process notice never reaches the other process's
/// watchers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_replica_is_woken_by_a_cordon_made_on_another() {
    use aion::startup::{Application, Mode};
    let app = TestApp::spawn(Backend::Postgres).await;
    let (node, cred) = register(&app, "gpu-001", 1).await;
    let other = Application::build_with_clock(&app.db.config(), Mode::Serve, app.clock.clone())
        .await
        .unwrap();
    let other_base = format!("http://127.0.0.1:{}", other.port());
    let other_events = other.services.events.clone();
    tokio::spawn(other.run_until_stopped());
    let (base, admin, cordoned) = (app.base.clone(), app.admin.clone(), node.clone());
    let cordon = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        reqwest::Client::new()
            .post(format!("{base}/v1/nodes/{cordoned}/cordon"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let woken: Value = reqwest::Client::new()
        .get(format!(
            "{other_base}/v1/agent/desired-state?revision=1&wait=30"
        ))
        .bearer_auth(&cred)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cordon.await.unwrap(), 200);
    assert_eq!(woken["revision"], 2, "{woken}");
    assert_eq!(woken["node_state"], "cordoned");
    // The other replica now answers polls of this node from memory; an uncordon made
    // through the first replica replaces what it knows (its notice moves the revision).
    let poll_other = || async {
        reqwest::Client::new()
            .get(format!("{other_base}/v1/agent/desired-state"))
            .bearer_auth(&cred)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(poll_other().await["revision"], 2);
    // Once its watch has read the cordon's notice (until then it reads the database)...
    let node_id: uuid::Uuid = node.parse().unwrap();
    for _ in 0..500 {
        if !other_events.is_changing(node_id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(poll_other().await["revision"], 2);
    // ...it answers from memory: a change nobody announced is not seen there.
    {
        use sea_orm::ConnectionTrait;
        app.services
            .db
            .execute_unprepared(&format!(
                "UPDATE nodes SET desired_revision = desired_revision + 1 WHERE id = '{node}'"
            ))
            .await
            .unwrap();
    }
    assert_eq!(poll_other().await["revision"], 2);
    app.post(&format!("/v1/nodes/{node}/uncordon"), &app.admin, json!({}))
        .await
        .expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        let seen = poll_other().await;
        if seen["revision"] == 4 || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(seen["revision"], 4, "{seen}");
    assert_eq!(seen["node_state"], "ready");
}
