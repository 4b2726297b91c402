//! Lease load against a running `aion serve` with a simulated fleet attached (see
//! `scripts/fleet-bench.sh`): sets up one organisation, project, quota, grant and lead
//! token, then creates 1g leases at a steady `--rate` per second for `--duration-s`
//! seconds; each is followed with `GET /v1/leases/{id}?wait=30` until `active`. Reports
//! request → `active` p50/p99 (client-side wall time) and releases the leases at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly on setup errors

use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod support;
use support::{call, tenant};

struct Args {
    base: String,
    token: String,
    rate: f64,
    duration_s: f64,
    profile: String,
}

fn args() -> Args {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        token: String::new(),
        rate: 50.0,
        duration_s: 60.0,
        profile: "1g.10gb".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().expect("flag value");
        match flag.as_str() {
            "--base" => a.base = val(),
            "--token" => a.token = val(),
            "--token-file" => a.token = std::fs::read_to_string(val()).unwrap().trim().to_owned(),
            "--rate" => a.rate = val().parse().unwrap(),
            "--duration-s" => a.duration_s = val().parse().unwrap(),
            "--profile" => a.profile = val(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.token.is_empty(), "--token or --token-file is required");
    a
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Creates one lease and follows it until active; answers (id, ms to create, ms to active).
async fn one(
    client: reqwest::Client,
    base: String,
    project: String,
    token: String,
    profile: String,
) -> (String, f64, Option<f64>) {
    let t = Instant::now();
    let res = client
        .post(format!("{base}/v1/projects/{project}/leases"))
        .bearer_auth(&token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"profile": profile, "duration_s": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let lease: Value = res.json().await.unwrap();
    let created_ms = t.elapsed().as_secs_f64() * 1000.0;
    let id = lease["id"].as_str().unwrap().to_owned();
    let mut state = lease["state"].as_str().unwrap_or_default().to_owned();
    let give_up = Instant::now() + Duration::from_secs(90);
    while state != "active" && Instant::now() < give_up {
        if ["failed", "expired", "released", "preempted"].contains(&state.as_str()) {
            return (id, created_ms, None);
        }
        let l = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/v1/leases/{id}?wait=30"),
            &token,
            None,
        )
        .await;
        state = l["state"].as_str().unwrap_or_default().to_owned();
    }
    let active = (state == "active").then(|| t.elapsed().as_secs_f64() * 1000.0);
    (id, created_ms, active)
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .unwrap();
    let slug = format!("fleet-load-{}", std::process::id());
    let (project, token) = tenant(&client, &a.base, &a.token, &slug, "fleet-bench").await;
    let total = (a.rate * a.duration_s).round() as usize;
    let every = Duration::from_secs_f64(1.0 / a.rate);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        tasks.spawn(one(
            client.clone(),
            a.base.clone(),
            project.clone(),
            token.clone(),
            a.profile.clone(),
        ));
    }
    let offered_s = start.elapsed().as_secs_f64();
    let (mut created, mut active, mut ids, mut not_active) =
        (Vec::new(), Vec::new(), Vec::new(), 0usize);
    while let Some(r) = tasks.join_next().await {
        let (id, c, act) = r.unwrap();
        created.push(c);
        match act {
            Some(ms) => active.push(ms),
            None => not_active += 1,
        }
        ids.push(id);
    }
    created.sort_by(f64::total_cmp);
    active.sort_by(f64::total_cmp);
    let report = json!({
        "leases": total, "offered_per_s": total as f64 / offered_s, "active": active.len(), "not_active": not_active,
        "create_ms": {"p50": percentile(&created, 0.5), "p99": percentile(&created, 0.99)},
        "to_active_ms": {"p50": percentile(&active, 0.5), "p99": percentile(&active, 0.99), "max": active.last().copied().unwrap_or(0.0)},
    });
    println!("{report}");
    // Leave the fleet empty for the next run.
    let mut rel = tokio::task::JoinSet::new();
    for id in ids {
        let (client, base, token) = (client.clone(), a.base.clone(), token.clone());
        rel.spawn(async move {
            let _ = client
                .delete(format!("{base}/v1/leases/{id}"))
                .bearer_auth(&token)
                .send()
                .await;
        });
        while rel.len() >= 64 {
            rel.join_next().await;
        }
    }
    while rel.join_next().await.is_some() {}
}
