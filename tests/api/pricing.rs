//! Integration tests: price lists (publish, read, withdraw), resolution of the version
//! that prices an organisation, immutability, visibility and validation.

use crate::helpers::*;
use crate::on_both_databases;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    a_platform_admin_publishes_lists_that_everyone_reads_page_by_page,
    a_contract_list_wins_over_the_kind_list_and_successors_take_over_at_their_date,
    versions_in_effect_are_never_changed_and_future_ones_can_be_withdrawn,
    a_contract_list_is_hidden_from_other_tenants_and_plain_members,
    bad_price_lists_are_refused_with_a_problem_per_field,
    an_idempotent_retry_publishes_one_list,
);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A kind-wide list body with one H100-80GB price.
fn kind_list(kind: &str, from: DateTime<Utc>, price: &str) -> Value {
    json!({
        "organization_kind": kind,
        "name": format!("{kind} from {}", rfc3339(from)),
        "effective_from": from,
        "preemptible_discount_percent": "30",
        "entries": [{
            "gpu_model": "H100-80GB",
            "gpu_hour_price": price,
            "profile_prices": [{"profile": "1g.10gb", "price": "0.45"}],
        }],
    })
}

fn contract_list(org: &str, from: DateTime<Utc>, price: &str) -> Value {
    json!({
        "organization_id": org,
        "name": "Contract 42",
        "currency": "EUR",
        "effective_from": from,
        "entries": [{"gpu_model": "H100-80GB", "gpu_hour_price": price}],
    })
}

async fn publish(app: &TestApp, body: Value) -> String {
    app.post("/v1/price-lists", &app.admin, body)
        .await
        .expect(201)
        .id()
}

fn ids(res: &Resp) -> Vec<String> {
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn audited(app: &TestApp, id: &str) -> Vec<String> {
    let res = app
        .get(&format!("/v1/audit-events?target_id={id}"), &app.admin)
        .await
        .expect(200);
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_platform_admin_publishes_lists_that_everyone_reads_page_by_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    let first = app
        .post(
            "/v1/price-lists",
            &app.admin,
            kind_list("academic", now, "2.4"),
        )
        .await
        .expect(201);
    assert_eq!(first.body["entries"][0]["gpu_hour_price"], "2.400000");
    assert_eq!(
        first.body["entries"][0]["profile_prices"][0]["price"],
        "0.450000"
    );
    assert_eq!(first.body["preemptible_discount_percent"], "30.00");
    assert_eq!(first.body["currency"], "EUR");
    assert_eq!(first.body["organization_kind"], "academic");
    let first = first.id();
    let second = publish(&app, kind_list("academic", now + Duration::days(30), "2.5")).await;
    let startup = publish(&app, kind_list("startup", now, "3.2")).await;
    assert_eq!(audited(&app, &first).await, ["price_list.create"]);

    // Any authenticated caller reads kind-wide lists.
    let lab = app.create_org("lab", "academic").await;
    let member = app
        .token(&format!("/v1/organizations/{lab}"), "member")
        .await;
    let got = app
        .get(&format!("/v1/price-lists/{second}"), &member)
        .await
        .expect(200);
    assert_eq!(got.body["entries"][0]["gpu_hour_price"], "2.500000");
    let page = app
        .get("/v1/price-lists?limit=2", &member)
        .await
        .expect(200);
    assert_eq!(ids(&page), [first.clone(), second.clone()]);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(&format!("/v1/price-lists?limit=2&cursor={cursor}"), &member)
        .await
        .expect(200);
    assert_eq!(ids(&rest), std::slice::from_ref(&startup));
    assert!(rest.body["next_cursor"].is_null());
    let startups = app
        .get("/v1/price-lists?organization_kind=startup", &member)
        .await
        .expect(200);
    assert_eq!(ids(&startups), [startup]);
    app.get("/v1/price-lists?organization_kind=hobby", &member)
        .await
        .expect_problem(400, "validation_failed");

    // Only platform admins publish.
    let admin_of_lab = app
        .token(&format!("/v1/organizations/{lab}"), "admin")
        .await;
    app.post(
        "/v1/price-lists",
        &admin_of_lab,
        kind_list("academic", now + Duration::days(1), "0.01"),
    )
    .await
    .expect_problem(403, "forbidden");
}

async fn a_contract_list_wins_over_the_kind_list_and_successors_take_over_at_their_date(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    let lab = app.create_org("lab", "academic").await;
    let other = app.create_org("other-lab", "academic").await;
    let shop = app.create_org("shop", "startup").await;
    let academic = publish(&app, kind_list("academic", now, "2.40")).await;
    let contract = publish(&app, contract_list(&lab, now + Duration::days(1), "1.90")).await;
    let successor = publish(&app, kind_list("academic", now + Duration::days(2), "2.60")).await;
    let priced = |org: String, at: Option<DateTime<Utc>>| {
        let app = &app;
        async move {
            let query = at
                .map(|t| format!("?at={}", rfc3339(t)))
                .unwrap_or_default();
            let res = app
                .get(
                    &format!("/v1/organizations/{org}/price-list{query}"),
                    &app.admin,
                )
                .await
                .expect(200);
            res.id()
        }
    };
    assert_eq!(priced(lab.clone(), None).await, academic);
    assert_eq!(
        priced(lab.clone(), Some(now + Duration::days(1))).await,
        contract
    );
    assert_eq!(
        priced(lab.clone(), Some(now + Duration::days(3))).await,
        contract
    );
    assert_eq!(
        priced(
            other.clone(),
            Some(now + Duration::days(2) - Duration::seconds(1))
        )
        .await,
        academic
    );
    assert_eq!(
        priced(other.clone(), Some(now + Duration::days(2))).await,
        successor
    );

    // Time passes: the contract and then the successor apply by default.
    app.clock.advance(Duration::days(1));
    assert_eq!(priced(lab.clone(), None).await, contract);
    assert_eq!(priced(other.clone(), None).await, academic);
    app.clock.advance(Duration::days(1));
    assert_eq!(priced(other.clone(), None).await, successor);

    // No list of its kind: a clear problem naming the organisation.
    let res = app
        .get(&format!("/v1/organizations/{shop}/price-list"), &app.admin)
        .await
        .expect_problem(404, "no_price_list");
    assert!(
        res.body["detail"].as_str().unwrap().contains(&shop),
        "{}",
        res.body
    );
    // Before the first list took effect, nothing priced the lab either.
    app.get(
        &format!(
            "/v1/organizations/{lab}/price-list?at={}",
            rfc3339(now - Duration::days(1))
        ),
        &app.admin,
    )
    .await
    .expect_problem(404, "no_price_list");
}

async fn versions_in_effect_are_never_changed_and_future_ones_can_be_withdrawn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    let current = publish(&app, kind_list("industry", now, "3.90")).await;
    let future = publish(&app, kind_list("industry", now + Duration::days(7), "4.10")).await;
    let later = publish(
        &app,
        kind_list("industry", now + Duration::days(14), "4.20"),
    )
    .await;

    // Same scope, same instant: refused.
    app.post(
        "/v1/price-lists",
        &app.admin,
        kind_list("industry", now + Duration::days(7), "9"),
    )
    .await
    .expect_problem(409, "conflict");

    // In effect: neither withdrawn nor edited; the answer says to publish a successor.
    let res = app
        .delete(&format!("/v1/price-lists/{current}"), &app.admin)
        .await
        .expect_problem(409, "conflict");
    assert!(
        res.body["detail"].as_str().unwrap().contains("successor"),
        "{}",
        res.body
    );
    let res = app
        .patch(
            &format!("/v1/price-lists/{current}"),
            &app.admin,
            json!({"name": "x"}),
        )
        .await
        .expect_problem(409, "conflict");
    assert!(
        res.body["detail"].as_str().unwrap().contains("successor"),
        "{}",
        res.body
    );

    // A future version is withdrawn once, audited, and gone.
    app.delete(&format!("/v1/price-lists/{future}"), &app.admin)
        .await
        .expect(204);
    app.get(&format!("/v1/price-lists/{future}"), &app.admin)
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/v1/price-lists/{future}"), &app.admin)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        audited(&app, &future).await,
        ["price_list.withdraw", "price_list.create"]
    );

    // Once its date has come, a version is as immutable as the others.
    app.clock.advance(Duration::days(14));
    app.delete(&format!("/v1/price-lists/{later}"), &app.admin)
        .await
        .expect_problem(409, "conflict");
    let lab = app.create_org("forge", "industry").await;
    let res = app
        .get(&format!("/v1/organizations/{lab}/price-list"), &app.admin)
        .await
        .expect(200);
    assert_eq!(res.id(), later);
}

async fn a_contract_list_is_hidden_from_other_tenants_and_plain_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    let lab = app.create_org("lab", "academic").await;
    let rival = app.create_org("rival", "academic").await;
    publish(&app, kind_list("academic", now, "2.40")).await;
    let contract = publish(&app, contract_list(&lab, now, "1.90")).await;
    let path = format!("/v1/price-lists/{contract}");
    let scope = format!("/v1/organizations/{lab}");

    for role in ["admin", "billing"] {
        let token = app.token(&scope, role).await;
        app.get(&path, &token).await.expect(200);
        let mine = app
            .get(&format!("/v1/price-lists?organization_id={lab}"), &token)
            .await
            .expect(200);
        assert_eq!(ids(&mine), std::slice::from_ref(&contract));
        let priced = app
            .get(&format!("{scope}/price-list"), &token)
            .await
            .expect(200);
        assert_eq!(priced.id(), contract);
    }

    // A plain member sees its organisation but not its contract prices.
    let member = app.token(&scope, "member").await;
    app.get(&path, &member)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("{scope}/price-list"), &member)
        .await
        .expect_problem(403, "forbidden");
    let listed = app.get("/v1/price-lists", &member).await.expect(200);
    assert!(!ids(&listed).contains(&contract));

    // Another tenant learns nothing.
    let outsider = app
        .token(&format!("/v1/organizations/{rival}"), "admin")
        .await;
    app.get(&path, &outsider)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("{scope}/price-list"), &outsider)
        .await
        .expect_problem(404, "not_found");
    let listed = app.get("/v1/price-lists", &outsider).await.expect(200);
    assert_eq!(ids(&listed).len(), 1);
}

async fn bad_price_lists_are_refused_with_a_problem_per_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    let refused = |body: Value| {
        let app = &app;
        async move {
            app.post("/v1/price-lists", &app.admin, body)
                .await
                .expect_problem(400, "validation_failed")
                .body["errors"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    let with = |field: &str, value: Value| {
        let mut body = kind_list("academic", now, "2.40");
        body[field] = value;
        body
    };
    let entry = |model: &str, price: &str, profiles: Value| {
        with(
            "entries",
            json!([{"gpu_model": model, "gpu_hour_price": price, "profile_prices": profiles}]),
        )
    };
    let gpu_price = "entries[0].gpu_hour_price";
    assert_eq!(
        refused(entry("H100-80GB", "0", json!([]))).await,
        [gpu_price]
    );
    assert_eq!(
        refused(entry("H100-80GB", "-2.40", json!([]))).await,
        [gpu_price]
    );
    assert_eq!(
        refused(entry("H100-80GB", "2.4000001", json!([]))).await,
        [gpu_price]
    );
    assert_eq!(
        refused(entry("H100-80GB", "two", json!([]))).await,
        [gpu_price]
    );
    assert_eq!(
        refused(entry("V100", "2", json!([]))).await,
        ["entries[0].gpu_model"]
    );
    assert_eq!(
        refused(entry(
            "H100-80GB",
            "2",
            json!([{"profile": "9g.1tb", "price": "1"}])
        ))
        .await,
        ["entries[0].profile_prices[0].profile"]
    );
    let twice = json!([{"profile": "1g.10gb", "price": "1"}, {"profile": "1g.10gb", "price": "2"}]);
    assert_eq!(
        refused(entry("H100-80GB", "2", twice)).await,
        ["entries[0].profile_prices[1].profile"]
    );
    let two_models = json!([
        {"gpu_model": "H100-80GB", "gpu_hour_price": "2"},
        {"gpu_model": "h100-80gb", "gpu_hour_price": "3"},
    ]);
    assert_eq!(
        refused(with("entries", two_models)).await,
        ["entries[1].gpu_model"]
    );
    assert_eq!(refused(with("entries", json!([]))).await, ["entries"]);
    assert_eq!(
        refused(with("preemptible_discount_percent", json!("100.5"))).await,
        ["preemptible_discount_percent"]
    );
    assert_eq!(refused(with("currency", json!("USD"))).await, ["currency"]);
    let mut both = kind_list("academic", now, "2");
    both["organization_id"] = json!(uuid::Uuid::now_v7());
    assert_eq!(refused(both).await, ["organization_kind"]);
    let mut neither = kind_list("academic", now, "2");
    neither.as_object_mut().unwrap().remove("organization_kind");
    assert_eq!(refused(neither).await, ["organization_kind"]);

    // A date in the past could re-price rated usage.
    let res = app
        .post(
            "/v1/price-lists",
            &app.admin,
            kind_list("academic", now - Duration::hours(1), "2"),
        )
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        res.body["errors"]["effective_from"]
            .as_str()
            .unwrap()
            .contains("re-priced")
    );

    // Money as a JSON number is not read (no floats); an unknown organisation is 404.
    app.post(
        "/v1/price-lists",
        &app.admin,
        entry("H100-80GB", "2", json!([])).tap_price(json!(2.4)),
    )
    .await
    .expect_problem(400, "bad_request");
    app.post(
        "/v1/price-lists",
        &app.admin,
        contract_list(&uuid::Uuid::now_v7().to_string(), now, "2"),
    )
    .await
    .expect_problem(404, "not_found");
    app.get("/v1/price-lists/not-a-uuid", &app.admin)
        .await
        .expect_problem(400, "validation_failed");
}

trait TapPrice {
    fn tap_price(self, price: Value) -> Value;
}

impl TapPrice for Value {
    /// The body with its first GPU-hour price replaced.
    fn tap_price(mut self, price: Value) -> Value {
        self["entries"][0]["gpu_hour_price"] = price;
        self
    }
}

async fn an_idempotent_retry_publishes_one_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = kind_list("public", app.clock.now() + Duration::days(1), "2.60");
    let send = |body: Value| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/price-lists",
                Some(&app.admin),
                Some(body),
                &[("Idempotency-Key", "price-list-2027")],
            )
            .await
        }
    };
    let first = send(body.clone()).await.expect(201).id();
    let again = send(body.clone()).await.expect(201).id();
    assert_eq!(first, again);
    let listed = app
        .get("/v1/price-lists?organization_kind=public", &app.admin)
        .await
        .expect(200);
    assert_eq!(ids(&listed), [first]);
    let mut changed = body;
    changed["name"] = json!("another name");
    send(changed)
        .await
        .expect_problem(422, "idempotency_key_reused");
}
