//! Load benchmark of lease admission and scheduling over HTTP against a running
//! `aion serve` (see `scripts/lease-bench.sh`, which starts one on a fresh PostgreSQL
//! database and runs pgbench beside it).
//!
//! It registers `--gpus` simulated GPUs (8 per node, through join tokens and the agent
//! API), creates one organisation + project + grant per client, then `--clients`
//! concurrent clients create `--leases` 1g leases in total. It reports request latency,
//! the creation rate, and the rate at which leases reached `scheduled` (from the
//! leases' own `created_at`/`scheduled_at`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly on setup errors

use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod support;
use support::{call, tenant};

struct Args {
    base: String,
    token: String,
    gpus: usize,
    clients: usize,
    leases: usize,
    settle_s: u64,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        token: String::new(),
        gpus: 1000,
        clients: 32,
        leases: 6000,
        settle_s: 0,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().expect("flag value");
        match flag.as_str() {
            "--base" => a.base = val(),
            "--token" => a.token = val(),
            "--gpus" => a.gpus = val().parse().unwrap(),
            "--clients" => a.clients = val().parse().unwrap(),
            "--leases" => a.leases = val().parse().unwrap(),
            "--settle-s" => a.settle_s = val().parse().unwrap(),
            "--json" => a.json = true,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.token.is_empty(), "--token ADMIN_TOKEN is required");
    a
}

async fn register_nodes(client: &reqwest::Client, a: &Args) {
    let nodes = a.gpus.div_ceil(8);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..nodes {
        let (client, base, token) = (client.clone(), a.base.clone(), a.token.clone());
        tasks.spawn(async move {
            let join = call(&client, reqwest::Method::POST, format!("{base}/v1/join-tokens"), &token, Some(json!({"site": "paris-1"}))).await;
            let secret = join["secret"].as_str().unwrap().to_owned();
            let gpus: Vec<Value> = (0..8)
                .map(|i| json!({"uuid": format!("GPU-{n:08}-{i:04}-0000-0000-000000000000"), "index": i, "model": "H100-80GB", "memory_mib": 81559, "mig_enabled": true}))
                .collect();
            call(&client, reqwest::Method::POST, format!("{base}/v1/agent/register"), &secret, Some(json!({"hostname": format!("gpu-{n:06}.bench"), "gpus": gpus}))).await;
        });
        while tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients * 2)
        .build()
        .unwrap();
    let setup = Instant::now();
    register_nodes(&client, &a).await;
    let mut tenants = Vec::new();
    for i in 0..a.clients {
        tenants.push(tenant(&client, &a.base, &a.token, &format!("bench-{i}"), "bench").await);
    }
    eprintln!(
        "setup: {} GPUs, {} tenants in {:.1} s",
        a.gpus,
        a.clients,
        setup.elapsed().as_secs_f64()
    );
    // Registering a large fleet moves the fleet revision thousands of times; the
    // scheduler spaces its rebuilds (a few seconds apart at 288,000 GPUs). Measure the
    // steady state, not the tail of the registration.
    tokio::time::sleep(Duration::from_secs(a.settle_s)).await;
    let per_client = a.leases / a.clients;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (project, token) in tenants.clone() {
        let (client, base) = (client.clone(), a.base.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/v1/projects/{project}/leases"))
                    .bearer_auth(&token)
                    // As a careful partner does: a retry would replay, not duplicate.
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"profile": "1g.10gb", "duration_s": 3600}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    res.status().as_u16(),
                    201,
                    "{}",
                    res.text().await.unwrap_or_default()
                );
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(t) = tasks.join_next().await {
        latencies.extend(t.unwrap());
    }
    let create_s = start.elapsed().as_secs_f64();
    latencies.sort();
    // Wait until every lease is scheduled, then take the rate from the leases' timestamps.
    let (mut first_created, mut last_scheduled) = (
        None::<chrono::DateTime<chrono::Utc>>,
        None::<chrono::DateTime<chrono::Utc>>,
    );
    let mut scheduled = 0usize;
    for (project, token) in &tenants {
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/projects/{project}/leases?limit=200", a.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = call(&client, reqwest::Method::GET, url, token, None).await;
            for l in page["items"].as_array().unwrap() {
                let mut l = l.clone();
                while l["state"] == "pending" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let id = l["id"].as_str().unwrap();
                    l = call(
                        &client,
                        reqwest::Method::GET,
                        format!("{}/v1/leases/{id}", a.base),
                        token,
                        None,
                    )
                    .await;
                }
                let created: chrono::DateTime<chrono::Utc> =
                    l["created_at"].as_str().unwrap().parse().unwrap();
                if let Some(s) = l["scheduled_at"].as_str() {
                    let s: chrono::DateTime<chrono::Utc> = s.parse().unwrap();
                    scheduled += 1;
                    last_scheduled = Some(last_scheduled.map_or(s, |x| x.max(s)));
                }
                first_created = Some(first_created.map_or(created, |x| x.min(created)));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
    }
    let span = match (first_created, last_scheduled) {
        (Some(f), Some(l)) => (l - f).num_milliseconds() as f64 / 1000.0,
        _ => f64::NAN,
    };
    let report = json!({
        "gpus": a.gpus, "clients": a.clients, "leases": latencies.len(), "scheduled": scheduled,
        "create_per_s": latencies.len() as f64 / create_s,
        "scheduled_per_s": scheduled as f64 / span,
        "p50_ms": percentile(&latencies, 0.50), "p99_ms": percentile(&latencies, 0.99),
    });
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    }
}
