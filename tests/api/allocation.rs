//! Integration tests: calls, allocation requests, approvals and grants.

use crate::helpers::*;
use crate::on_both_databases;
use chrono::Duration;
use serde_json::{Value, json};

on_both_databases!(
    a_committee_runs_a_call_end_to_end,
    rejection_needs_a_reason_and_only_open_calls_take_requests,
    approvals_never_exceed_the_pool_even_when_concurrent,
    another_tenant_sees_neither_requests_nor_grants_and_drafts_stay_private,
    platform_admins_create_contract_grants_and_nobody_else_does,
    calls_are_validated_and_only_drafts_change_freely,
);

/// An allocator (GENCI), a lab with a project, and the tokens acting for them.
struct Committee {
    app: TestApp,
    genci: String,
    allocator: String,
    lab: String,
    project: String,
    lead: String,
}

impl Committee {
    async fn new(backend: Backend) -> Self {
        let app = TestApp::spawn(backend).await;
        let genci = app.create_org("genci", "allocator").await;
        let allocator = app
            .token(&format!("/v1/organizations/{genci}"), "allocator")
            .await;
        let lab = app.create_org("lab", "academic").await;
        let project = app.create_project(&lab, "climate").await;
        let lead = app.token(&format!("/v1/projects/{project}"), "lead").await;
        Self {
            app,
            genci,
            allocator,
            lab,
            project,
            lead,
        }
    }

    fn call_body(&self, pool: i64) -> Value {
        let now = self.app.clock.now();
        json!({
            "organization_id": self.genci,
            "title": "GENCI 2026 A",
            "description": "Regular access",
            "gpu_model": "H100-80GB",
            "pool_gpu_hours": pool,
            "opens_at": now - Duration::days(1),
            "closes_at": now + Duration::days(30),
            "period_start": now + Duration::days(60),
            "period_end": now + Duration::days(425),
        })
    }

    /// A call in state `draft`, or opened.
    async fn call(&self, pool: i64, open: bool) -> String {
        let call = self
            .app
            .post("/v1/calls", &self.allocator, self.call_body(pool))
            .await
            .expect(201)
            .id();
        if open {
            self.app
                .post(
                    &format!("/v1/calls/{call}/open"),
                    &self.allocator,
                    json!({}),
                )
                .await
                .expect(200);
        }
        call
    }

    async fn file(&self, call: &str, project: &str, token: &str, hours: i64) -> Resp {
        self.app
            .post(
                &format!("/v1/calls/{call}/requests"),
                token,
                json!({"project_id": project, "gpu_hours": hours, "justification": "Climate model runs"}),
            )
            .await
    }
}

async fn a_committee_runs_a_call_end_to_end(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let call = c.call(1000, false).await;
    app.get(&format!("/v1/calls/{call}"), &c.lead)
        .await
        .expect_problem(404, "not_found");
    let opened = app
        .post(&format!("/v1/calls/{call}/open"), &c.allocator, json!({}))
        .await
        .expect(200);
    assert_eq!(opened.body["state"], "open");
    let listed = app.get("/v1/calls?state=open", &c.lead).await.expect(200);
    assert_eq!(listed.body["items"][0]["id"], call.as_str());
    let request = c.file(&call, &c.project, &c.lead, 100).await.expect(201);
    assert_eq!(request.body["state"], "submitted");
    assert_eq!(request.body["requested_slice_seconds"], 100 * 25_200);
    c.file(&call, &c.project, &c.lead, 50)
        .await
        .expect_problem(409, "conflict");
    let review = app
        .get(&format!("/v1/calls/{call}/requests"), &c.allocator)
        .await
        .expect(200);
    assert_eq!(review.body["items"].as_array().unwrap().len(), 1);
    let id = request.id();
    let approve = format!("/v1/allocation-requests/{id}/approve");
    app.post(&approve, &c.allocator, json!({"gpu_hours": 101}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&approve, &c.lead, json!({"gpu_hours": 60}))
        .await
        .expect_problem(403, "forbidden");
    let approved = app
        .post(&approve, &c.allocator, json!({"gpu_hours": 60}))
        .await
        .expect(200);
    assert_eq!(approved.body["request"]["state"], "approved");
    assert_eq!(approved.body["grant"]["slice_seconds"], 60 * 25_200);
    app.post(&approve, &c.allocator, json!({}))
        .await
        .expect_problem(409, "conflict");
    let grants = app
        .get(&format!("/v1/projects/{}/grants", c.project), &c.lead)
        .await
        .expect(200);
    let grant = &grants.body["items"][0];
    assert_eq!(grant["gpu_hours"], 60.0);
    assert_eq!(grant["slice_seconds"], 1_512_000);
    assert_eq!(grant["source"], "call");
    assert_eq!(grant["funded_by"], c.genci.as_str());
    assert_eq!(grant["gpu_model"], "H100-80GB");
    assert_eq!(grant["valid_from"], opened.body["period_start"]);
    let after = app
        .get(&format!("/v1/calls/{call}"), &c.lead)
        .await
        .expect(200);
    assert_eq!(after.body["granted_gpu_hours"], 60.0);
    assert_eq!(after.body["remaining_gpu_hours"], 940.0);
    assert_eq!(after.body["pool_slice_seconds"], 1000 * 25_200);
}

async fn rejection_needs_a_reason_and_only_open_calls_take_requests(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let call = c.call(1000, true).await;
    let id = c
        .file(&call, &c.project, &c.lead, 10)
        .await
        .expect(201)
        .id();
    let reject = format!("/v1/allocation-requests/{id}/reject");
    app.post(&reject, &c.allocator, json!({"reason": "  "}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&reject, &c.allocator, json!({}))
        .await
        .expect_problem(400, "bad_request");
    let rejected = app
        .post(&reject, &c.allocator, json!({"reason": "Out of scope"}))
        .await
        .expect(200);
    assert_eq!(rejected.body["state"], "rejected");
    assert_eq!(rejected.body["decision_reason"], "Out of scope");
    // A rejected request still counts: one request per project per call.
    c.file(&call, &c.project, &c.lead, 10)
        .await
        .expect_problem(409, "conflict");
    // Withdrawing frees the slot for a new request.
    let other = app.create_project(&c.lab, "ocean").await;
    let w = c.file(&call, &other, &app.admin, 10).await.expect(201).id();
    let withdrawn = app
        .post(
            &format!("/v1/allocation-requests/{w}/withdraw"),
            &app.admin,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(withdrawn.body["state"], "withdrawn");
    c.file(&call, &other, &app.admin, 12).await.expect(201);
    // A draft is invisible to the lead, and refused even to those who see it.
    let draft = c.call(100, false).await;
    c.file(&draft, &c.project, &c.lead, 10)
        .await
        .expect_problem(404, "not_found");
    c.file(&draft, &c.project, &app.admin, 10)
        .await
        .expect_problem(409, "conflict");
    app.post(&format!("/v1/calls/{call}/close"), &c.allocator, json!({}))
        .await
        .expect(200);
    let third = app.create_project(&c.lab, "glaciers").await;
    c.file(&call, &third, &app.admin, 10)
        .await
        .expect_problem(409, "conflict");
}

async fn approvals_never_exceed_the_pool_even_when_concurrent(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let call = c.call(100, true).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let project = app.create_project(&c.lab, &format!("p{i}")).await;
        ids.push(
            c.file(&call, &project, &app.admin, 30)
                .await
                .expect(201)
                .id(),
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/allocation-requests/{id}/approve", app.base),
            c.allocator.clone(),
        );
        tasks.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let after = app
        .get(&format!("/v1/calls/{call}"), &c.allocator)
        .await
        .expect(200);
    assert_eq!(after.body["granted_slice_seconds"], 90 * 25_200);
    assert_eq!(after.body["remaining_gpu_hours"], 10.0);
    // The database agrees: the grants of the call sum to what the call reports.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let uuid: uuid::Uuid = call.parse().unwrap();
    let grants = aion_services::entities::grants::Entity::find()
        .filter(aion_services::entities::grants::Column::CallId.eq(uuid))
        .all(&app.services.db)
        .await
        .unwrap();
    assert_eq!(
        grants.iter().map(|g| g.slice_seconds).sum::<i64>(),
        90 * 25_200
    );
    // What is left is stated when an approval does not fit.
    let last = app.create_project(&c.lab, "late").await;
    let id = c.file(&call, &last, &app.admin, 11).await.expect(201).id();
    let refused = app
        .post(
            &format!("/v1/allocation-requests/{id}/approve"),
            &c.allocator,
            json!({}),
        )
        .await
        .expect_problem(409, "conflict");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("only 10 GPU-hours are left"),
        "{}",
        refused.body
    );
    app.post(
        &format!("/v1/allocation-requests/{id}/approve"),
        &c.allocator,
        json!({"gpu_hours": 10}),
    )
    .await
    .expect(200);
}

async fn another_tenant_sees_neither_requests_nor_grants_and_drafts_stay_private(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let call = c.call(1000, true).await;
    let id = c
        .file(&call, &c.project, &c.lead, 10)
        .await
        .expect(201)
        .id();
    let grant = app
        .post(
            &format!("/v1/allocation-requests/{id}/approve"),
            &c.allocator,
            json!({}),
        )
        .await
        .expect(200);
    let grant_id = grant.body["grant"]["id"].as_str().unwrap().to_owned();
    let rival = app.create_org("rival", "startup").await;
    let rival_project = app.create_project(&rival, "llm").await;
    let other = app
        .token(&format!("/v1/projects/{rival_project}"), "lead")
        .await;
    app.get(&format!("/v1/allocation-requests/{id}"), &other)
        .await
        .expect_problem(404, "not_found");
    app.post(
        &format!("/v1/allocation-requests/{id}/withdraw"),
        &other,
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
    app.get(&format!("/v1/grants/{grant_id}"), &other)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/v1/projects/{}/grants", c.project), &other)
        .await
        .expect_problem(404, "not_found");
    let list = app
        .get(&format!("/v1/calls/{call}/requests"), &other)
        .await
        .expect(200);
    assert!(list.body["items"].as_array().unwrap().is_empty());
    // Filing for another tenant's project is as if it did not exist.
    c.file(&call, &c.project, &other, 10)
        .await
        .expect_problem(404, "not_found");
    // The project's viewer and the committee read it.
    let viewer = app
        .token(&format!("/v1/projects/{}", c.project), "viewer")
        .await;
    app.get(&format!("/v1/allocation-requests/{id}"), &viewer)
        .await
        .expect(200);
    app.get(&format!("/v1/grants/{grant_id}"), &viewer)
        .await
        .expect(200);
    app.get(&format!("/v1/grants/{grant_id}"), &c.allocator)
        .await
        .expect(200);
    let mine = app
        .get(&format!("/v1/calls/{call}/requests"), &viewer)
        .await
        .expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    // Drafts: invisible in lists and by id to everyone but their organisation.
    let draft = c.call(5, false).await;
    app.get(&format!("/v1/calls/{draft}"), &other)
        .await
        .expect_problem(404, "not_found");
    let visible = app.get("/v1/calls", &other).await.expect(200);
    assert_eq!(visible.body["items"].as_array().unwrap().len(), 1);
    let own = app
        .get("/v1/calls?state=draft", &c.allocator)
        .await
        .expect(200);
    assert_eq!(own.body["items"][0]["id"], draft.as_str());
}

async fn platform_admins_create_contract_grants_and_nobody_else_does(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let now = app.clock.now();
    let body = |model: &str| {
        json!({"project_id": c.project, "gpu_model": model, "gpu_hours": 500,
            "valid_from": now, "valid_until": now + Duration::days(365), "reference": "PO-2026-17"})
    };
    let grant = app
        .post("/v1/grants", &app.admin, body("A100-80GB"))
        .await
        .expect(201);
    assert_eq!(grant.body["source"], "contract");
    assert_eq!(grant.body["funded_by"], Value::Null);
    assert_eq!(grant.body["slice_seconds"], 500 * 25_200);
    app.post("/v1/grants", &c.lead, body("A100-80GB"))
        .await
        .expect_problem(403, "forbidden");
    let bad = app
        .post("/v1/grants", &app.admin, body("V100"))
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        bad.body["errors"]["gpu_model"]
            .as_str()
            .unwrap()
            .contains("H100-80GB"),
        "{}",
        bad.body
    );
    let mut extra = body("A100-80GB");
    extra["price"] = json!(3);
    app.post("/v1/grants", &app.admin, extra)
        .await
        .expect_problem(400, "bad_request");
    let listed = app
        .get(&format!("/v1/projects/{}/grants", c.project), &c.lead)
        .await
        .expect(200);
    assert_eq!(listed.body["items"][0]["reference"], "PO-2026-17");
}

async fn calls_are_validated_and_only_drafts_change_freely(backend: Backend) {
    let c = Committee::new(backend).await;
    let app = &c.app;
    let mut body = c.call_body(100);
    body["closes_at"] = body["opens_at"].clone();
    body["gpu_model"] = json!("V100");
    let bad = app
        .post("/v1/calls", &c.allocator, body)
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        bad.body["errors"]["closes_at"].is_string() && bad.body["errors"]["gpu_model"].is_string(),
        "{}",
        bad.body
    );
    let mut body = c.call_body(100);
    body["organization_id"] = json!(c.lab);
    app.post("/v1/calls", &app.admin, body.clone())
        .await
        .expect_problem(400, "validation_failed");
    let lab_admin = app
        .token(&format!("/v1/organizations/{}", c.lab), "admin")
        .await;
    app.post("/v1/calls", &lab_admin, c.call_body(100))
        .await
        .expect_problem(404, "not_found");
    let call = c.call(100, false).await;
    let path = format!("/v1/calls/{call}");
    let draft = app
        .patch(
            &path,
            &c.allocator,
            json!({"title": "GENCI 2026 B", "gpu_model": "H200-141GB"}),
        )
        .await
        .expect(200);
    assert_eq!(draft.body["gpu_model"], "H200-141GB");
    app.post(&format!("{path}/open"), &c.allocator, json!({}))
        .await
        .expect(200);
    app.patch(&path, &c.allocator, json!({"title": "Renamed"}))
        .await
        .expect_problem(409, "conflict");
    app.patch(&path, &c.allocator, json!({"pool_gpu_hours": 50}))
        .await
        .expect_problem(409, "conflict");
    let stale = draft.header("etag").unwrap();
    app.request(
        reqwest::Method::PATCH,
        &path,
        Some(&c.allocator),
        Some(json!({"pool_gpu_hours": 200})),
        &[("If-Match", &stale)],
    )
    .await
    .expect_problem(412, "precondition_failed");
    let raised = app
        .patch(&path, &c.allocator, json!({"pool_gpu_hours": 200}))
        .await
        .expect(200);
    assert_eq!(raised.body["pool_gpu_hours"], 200.0);
    app.post(&format!("{path}/open"), &c.allocator, json!({}))
        .await
        .expect_problem(409, "conflict");
}
