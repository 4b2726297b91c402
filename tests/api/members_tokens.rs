//! Integration tests: members of organisations and projects, and API tokens.

use crate::helpers::*;
use crate::on_both_databases;
use serde_json::json;

on_both_databases!(
    members_are_added_by_identity_listed_changed_and_removed,
    a_project_lead_manages_members_but_a_member_cannot,
    the_allocator_role_needs_an_allocator_organisation_and_a_platform_admin,
    a_project_token_acts_with_its_role_and_stops_working_when_revoked,
    tokens_expire,
    a_token_cannot_be_created_with_a_bad_role_or_expiry,
);

async fn members_are_added_by_identity_listed_changed_and_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let path = format!("/v1/projects/{project}/members");
    let added = app
        .post(&path, &app.admin, json!({"issuer": "https://idp.example", "subject": "u-1", "email": "u1@lab.example", "role": "member"}))
        .await
        .expect(201);
    let user = added.body["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(added.body["user"]["email"], "u1@lab.example");
    // Adding the same person again is a conflict; by user id now.
    app.post(
        &path,
        &app.admin,
        json!({"user_id": user, "role": "viewer"}),
    )
    .await
    .expect_problem(409, "conflict");
    let list = app.get(&path, &app.admin).await.expect(200);
    assert_eq!(list.body["items"][0]["role"], "member");
    let changed = app
        .patch(
            &format!("{path}/{user}"),
            &app.admin,
            json!({"role": "lead"}),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["role"], "lead");
    app.patch(
        &format!("{path}/{user}"),
        &app.admin,
        json!({"role": "owner"}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.delete(&format!("{path}/{user}"), &app.admin)
        .await
        .expect(204);
    app.delete(&format!("{path}/{user}"), &app.admin)
        .await
        .expect_problem(404, "not_found");
    assert!(
        app.get(&path, &app.admin).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Neither a user id nor an identity: a clear validation error.
    app.post(&path, &app.admin, json!({"role": "member"}))
        .await
        .expect_problem(400, "validation_failed");
}

async fn a_project_lead_manages_members_but_a_member_cannot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let scope = format!("/v1/projects/{project}");
    let lead = app.token(&scope, "lead").await;
    let member = app.token(&scope, "member").await;
    let body = json!({"issuer": "https://idp.example", "subject": "new", "role": "viewer"});
    app.post(&format!("{scope}/members"), &lead, body.clone())
        .await
        .expect(201);
    app.post(
        &format!("{scope}/members"),
        &member,
        json!({"issuer": "https://idp.example", "subject": "x", "role": "viewer"}),
    )
    .await
    .expect_problem(403, "forbidden");
    // A member sees the project and its members, but not its tokens.
    app.get(&scope, &member).await.expect(200);
    app.get(&format!("{scope}/members"), &member)
        .await
        .expect(200);
    app.get(&format!("{scope}/tokens"), &member)
        .await
        .expect_problem(403, "forbidden");
    app.patch(&scope, &member, json!({"name": "Mine"}))
        .await
        .expect_problem(403, "forbidden");
    app.patch(&scope, &lead, json!({"name": "Renamed by lead"}))
        .await
        .expect(200);
    // A lead may not delete the project: that is the organisation admin's call.
    app.delete(&scope, &lead)
        .await
        .expect_problem(403, "forbidden");
}

async fn the_allocator_role_needs_an_allocator_organisation_and_a_platform_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let genci = app.create_org("genci", "allocator").await;
    let lab = app.create_org("lab", "academic").await;
    let who = |s: &str| json!({"issuer": "https://idp.example", "subject": s, "role": "allocator"});
    app.post(
        &format!("/v1/organizations/{lab}/members"),
        &app.admin,
        who("a"),
    )
    .await
    .expect_problem(400, "validation_failed");
    let genci_admin = app
        .token(&format!("/v1/organizations/{genci}"), "admin")
        .await;
    app.post(
        &format!("/v1/organizations/{genci}/members"),
        &genci_admin,
        who("b"),
    )
    .await
    .expect_problem(403, "forbidden");
    app.post(
        &format!("/v1/organizations/{genci}/members"),
        &app.admin,
        who("c"),
    )
    .await
    .expect(201);
}

async fn a_project_token_acts_with_its_role_and_stops_working_when_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let created = app
        .post(
            &format!("/v1/projects/{project}/tokens"),
            &app.admin,
            json!({"name": "ci", "role": "viewer"}),
        )
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let token_id = created.body["token"]["id"].as_str().unwrap().to_owned();
    assert!(secret.ends_with(created.body["token"]["hint"].as_str().unwrap()));
    let me = app.get("/v1/me", &secret).await.expect(200);
    assert_eq!(me.body["kind"], "token");
    assert_eq!(me.body["grants"][0]["scope"], "project");
    assert_eq!(me.body["grants"][0]["role"], "viewer");
    app.get(&format!("/v1/projects/{project}"), &secret)
        .await
        .expect(200);
    // The listing never shows secrets, and records the use.
    let list = app
        .get(&format!("/v1/projects/{project}/tokens"), &app.admin)
        .await
        .expect(200);
    let listed = &list.body["items"][0];
    assert!(listed.get("secret").is_none());
    assert!(listed["last_used_at"].is_string());
    assert!(!list.body.to_string().contains(&secret));
    let revoked = app
        .delete(
            &format!("/v1/projects/{project}/tokens/{token_id}"),
            &app.admin,
        )
        .await
        .expect(200);
    assert!(revoked.body["revoked_at"].is_string());
    let res = app
        .get("/v1/me", &secret)
        .await
        .expect_problem(401, "unauthenticated");
    assert_eq!(res.header("www-authenticate").as_deref(), Some("Bearer"));
    // A made-up token with the right prefix is just unknown.
    app.get("/v1/me", "aion_notarealtoken")
        .await
        .expect_problem(401, "unauthenticated");
}

async fn tokens_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let secret = app
        .token(&format!("/v1/organizations/{org}"), "member")
        .await;
    app.get("/v1/me", &secret).await.expect(200);
    app.clock.advance(chrono::Duration::days(91));
    let res = app
        .get("/v1/me", &secret)
        .await
        .expect_problem(401, "unauthenticated");
    assert!(res.body["detail"].as_str().unwrap().contains("expired"));
}

async fn a_token_cannot_be_created_with_a_bad_role_or_expiry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let path = format!("/v1/organizations/{org}/tokens");
    app.post(&path, &app.admin, json!({"name": "x", "role": "lead"}))
        .await
        .expect_problem(400, "validation_failed");
    let past = (app.clock.now() - chrono::Duration::days(1)).to_rfc3339();
    app.post(
        &path,
        &app.admin,
        json!({"name": "x", "role": "member", "expires_at": past}),
    )
    .await
    .expect_problem(400, "validation_failed");
    let far = (app.clock.now() + chrono::Duration::days(400)).to_rfc3339();
    app.post(
        &path,
        &app.admin,
        json!({"name": "x", "role": "member", "expires_at": far}),
    )
    .await
    .expect_problem(400, "validation_failed");
    app.post(&path, &app.admin, json!({"name": "", "role": "member"}))
        .await
        .expect_problem(400, "validation_failed");
    // An organisation member cannot mint tokens.
    let member = app
        .token(&format!("/v1/organizations/{org}"), "member")
        .await;
    app.post(&path, &member, json!({"name": "x", "role": "admin"}))
        .await
        .expect_problem(403, "forbidden");
}

on_both_databases!(an_org_admin_cannot_add_or_probe_users_of_other_organisations_by_id);

async fn an_org_admin_cannot_add_or_probe_users_of_other_organisations_by_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_org("alpha", "academic").await;
    let b = app.create_org("bravo", "academic").await;
    let a_project = app.create_project(&a, "alpha-p").await;
    let stranger = app
        .post(&format!("/v1/organizations/{b}/members"), &app.admin, json!({"issuer": "https://idp.example", "subject": "bravo-person", "email": "person@bravo.example", "role": "member"}))
        .await
        .expect(201);
    let stranger_id = stranger.body["user"]["id"].as_str().unwrap().to_owned();
    let colleague = app
        .post(
            &format!("/v1/organizations/{a}/members"),
            &app.admin,
            json!({"issuer": "https://idp.example", "subject": "alpha-person", "role": "member"}),
        )
        .await
        .expect(201);
    let colleague_id = colleague.body["user"]["id"].as_str().unwrap().to_owned();
    let a_admin = app.token(&format!("/v1/organizations/{a}"), "admin").await;
    let res = app
        .post(
            &format!("/v1/organizations/{a}/members"),
            &a_admin,
            json!({"user_id": stranger_id, "role": "member"}),
        )
        .await
        .expect_problem(404, "not_found");
    assert!(!res.body.to_string().contains("bravo.example"));
    // A colleague already in the organisation can join one of its projects by id.
    app.post(
        &format!("/v1/projects/{a_project}/members"),
        &a_admin,
        json!({"user_id": colleague_id, "role": "member"}),
    )
    .await
    .expect(201);
}
