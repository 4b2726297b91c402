//! Integration tests of usage and enforcement reports, with the node side played over
//! HTTP: idempotent usage batches, node isolation, per-project and per-lease usage, and
//! enforcement events audited once.

use crate::agent::{join_token, place_lease, register};
use crate::helpers::*;
use crate::on_both_databases;
use aion_services::entities::leases;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    a_usage_batch_sent_twice_counts_once,
    a_different_record_under_a_stored_sequence_is_refused,
    a_node_cannot_report_usage_for_a_lease_placed_on_another_node,
    bad_usage_figures_are_refused_naming_the_field,
    project_usage_is_totalled_by_day_and_by_profile_and_hidden_from_other_tenants,
    enforcement_events_land_in_the_audit_log_once_even_when_retried,
    a_real_agent_reports_usage_once_across_a_resend_and_audits_its_enforcement,
);

fn record(lease: Uuid, sequence: i64, start: DateTime<Utc>, secs: i64, energy_mj: i64) -> Value {
    json!({
        "lease_id": lease, "sequence": sequence,
        "interval_start": start, "interval_end": start + Duration::seconds(secs),
        "allocated_seconds": secs, "sm_utilisation_pct": 40.5,
        "memory_used_mib": 2048, "energy_mj": energy_mj,
    })
}

async fn a_usage_batch_sent_twice_counts_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 1).await;
    let lease = place_lease(&app, &project, &node, "GPU-gpu-001-0", "active").await;
    let start = app.clock.now() - Duration::hours(1);
    let batch = json!({"records": [
        record(lease, 0, start, 60, 1_000_000),
        record(lease, 1, start + Duration::seconds(60), 60, 2_000_000),
    ]});
    let first = app
        .post("/v1/agent/usage", &cred, batch.clone())
        .await
        .expect(200);
    assert_eq!(first.body, json!({"accepted": 2, "duplicates": 0}));
    let again = app.post("/v1/agent/usage", &cred, batch).await.expect(200);
    assert_eq!(again.body, json!({"accepted": 0, "duplicates": 2}));
    let usage = app
        .get(&format!("/v1/leases/{lease}/usage"), &app.admin)
        .await
        .expect(200);
    assert_eq!(usage.body["total"]["records"], 2);
    assert_eq!(usage.body["total"]["allocated_seconds"], 120);
    // 1 slice of 7 for 120 s.
    let gpu_hours = usage.body["total"]["gpu_hours"].as_f64().unwrap();
    assert!(
        (gpu_hours - 120.0 / 7.0 / 3600.0).abs() < 1e-9,
        "{gpu_hours}"
    );
    let wh = usage.body["total"]["energy_wh"].as_f64().unwrap();
    assert!((wh - 3_000_000.0 / 3_600_000.0).abs() < 1e-9, "{wh}");
}

async fn a_different_record_under_a_stored_sequence_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 1).await;
    let lease = place_lease(&app, &project, &node, "GPU-gpu-001-0", "active").await;
    let start = app.clock.now() - Duration::hours(1);
    app.post(
        "/v1/agent/usage",
        &cred,
        json!({"records": [record(lease, 0, start, 60, 5)]}),
    )
    .await
    .expect(200);
    // Same sequence, other energy, in a batch with a new record: nothing of it is stored.
    let other = json!({"records": [
        record(lease, 1, start + Duration::seconds(60), 60, 5),
        record(lease, 0, start, 60, 6),
    ]});
    app.post("/v1/agent/usage", &cred, other)
        .await
        .expect_problem(409, "conflict");
    let usage = app
        .get(&format!("/v1/leases/{lease}/usage"), &app.admin)
        .await
        .expect(200);
    assert_eq!(usage.body["total"]["records"], 1);
}

async fn a_node_cannot_report_usage_for_a_lease_placed_on_another_node(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (_a, cred_a) = register(&app, "gpu-a", 1).await;
    let (b, cred_b) = register(&app, "gpu-b", 1).await;
    let lease = place_lease(&app, &project, &b, "GPU-gpu-b-0", "active").await;
    let start = app.clock.now() - Duration::hours(1);
    let batch = json!({"records": [record(lease, 0, start, 60, 5)]});
    app.post("/v1/agent/usage", &cred_a, batch.clone())
        .await
        .expect_problem(404, "not_found");
    app.post(
        "/v1/agent/usage",
        &cred_a,
        json!({"records": [record(Uuid::now_v7(), 0, start, 60, 5)]}),
    )
    .await
    .expect_problem(404, "not_found");
    // A user's token is no node credential.
    app.post("/v1/agent/usage", &app.admin, batch.clone())
        .await
        .expect_problem(401, "unauthenticated");
    app.post("/v1/agent/usage", &cred_b, batch)
        .await
        .expect(200);
}

async fn bad_usage_figures_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 1).await;
    let lease = place_lease(&app, &project, &node, "GPU-gpu-001-0", "active").await;
    let start = app.clock.now() - Duration::hours(1);
    let mut bad = record(lease, 0, start, 60, -1);
    bad["sm_utilisation_pct"] = json!(140.0);
    let res = app
        .post("/v1/agent/usage", &cred, json!({"records": [bad]}))
        .await
        .expect_problem(400, "validation_failed");
    let text = res.body.to_string();
    assert!(text.contains("records[0].energy_mj"), "{text}");
    assert!(text.contains("records[0].sm_utilisation_pct"), "{text}");
    let mut backwards = record(lease, 0, start, 60, 1);
    backwards["interval_end"] = json!(start - Duration::seconds(1));
    app.post("/v1/agent/usage", &cred, json!({"records": [backwards]}))
        .await
        .expect_problem(400, "validation_failed");
    // More allocated time than one instance had in the interval.
    let mut too_long = record(lease, 0, start, 60, 1);
    too_long["allocated_seconds"] = json!(600);
    let res = app
        .post("/v1/agent/usage", &cred, json!({"records": [too_long]}))
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        res.body
            .to_string()
            .contains("records[0].allocated_seconds"),
        "{}",
        res.body
    );
    // More energy than any GPU draws (2 kW) over the interval: refused, so report totals
    // can never overflow.
    let absurd = record(lease, 0, start, 60, i64::MAX);
    let res = app
        .post("/v1/agent/usage", &cred, json!({"records": [absurd]}))
        .await
        .expect_problem(400, "validation_failed");
    assert!(
        res.body.to_string().contains("records[0].energy_mj"),
        "{}",
        res.body
    );
    app.post("/v1/agent/usage", &cred, json!({"records": []}))
        .await
        .expect_problem(400, "validation_failed");
    app.get(
        &format!("/v1/projects/{project}/usage?granularity=week"),
        &app.admin,
    )
    .await
    .expect_problem(400, "validation_failed");
    app.get(
        &format!("/v1/projects/{project}/usage?from=yesterday"),
        &app.admin,
    )
    .await
    .expect_problem(400, "validation_failed");
}

async fn project_usage_is_totalled_by_day_and_by_profile_and_hidden_from_other_tenants(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 2).await;
    let small = place_lease(&app, &project, &node, "GPU-gpu-001-0", "active").await;
    let big = place_lease(&app, &project, &node, "GPU-gpu-001-1", "active").await;
    leases::Entity::update_many()
        .col_expr(leases::Column::Profile, Expr::value("3g.40gb"))
        .col_expr(leases::Column::ProfileId, Expr::value(9))
        .col_expr(leases::Column::ComputeSlices, Expr::value(3i64))
        .filter(leases::Column::Id.eq(big))
        .exec(&app.services.db)
        .await
        .unwrap();
    let today = app
        .clock
        .now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let yesterday = today - Duration::days(1);
    let batch = json!({"records": [
        record(small, 0, yesterday + Duration::hours(1), 3600, 10),
        record(small, 1, today, 60, 20),
        record(big, 0, yesterday + Duration::hours(2), 1800, 100),
        record(big, 1, yesterday + Duration::hours(3), 1800, 100),
    ]});
    app.post("/v1/agent/usage", &cred, batch).await.expect(200);
    let from = (yesterday - Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let by_day = app
        .get(
            &format!("/v1/projects/{project}/usage?from={from}&granularity=day"),
            &app.admin,
        )
        .await
        .expect(200);
    let buckets = by_day.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{}", by_day.body);
    assert_eq!(
        buckets[0]["start"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        yesterday
    );
    assert_eq!(buckets[0]["allocated_seconds"], 3600 + 1800 + 1800);
    assert_eq!(buckets[0]["records"], 3);
    assert_eq!(buckets[1]["allocated_seconds"], 60);
    assert_eq!(by_day.body["total"]["allocated_seconds"], 7260);
    // GPU-hours: 1/7 × 3660 s + 3/7 × 3600 s.
    let gpu_hours = by_day.body["total"]["gpu_hours"].as_f64().unwrap();
    assert!((gpu_hours - (3660.0 + 3.0 * 3600.0) / 7.0 / 3600.0).abs() < 1e-9);

    let by_profile = app
        .get(
            &format!("/v1/projects/{project}/usage?from={from}&granularity=month&by=profile"),
            &app.admin,
        )
        .await
        .expect(200);
    let buckets = by_profile.body["buckets"].as_array().unwrap();
    let of = |p: &str| -> i64 {
        buckets
            .iter()
            .filter(|b| b["profile"] == p)
            .map(|b| b["allocated_seconds"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(of("1g.10gb"), 3660);
    assert_eq!(of("3g.40gb"), 3600);

    // Another tenant sees neither the project's nor the lease's usage.
    let other = app.create_org("rival", "startup").await;
    let outsider = app
        .token(&format!("/v1/organizations/{other}"), "admin")
        .await;
    app.get(&format!("/v1/projects/{project}/usage"), &outsider)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/v1/leases/{big}/usage"), &outsider)
        .await
        .expect_problem(404, "not_found");
    let viewer = app
        .token(&format!("/v1/projects/{project}"), "viewer")
        .await;
    app.get(&format!("/v1/projects/{project}/usage"), &viewer)
        .await
        .expect(200);
}

async fn enforcement_events_land_in_the_audit_log_once_even_when_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let (node, cred) = register(&app, "gpu-001", 1).await;
    let lease = place_lease(&app, &project, &node, "GPU-gpu-001-0", "releasing").await;
    let now = app.clock.now();
    let batch = json!({"events": [
        {"event_id": Uuid::now_v7(), "kind": "process_terminated", "occurred_at": now,
         "lease_id": lease, "mig_device_uuid": "MIG-1111", "pid": 4242, "signal": "TERM",
         "reason": "the lease of this slice is no longer live"},
        {"event_id": Uuid::now_v7(), "kind": "process_terminated", "occurred_at": now,
         "mig_device_uuid": "MIG-2222", "pid": 777, "signal": "KILL",
         "reason": "no live lease on this slice"},
        {"event_id": Uuid::now_v7(), "kind": "instance_destroyed", "occurred_at": now,
         "lease_id": lease, "gpu_uuid": "GPU-gpu-001-0", "profile_id": 19, "start": 0,
         "mig_device_uuid": "MIG-1111"},
    ]});
    let first = app
        .post("/v1/agent/events", &cred, batch.clone())
        .await
        .expect(200);
    assert_eq!(first.body, json!({"recorded": 3, "duplicates": 0}));
    let again = app.post("/v1/agent/events", &cred, batch).await.expect(200);
    assert_eq!(again.body, json!({"recorded": 0, "duplicates": 3}));
    let log = app
        .get(
            "/v1/audit-events?action=node.process_terminated",
            &app.admin,
        )
        .await
        .expect(200);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", log.body);
    assert!(items.iter().all(|e| e["actor"] == format!("node:{node}")));
    let on_lease = items.iter().find(|e| e["target_kind"] == "lease").unwrap();
    assert_eq!(on_lease["target_id"], lease.to_string());
    assert_eq!(on_lease["project_id"], project);
    assert_eq!(on_lease["details"]["pid"], 4242);
    let destroyed = app
        .get(
            "/v1/audit-events?action=node.instance_destroyed",
            &app.admin,
        )
        .await
        .expect(200);
    assert_eq!(destroyed.body["items"].as_array().unwrap().len(), 1);
    // The organisation's admin sees the events of its leases.
    let org_admin = app
        .token(&format!("/v1/organizations/{org}"), "admin")
        .await;
    let theirs = app
        .get(
            "/v1/audit-events?action=node.process_terminated",
            &org_admin,
        )
        .await
        .expect(200);
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 1);
    // Bad events are refused naming the field.
    let bad = json!({"events": [{"event_id": Uuid::now_v7(), "kind": "process_terminated",
        "occurred_at": now, "mig_device_uuid": "MIG-1", "signal": "HUP"}]});
    let res = app
        .post("/v1/agent/events", &cred, bad)
        .await
        .expect_problem(400, "validation_failed");
    assert!(res.body.to_string().contains("events[0].signal"));
}

async fn a_real_agent_reports_usage_once_across_a_resend_and_audits_its_enforcement(
    backend: Backend,
) {
    use aion_agent::backend::GpuBackend;
    use aion_agent::backend::sim::{SimBackend, SimConfig};
    use aion_agent::config::AgentConfig;
    use aion_agent::reconcile::Agent;
    use std::sync::Arc;

    // Arrange: a simulated node registered by the real agent, a lease placed on it.
    let app = TestApp::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(SimBackend::new(SimConfig {
        model: aion_mig::GpuModel::H100_80GB,
        gpus: 1,
        seed: 3,
        mig_enabled: true,
    }));
    let mut config = AgentConfig::new(&app.base, dir.path());
    config.join_token = Some(join_token(&app, "par-1").await);
    config.hostname = Some("sim-usage-1".into());
    let new_agent = || {
        let b: Arc<dyn GpuBackend> = sim.clone();
        Agent::new(config.clone(), b).unwrap()
    };
    let agent = new_agent();
    let node = agent.credential().await.unwrap().node_id.to_string();
    let org = app.create_org("lab", "academic").await;
    let project = app.create_project(&org, "climate").await;
    let gpu = sim.inventory().unwrap()[0].uuid.clone();
    let lease = place_lease(&app, &project, &node, &gpu, "scheduled").await;

    // Act: the agent creates the instance, samples it for a while and reports.
    assert!(agent.reconcile_once().await.unwrap().online);
    agent.sample_usage().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    agent.sample_usage().await.unwrap();
    agent.close_usage().await;
    let (queued, _) = agent.queued_reports().await;
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].lease_id, queued[0].sequence), (lease, 0));
    let outbox = std::fs::read(dir.path().join("usage-outbox.json")).unwrap();
    agent.flush_reports().await.unwrap();
    assert!(agent.queued_reports().await.0.is_empty());

    // A crash after the send and before the acknowledgement was saved: the restarted
    // agent resends the same sequence, and the server counts it once.
    drop(agent);
    std::fs::write(dir.path().join("usage-outbox.json"), outbox).unwrap();
    let agent = new_agent();
    assert_eq!(agent.queued_reports().await.0, queued);
    agent.flush_reports().await.unwrap();
    // The agent's clock runs on; the server's is held at the test's start.
    let to =
        (app.clock.now() + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let usage = app
        .get(&format!("/v1/leases/{lease}/usage?to={to}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(usage.body["total"]["records"], 1, "{}", usage.body);
    assert!(usage.body["total"]["allocated_seconds"].as_i64().unwrap() >= 2);
    assert!(usage.body["total"]["energy_wh"].as_f64().unwrap() > 0.0);

    // A process left on the slice of a released lease is stopped, the instance
    // destroyed, and both land in the audit log as done by the node.
    let device = sim.instances().unwrap()[0].mig_device_uuid.clone();
    sim.attach_virtual_process(&device, 4242, 512).unwrap();
    app.delete(&format!("/v1/leases/{lease}"), &app.admin).await;
    for _ in 0..3 {
        agent.reconcile_once().await.unwrap();
    }
    assert!(sim.instances().unwrap().is_empty());
    for action in [
        "node.instance_created",
        "node.process_terminated",
        "node.instance_destroyed",
    ] {
        let log = app
            .get(&format!("/v1/audit-events?action={action}"), &app.admin)
            .await
            .expect(200);
        let items = log.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{action}: {}", log.body);
        assert_eq!(items[0]["actor"], format!("node:{node}"));
        assert_eq!(items[0]["target_id"], lease.to_string());
    }
}
