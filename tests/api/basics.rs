//! Integration tests: health, readiness, migrations gate, bootstrap, errors, OpenAPI.

use crate::helpers::*;
use crate::on_both_databases;
use aion::startup::{Application, Mode};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    health_and_readiness_answer_on_a_migrated_database,
    serve_refuses_a_database_with_pending_migrations_unless_told_to_migrate,
    readiness_reports_pending_migrations,
    the_bootstrap_token_is_created_once_with_owner_only_permissions,
    malformed_requests_get_4xx_problems_never_500,
    the_openapi_document_covers_every_route_and_the_reference_page_is_served,
);

async fn health_and_readiness_answer_on_a_migrated_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app
        .request(Method::GET, "/healthz", None, None, &[])
        .await
        .expect(200);
    assert_eq!(health.body["status"], "ok");
    assert!(health.header("x-request-id").is_some());
    let ready = app
        .request(Method::GET, "/readyz", None, None, &[])
        .await
        .expect(200);
    assert_eq!(ready.body["status"], "ready");
}

async fn serve_refuses_a_database_with_pending_migrations_unless_told_to_migrate(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let mut config = db.config();
    config.migrate = false;
    let err = Application::build(&config, Mode::Serve)
        .await
        .err()
        .expect("must refuse");
    assert!(format!("{err:#}").contains("aion migrate"), "{err:#}");
    config.migrate = true;
    let app = Application::build(&config, Mode::Serve).await.unwrap();
    assert!(app.bootstrap_token.is_some());
}

async fn readiness_reports_pending_migrations(backend: Backend) {
    use migration::MigratorTrait;
    let app = TestApp::spawn(backend).await;
    // Roll the last migration back under the running server.
    migration::Migrator::down(&app.services.db, Some(1))
        .await
        .unwrap();
    let res = app.request(Method::GET, "/readyz", None, None, &[]).await;
    let res = res.expect_problem(503, "migrations_pending");
    let last = migration::Migrator::migrations()
        .last()
        .unwrap()
        .name()
        .to_owned();
    assert!(
        res.body["detail"].as_str().unwrap().contains(&last),
        "{}",
        res.body
    );
    assert_eq!(res.header("retry-after").as_deref(), Some("5"));
}

async fn the_bootstrap_token_is_created_once_with_owner_only_permissions(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDatabase::new(backend).await;
    let config = db.config();
    let first = Application::build(&config, Mode::Serve).await.unwrap();
    let token = first.bootstrap_token.clone().unwrap();
    assert!(token.starts_with("aion_"));
    let file = std::fs::read_to_string(&first.admin_token_path).unwrap();
    assert_eq!(file.trim(), token);
    let mode = std::fs::metadata(&first.admin_token_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(first);
    let second = Application::build(&config, Mode::Serve).await.unwrap();
    assert!(
        second.bootstrap_token.is_none(),
        "a restart must not mint another admin token"
    );
    // The token works as platform admin.
    let base = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let me: Value = reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], "token");
    assert_eq!(me["grants"][0]["role"], "platform-admin");
}

async fn malformed_requests_get_4xx_problems_never_500(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = Some(app.admin.as_str());
    // Malformed JSON.
    let raw = app
        .client
        .post(format!("{}/v1/organizations", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"slug\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
    // Unknown field.
    app.post(
        "/v1/organizations",
        &app.admin,
        json!({"slug": "lab", "name": "Lab", "kind": "academic", "colour": "red"}),
    )
    .await
    .expect_problem(400, "bad_request");
    // Bad slug, over-long name, bad kind: every field reported at once.
    let res = app
        .post(
            "/v1/organizations",
            &app.admin,
            json!({"slug": "Not A Slug", "name": "x".repeat(201), "kind": "pirate"}),
        )
        .await
        .expect_problem(400, "validation_failed");
    for field in ["slug", "name", "kind"] {
        assert!(
            res.body["errors"][field].is_string(),
            "{field} missing in {}",
            res.body
        );
    }
    // Bad UUID in the path, bad paging, unknown query parameter.
    app.get("/v1/organizations/not-a-uuid", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    app.get("/v1/organizations?limit=0", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    app.get("/v1/organizations?limit=abc", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    app.get("/v1/organizations?cursor=%%%", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    app.get("/v1/organizations?colour=red", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
    // Unknown route and wrong content type.
    app.get("/v1/nothing-here", &app.admin)
        .await
        .expect_problem(404, "not_found");
    let res = app
        .request(
            Method::POST,
            "/v1/organizations",
            admin,
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    // Bad Idempotency-Key, bad If-Match target.
    let res = app
        .request(
            Method::POST,
            "/v1/organizations",
            admin,
            Some(json!({"slug": "ok", "name": "Ok", "kind": "public"})),
            &[("idempotency-key", "has spaces in it")],
        )
        .await;
    res.expect_problem(400, "validation_failed");
}

async fn the_openapi_document_covers_every_route_and_the_reference_page_is_served(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let doc = app
        .request(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .expect(200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/me", vec!["get"]),
        ("/v1/organizations", vec!["get", "post"]),
        ("/v1/organizations/{id}", vec!["get", "patch", "delete"]),
        ("/v1/organizations/{id}/projects", vec!["get", "post"]),
        ("/v1/projects/{id}", vec!["get", "patch", "delete"]),
        ("/v1/organizations/{id}/members", vec!["get", "post"]),
        (
            "/v1/organizations/{id}/members/{user_id}",
            vec!["patch", "delete"],
        ),
        ("/v1/projects/{id}/members", vec!["get", "post"]),
        (
            "/v1/projects/{id}/members/{user_id}",
            vec!["patch", "delete"],
        ),
        ("/v1/organizations/{id}/tokens", vec!["get", "post"]),
        ("/v1/organizations/{id}/tokens/{token_id}", vec!["delete"]),
        ("/v1/projects/{id}/tokens", vec!["get", "post"]),
        ("/v1/projects/{id}/tokens/{token_id}", vec!["delete"]),
        ("/v1/audit-events", vec!["get"]),
        ("/v1/projects/{id}/leases", vec!["get", "post"]),
        ("/v1/leases/{id}", vec!["get", "delete"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/v1/calls", vec!["get", "post"]),
        ("/v1/calls/{id}", vec!["get", "patch"]),
        ("/v1/calls/{id}/open", vec!["post"]),
        ("/v1/calls/{id}/close", vec!["post"]),
        ("/v1/calls/{id}/requests", vec!["get", "post"]),
        ("/v1/allocation-requests/{id}", vec!["get"]),
        ("/v1/allocation-requests/{id}/withdraw", vec!["post"]),
        ("/v1/allocation-requests/{id}/approve", vec!["post"]),
        ("/v1/allocation-requests/{id}/reject", vec!["post"]),
        ("/v1/grants", vec!["post"]),
        ("/v1/grants/{id}", vec!["get"]),
        ("/v1/projects/{id}/grants", vec!["get"]),
        ("/v1/organizations/{id}/quota", vec!["get", "put"]),
        ("/v1/projects/{id}/quota", vec!["get", "put"]),
        ("/v1/join-tokens", vec!["get", "post"]),
        ("/v1/join-tokens/{id}", vec!["delete"]),
        ("/v1/nodes", vec!["get"]),
        ("/v1/nodes/{id}", vec!["get"]),
        ("/v1/nodes/{id}/cordon", vec!["post"]),
        ("/v1/nodes/{id}/uncordon", vec!["post"]),
        ("/v1/nodes/{id}/drain", vec!["post"]),
        ("/v1/agent/register", vec!["post"]),
        ("/v1/agent/renew", vec!["post"]),
        ("/v1/agent/desired-state", vec!["get"]),
        ("/v1/agent/status", vec!["post"]),
        ("/v1/agent/usage", vec!["post"]),
        ("/v1/agent/events", vec!["post"]),
        ("/v1/projects/{id}/usage", vec!["get"]),
        ("/v1/leases/{id}/usage", vec!["get"]),
        ("/v1/price-lists", vec!["get", "post"]),
        ("/v1/price-lists/{id}", vec!["get", "patch", "delete"]),
        ("/v1/organizations/{id}/price-list", vec!["get"]),
        ("/v1/grants/{id}/ledger", vec!["get"]),
        ("/v1/grants/{id}/adjustments", vec!["post"]),
        ("/v1/organizations/{id}/usage", vec!["get"]),
        ("/v1/carbon-intensities", vec!["get", "post"]),
        ("/v1/organizations/{id}/invoices", vec!["get"]),
        ("/v1/organizations/{id}/invoices/{month}", vec!["get"]),
        (
            "/v1/organizations/{id}/invoices/{month}/finalize",
            vec!["post"],
        ),
        ("/v1/invoices/{id}", vec!["get"]),
        ("/v1/invoices/{id}/credit-notes", vec!["post"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing from OpenAPI"
            );
        }
    }
    assert_eq!(
        paths.len(),
        59,
        "a route was added without a test here: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    let page = app
        .client
        .get(format!("{}/v1/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text().await.unwrap().contains("swagger"),
        "the reference page is served offline"
    );
}

on_both_databases!(the_admin_cli_gives_a_person_a_platform_role);

async fn the_admin_cli_gives_a_person_a_platform_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
        .args([
            "admin",
            "platform-role",
            "--issuer",
            "https://idp.example",
            "--subject",
            "ops-1",
            "--role",
            "auditor",
        ])
        .args(["--database-url", &app.db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = app
        .get("/v1/audit-events?action=platform_role.grant", &app.admin)
        .await
        .expect(200);
    assert_eq!(events.body["items"][0]["details"]["role"], "auditor");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_aion"))
        .args([
            "admin",
            "platform-role",
            "--issuer",
            "https://idp.example",
            "--subject",
            "x",
            "--role",
            "emperor",
        ])
        .args(["--database-url", &app.db.url])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("platform-admin"));
}
