//! Integration tests: grid carbon intensity per site and period, and the CO2e of usage
//! per lease, project and organisation.

use crate::agent::{place_lease, register};
use crate::helpers::*;
use crate::on_both_databases;
use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    co2e_follows_the_intensity_in_force_and_rolls_up_to_the_organisation,
    intensities_are_validated_and_only_operators_record_them,
);

/// Half a kilowatt-hour, in millijoules.
const HALF_KWH_MJ: i64 = 1_800_000_000;

fn record(lease: Uuid, sequence: i64, start: DateTime<Utc>) -> Value {
    json!({
        "lease_id": lease, "sequence": sequence,
        "interval_start": start, "interval_end": start + Duration::seconds(1800),
        "allocated_seconds": 1800, "sm_utilisation_pct": 50.0,
        "memory_used_mib": 1024, "energy_mj": HALF_KWH_MJ,
    })
}

async fn intensity(app: &TestApp, from: DateTime<Utc>, grams: i64) {
    app.post(
        "/v1/carbon-intensities",
        &app.admin,
        json!({"site": "par-1", "effective_from": from, "grams_per_kwh": grams,
            "source": "grid operator, hourly mix"}),
    )
    .await
    .expect(201);
}

fn total(report: &Resp) -> (f64, f64, f64) {
    let t = &report.body["total"];
    (
        t["energy_wh"].as_f64().unwrap(),
        t["co2e_g"].as_f64().unwrap(),
        t["energy_without_intensity_wh"].as_f64().unwrap(),
    )
}

async fn co2e_follows_the_intensity_in_force_and_rolls_up_to_the_organisation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let a = app.create_project(&org, "climate").await;
    let b = app.create_project(&org, "ocean").await;
    let (node, cred) = register(&app, "gpu-001", 2).await;
    let lease_a = place_lease(&app, &a, &node, "GPU-gpu-001-0", "active").await;
    let lease_b = place_lease(&app, &b, &node, "GPU-gpu-001-1", "active").await;
    let t0 = app.clock.now();
    intensity(&app, t0 - Duration::hours(2), 60).await;
    intensity(&app, t0 - Duration::hours(1), 30).await;
    app.post(
        "/v1/agent/usage",
        &cred,
        json!({"records": [
            record(lease_a, 0, t0 - Duration::hours(3)),
            record(lease_a, 1, t0 - Duration::hours(2)),
            record(lease_a, 2, t0 - Duration::hours(1)),
            record(lease_b, 0, t0 - Duration::hours(1)),
        ]}),
    )
    .await
    .expect(200);
    let span = format!(
        "from={}&to={}&granularity=hour",
        (t0 - Duration::hours(4)).format("%Y-%m-%dT%H:%M:%SZ"),
        t0.format("%Y-%m-%dT%H:%M:%SZ")
    );

    // Project A: 0.5 kWh before any intensity (kept apart), 0.5 kWh at 60 g, 0.5 at 30 g.
    let report = app
        .get(&format!("/v1/projects/{a}/usage?{span}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(total(&report), (1500.0, 45.0, 500.0), "{}", report.body);
    let hourly: Vec<f64> = report.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["co2e_g"].as_f64().unwrap())
        .collect();
    assert_eq!(hourly, [0.0, 30.0, 15.0]);
    // Lease B alone, and the organisation as the sum of its projects.
    let report = app
        .get(&format!("/v1/leases/{lease_b}/usage?{span}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(total(&report), (500.0, 15.0, 0.0));
    let report = app
        .get(&format!("/v1/organizations/{org}/usage?{span}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(total(&report), (2000.0, 60.0, 500.0));

    // Members see their organisation's figures; another tenant gets 404.
    let member = app
        .token(&format!("/v1/organizations/{org}"), "member")
        .await;
    app.get(&format!("/v1/organizations/{org}/usage?{span}"), &member)
        .await
        .expect(200);
    // Someone with a role on project A only sees A's share of the organisation.
    let viewer = app.token(&format!("/v1/projects/{a}"), "viewer").await;
    let report = app
        .get(&format!("/v1/organizations/{org}/usage?{span}"), &viewer)
        .await
        .expect(200);
    assert_eq!(total(&report), (1500.0, 45.0, 500.0), "{}", report.body);
    app.get(&format!("/v1/projects/{b}/usage?{span}"), &viewer)
        .await
        .expect_problem(404, "not_found");
    let rival = app.create_org("rival", "startup").await;
    let stranger = app
        .token(&format!("/v1/organizations/{rival}"), "admin")
        .await;
    app.get(&format!("/v1/organizations/{org}/usage"), &stranger)
        .await
        .expect_problem(404, "not_found");
}

async fn intensities_are_validated_and_only_operators_record_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let admin = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    let from = app.clock.now();
    let good = json!({"site": "par-1", "effective_from": from, "grams_per_kwh": 56,
        "source": "RTE 2025 average"});
    app.post("/v1/carbon-intensities", &admin, good.clone())
        .await
        .expect_problem(403, "forbidden");
    for bad in [
        json!({"site": "par-1", "effective_from": from, "grams_per_kwh": 2001, "source": "x"}),
        json!({"site": "par-1", "effective_from": from, "grams_per_kwh": -1, "source": "x"}),
        json!({"site": "Paris 1", "effective_from": from, "grams_per_kwh": 5, "source": "x"}),
        json!({"site": "par-1", "effective_from": from, "grams_per_kwh": 5, "source": ""}),
    ] {
        app.post("/v1/carbon-intensities", &app.admin, bad)
            .await
            .expect_problem(400, "validation_failed");
    }
    app.post(
        "/v1/carbon-intensities",
        &app.admin,
        json!({"site": "par-1", "grams_per_kwh": 5, "source": "x"}),
    )
    .await
    .expect(400);
    // Retried with one key: one value; the same date again is a conflict.
    let first = app
        .request(
            Method::POST,
            "/v1/carbon-intensities",
            Some(&app.admin),
            Some(good.clone()),
            &[("idempotency-key", "ci-1")],
        )
        .await
        .expect(201);
    let again = app
        .request(
            Method::POST,
            "/v1/carbon-intensities",
            Some(&app.admin),
            Some(good.clone()),
            &[("idempotency-key", "ci-1")],
        )
        .await
        .expect(201);
    assert_eq!(first.id(), again.id());
    app.post("/v1/carbon-intensities", &app.admin, good)
        .await
        .expect_problem(409, "conflict");
    intensity(&app, from + Duration::days(30), 40).await;
    let listed = app
        .get("/v1/carbon-intensities?site=par-1&limit=1", &admin)
        .await
        .expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let next = listed.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(
            &format!("/v1/carbon-intensities?site=par-1&limit=1&cursor={next}"),
            &admin,
        )
        .await
        .expect(200);
    assert_eq!(rest.body["items"][0]["grams_per_kwh"], 40);
    app.get("/v1/carbon-intensities?site=NOT%20A%20SITE", &admin)
        .await
        .expect_problem(400, "validation_failed");
}
