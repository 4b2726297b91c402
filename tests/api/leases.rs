//! Integration tests: lease admission against quota and budget (one transaction), long
//! polling, listing, release, idempotency and isolation. Placement by the scheduler and
//! activation by agents are tested with the scheduler and the agent API.

use crate::helpers::*;
use crate::on_both_databases;
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    a_lease_is_admitted_pending_with_its_budget_held,
    leases_need_a_grant_with_enough_hours,
    concurrent_requests_never_exceed_the_quota,
    concurrent_requests_never_overrun_a_nearly_spent_grant,
    an_idempotent_retry_creates_one_lease,
    a_pending_lease_is_released_at_once_and_releasing_twice_is_harmless,
    bad_lease_requests_are_clear_validation_errors,
    leases_of_other_tenants_are_invisible_and_viewers_cannot_lease,
    concurrent_requests_never_exceed_per_profile_or_per_site_caps,
    concurrent_retries_with_one_key_create_one_lease,
);

struct Setup {
    project: String,
    lead: String,
}

/// An organisation, a project with a contract grant of `hours` on H100-80GB, a lead token.
async fn setup(app: &TestApp, hours: i64) -> Setup {
    let org = app.create_org("lab", "industry").await;
    let project = app.create_project(&org, "training").await;
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": hours,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "C-1"}),
    )
    .await
    .expect(201);
    let lead = app.token(&format!("/v1/projects/{project}"), "lead").await;
    Setup { project, lead }
}

async fn lease(app: &TestApp, s: &Setup, body: Value) -> Resp {
    app.post(&format!("/v1/projects/{}/leases", s.project), &s.lead, body)
        .await
}

async fn a_lease_is_admitted_pending_with_its_budget_held(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    let res = lease(
        &app,
        &s,
        json!({"profile": "3g.40gb", "count": 2, "duration_s": 3600}),
    )
    .await
    .expect(201);
    assert_eq!(res.body["state"], "pending");
    assert_eq!(res.body["gpu_model"], "H100-80GB", "taken from the grant");
    assert_eq!(res.body["compute_slices"], 6);
    assert_eq!(res.body["held_slice_seconds"], 6 * 3600);
    assert!(res.body["grant_id"].is_string());
    let id = res.id();
    let read = app
        .get(&format!("/v1/leases/{id}"), &s.lead)
        .await
        .expect(200);
    assert_eq!(read.body["profile"], "3g.40gb");
    let list = app
        .get(
            &format!("/v1/projects/{}/leases?state=pending", s.project),
            &s.lead,
        )
        .await
        .expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let none = app
        .get(
            &format!("/v1/projects/{}/leases?state=active", s.project),
            &s.lead,
        )
        .await
        .expect(200);
    assert!(none.body["items"].as_array().unwrap().is_empty());
    let audit = app
        .get(&format!("/v1/audit-events?target_id={id}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(audit.body["items"][0]["action"], "lease.create");
}

async fn leases_need_a_grant_with_enough_hours(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("poor", "industry").await;
    let project = app.create_project(&org, "nogrant").await;
    app.post(
        &format!("/v1/projects/{project}/leases"),
        &app.admin,
        json!({"profile": "1g.10gb", "gpu_model": "H100-80GB"}),
    )
    .await
    .expect_problem(409, "budget_exhausted");
    app.post(
        &format!("/v1/projects/{project}/leases"),
        &app.admin,
        json!({"profile": "1g.10gb"}),
    )
    .await
    .expect_problem(400, "validation_failed");
    // 1 GPU-hour = 25,200 slice-seconds: a 7g lease of 2 hours needs twice that.
    let s = setup(&app, 1).await;
    lease(&app, &s, json!({"profile": "7g.80gb", "duration_s": 7200}))
        .await
        .expect_problem(409, "budget_exhausted");
    lease(&app, &s, json!({"profile": "7g.80gb", "duration_s": 3600}))
        .await
        .expect(201);
    lease(&app, &s, json!({"profile": "1g.10gb", "duration_s": 60}))
        .await
        .expect_problem(409, "budget_exhausted");
}

async fn fire(app: &TestApp, s: &Setup, n: usize, body: Value) -> (usize, usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, token, body) = (
            app.client.clone(),
            format!("{}/v1/projects/{}/leases", app.base, s.project),
            s.lead.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            201 => created += 1,
            409 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (created, refused)
}

async fn concurrent_requests_never_exceed_the_quota(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 10_000).await;
    // A quota of 10 compute slices: exactly ten 1g leases fit.
    app.request(
        Method::PUT,
        &format!("/v1/projects/{}/quota", s.project),
        Some(&app.admin),
        Some(json!({"max_compute_slices": 10})),
        &[],
    )
    .await
    .expect(200);
    let (created, refused) = fire(
        &app,
        &s,
        64,
        json!({"profile": "1g.10gb", "duration_s": 3600}),
    )
    .await;
    assert_eq!((created, refused), (10, 54));
    let live = app
        .get(
            &format!("/v1/projects/{}/leases?state=pending&limit=200", s.project),
            &s.lead,
        )
        .await;
    assert_eq!(live.body["items"].as_array().unwrap().len(), 10);
    let problem = lease(&app, &s, json!({"profile": "1g.10gb"}))
        .await
        .expect_problem(409, "quota_exceeded");
    assert!(
        problem.body["detail"]
            .as_str()
            .unwrap()
            .contains("10 of 10"),
        "{}",
        problem.body
    );
}

/// Per-profile and per-site caps count leases admitted earlier in the same admission
/// batch, not only those already in the database.
async fn concurrent_requests_never_exceed_per_profile_or_per_site_caps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 10_000).await;
    let quota = format!("/v1/projects/{}/quota", s.project);
    app.request(
        Method::PUT,
        &quota,
        Some(&app.admin),
        Some(json!({"max_compute_slices": 50, "per_profile": {"1g.10gb": 6}})),
        &[],
    )
    .await
    .expect(200);
    let (created, refused) = fire(&app, &s, 40, json!({"profile": "1g.10gb"})).await;
    assert_eq!((created, refused), (6, 34));
    app.request(
        Method::PUT,
        &quota,
        Some(&app.admin),
        Some(json!({"max_compute_slices": 50, "per_site": {"saclay": 10}})),
        &[],
    )
    .await
    .expect(200);
    // Six 1-slice leases are held already (no site); 2g leases at saclay: five fit in 10.
    let (created, refused) = fire(
        &app,
        &s,
        40,
        json!({"profile": "2g.20gb", "site": "saclay"}),
    )
    .await;
    assert_eq!((created, refused), (5, 35));
}

/// A client that retries one request many times at once gets one lease, the same answer
/// every time.
async fn concurrent_retries_with_one_key_create_one_lease(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/projects/{}/leases", app.base, s.project),
            s.lead.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "retry-storm-1")
                .json(&json!({"profile": "3g.40gb"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let list = app
        .get(&format!("/v1/projects/{}/leases", s.project), &s.lead)
        .await
        .expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

async fn concurrent_requests_never_overrun_a_nearly_spent_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 2 GPU-hours = 50,400 slice-seconds: seven 1g leases of 2 hours (7,200 each) fit.
    let s = setup(&app, 2).await;
    let (created, refused) = fire(
        &app,
        &s,
        64,
        json!({"profile": "1g.10gb", "duration_s": 7200}),
    )
    .await;
    assert_eq!((created, refused), (7, 57));
    // The grant's ledger holds exactly the seven admitted leases, and its running totals
    // agree with a recomputation from its entries.
    let grants = app
        .get(&format!("/v1/projects/{}/grants", s.project), &s.lead)
        .await
        .expect(200);
    let grant = &grants.body["items"][0];
    assert_eq!(grant["balance_slice_seconds"], 0);
    assert_eq!(grant["held_slice_seconds"], 7 * 7200);
    let id: uuid::Uuid = grant["id"].as_str().unwrap().parse().unwrap();
    let standing = aion_services::ledger::verify(&app.services.db, id.into())
        .await
        .unwrap();
    assert_eq!((standing.balance, standing.held), (0, 7 * 7200));
}

async fn an_idempotent_retry_creates_one_lease(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    let path = format!("/v1/projects/{}/leases", s.project);
    let body = json!({"profile": "2g.20gb"});
    let a = app
        .request(
            Method::POST,
            &path,
            Some(&s.lead),
            Some(body.clone()),
            &[("idempotency-key", "job-7")],
        )
        .await
        .expect(201);
    let b = app
        .request(
            Method::POST,
            &path,
            Some(&s.lead),
            Some(body),
            &[("idempotency-key", "job-7")],
        )
        .await
        .expect(201);
    assert_eq!(a.id(), b.id());
    let list = app.get(&path, &s.lead).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

async fn a_pending_lease_is_released_at_once_and_releasing_twice_is_harmless(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    let id = lease(&app, &s, json!({"profile": "4g.40gb"}))
        .await
        .expect(201)
        .id();
    let released = app
        .delete(&format!("/v1/leases/{id}"), &s.lead)
        .await
        .expect(200);
    assert_eq!(released.body["state"], "released");
    assert_eq!(released.body["held_slice_seconds"], 0);
    assert_eq!(
        released.body["charged_slice_seconds"], 0,
        "never active, nothing used"
    );
    let again = app
        .delete(&format!("/v1/leases/{id}"), &s.lead)
        .await
        .expect(200);
    assert_eq!(again.body["state"], "released");
    // A settled lease answers a long-poll at once.
    let waited = app
        .get(&format!("/v1/leases/{id}?wait=30"), &s.lead)
        .await
        .expect(200);
    assert_eq!(waited.body["state"], "released");
    // The freed quota and budget are usable again.
    lease(&app, &s, json!({"profile": "4g.40gb"}))
        .await
        .expect(201);
}

async fn bad_lease_requests_are_clear_validation_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    for (body, field) in [
        (
            json!({"profile": "5g.50gb", "gpu_model": "H100-80GB"}),
            "profile",
        ),
        (
            json!({"profile": "1g.10gb", "gpu_model": "H900"}),
            "gpu_model",
        ),
        (json!({"profile": "1g.10gb", "count": 0}), "count"),
        (json!({"profile": "1g.10gb", "count": 65}), "count"),
        (
            json!({"profile": "1g.10gb", "duration_s": 10}),
            "duration_s",
        ),
        (json!({"profile": "1g.10gb", "site": "Not A Site"}), "site"),
    ] {
        let res = lease(&app, &s, body)
            .await
            .expect_problem(400, "validation_failed");
        assert!(
            res.body["errors"][field].is_string(),
            "{field}: {}",
            res.body
        );
    }
    lease(&app, &s, json!({"profile": "1g.10gb", "colour": "blue"}))
        .await
        .expect_problem(400, "bad_request");
    app.get(
        &format!("/v1/projects/{}/leases?state=sleeping", s.project),
        &s.lead,
    )
    .await
    .expect_problem(400, "validation_failed");
    app.get(
        &format!("/v1/leases/{}?wait=abc", uuid::Uuid::nil()),
        &s.lead,
    )
    .await
    .expect_problem(400, "validation_failed");
}

async fn leases_of_other_tenants_are_invisible_and_viewers_cannot_lease(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = setup(&app, 100).await;
    let id = lease(&app, &s, json!({"profile": "1g.10gb"}))
        .await
        .expect(201)
        .id();
    let other_org = app.create_org("other", "startup").await;
    let other_project = app.create_project(&other_org, "theirs").await;
    let stranger = app
        .token(&format!("/v1/projects/{other_project}"), "lead")
        .await;
    app.get(&format!("/v1/leases/{id}"), &stranger)
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/v1/leases/{id}"), &stranger)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/v1/projects/{}/leases", s.project), &stranger)
        .await
        .expect_problem(404, "not_found");
    app.post(
        &format!("/v1/projects/{}/leases", s.project),
        &stranger,
        json!({"profile": "1g.10gb"}),
    )
    .await
    .expect_problem(404, "not_found");
    let viewer = app
        .token(&format!("/v1/projects/{}", s.project), "viewer")
        .await;
    app.get(&format!("/v1/leases/{id}"), &viewer)
        .await
        .expect(200);
    lease(
        &app,
        &Setup {
            project: s.project.clone(),
            lead: viewer.clone(),
        },
        json!({"profile": "1g.10gb"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.delete(&format!("/v1/leases/{id}"), &viewer)
        .await
        .expect_problem(403, "forbidden");
}
