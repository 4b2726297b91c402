//! Integration tests: quotas of organisations and projects.

use crate::helpers::*;
use crate::on_both_databases;
use serde_json::json;

on_both_databases!(
    quotas_default_by_organisation_kind_until_set,
    platform_admins_set_organisation_quotas_and_org_admins_project_quotas_within_them,
    bad_quotas_are_rejected_with_every_field_named,
);

async fn quotas_default_by_organisation_kind_until_set(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lab = app.create_org("lab", "academic").await;
    let corp = app.create_org("corp", "industry").await;
    let project = app.create_project(&lab, "climate").await;
    let q = app
        .get(&format!("/v1/organizations/{lab}/quota"), &app.admin)
        .await
        .expect(200);
    assert_eq!(q.body["max_gpu_equivalents"], 16.0);
    assert_eq!(q.body["max_compute_slices"], 112);
    assert_eq!(q.body["max_preemptible_compute_slices"], 224);
    assert_eq!(q.body["is_default"], true);
    let q = app
        .get(&format!("/v1/organizations/{corp}/quota"), &app.admin)
        .await
        .expect(200);
    assert_eq!(q.body["max_gpu_equivalents"], 64.0);
    let viewer = app
        .token(&format!("/v1/projects/{project}"), "viewer")
        .await;
    let p = app
        .get(&format!("/v1/projects/{project}/quota"), &viewer)
        .await
        .expect(200);
    assert_eq!(p.body["max_compute_slices"], 112);
    assert_eq!(p.body["is_default"], true);
    app.get(&format!("/v1/organizations/{corp}/quota"), &viewer)
        .await
        .expect_problem(404, "not_found");
}

async fn platform_admins_set_organisation_quotas_and_org_admins_project_quotas_within_them(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let lab = app.create_org("lab", "academic").await;
    let project = app.create_project(&lab, "climate").await;
    let org_admin = app
        .token(&format!("/v1/organizations/{lab}"), "admin")
        .await;
    let org_path = format!("/v1/organizations/{lab}/quota");
    app.request(
        reqwest::Method::PUT,
        &org_path,
        Some(&org_admin),
        Some(json!({"max_compute_slices": 700})),
        &[],
    )
    .await
    .expect_problem(403, "forbidden");
    let set = app
        .request(
            reqwest::Method::PUT,
            &org_path,
            Some(&app.admin),
            Some(json!({"max_compute_slices": 70, "per_site": {"saclay": 35}})),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(set.body["max_gpu_equivalents"], 10.0);
    assert_eq!(set.body["max_preemptible_compute_slices"], 140);
    assert_eq!(set.body["is_default"], false);
    // A stale version is refused.
    app.request(
        reqwest::Method::PUT,
        &org_path,
        Some(&app.admin),
        Some(json!({"max_compute_slices": 7})),
        &[("If-Match", "\"default\"")],
    )
    .await
    .expect_problem(412, "precondition_failed");
    let etag = set.header("etag").unwrap();
    app.request(
        reqwest::Method::PUT,
        &org_path,
        Some(&app.admin),
        Some(json!({"max_compute_slices": 77, "per_site": {"saclay": 35}})),
        &[("If-Match", &etag)],
    )
    .await
    .expect(200);
    let project_path = format!("/v1/projects/{project}/quota");
    let over = app
        .request(
            reqwest::Method::PUT,
            &project_path,
            Some(&org_admin),
            Some(json!({"max_compute_slices": 78, "max_preemptible_compute_slices": 0})),
            &[],
        )
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        over.body["errors"]["max_compute_slices"].is_string(),
        "{}",
        over.body
    );
    app.request(reqwest::Method::PUT, &project_path, Some(&org_admin), Some(json!({"max_compute_slices": 7, "max_preemptible_compute_slices": 0, "per_site": {"saclay": 36}})), &[])
        .await
        .expect_problem(400, "validation_failed");
    let lead = app.token(&format!("/v1/projects/{project}"), "lead").await;
    app.request(
        reqwest::Method::PUT,
        &project_path,
        Some(&lead),
        Some(json!({"max_compute_slices": 7})),
        &[],
    )
    .await
    .expect_problem(403, "forbidden");
    let p = app
        .request(
            reqwest::Method::PUT,
            &project_path,
            Some(&org_admin),
            Some(json!({"max_compute_slices": 21, "per_profile": {"3g.40gb": 2}})),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(p.body["max_gpu_equivalents"], 3.0);
    assert_eq!(p.body["per_profile"]["3g.40gb"], 2);
    let read = app.get(&project_path, &lead).await.expect(200);
    assert_eq!(read.body["max_compute_slices"], 21);
    // What lease admission will read: the project's caps and its organisation's.
    let eff = aion_services::quotas::effective(
        &app.services.db,
        aion_services::ids::ProjectId(project.parse().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            eff.project.max_compute_slices,
            eff.organization.max_compute_slices
        ),
        (21, 77)
    );
}

async fn bad_quotas_are_rejected_with_every_field_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lab = app.create_org("lab", "academic").await;
    let path = format!("/v1/organizations/{lab}/quota");
    let bad = app
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&app.admin),
            Some(json!({"max_compute_slices": -7, "per_profile": {"5g.99gb": 1}, "per_site": {"Bad Site": 7}})),
            &[],
        )
        .await
        .expect_problem(400, "validation_failed");
    let errors = bad.body["errors"].as_object().unwrap();
    for field in [
        "max_compute_slices",
        "per_profile.5g.99gb",
        "per_site.Bad Site",
    ] {
        assert!(
            errors.contains_key(field),
            "{field} missing in {}",
            bad.body
        );
    }
    app.request(
        reqwest::Method::PUT,
        &path,
        Some(&app.admin),
        Some(json!({"max_gpus": 1})),
        &[],
    )
    .await
    .expect_problem(400, "bad_request");
}
