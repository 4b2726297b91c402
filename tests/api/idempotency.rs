//! Integration tests: `Idempotency-Key` on creates, and concurrent writers.

use crate::helpers::*;
use crate::on_both_databases;
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    the_same_key_and_body_replay_the_first_answer,
    the_same_key_with_another_body_is_refused_with_422,
    keys_are_scoped_to_the_caller,
    a_replayed_token_creation_never_shows_the_secret_again,
    concurrent_creates_all_succeed_and_keep_the_audit_chain_intact,
);

async fn create_with_key(app: &TestApp, token: &str, key: &str, slug: &str) -> Resp {
    app.request(
        Method::POST,
        "/v1/organizations",
        Some(token),
        Some(json!({"slug": slug, "name": slug, "kind": "startup"})),
        &[("idempotency-key", key)],
    )
    .await
}

async fn the_same_key_and_body_replay_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = create_with_key(&app, &app.admin, "k-1", "acme")
        .await
        .expect(201);
    let again = create_with_key(&app, &app.admin, "k-1", "acme")
        .await
        .expect(201);
    assert_eq!(first.body, again.body);
    let list = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "created once"
    );
}

async fn the_same_key_with_another_body_is_refused_with_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_with_key(&app, &app.admin, "k-1", "acme")
        .await
        .expect(201);
    create_with_key(&app, &app.admin, "k-1", "other")
        .await
        .expect_problem(422, "idempotency_key_reused");
    // The refused request created nothing.
    let list = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

async fn keys_are_scoped_to_the_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let lead_a = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    let lead_b = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    for (token, slug) in [(&lead_a, "p-a"), (&lead_b, "p-b")] {
        app.request(
            Method::POST,
            &format!("/v1/organizations/{org}/projects"),
            Some(token),
            Some(json!({"slug": slug, "name": slug})),
            &[("idempotency-key", "same-key")],
        )
        .await
        .expect(201);
    }
    let list = app
        .get(&format!("/v1/organizations/{org}/projects"), &app.admin)
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
}

async fn a_replayed_token_creation_never_shows_the_secret_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let path = format!("/v1/organizations/{org}/tokens");
    let body = json!({"name": "ci", "role": "member"});
    let first = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(body.clone()),
            &[("idempotency-key", "t")],
        )
        .await
        .expect(201);
    assert!(first.body["secret"].as_str().unwrap().starts_with("aion_"));
    let again = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(body),
            &[("idempotency-key", "t")],
        )
        .await
        .expect(201);
    assert!(again.body["secret"].is_null());
    assert_eq!(first.body["token"]["id"], again.body["token"]["id"]);
}

async fn concurrent_creates_all_succeed_and_keep_the_audit_chain_intact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = app.client.clone();
        let url = format!("{}/v1/organizations", app.base);
        let token = app.admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"slug": format!("org-{i}"), "name": "Org", "kind": "startup"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    aion_services::audit_chain::seal_pending(&app.services.db)
        .await
        .unwrap();
    let report = aion_services::audit::verify(&app.services.db)
        .await
        .unwrap();
    assert_eq!(report.first_bad_seq, None, "{report:?}");
    assert!(report.events >= 12);
}
