//! Integration tests: monthly invoices and statements computed from leases, split at
//! the month boundary, finalised once with gapless numbers, corrected by credit notes,
//! and exported as CSV and HTML.

use crate::agent::register;
use crate::helpers::*;
use crate::ledger::{report_all_present, until_state};
use crate::on_both_databases;
use aion_services::entities::{grants, leases, usage_records};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use reqwest::Method;
use rust_decimal::{Decimal, RoundingStrategy};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use std::str::FromStr;

on_both_databases!(
    a_month_is_invoiced_exactly_finalised_once_and_corrected_by_credit_notes,
    concurrent_finalisations_number_invoices_without_gaps,
);

/// The first instant of the month after `t`'s.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap()
}

fn key(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

/// What `seconds` of `slices` compute slices cost at `price` per GPU-hour, to the cent.
fn expected(seconds: i64, slices: i64, price: &str) -> Decimal {
    (Decimal::from(seconds * slices) * Decimal::from_str(price).unwrap() / Decimal::from(25_200))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
}

async fn price_list(app: &TestApp, kind: &str, price: &str) {
    app.post(
        "/v1/price-lists",
        &app.admin,
        json!({"organization_kind": kind, "name": format!("{kind} list"),
            "effective_from": app.clock.now(), "preemptible_discount_percent": "30",
            "entries": [{"gpu_model": "H100-80GB", "gpu_hour_price": price}]}),
    )
    .await
    .expect(201);
}

/// A project with a 1,000 GPU-hour contract grant valid for 60 days; the grant id.
async fn grant(app: &TestApp, project: &str) -> String {
    let now = app.clock.now();
    app.post(
        "/v1/grants",
        &app.admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 1000,
            "valid_from": (now - Duration::days(1)).to_rfc3339(),
            "valid_until": (now + Duration::days(60)).to_rfc3339(), "reference": "PO-1"}),
    )
    .await
    .expect(201)
    .id()
}

/// Requests a lease and makes it active through the node; returns (id, active_at).
async fn active_lease(
    app: &TestApp,
    cred: &str,
    project: &str,
    token: &str,
    profile: &str,
) -> (String, DateTime<Utc>) {
    let id = app
        .post(
            &format!("/v1/projects/{project}/leases"),
            token,
            json!({"profile": profile, "duration_s": 30 * 24 * 3600}),
        )
        .await
        .expect(201)
        .id();
    until_state(app, token, &id, "scheduled").await;
    report_all_present(app, cred).await;
    let lease = until_state(app, token, &id, "active").await;
    let at = lease["active_at"].as_str().unwrap().parse().unwrap();
    (id, at)
}

async fn a_month_is_invoiced_exactly_finalised_once_and_corrected_by_credit_notes(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (node, cred) = register(&app, "gpu-0001", 1).await;
    price_list(&app, "startup", "3.20").await;
    let org = app
        .post(
            "/v1/organizations",
            &app.admin,
            json!({"slug": "acme", "name": "Acme <R&D>", "kind": "startup", "country": "FR"}),
        )
        .await
        .expect(201)
        .id();
    let paid = app.create_project(&org, "vision").await;
    let funded = app.create_project(&org, "science").await;
    grant(&app, &paid).await;
    let call_grant = grant(&app, &funded).await;
    // The second grant stands for an allocator's call grant (usage on the statement).
    grants::Entity::update_many()
        .col_expr(grants::Column::Source, Expr::value("call"))
        .filter(grants::Column::Id.eq(call_grant.parse::<uuid::Uuid>().unwrap()))
        .exec(&app.services.db)
        .await
        .unwrap();
    let lead = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    let (a_id, a_at) = active_lease(&app, &cred, &paid, &lead, "3g.40gb").await;
    let (_, b_at) = active_lease(&app, &cred, &funded, &lead, "1g.10gb").await;
    app.post(
        "/v1/carbon-intensities",
        &app.admin,
        json!({"site": "par-1", "effective_from": a_at - Duration::hours(1), "grams_per_kwh": 50, "source": "grid"}),
    )
    .await
    .expect(201);

    // An hour later the node reports half a kWh for the paid lease.
    app.clock.advance(Duration::hours(1));
    let usage_start = a_at + Duration::minutes(1);
    app.post(
        "/v1/agent/usage",
        &cred,
        json!({"records": [{"lease_id": a_id, "sequence": 0,
            "interval_start": usage_start, "interval_end": usage_start + Duration::minutes(30),
            "allocated_seconds": 1800, "sm_utilisation_pct": 10.0, "memory_used_mib": 1,
            "energy_mj": 1_800_000_000i64}]}),
    )
    .await
    .expect(200);
    // Into the next month by two hours: this month is over, the next has begun.
    let boundary = next_month(a_at);
    let november = key(a_at);
    let december = key(boundary);
    app.clock
        .advance(boundary + Duration::hours(2) - app.clock.now());

    // The November draft: one invoice line, one statement line, split at midnight.
    let drafts = app
        .get(
            &format!("/v1/organizations/{org}/invoices/{november}"),
            &lead,
        )
        .await
        .expect(200);
    let items = drafts.body["items"].as_array().unwrap();
    let invoice = items.iter().find(|d| d["kind"] == "invoice").unwrap();
    let statement = items.iter().find(|d| d["kind"] == "statement").unwrap();
    assert_eq!(invoice["status"], "draft");
    let a_seconds = boundary.timestamp() - a_at.timestamp();
    let line = &invoice["lines"][0];
    assert_eq!(invoice["lines"].as_array().unwrap().len(), 1, "{invoice}");
    assert_eq!(line["seconds"], a_seconds);
    assert_eq!(line["slice_seconds"], a_seconds * 3);
    assert_eq!(line["profile"], "3g.40gb");
    assert_eq!(line["site"], "par-1");
    let net = expected(a_seconds, 3, "3.20");
    assert_eq!(dec(&line["amount"]), net);
    assert_eq!(dec(&invoice["net"]), net);
    let vat = (net * Decimal::from(20) / Decimal::from(100))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    assert_eq!(dec(&invoice["vat"]), vat);
    assert_eq!(dec(&invoice["total"]), net + vat);
    assert_eq!(invoice["vat_regime"], "domestic");
    assert_eq!(line["energy_wh"], 500.0);
    assert_eq!(line["co2e_g"], 25.0, "0.5 kWh at 50 g/kWh");
    let b_seconds = boundary.timestamp() - b_at.timestamp();
    assert_eq!(statement["lines"][0]["seconds"], b_seconds);
    assert_eq!(
        dec(&statement["net"]),
        expected(b_seconds, 1, "3.20"),
        "valorised at list price"
    );
    assert_eq!(statement["vat_regime"], "not_invoiced");
    assert_eq!(dec(&statement["total"]), dec(&statement["net"]));
    // December so far: the two hours after midnight.
    let dec_drafts = app
        .get(
            &format!("/v1/organizations/{org}/invoices/{december}"),
            &lead,
        )
        .await
        .expect(200);
    let dec_invoice = &dec_drafts.body["items"][0];
    assert_eq!(dec_invoice["lines"][0]["seconds"], 7200);

    // Who may read and finalise.
    let member = app
        .token(&format!("/v1/organizations/{org}"), "member")
        .await;
    app.get(
        &format!("/v1/organizations/{org}/invoices/{november}"),
        &member,
    )
    .await
    .expect_problem(404, "not_found");
    let billing = app
        .token(&format!("/v1/organizations/{org}"), "billing")
        .await;
    app.get(
        &format!("/v1/organizations/{org}/invoices/{november}"),
        &billing,
    )
    .await
    .expect(200);
    app.post(
        &format!("/v1/organizations/{org}/invoices/{november}/finalize"),
        &billing,
        json!({}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.post(
        &format!("/v1/organizations/{org}/invoices/{december}/finalize"),
        &app.admin,
        json!({}),
    )
    .await
    .expect_problem(409, "conflict");
    app.get(
        &format!("/v1/organizations/{org}/invoices/2026-13"),
        &billing,
    )
    .await
    .expect_problem(400, "validation_failed");

    // Finalise November: the invoice is numbered and equals the draft; again is refused.
    let finals = app
        .post(
            &format!("/v1/organizations/{org}/invoices/{november}/finalize"),
            &app.admin,
            json!({}),
        )
        .await
        .expect(200);
    let final_invoice = finals.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "invoice")
        .unwrap()
        .clone();
    let number = final_invoice["number"].as_str().unwrap().to_owned();
    assert_eq!(number, format!("AION-{}-000001", boundary.year()));
    assert_eq!(final_invoice["lines"], invoice["lines"]);
    assert_eq!(final_invoice["total"], invoice["total"]);
    app.post(
        &format!("/v1/organizations/{org}/invoices/{november}/finalize"),
        &app.admin,
        json!({}),
    )
    .await
    .expect_problem(409, "conflict");
    // A late usage record for that month (stored as the agent API stores it: the node's
    // one-day credential has long expired on this test clock) changes nothing on the
    // final invoice.
    let lease_row = leases::Entity::find_by_id(a_id.parse::<uuid::Uuid>().unwrap())
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    usage_records::Entity::insert(usage_records::ActiveModel {
        lease_id: Set(lease_row.id),
        node_id: Set(node.parse().unwrap()),
        sequence: Set(1),
        project_id: Set(lease_row.project_id),
        organization_id: Set(lease_row.organization_id),
        profile: Set(lease_row.profile.clone()),
        compute_slices: Set(3),
        interval_start: Set(usage_start + Duration::minutes(30)),
        interval_end: Set(usage_start + Duration::minutes(60)),
        allocated_seconds: Set(1800),
        sm_utilisation_pct: Set(None),
        memory_used_mib: Set(1),
        energy_mj: Set(1_800_000_000),
        received_at: Set(app.clock.now()),
    })
    .exec_without_returning(&app.services.db)
    .await
    .unwrap();
    let id = final_invoice["id"].as_str().unwrap().to_owned();
    let again = app
        .get(&format!("/v1/invoices/{id}"), &billing)
        .await
        .expect(200);
    assert_eq!(again.body["lines"], final_invoice["lines"]);
    assert_eq!(again.body["status"], "final");

    // Exports.
    let csv = app
        .get(&format!("/v1/invoices/{id}?format=csv"), &billing)
        .await
        .expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.body.as_str().unwrap();
    assert_eq!(text.lines().count(), 3, "header, one line, total:\n{text}");
    assert!(
        text.contains(&number) && text.contains(&net.to_string()),
        "{text}"
    );
    let page = app
        .get(&format!("/v1/invoices/{id}?format=html"), &billing)
        .await
        .expect(200);
    let html = page.body.as_str().unwrap();
    assert!(html.contains(&number));
    assert!(
        html.contains("Acme &#60;R&#38;D&#62;") || html.contains("Acme &lt;R&amp;D&gt;"),
        "names are escaped: {html}"
    );
    assert!(!html.contains("DRAFT"));
    app.get(&format!("/v1/invoices/{id}?format=pdf"), &billing)
        .await
        .expect_problem(400, "validation_failed");

    // Credit notes: part, then the rest, then nothing is left.
    let path = format!("/v1/invoices/{id}/credit-notes");
    app.post(&path, &app.admin, json!({"reason": "x", "amount": "1.001"}))
        .await
        .expect_problem(400, "validation_failed");
    app.post(&path, &billing, json!({"reason": "x", "amount": "1.00"}))
        .await
        .expect_problem(403, "forbidden");
    let part = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(json!({"reason": "SLA breach", "amount": "1.00"})),
            &[("idempotency-key", "cn-1")],
        )
        .await
        .expect(201);
    assert_eq!(part.body["kind"], "credit_note");
    assert_eq!(
        part.body["number"],
        format!("AION-{}-000002", boundary.year())
    );
    assert_eq!(dec(&part.body["net"]), Decimal::from_str("-1.00").unwrap());
    assert_eq!(dec(&part.body["vat"]), Decimal::from_str("-0.20").unwrap());
    let replay = app
        .request(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(json!({"reason": "SLA breach", "amount": "1.00"})),
            &[("idempotency-key", "cn-1")],
        )
        .await
        .expect(201);
    assert_eq!(
        replay.body["id"], part.body["id"],
        "a retry gives the same note"
    );
    let rest = app
        .post(&path, &app.admin, json!({"reason": "cancelled"}))
        .await
        .expect(201);
    assert_eq!(dec(&rest.body["net"]), -(net - Decimal::ONE));
    app.post(&path, &app.admin, json!({"reason": "again"}))
        .await
        .expect_problem(409, "conflict");
    let all = app
        .get(&format!("/v1/organizations/{org}/invoices"), &billing)
        .await
        .expect(200);
    let kinds: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "credit_note").count(), 2);
    assert_eq!(kinds.len(), 4, "invoice, statement and two credit notes");
}

async fn concurrent_finalisations_number_invoices_without_gaps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_node, cred) = register(&app, "gpu-0001", 2).await;
    price_list(&app, "industry", "3.90").await;
    let mut orgs = Vec::new();
    for i in 0..8 {
        // The last organisation is academic, which no price list covers: its
        // finalisation fails and must not use up a number.
        let kind = if i == 7 { "academic" } else { "industry" };
        let org = app.create_org(&format!("org-{i}"), kind).await;
        let project = app.create_project(&org, "batch").await;
        grant(&app, &project).await;
        let admin = app
            .token(&format!("/v1/organizations/{org}"), "admin")
            .await;
        active_lease(&app, &cred, &project, &admin, "1g.10gb").await;
        orgs.push(org);
    }
    let month = key(app.clock.now());
    let boundary = next_month(app.clock.now());
    app.clock
        .advance(boundary + Duration::hours(1) - app.clock.now());
    let tasks: Vec<_> = orgs
        .iter()
        .map(|org| {
            let app = &app;
            let month = month.clone();
            async move {
                app.post(
                    &format!("/v1/organizations/{org}/invoices/{month}/finalize"),
                    &app.admin,
                    json!({}),
                )
                .await
            }
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    let mut numbers: Vec<String> = Vec::new();
    for (i, res) in results.into_iter().enumerate() {
        if i == 7 {
            let res = res.expect_problem(404, "no_price_list");
            assert!(
                res.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("no price list")
            );
            continue;
        }
        let res = res.expect(200);
        numbers.extend(
            res.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["number"].as_str().map(str::to_owned)),
        );
    }
    numbers.sort();
    let want: Vec<String> = (1..=7)
        .map(|n| format!("AION-{}-{n:06}", boundary.year()))
        .collect();
    assert_eq!(
        numbers, want,
        "seven invoices numbered 1 to 7, no gap, no repeat"
    );
}
