//! Tenant isolation: every route answers 404 (never 403, never data) for another
//! organisation's ids; listings and the audit log show only the caller's tenant; bad ids
//! in paths are 404 when well-formed and 400 when not, never 500.

use crate::helpers::{Backend, Resp, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use serde_json::{Value, json};

/// Words that identify tenant B and must never appear in an answer to tenant A.
const B_SECRETS: [&str; 5] = [
    "bravo-corp",
    "Bravo Hidden Corp",
    "bravo-hidden-proj",
    "Bravo Hidden Project",
    "person@bravo.example",
];

/// Two tenants: A (two projects, an org admin, a project lead and a project member token)
/// and B (one project, a member, tokens).
struct World {
    app: TestApp,
    a: String,
    a1: String,
    a2: String,
    b: String,
    b1: String,
    a_admin: String,
    a_lead: String,
    a_member: String,
    a_user: String,
    a_org_token: String,
    a_proj_token: String,
    b_user: String,
    b_org_token: String,
    b_proj_token: String,
}

async fn add_member(app: &TestApp, scope: &str, subject: &str, email: &str) -> String {
    app.post(
        &format!("{scope}/members"),
        &app.admin,
        json!({"issuer": "https://idp.example", "subject": subject, "email": email, "role": "member"}),
    )
    .await
    .expect(201)
    .body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn token_id(app: &TestApp, scope: &str, role: &str) -> String {
    let res = app
        .post(
            &format!("{scope}/tokens"),
            &app.admin,
            json!({"name": "automation", "role": role}),
        )
        .await
        .expect(201);
    res.body["token"]["id"].as_str().unwrap().to_owned()
}

impl World {
    async fn build(backend: Backend) -> Self {
        let app = TestApp::spawn(backend).await;
        let a = app.create_org("alpha-lab", "academic").await;
        let a1 = app.create_project(&a, "alpha-one").await;
        let a2 = app.create_project(&a, "alpha-two").await;
        let b = app
            .post(
                "/v1/organizations",
                &app.admin,
                json!({"slug": "bravo-corp", "name": "Bravo Hidden Corp", "kind": "industry"}),
            )
            .await
            .expect(201)
            .id();
        let b1 = app
            .post(
                &format!("/v1/organizations/{b}/projects"),
                &app.admin,
                json!({"slug": "bravo-hidden-proj", "name": "Bravo Hidden Project"}),
            )
            .await
            .expect(201)
            .id();
        let a_admin = app.token(&format!("/v1/organizations/{a}"), "admin").await;
        let a_lead = app.token(&format!("/v1/projects/{a1}"), "lead").await;
        let a_member = app.token(&format!("/v1/projects/{a1}"), "member").await;
        let a_user = add_member(
            &app,
            &format!("/v1/organizations/{a}"),
            "alpha-person",
            "person@alpha.example",
        )
        .await;
        add_member(
            &app,
            &format!("/v1/projects/{a1}"),
            "alpha-person",
            "person@alpha.example",
        )
        .await;
        let a_org_token = token_id(&app, &format!("/v1/organizations/{a}"), "member").await;
        let a_proj_token = token_id(&app, &format!("/v1/projects/{a1}"), "viewer").await;
        let b_user = add_member(
            &app,
            &format!("/v1/organizations/{b}"),
            "bravo-person",
            "person@bravo.example",
        )
        .await;
        add_member(
            &app,
            &format!("/v1/projects/{b1}"),
            "bravo-person",
            "person@bravo.example",
        )
        .await;
        let b_org_token = token_id(&app, &format!("/v1/organizations/{b}"), "admin").await;
        let b_proj_token = token_id(&app, &format!("/v1/projects/{b1}"), "lead").await;
        Self {
            app,
            a,
            a1,
            a2,
            b,
            b1,
            a_admin,
            a_lead,
            a_member,
            a_user,
            a_org_token,
            a_proj_token,
            b_user,
            b_org_token,
            b_proj_token,
        }
    }

    /// The ids of B that must never show up in A's answers (besides the echoed path).
    fn b_ids(&self) -> [&str; 5] {
        [
            &self.b,
            &self.b1,
            &self.b_user,
            &self.b_org_token,
            &self.b_proj_token,
        ]
    }
}

/// Every route of the API that takes ids, with a body that would succeed for an
/// authorised caller: `{org}`, `{project}`, `{user}`, `{org_token}`, `{project_token}` are
/// replaced by the caller of `routes`.
fn routes(
    org: &str,
    project: &str,
    user: &str,
    org_token: &str,
    project_token: &str,
) -> Vec<(Method, String, Option<Value>)> {
    let member = json!({"issuer": "https://idp.example", "subject": "intruder", "role": "member"});
    let token = json!({"name": "intruder", "role": "member"});
    vec![
        (Method::GET, format!("/v1/organizations/{org}"), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{org}"),
            Some(json!({"name": "Owned"})),
        ),
        (Method::DELETE, format!("/v1/organizations/{org}"), None),
        (
            Method::GET,
            format!("/v1/organizations/{org}/projects"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{org}/projects"),
            Some(json!({"slug": "intruder", "name": "Intruder"})),
        ),
        (Method::GET, format!("/v1/projects/{project}"), None),
        (
            Method::PATCH,
            format!("/v1/projects/{project}"),
            Some(json!({"name": "Owned"})),
        ),
        (Method::DELETE, format!("/v1/projects/{project}"), None),
        (
            Method::GET,
            format!("/v1/organizations/{org}/members"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/organizations/{org}/members"),
            Some(member.clone()),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{org}/members/{user}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{org}/members/{user}"),
            None,
        ),
        (Method::GET, format!("/v1/projects/{project}/members"), None),
        (
            Method::POST,
            format!("/v1/projects/{project}/members"),
            Some(member),
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{project}/members/{user}"),
            Some(json!({"role": "lead"})),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{project}/members/{user}"),
            None,
        ),
        (Method::GET, format!("/v1/organizations/{org}/tokens"), None),
        (
            Method::POST,
            format!("/v1/organizations/{org}/tokens"),
            Some(token.clone()),
        ),
        (
            Method::DELETE,
            format!("/v1/organizations/{org}/tokens/{org_token}"),
            None,
        ),
        (Method::GET, format!("/v1/projects/{project}/tokens"), None),
        (
            Method::POST,
            format!("/v1/projects/{project}/tokens"),
            Some(token),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{project}/tokens/{project_token}"),
            None,
        ),
    ]
}

#[track_caller]
fn assert_hidden(res: Resp, what: &str, b_ids: &[&str]) {
    assert_eq!(
        res.status, 404,
        "{what}: expected 404, got {} {}",
        res.status, res.body
    );
    let res = res.expect_problem(404, "not_found");
    let text = res.body.to_string();
    for secret in B_SECRETS {
        assert!(
            !text.contains(secret),
            "{what}: answer names {secret:?}: {text}"
        );
    }
    // Ids may only appear in `instance`, the path the caller sent itself.
    let mut without_instance = res.body.clone();
    without_instance.as_object_mut().unwrap().remove("instance");
    let text = without_instance.to_string();
    for id in b_ids {
        assert!(!text.contains(id), "{what}: answer mentions {id}: {text}");
    }
}

async fn another_tenants_ids_answer_404_on_every_route_and_change_nothing(backend: Backend) {
    let w = World::build(backend).await;
    let app = &w.app;
    // The tokens work: their own tenant answers.
    app.get(&format!("/v1/organizations/{}", w.a), &w.a_admin)
        .await
        .expect(200);
    app.get(&format!("/v1/projects/{}", w.a1), &w.a_lead)
        .await
        .expect(200);
    app.get(&format!("/v1/projects/{}", w.a1), &w.a_member)
        .await
        .expect(200);
    let b_audit_before = app
        .get(
            &format!("/v1/audit-events?organization_id={}&limit=200", w.b),
            &app.admin,
        )
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    assert!(b_audit_before > 0);

    let b_ids = w.b_ids();
    let tokens = [
        ("org admin of A", &w.a_admin),
        ("lead of A1", &w.a_lead),
        ("member of A1", &w.a_member),
    ];
    // B's ids everywhere.
    for (who, token) in tokens {
        for (method, path, body) in routes(&w.b, &w.b1, &w.b_user, &w.b_org_token, &w.b_proj_token)
        {
            let res = app
                .request(method.clone(), &path, Some(token), body, &[])
                .await;
            assert_hidden(res, &format!("{who}: {method} {path}"), &b_ids);
        }
    }
    // A's own scopes with B's users and tokens inside them.
    for (who, token) in tokens {
        for (method, path, body) in [
            (
                Method::PATCH,
                format!("/v1/organizations/{}/members/{}", w.a, w.b_user),
                Some(json!({"role": "admin"})),
            ),
            (
                Method::DELETE,
                format!("/v1/organizations/{}/members/{}", w.a, w.b_user),
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/projects/{}/members/{}", w.a1, w.b_user),
                Some(json!({"role": "lead"})),
            ),
            (
                Method::DELETE,
                format!("/v1/projects/{}/members/{}", w.a1, w.b_user),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/organizations/{}/tokens/{}", w.a, w.b_org_token),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/organizations/{}/tokens/{}", w.a, w.b_proj_token),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/projects/{}/tokens/{}", w.a1, w.b_proj_token),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/projects/{}/tokens/{}", w.a1, w.b_org_token),
                None,
            ),
            // A's project under B's organisation, B's project's tokens under A's project.
            (
                Method::DELETE,
                format!("/v1/organizations/{}/tokens/{}", w.b, w.a_org_token),
                None,
            ),
            (
                Method::DELETE,
                format!("/v1/projects/{}/tokens/{}", w.b1, w.a_proj_token),
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/organizations/{}/members/{}", w.b, w.a_user),
                Some(json!({"role": "admin"})),
            ),
        ] {
            let res = app
                .request(method.clone(), &path, Some(token), body, &[])
                .await;
            assert_hidden(res, &format!("{who}: {method} {path}"), &b_ids);
        }
    }
    // Audit filters naming B give nothing (not B's events).
    for query in [
        format!("organization_id={}", w.b),
        format!("project_id={}", w.b1),
        format!("target_id={}", w.b),
        format!("target_id={}", w.b_user),
    ] {
        let res = app
            .get(&format!("/v1/audit-events?{query}"), &w.a_admin)
            .await
            .expect(200);
        assert_eq!(res.body["items"], json!([]), "{query}: {}", res.body);
    }

    // B is exactly as before.
    let org = app
        .get(&format!("/v1/organizations/{}", w.b), &app.admin)
        .await
        .expect(200);
    assert_eq!(org.body["name"], "Bravo Hidden Corp");
    let project = app
        .get(&format!("/v1/projects/{}", w.b1), &app.admin)
        .await
        .expect(200);
    assert_eq!(project.body["name"], "Bravo Hidden Project");
    let projects = app
        .get(&format!("/v1/organizations/{}/projects", w.b), &app.admin)
        .await
        .expect(200);
    assert_eq!(
        projects.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        projects.body
    );
    for scope in [
        format!("/v1/organizations/{}", w.b),
        format!("/v1/projects/{}", w.b1),
    ] {
        let members = app
            .get(&format!("{scope}/members"), &app.admin)
            .await
            .expect(200);
        let items = members.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{scope}: {items:?}");
        assert_eq!(items[0]["user"]["id"], w.b_user.as_str());
        assert_eq!(items[0]["role"], "member");
        let tokens = app
            .get(&format!("{scope}/tokens"), &app.admin)
            .await
            .expect(200);
        let items = tokens.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{scope}: {items:?}");
        assert!(items[0]["revoked_at"].is_null(), "{scope}: {items:?}");
    }
    let b_audit_after = app
        .get(
            &format!("/v1/audit-events?organization_id={}&limit=200", w.b),
            &app.admin,
        )
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        b_audit_after, b_audit_before,
        "no mutation of B was audited"
    );
    // A's own objects named in the mixed probes are untouched too.
    let a_tokens = app
        .get(&format!("/v1/organizations/{}/tokens", w.a), &app.admin)
        .await
        .expect(200);
    assert!(
        a_tokens.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["revoked_at"].is_null()),
        "{}",
        a_tokens.body
    );
}

async fn listings_and_the_audit_log_show_only_the_callers_tenant(backend: Backend) {
    let w = World::build(backend).await;
    let app = &w.app;
    for (who, token) in [
        ("org admin", &w.a_admin),
        ("lead", &w.a_lead),
        ("member", &w.a_member),
    ] {
        let orgs = app.get("/v1/organizations", token).await.expect(200);
        let ids: Vec<&str> = orgs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [w.a.as_str()], "{who}: {}", orgs.body);
    }
    // The platform admin sees both, so the filter above is what hid B.
    let all = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        all.body
    );

    // Lists inside A name nothing of B.
    for path in [
        format!("/v1/organizations/{}/projects", w.a),
        format!("/v1/organizations/{}/members", w.a),
        format!("/v1/organizations/{}/tokens", w.a),
        format!("/v1/projects/{}/members", w.a1),
        format!("/v1/projects/{}/tokens", w.a1),
    ] {
        let res = app.get(&path, &w.a_admin).await.expect(200);
        let text = res.body.to_string();
        assert!(
            !res.body["items"].as_array().unwrap().is_empty(),
            "{path}: {text}"
        );
        for needle in B_SECRETS.iter().copied().chain(w.b_ids()) {
            assert!(!text.contains(needle), "{path} mentions {needle}: {text}");
        }
    }

    // The audit log of A's org admin: only A's events, and all of them.
    let res = app
        .get("/v1/audit-events?limit=200", &w.a_admin)
        .await
        .expect(200);
    let items = res.body["items"].as_array().unwrap();
    assert!(items.len() >= 8, "A's creations are there: {items:?}");
    assert!(res.body["next_cursor"].is_null());
    for event in items {
        assert_eq!(event["organization_id"], w.a.as_str(), "{event}");
    }
    let text = res.body.to_string();
    for needle in B_SECRETS.iter().copied().chain(w.b_ids()) {
        assert!(
            !text.contains(needle),
            "A's audit log mentions {needle}: {text}"
        );
    }
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"project.create")
            && actions.contains(&"member.add")
            && actions.contains(&"token.create"),
        "{actions:?}"
    );
    // Paging through A's log one event at a time shows the same events.
    let mut cursor: Option<String> = None;
    let mut paged = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit-events?limit=1&cursor={c}"),
            None => "/v1/audit-events?limit=1".to_owned(),
        };
        let page = app.get(&path, &w.a_admin).await.expect(200);
        for event in page.body["items"].as_array().unwrap() {
            assert_eq!(event["organization_id"], w.a.as_str(), "{event}");
            paged += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(paged <= items.len(), "paging runs past A's events");
    }
    assert_eq!(paged, items.len());
    // The platform admin does see B's events: they exist, they were filtered.
    let b_events = app
        .get(
            &format!("/v1/audit-events?organization_id={}", w.b),
            &app.admin,
        )
        .await
        .expect(200);
    assert!(!b_events.body["items"].as_array().unwrap().is_empty());
    // Project-level tokens may not read the audit log at all.
    app.get("/v1/audit-events", &w.a_lead)
        .await
        .expect_problem(403, "forbidden");
    app.get("/v1/audit-events", &w.a_member)
        .await
        .expect_problem(403, "forbidden");
}

async fn a_project_member_sees_its_project_but_may_not_change_it_nor_see_another(backend: Backend) {
    let w = World::build(backend).await;
    let app = &w.app;
    let (a1, a2) = (&w.a1, &w.a2);
    let seen = app
        .get(&format!("/v1/projects/{a1}"), &w.a_member)
        .await
        .expect(200);
    assert_eq!(seen.body["slug"], "alpha-one");
    app.patch(
        &format!("/v1/projects/{a1}"),
        &w.a_member,
        json!({"name": "Renamed"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.delete(&format!("/v1/projects/{a1}"), &w.a_member)
        .await
        .expect_problem(403, "forbidden");
    app.post(
        &format!("/v1/projects/{a1}/tokens"),
        &w.a_member,
        json!({"name": "mine", "role": "lead"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.post(
        &format!("/v1/projects/{a1}/members"),
        &w.a_member,
        json!({"issuer": "https://idp.example", "subject": "friend", "role": "lead"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.patch(
        &format!("/v1/projects/{a1}/members/{}", w.a_user),
        &w.a_member,
        json!({"role": "lead"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.delete(
        &format!("/v1/projects/{a1}/tokens/{}", w.a_proj_token),
        &w.a_member,
    )
    .await
    .expect_problem(403, "forbidden");
    // It sees its organisation but may not change it.
    app.get(&format!("/v1/organizations/{}", w.a), &w.a_member)
        .await
        .expect(200);
    app.patch(
        &format!("/v1/organizations/{}", w.a),
        &w.a_member,
        json!({"name": "Owned"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.delete(&format!("/v1/organizations/{}", w.a), &w.a_member)
        .await
        .expect_problem(403, "forbidden");
    app.post(
        &format!("/v1/organizations/{}/projects", w.a),
        &w.a_member,
        json!({"slug": "mine", "name": "Mine"}),
    )
    .await
    .expect_problem(403, "forbidden");
    // Nothing changed.
    let after = app
        .get(&format!("/v1/projects/{a1}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(after.body["name"], "alpha-one");
    let org = app
        .get(&format!("/v1/organizations/{}", w.a), &app.admin)
        .await
        .expect(200);
    assert_eq!(org.body["name"], "alpha-lab");

    // The sibling project of the same organisation: invisible to project-scoped tokens.
    for (who, token) in [("member", &w.a_member), ("lead", &w.a_lead)] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/projects/{a2}"), None),
            (
                Method::PATCH,
                format!("/v1/projects/{a2}"),
                Some(json!({"name": "Owned"})),
            ),
            (Method::DELETE, format!("/v1/projects/{a2}"), None),
            (Method::GET, format!("/v1/projects/{a2}/members"), None),
            (Method::GET, format!("/v1/projects/{a2}/tokens"), None),
            (
                Method::POST,
                format!("/v1/projects/{a2}/tokens"),
                Some(json!({"name": "x", "role": "member"})),
            ),
        ] {
            let res = app
                .request(method.clone(), &path, Some(token), body, &[])
                .await;
            assert_eq!(res.status, 404, "{who}: {method} {path}: {}", res.body);
            let res = res.expect_problem(404, "not_found");
            assert!(!res.body.to_string().contains("alpha-two"), "{}", res.body);
        }
        let listed = app
            .get(&format!("/v1/organizations/{}/projects", w.a), token)
            .await
            .expect(200);
        let slugs: Vec<&str> = listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["alpha-one"], "{who}");
    }
    // The org admin sees both.
    app.get(&format!("/v1/projects/{a2}"), &w.a_admin)
        .await
        .expect(200);
    // The lead manages its own project.
    app.patch(
        &format!("/v1/projects/{a1}"),
        &w.a_lead,
        json!({"name": "Alpha One"}),
    )
    .await
    .expect(200);
}

async fn nonexistent_ids_answer_404_and_malformed_ids_answer_400(backend: Backend) {
    let w = World::build(backend).await;
    let app = &w.app;
    let ghost = || uuid::Uuid::new_v4().to_string();
    let nil = uuid::Uuid::nil().to_string();
    // Unknown ids in every position, alone or inside real scopes; for the platform admin
    // (who sees everything, so 404 means "does not exist") and for A's org admin.
    let variants = [
        routes(&ghost(), &ghost(), &ghost(), &ghost(), &ghost()),
        routes(&nil, &nil, &nil, &nil, &nil),
        routes(&w.a, &w.a1, &ghost(), &ghost(), &ghost()),
    ];
    for (i, variant) in variants.into_iter().enumerate() {
        for (method, path, body) in variant {
            // In the third variant the org and project exist: skip the routes that
            // need no sub-id (they would succeed).
            if i == 2 && !(path.contains("/members/") || path.contains("/tokens/")) {
                continue;
            }
            for (who, token) in [
                ("platform admin", &app.admin),
                ("org admin of A", &w.a_admin),
            ] {
                let res = app
                    .request(method.clone(), &path, Some(token), body.clone(), &[])
                    .await;
                assert_eq!(res.status, 404, "{who}: {method} {path}: {}", res.body);
                res.expect_problem(404, "not_found");
            }
        }
    }

    let long = "1".repeat(1000);
    let malformed = [
        "not-a-uuid",
        "123",
        "00000000-0000-0000-0000-00000000000g",
        "00000000-0000-0000-0000-0000000000000",
        "%27%20OR%20%271%27=%271",
        "%00",
        "%F0%9F%98%80",
        long.as_str(),
    ];
    for bad in malformed {
        let variants = [
            routes(bad, bad, &w.a_user, &w.a_org_token, &w.a_proj_token),
            routes(&w.a, &w.a1, bad, bad, bad),
        ];
        for (i, variant) in variants.into_iter().enumerate() {
            for (method, path, body) in variant {
                if i == 1 && !(path.contains("/members/") || path.contains("/tokens/")) {
                    continue;
                }
                let res = app
                    .request(method.clone(), &path, Some(&app.admin), body, &[])
                    .await;
                let shown = &path[..path.len().min(120)];
                assert_eq!(res.status, 400, "{method} {shown}: {}", res.body);
                let res = res.expect_problem(400, "validation_failed");
                assert!(
                    res.body["errors"]
                        .as_object()
                        .is_some_and(|e| e.contains_key("path")),
                    "{}",
                    res.body
                );
            }
        }
    }
    // Audit filters with malformed ids are 400 as well.
    for query in ["organization_id=nope", "project_id=123", "since=yesterday"] {
        let res = app
            .get(&format!("/v1/audit-events?{query}"), &app.admin)
            .await;
        assert_eq!(res.status, 400, "{query}: {}", res.body);
        res.expect_problem(400, "validation_failed");
    }
    // Nothing was created or deleted by any of this.
    let orgs = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 2);
    let projects = app
        .get(&format!("/v1/organizations/{}/projects", w.a), &app.admin)
        .await
        .expect(200);
    assert_eq!(projects.body["items"].as_array().unwrap().len(), 2);
}

on_both_databases!(
    another_tenants_ids_answer_404_on_every_route_and_change_nothing,
    listings_and_the_audit_log_show_only_the_callers_tenant,
    a_project_member_sees_its_project_but_may_not_change_it_nor_see_another,
    nonexistent_ids_answer_404_and_malformed_ids_answer_400,
);
