//! Integration tests: the budget ledger of grants (holds, usage, releases, adjustments),
//! its warnings, and the end of an overdrawn grant's leases.

use crate::agent::register;
use crate::helpers::*;
use crate::on_both_databases;
use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    the_ledger_records_holds_usage_and_releases_and_adds_up,
    warnings_are_raised_once_and_adjustments_need_rights_and_a_reason,
    an_overdrawn_grant_ends_its_leases_after_the_grace,
    a_grant_warns_once_before_it_ends,
);

const GPU_HOUR: i64 = 25_200;

/// A startup with a project, a contract grant of `hours`, and a member token.
async fn funded_project(app: &TestApp, hours: i64) -> (String, String, String) {
    let org = app.create_org("acme", "startup").await;
    let project = app.create_project(&org, "vision").await;
    let now = app.clock.now();
    let grant = app
        .post(
            "/v1/grants",
            &app.admin,
            json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": hours,
                "valid_from": (now - Duration::days(1)).to_rfc3339(),
                "valid_until": (now + Duration::days(30)).to_rfc3339(), "reference": "PO-7"}),
        )
        .await
        .expect(201);
    let member = app
        .token(&format!("/v1/projects/{project}"), "member")
        .await;
    (project, grant.id(), member)
}

/// Every entry of a grant's ledger, read page by page.
async fn ledger(app: &TestApp, grant: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!("/v1/grants/{grant}/ledger?limit=2{cursor}"), token)
            .await
            .expect(200);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return items,
        }
    }
}

/// Recomputes the running totals from the entries alone and checks each stored one.
fn check_sums(entries: &[Value]) -> (i64, i64, i64) {
    let (mut balance, mut held, mut used) = (0, 0, 0);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1, "entries are numbered without gaps");
        let amount = e["amount_slice_seconds"].as_i64().unwrap();
        balance += amount;
        match e["kind"].as_str().unwrap() {
            "hold" | "hold_release" => held -= amount,
            "usage" => used -= amount,
            _ => {}
        }
        assert_eq!(e["balance_slice_seconds"], balance, "entry {e}");
        assert_eq!(e["held_slice_seconds"], held, "entry {e}");
        assert_eq!(e["used_slice_seconds"], used, "entry {e}");
    }
    (balance, held, used)
}

async fn lease(app: &TestApp, project: &str, token: &str, body: Value) -> Resp {
    app.post(&format!("/v1/projects/{project}/leases"), token, body)
        .await
}

pub(crate) async fn until_state(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    for _ in 0..300 {
        let res = app
            .get(&format!("/v1/leases/{id}"), token)
            .await
            .expect(200);
        if res.body["state"] == state {
            return res.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("lease {id} never became {state}");
}

/// Reports every instance of the node's desired state as present.
pub(crate) async fn report_all_present(app: &TestApp, cred: &str) {
    let state = app
        .get("/v1/agent/desired-state", cred)
        .await
        .expect(200)
        .body;
    let instances: Vec<Value> = state["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] != "releasing")
        .flat_map(|l| l["instances"].as_array().unwrap().clone())
        .map(|i| {
            json!({"gpu_uuid": i["gpu_uuid"], "profile_id": i["profile_id"], "start": i["start"],
                "mig_device_uuid": format!("MIG-{}-{}", i["gpu_uuid"].as_str().unwrap(), i["start"])})
        })
        .collect();
    app.post(
        "/v1/agent/status",
        cred,
        json!({"instances": instances, "gpus": [{"uuid": "GPU-gpu-0001-0", "health": "ok"}]}),
    )
    .await
    .expect(200);
}

async fn the_ledger_records_holds_usage_and_releases_and_adds_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_node, cred) = register(&app, "gpu-0001", 1).await;
    let (project, grant, member) = funded_project(&app, 50).await;
    let allocated = 50 * GPU_HOUR;

    // A gang of two 3g slices for an hour holds 6 slices × 3,600 s.
    let id = lease(
        &app,
        &project,
        &member,
        json!({"profile": "3g.40gb", "count": 2, "same_node": true, "duration_s": 3600}),
    )
    .await
    .expect(201)
    .id();
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(g.body["balance_slice_seconds"], allocated - 21_600);
    assert_eq!(g.body["held_slice_seconds"], 21_600);
    assert_eq!(g.body["used_slice_seconds"], 0);

    // Active, ten minutes of use, released and torn down.
    until_state(&app, &member, &id, "scheduled").await;
    report_all_present(&app, &cred).await;
    until_state(&app, &member, &id, "active").await;
    app.clock.advance(Duration::minutes(10));
    app.delete(&format!("/v1/leases/{id}"), &member)
        .await
        .expect(200);
    report_all_present(&app, &cred).await;
    let released = until_state(&app, &member, &id, "released").await;
    assert_eq!(released["charged_slice_seconds"], 600 * 6);

    // A pending lease released at once gives its whole hold back and uses nothing.
    let never_placed = lease(
        &app,
        &project,
        &member,
        json!({"profile": "7g.80gb", "count": 4, "duration_s": 600}),
    )
    .await
    .expect(201)
    .id();
    app.delete(&format!("/v1/leases/{never_placed}"), &member)
        .await
        .expect(200);

    let entries = ledger(&app, &grant, &member).await;
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "allocation",
            "hold",
            "hold_release",
            "usage",
            "hold",
            "hold_release"
        ]
    );
    assert_eq!(entries[3]["lease_id"], id.as_str());
    assert_eq!(entries[3]["amount_slice_seconds"], -3_600);
    let (balance, held, used) = check_sums(&entries);
    assert_eq!((balance, held, used), (allocated - 3_600, 0, 3_600));
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(g.body["balance_slice_seconds"], balance);
    assert_eq!(g.body["used_slice_seconds"], used);
    assert_eq!(g.body["held_slice_seconds"], 0);
    // The project's grant list shows the same standing.
    let listed = app
        .get(&format!("/v1/projects/{project}/grants"), &member)
        .await
        .expect(200);
    assert_eq!(listed.body["items"][0]["balance_slice_seconds"], balance);

    // Another tenant sees neither the grant nor its ledger.
    let other_org = app.create_org("rival", "startup").await;
    let other = app
        .token(&format!("/v1/organizations/{other_org}"), "admin")
        .await;
    app.get(&format!("/v1/grants/{grant}/ledger"), &other)
        .await
        .expect_problem(404, "not_found");
    app.get("/v1/grants/not-a-uuid/ledger", &member)
        .await
        .expect_problem(400, "validation_failed");
    app.get(&format!("/v1/grants/{grant}/ledger?cursor=xyz"), &member)
        .await
        .expect_problem(400, "validation_failed");
}

async fn warnings_are_raised_once_and_adjustments_need_rights_and_a_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (project, grant, member) = funded_project(&app, 1).await;
    let warnings = |body: &Value| -> Vec<String> {
        body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["warning"].as_str().unwrap().to_owned())
            .collect()
    };

    // 3g for 5,600 s holds 16,800 of 25,200 (66 %): no warning yet.
    lease(
        &app,
        &project,
        &member,
        json!({"profile": "3g.40gb", "duration_s": 5600}),
    )
    .await
    .expect(201);
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(g.body["committed_percent"], 66);
    assert!(warnings(&g.body).is_empty());
    // 1g for an hour more: 20,400 (80 %) crosses the first threshold.
    let small = lease(
        &app,
        &project,
        &member,
        json!({"profile": "1g.10gb", "duration_s": 3600}),
    )
    .await
    .expect(201)
    .id();
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(warnings(&g.body), ["used_80"]);
    // Back under and over again: still one warning.
    app.delete(&format!("/v1/leases/{small}"), &member)
        .await
        .expect(200);
    lease(
        &app,
        &project,
        &member,
        json!({"profile": "1g.10gb", "duration_s": 3600}),
    )
    .await
    .expect(201);
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(warnings(&g.body), ["used_80"]);
    let audit = app
        .get(
            &format!("/v1/audit-events?target_id={grant}&limit=50"),
            &app.admin,
        )
        .await
        .expect(200);
    let raised = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "grant.warning")
        .count();
    assert_eq!(raised, 1, "{}", audit.body);

    // Adjustments: a member may not, another tenant gets 404, bad input is refused.
    let path = format!("/v1/grants/{grant}/adjustments");
    app.post(&path, &member, json!({"slice_seconds": 100, "reason": "x"}))
        .await
        .expect_problem(403, "forbidden");
    let other_org = app.create_org("rival", "startup").await;
    let other = app
        .token(&format!("/v1/organizations/{other_org}"), "admin")
        .await;
    app.post(&path, &other, json!({"slice_seconds": 100, "reason": "x"}))
        .await
        .expect_problem(404, "not_found");
    for bad in [
        json!({"slice_seconds": 0, "reason": "x"}),
        json!({"slice_seconds": 100, "reason": "  "}),
        json!({"slice_seconds": i64::MIN, "reason": "x"}),
    ] {
        app.post(&path, &app.admin, bad)
            .await
            .expect_problem(400, "validation_failed");
    }
    app.post(&path, &app.admin, json!({"slice_seconds": 100}))
        .await
        .expect(400);
    // An operator adds an hour, retried with one Idempotency-Key: one entry.
    let body = json!({"slice_seconds": GPU_HOUR, "reason": "goodwill after an outage"});
    let first = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(body.clone()),
            &[("idempotency-key", "adj-1")],
        )
        .await
        .expect(201);
    let again = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(body),
            &[("idempotency-key", "adj-1")],
        )
        .await
        .expect(201);
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(first.body["reason"], "goodwill after an outage");
    let entries = ledger(&app, &grant, &member).await;
    assert_eq!(
        entries.iter().filter(|e| e["kind"] == "adjustment").count(),
        1
    );
    let (balance, held, used) = check_sums(&entries);
    assert_eq!(
        balance + held + used,
        2 * GPU_HOUR,
        "allocation + adjustment"
    );

    // Taking back more than was ever allocated is refused; taking back more than is left
    // overdraws the grant, and new leases are refused.
    app.post(
        &path,
        &app.admin,
        json!({"slice_seconds": -3 * GPU_HOUR, "reason": "cut"}),
    )
    .await
    .expect_problem(409, "conflict");
    app.post(
        &path,
        &app.admin,
        json!({"slice_seconds": -(balance + 1), "reason": "committee cut"}),
    )
    .await
    .expect(201);
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    assert_eq!(g.body["balance_slice_seconds"], -1);
    assert!(g.body["overdrawn_since"].is_string());
    assert!(warnings(&g.body).contains(&"overdrawn".to_owned()));
    assert!(warnings(&g.body).contains(&"used_100".to_owned()));
    lease(
        &app,
        &project,
        &member,
        json!({"profile": "1g.10gb", "duration_s": 60}),
    )
    .await
    .expect_problem(409, "budget_exhausted");
    check_sums(&ledger(&app, &grant, &member).await);
}

async fn an_overdrawn_grant_ends_its_leases_after_the_grace(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.overdraft_grace_s = 600).await;
    let (_node, cred) = register(&app, "gpu-0001", 1).await;
    let (project, grant, member) = funded_project(&app, 2).await;
    let id = lease(
        &app,
        &project,
        &member,
        json!({"profile": "1g.10gb", "duration_s": 7200}),
    )
    .await
    .expect(201)
    .id();
    until_state(&app, &member, &id, "scheduled").await;
    report_all_present(&app, &cred).await;
    until_state(&app, &member, &id, "active").await;

    // The committee takes back everything that is left and an hour of the lease's hold:
    // overdrawn.
    app.clock.advance(Duration::minutes(5));
    let g = app
        .get(&format!("/v1/grants/{grant}"), &member)
        .await
        .expect(200);
    let left = g.body["balance_slice_seconds"].as_i64().unwrap();
    app.post(
        &format!("/v1/grants/{grant}/adjustments"),
        &app.admin,
        json!({"slice_seconds": -(left + 3_600), "reason": "project closed"}),
    )
    .await
    .expect(201);
    // Within the grace the lease goes on.
    app.clock.advance(Duration::minutes(9));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let still = app
        .get(&format!("/v1/leases/{id}"), &member)
        .await
        .expect(200);
    assert_eq!(still.body["state"], "active");
    // Past it, the scheduler ends the lease and the node is told to stop it.
    app.clock.advance(Duration::minutes(2));
    let ended = until_state(&app, &member, &id, "expired").await;
    assert!(
        ended["state_reason"]
            .as_str()
            .unwrap()
            .contains("grant is spent"),
        "{ended}"
    );
    let desired = app
        .get("/v1/agent/desired-state", &cred)
        .await
        .expect(200)
        .body;
    assert!(
        desired["leases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["lease_id"] != id.as_str()),
        "{desired}"
    );
    // It used its active time only: 16 minutes × 1 slice, within grant plus grace.
    let entries = ledger(&app, &grant, &member).await;
    let (_, held, used) = check_sums(&entries);
    assert_eq!(held, 0);
    assert_eq!(used, 16 * 60);
    let granted_after_cut = 2 * GPU_HOUR - (left + 3_600);
    assert!(
        used <= granted_after_cut + 600,
        "no more than the grant plus the grace"
    );
}

async fn a_grant_warns_once_before_it_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (project, far, member) = funded_project(&app, 5).await;
    let now = app.clock.now();
    let near = app
        .post(
            "/v1/grants",
            &app.admin,
            json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 5,
                "valid_from": (now - Duration::days(1)).to_rfc3339(),
                "valid_until": (now + Duration::days(3)).to_rfc3339(), "reference": "PO-8"}),
        )
        .await
        .expect(201)
        .id();
    let mut warned = Value::Null;
    for _ in 0..100 {
        let g = app
            .get(&format!("/v1/grants/{near}"), &member)
            .await
            .expect(200);
        if !g.body["warnings"].as_array().unwrap().is_empty() {
            warned = g.body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(warned["warnings"][0]["warning"], "ends_soon", "{warned}");
    // More scheduler ticks raise nothing new; the grant ending in 30 days stays quiet.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let audit = app
        .get(
            &format!("/v1/audit-events?target_id={near}&limit=50"),
            &app.admin,
        )
        .await
        .expect(200);
    let raised = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "grant.warning")
        .count();
    assert_eq!(raised, 1);
    let g = app
        .get(&format!("/v1/grants/{far}"), &member)
        .await
        .expect(200);
    assert_eq!(g.body["warnings"], json!([]));
}
