//! Integration tests: the audit log records every mutation, is filterable, scoped to the
//! reader, and its hash chain detects tampering (`aion audit verify`).

use crate::helpers::*;
use crate::on_both_databases;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::json;

on_both_databases!(
    every_mutation_is_audited_with_actor_and_request_id,
    organisation_admins_read_only_their_organisations_events,
    the_audit_chain_verifies_and_detects_tampering,
);

async fn every_mutation_is_audited_with_actor_and_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .request(
            Method::POST,
            "/v1/organizations",
            Some(&app.admin),
            Some(json!({"slug": "lab", "name": "Lab", "kind": "academic"})),
            &[],
        )
        .await
        .expect(201);
    let org = res.id();
    let request_id = res.header("x-request-id").unwrap();
    let project = app.create_project(&org, "climate").await;
    app.patch(
        &format!("/v1/projects/{project}"),
        &app.admin,
        json!({"name": "Climate 2"}),
    )
    .await
    .expect(200);
    app.delete(&format!("/v1/projects/{project}"), &app.admin)
        .await
        .expect(204);
    let events = app
        .get(
            &format!("/v1/audit-events?organization_id={org}"),
            &app.admin,
        )
        .await
        .expect(200);
    let actions: Vec<_> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "project.delete",
            "project.update",
            "project.create",
            "organization.create"
        ],
        "newest first"
    );
    let created = app
        .get("/v1/audit-events?action=organization.create", &app.admin)
        .await
        .expect(200);
    let event = &created.body["items"][0];
    assert_eq!(event["request_id"], request_id.as_str());
    assert!(event["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(event["target_id"], org.as_str());
    // Paging through the log with a cursor.
    let first = app
        .get("/v1/audit-events?limit=2", &app.admin)
        .await
        .expect(200);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/v1/audit-events?limit=2&cursor={cursor}"),
            &app.admin,
        )
        .await
        .expect(200);
    assert!(second.body["items"][0]["seq"].as_i64() < first.body["items"][1]["seq"].as_i64());
}

async fn organisation_admins_read_only_their_organisations_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = app.create_org("mine", "academic").await;
    let theirs = app.create_org("theirs", "academic").await;
    app.create_project(&theirs, "secret-project").await;
    let admin = app
        .token(&format!("/v1/organizations/{mine}"), "admin")
        .await;
    let events = app.get("/v1/audit-events", &admin).await.expect(200);
    let text = events.body.to_string();
    assert!(
        !text.contains(&theirs) && !text.contains("secret-project"),
        "{text}"
    );
    assert!(text.contains(&mine));
    let member = app
        .token(&format!("/v1/organizations/{mine}"), "member")
        .await;
    app.get("/v1/audit-events", &member)
        .await
        .expect_problem(403, "forbidden");
}

async fn the_audit_chain_verifies_and_detects_tampering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    app.create_project(&org, "climate").await;
    let aion = env!("CARGO_BIN_EXE_aion");
    let verify = || {
        std::process::Command::new(aion)
            .args([
                "audit",
                "verify",
                "--database-url",
                &app.db.url,
                "--data-dir",
            ])
            .arg(app.db.dir.path())
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("audit chain intact"));
    // Someone with database access rewrites history.
    app.services
        .db
        .execute_unprepared("UPDATE audit_events SET details = '{\"slug\":\"forged\"}' WHERE action = 'project.create'")
        .await
        .unwrap();
    let broken = verify();
    assert!(!broken.status.success());
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("does not match its hash"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}
