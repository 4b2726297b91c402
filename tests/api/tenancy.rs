//! Integration tests: organisations and projects — create, read, list with cursors,
//! update with If-Match, delete.

use crate::helpers::*;
use crate::on_both_databases;
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    organisations_are_created_read_updated_and_deleted,
    lists_are_paginated_with_cursors_until_the_last_page,
    an_update_with_a_stale_if_match_is_refused,
    projects_live_in_an_organisation_which_cannot_be_deleted_while_it_has_some,
    duplicate_slugs_are_conflicts,
    only_platform_admins_create_organisations,
);

async fn organisations_are_created_read_updated_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post(
            "/v1/organizations",
            &app.admin,
            json!({"slug": "lab-one", "name": "  Lab One ", "kind": "academic", "country": "de"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["name"], "Lab One");
    assert_eq!(created.body["country"], "DE");
    let id = created.id();
    let read = app
        .get(&format!("/v1/organizations/{id}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(read.body["slug"], "lab-one");
    assert!(read.header("etag").is_some());
    let updated = app
        .patch(
            &format!("/v1/organizations/{id}"),
            &app.admin,
            json!({"name": "Lab 1"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.body["name"], "Lab 1");
    assert_eq!(updated.body["kind"], "academic");
    app.delete(&format!("/v1/organizations/{id}"), &app.admin)
        .await
        .expect(204);
    app.get(&format!("/v1/organizations/{id}"), &app.admin)
        .await
        .expect_problem(404, "not_found");
}

async fn lists_are_paginated_with_cursors_until_the_last_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.create_org(&format!("org-{i}"), "startup").await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/organizations?limit=2&cursor={c}"),
            None => "/v1/organizations?limit=2".to_owned(),
        };
        let page = app.get(&path, &app.admin).await.expect(200);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every organisation once, in creation order");
}

async fn an_update_with_a_stale_if_match_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "proj").await;
    for path in [
        format!("/v1/organizations/{org}"),
        format!("/v1/projects/{project}"),
    ] {
        let etag = app
            .get(&path, &app.admin)
            .await
            .expect(200)
            .header("etag")
            .unwrap();
        app.clock.advance(chrono::Duration::seconds(1));
        let first = app
            .request(
                Method::PATCH,
                &path,
                Some(&app.admin),
                Some(json!({"name": "First"})),
                &[("if-match", &etag)],
            )
            .await
            .expect(200);
        assert_ne!(first.header("etag").unwrap(), etag);
        // A second writer still holding the old version loses.
        app.request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"name": "Second"})),
            &[("if-match", &etag)],
        )
        .await
        .expect_problem(412, "precondition_failed");
        assert_eq!(app.get(&path, &app.admin).await.body["name"], "First");
    }
}

async fn projects_live_in_an_organisation_which_cannot_be_deleted_while_it_has_some(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let res = app
        .post(
            &format!("/v1/organizations/{org}/projects"),
            &app.admin,
            json!({"slug": "climate", "name": "Climate", "description": "Downscaling"}),
        )
        .await
        .expect(201);
    assert_eq!(res.body["organization_id"], org.as_str());
    let project = res.id();
    let list = app
        .get(&format!("/v1/organizations/{org}/projects"), &app.admin)
        .await
        .expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.patch(
        &format!("/v1/projects/{project}"),
        &app.admin,
        json!({"description": "New"}),
    )
    .await
    .expect(200);
    app.delete(&format!("/v1/organizations/{org}"), &app.admin)
        .await
        .expect_problem(409, "conflict");
    app.delete(&format!("/v1/projects/{project}"), &app.admin)
        .await
        .expect(204);
    app.delete(&format!("/v1/organizations/{org}"), &app.admin)
        .await
        .expect(204);
}

async fn duplicate_slugs_are_conflicts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    app.post(
        "/v1/organizations",
        &app.admin,
        json!({"slug": "lab", "name": "Other", "kind": "public"}),
    )
    .await
    .expect_problem(409, "conflict");
    app.create_project(&org, "pp").await;
    app.post(
        &format!("/v1/organizations/{org}/projects"),
        &app.admin,
        json!({"slug": "pp", "name": "Again"}),
    )
    .await
    .expect_problem(409, "conflict");
    // The same project slug in another organisation is fine.
    let other = app.create_org("other", "academic").await;
    app.create_project(&other, "pp").await;
}

async fn only_platform_admins_create_organisations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let org_admin = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    app.post(
        "/v1/organizations",
        &org_admin,
        json!({"slug": "mine", "name": "Mine", "kind": "startup"}),
    )
    .await
    .expect_problem(403, "forbidden");
    // An organisation admin may rename its organisation but not change its kind.
    app.patch(
        &format!("/v1/organizations/{org}"),
        &org_admin,
        json!({"name": "Renamed"}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/v1/organizations/{org}"),
        &org_admin,
        json!({"kind": "allocator"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.delete(&format!("/v1/organizations/{org}"), &org_admin)
        .await
        .expect_problem(403, "forbidden");
}
