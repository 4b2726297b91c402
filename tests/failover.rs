//! Leader failover between two real `aion serve` processes on one PostgreSQL database
//! (issue 4, items 4 and 6): leases are created through both replicas, with
//! `Idempotency-Key`s, while the scheduler's leader is stopped (SIGTERM) or killed
//! (SIGKILL); requests that failed with their server are retried on the survivor with
//! the same key. Nothing may be lost (every lease ends `scheduled`, placed by the
//! survivor once the leader is gone), nothing duplicated (one lease per key, the same id
//! on every retry), and no GPU memory slot claimed twice.
//!
//! Like the PostgreSQL half of `tests/api`, this needs the server named by
//! `AION_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); each
//! test creates a fresh database and drops it at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/serve.rs"]
mod serve;

use aion_services::scheduler::leader::LOCK_KEY;
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use serve::ServeProcess;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// GPUs on the registered node: 16 × 7 = 112 slots of `1g.10gb`.
const GPUS: usize = 16;
/// Leases placed by the first leader before anything goes wrong.
const LEASES_BEFORE: usize = 16;
/// Leases requested through both replicas while the leader goes down.
const LEASES_DURING: usize = 48;
/// Leases requested from the survivor afterwards.
const LEASES_AFTER: usize = 32;
/// How long one lease request (with its retries) may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How long the survivor may take to lead (its followers retry every 3 s).
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(30);
/// How long placing every lease may take once the survivor leads.
const PLACE_DEADLINE: Duration = Duration::from_secs(60);
/// How long the stopped leader may take to exit (graceful shutdown waits up to 10 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_leader_sigterm_loses_and_duplicates_nothing() {
    failover("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_leader_sigkill_loses_and_duplicates_nothing() {
    failover("KILL").await;
}

/// Replicas cache API-token lookups for a few seconds; a token revoked through one replica
/// must be refused by the other at once (PostgreSQL NOTIFY), long before the cache's TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_revoked_through_one_replica_is_refused_at_once_by_the_other() {
    let pg = PgDatabase::create().await;
    let root = tempfile::tempdir().unwrap();
    migrate(&pg.url, root.path());
    let a = Replica::start("a", &pg.url, root.path()).await;
    let admin = std::fs::read_to_string(a.dir.join("data/admin-token"))
        .expect("the first replica writes the admin token")
        .trim()
        .to_owned();
    let b = Replica::start("b", &pg.url, root.path()).await;
    let client = reqwest::Client::new();
    let org = must(
        &client,
        Method::POST,
        format!("{}/v1/organizations", a.base),
        &admin,
        json!({"slug": "lab", "name": "lab", "kind": "industry"}),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = must(
        &client,
        Method::POST,
        format!("{}/v1/organizations/{org}/tokens", a.base),
        &admin,
        json!({"name": "partner", "role": "admin"}),
        201,
    )
    .await;
    let (id, secret) = (
        token["token"]["id"].as_str().unwrap().to_owned(),
        token["secret"].as_str().unwrap().to_owned(),
    );
    let read = format!("{}/v1/organizations/{org}", b.base);
    for _ in 0..3 {
        let (status, _) = call(&client, Method::GET, &read, &secret, None, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "the token works on b (and b caches it)");
    }
    let (status, body) = call(
        &client,
        Method::DELETE,
        &format!("{}/v1/organizations/{org}/tokens/{id}", a.base),
        &admin,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let revoked = Instant::now();
    loop {
        let (status, _) = call(&client, Method::GET, &read, &secret, None, None)
            .await
            .unwrap();
        if status == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "b still accepts the revoked token {:?} later (its cache lives 10 s)\n{}",
            revoked.elapsed(),
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((a, b));
}

// ---------------------------------------------------------------------------------------
// PostgreSQL database (as tests/api/helpers.rs does it)
// ---------------------------------------------------------------------------------------

fn postgres_admin_url() -> String {
    std::env::var("AION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped (with any session still on it) when dropped.
struct PgDatabase {
    url: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> Self {
        let admin = postgres_admin_url();
        let name = format!("aion_failover_{}", uuid::Uuid::new_v4().simple());
        let conn = sea_orm::Database::connect(&admin)
            .await
            .expect("PostgreSQL for tests (AION_TEST_POSTGRES_URL)");
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(conn) = sea_orm::Database::connect(&postgres_admin_url()).await {
                    let _ = conn
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = conn.close().await;
                }
            })
        })
        .join();
    }
}

async fn query(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
}

// ---------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------

/// One `aion serve` replica on the shared database.
struct Replica(ServeProcess);

impl std::ops::Deref for Replica {
    type Target = ServeProcess;
    fn deref(&self) -> &ServeProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Replica {
    fn deref_mut(&mut self) -> &mut ServeProcess {
        &mut self.0
    }
}

impl Replica {
    /// Starts `aion serve` on a free port and waits until it listens.
    async fn start(name: &'static str, db_url: &str, root: &Path) -> Self {
        let extra = ["--pending-timeout-s", "600", "--log-format", "json"];
        Self(ServeProcess::start(name, db_url, "127.0.0.1:0", root, &extra).await)
    }

    /// How many times this process logged taking the scheduler's leadership.
    fn leadership_taken(&self) -> usize {
        self.stderr()
            .matches("scheduler: gained leadership")
            .count()
    }

    /// Socket inodes open in this process (`/proc/PID/fd`).
    fn socket_inodes(&self) -> HashSet<u64> {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.pid())) else {
            return HashSet::new();
        };
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let t = target.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
    }
}

/// The inode of the local TCP socket bound to `port` (from `/proc/net/tcp{,6}`).
fn tcp_socket_inode(port: u16) -> Option<u64> {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() > 9 && cols[1].ends_with(&local))
                .then(|| cols[9].parse().ok())
                .flatten()
        })
}

// ---------------------------------------------------------------------------------------
// The leader, as PostgreSQL sees it
// ---------------------------------------------------------------------------------------

/// Backends holding the scheduler's advisory lock in this database: (pid, client port).
async fn lock_holders(db: &DatabaseConnection) -> Vec<(i32, Option<i32>)> {
    let (hi, lo) = ((LOCK_KEY as u64) >> 32, (LOCK_KEY as u64) & 0xffff_ffff);
    let sql = format!(
        "SELECT l.pid, a.client_port FROM pg_locks l \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.classid::bigint = {hi} AND l.objid::bigint = {lo} \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    );
    query(db, &sql)
        .await
        .iter()
        .map(|r| {
            (
                r.try_get::<i32>("", "pid").unwrap(),
                r.try_get::<Option<i32>>("", "client_port").unwrap(),
            )
        })
        .collect()
}

/// Which replica (index) holds the lock, tied through the client socket of the backend
/// that holds it; `None` while nobody holds it. Panics if two backends hold it.
async fn lock_owner(db: &DatabaseConnection, replicas: &[&Replica]) -> Option<(usize, i32)> {
    let holders = lock_holders(db).await;
    assert!(
        holders.len() <= 1,
        "two sessions hold the scheduler lock at once: {holders:?}"
    );
    let (pid, port) = *holders.first()?;
    let port = u16::try_from(port?).ok()?;
    let inode = tcp_socket_inode(port)?;
    replicas
        .iter()
        .position(|r| !r.exited && r.socket_inodes().contains(&inode))
        .map(|i| (i, pid))
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
    idem: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    if let Some(key) = idem {
        req = req.header("idempotency-key", key);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A set-up call that must answer `expect`.
async fn must(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: &str,
    body: Value,
    expect: u16,
) -> Value {
    let (status, body) = call(client, method, &url, token, Some(body), None)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(status, expect, "{url}: {body}");
    body
}

/// What happened to one keyed lease request.
#[derive(Debug)]
struct Created {
    key: String,
    id: String,
    /// Failed attempts before the answer: (replica index, what went wrong).
    failures: Vec<(usize, String)>,
    /// The replica that answered.
    answered_by: usize,
}

/// Creates a lease with `key`, first through replica `first`, retrying on the other
/// replica (same key) when the server is gone, shutting down or reports a concurrent use
/// of the key; any other answer than 201 fails the test.
async fn create_lease(
    client: reqwest::Client,
    bases: [String; 2],
    first: usize,
    project: String,
    token: String,
    key: String,
) -> Created {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut failures = Vec::new();
    let mut target = first;
    loop {
        let url = format!("{}/v1/projects/{project}/leases", bases[target]);
        let body = json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600});
        match call(&client, Method::POST, &url, &token, Some(body), Some(&key)).await {
            Ok((201, body)) => {
                return Created {
                    id: body["id"].as_str().unwrap().to_owned(),
                    key,
                    failures,
                    answered_by: target,
                };
            }
            // The same key in flight elsewhere (a request cut off with its server).
            Ok((409, body)) if body["code"] == "conflict" => {
                failures.push((target, format!("409 {}", body["detail"])))
            }
            Ok((status @ (502..=504), body)) => failures.push((target, format!("{status} {body}"))),
            Ok((status, body)) => {
                panic!("lease {key} on replica {target}: unexpected {status}: {body}")
            }
            Err(e) => {
                let mut text = if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    format!("cut off: {e}")
                };
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                failures.push((target, text))
            }
        }
        assert!(
            Instant::now() < deadline,
            "lease {key} not created within {REQUEST_DEADLINE:?}: {failures:?}"
        );
        target = 1 - target;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------

/// Applies the migrations to the test database with `aion migrate`.
fn migrate(url: &str, root: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_aion"))
        .args(["migrate", "--database-url", url])
        .arg("--data-dir")
        .arg(root.join("migrate"))
        .env("AION_LOG", "warn")
        .output()
        .expect("running aion migrate");
    assert!(
        status.status.success(),
        "aion migrate failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

async fn failover(sig: &str) {
    let pg = PgDatabase::create().await;
    let root = tempfile::tempdir().unwrap();
    migrate(&pg.url, root.path());
    let db = sea_orm::Database::connect(&pg.url).await.unwrap();

    // The first replica bootstraps the admin token; the second finds a database that has
    // one already. API tokens live in the database, so one token works on both.
    let a = Replica::start("a", &pg.url, root.path()).await;
    let admin = std::fs::read_to_string(a.dir.join("data/admin-token"))
        .expect("the first replica writes the admin token")
        .trim()
        .to_owned();
    let b = Replica::start("b", &pg.url, root.path()).await;
    assert!(
        !b.dir.join("data/admin-token").exists(),
        "the second replica must not bootstrap another admin"
    );
    let mut replicas = [a, b];
    let bases = [replicas[0].base.clone(), replicas[1].base.clone()];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Tenancy, grant and quota through replica a; the node registers through replica b.
    let (a_url, b_url) = (&bases[0], &bases[1]);
    let org = must(
        &client,
        Method::POST,
        format!("{a_url}/v1/organizations"),
        &admin,
        json!({"slug": "lab", "name": "lab", "kind": "industry"}),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = must(
        &client,
        Method::POST,
        format!("{a_url}/v1/organizations/{org}/projects"),
        &admin,
        json!({"slug": "training", "name": "training"}),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    must(
        &client,
        Method::PUT,
        format!("{a_url}/v1/organizations/{org}/quota"),
        &admin,
        json!({"max_compute_slices": 700}),
        200,
    )
    .await;
    must(
        &client,
        Method::PUT,
        format!("{b_url}/v1/projects/{project}/quota"),
        &admin,
        json!({"max_compute_slices": 700}),
        200,
    )
    .await;
    let now = chrono::Utc::now();
    must(
        &client,
        Method::POST,
        format!("{a_url}/v1/grants"),
        &admin,
        json!({"project_id": project, "gpu_model": "H100-80GB", "gpu_hours": 10_000,
            "valid_from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "valid_until": (now + chrono::Duration::days(30)).to_rfc3339(), "reference": "C-1"}),
        201,
    )
    .await;
    let lead = must(
        &client,
        Method::POST,
        format!("{b_url}/v1/projects/{project}/tokens"),
        &admin,
        json!({"name": "lead token", "role": "lead"}),
        201,
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let join = must(
        &client,
        Method::POST,
        format!("{a_url}/v1/join-tokens"),
        &admin,
        json!({"site": "par-1", "labels": {"rack": "r1"}}),
        201,
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let gpus: Vec<Value> = (0..GPUS)
        .map(|i| {
            json!({"uuid": format!("GPU-failover-{i}"), "index": i, "model": "H100-80GB",
                   "memory_mib": 81_559, "mig_enabled": true})
        })
        .collect();
    must(
        &client,
        Method::POST,
        format!("{b_url}/v1/agent/register"),
        &join,
        json!({"hostname": "gpu-failover", "gpus": gpus}),
        201,
    )
    .await;

    // Exactly one replica leads: it says so, and PostgreSQL shows its session holding
    // the lock.
    let deadline = Instant::now() + TAKEOVER_DEADLINE;
    let (leader, old_lock_pid) = loop {
        let owner = lock_owner(&db, &[&replicas[0], &replicas[1]]).await;
        if let Some((i, pid)) = owner
            && replicas[i].leadership_taken() > 0
        {
            break (i, pid);
        }
        assert!(
            Instant::now() < deadline,
            "no replica took the scheduler's leadership within {TAKEOVER_DEADLINE:?} \
             (lock holder: {owner:?})\n{}\n{}",
            replicas[0].logs(),
            replicas[1].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let survivor = 1 - leader;
    assert_eq!(
        replicas[survivor].leadership_taken(),
        0,
        "both replicas claim to lead\n{}",
        replicas[survivor].logs()
    );

    // Some leases placed by the first leader, so that the survivor must restore a fleet
    // with slots already claimed.
    let mut tasks = Vec::new();
    for i in 0..LEASES_BEFORE {
        tasks.push(tokio::spawn(create_lease(
            client.clone(),
            bases.clone(),
            i % 2,
            project.clone(),
            lead.clone(),
            format!("lease-{i:03}"),
        )));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.expect("a lease request task panicked"));
    }
    let placed_by_first_leader =
        wait_scheduled(&db, &project, LEASES_BEFORE, &replicas[leader]).await;

    // Leases through both replicas, one every 15 ms; halfway the leader gets the signal.
    let mut tasks = Vec::new();
    let mut signalled_at = None;
    for i in LEASES_BEFORE..LEASES_BEFORE + LEASES_DURING {
        if i == LEASES_BEFORE + LEASES_DURING / 2 {
            replicas[leader].signal(sig);
            signalled_at = Some(Instant::now());
        }
        tasks.push(tokio::spawn(create_lease(
            client.clone(),
            bases.clone(),
            i % 2,
            project.clone(),
            lead.clone(),
            format!("lease-{i:03}"),
        )));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for t in tasks {
        created.push(t.await.expect("a lease request task panicked"));
    }
    let exit = replicas[leader].wait_exit(EXIT_DEADLINE).await;
    let signalled_at = signalled_at.unwrap();

    // What the old leader left behind once it is gone.
    let snapshot = lease_states(&db, &project).await;
    let pending_at_failover: Vec<String> = snapshot
        .iter()
        .filter(|(_, s)| s.as_str() == "pending")
        .map(|(id, _)| id.clone())
        .collect();
    let placed_by_old_leader = snapshot.values().filter(|s| *s == "scheduled").count();
    let placements_at_failover = placements(&db).await;

    // More leases on the survivor alone.
    let mut tasks = Vec::new();
    let first_after = LEASES_BEFORE + LEASES_DURING;
    for i in first_after..first_after + LEASES_AFTER {
        tasks.push(tokio::spawn(create_lease(
            client.clone(),
            bases.clone(),
            survivor,
            project.clone(),
            lead.clone(),
            format!("lease-{i:03}"),
        )));
    }
    for t in tasks {
        created.push(t.await.expect("a lease request task panicked"));
    }

    // The survivor takes the leadership: it says so, and its own session holds the lock.
    let deadline = Instant::now() + TAKEOVER_DEADLINE;
    let new_lock_pid = loop {
        let owner = lock_owner(&db, &[&replicas[0], &replicas[1]]).await;
        if let Some((i, pid)) = owner
            && i == survivor
            && replicas[survivor].leadership_taken() > 0
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor ({}) did not take the leadership within {TAKEOVER_DEADLINE:?} \
             (lock holder: {owner:?})\n{}",
            replicas[survivor].name,
            replicas[survivor].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(new_lock_pid, old_lock_pid, "the lock's session changed");
    let took_over_after = signalled_at.elapsed();

    // Every lease ends up scheduled.
    let total = LEASES_BEFORE + LEASES_DURING + LEASES_AFTER;
    let states = wait_scheduled(&db, &project, total, &replicas[survivor]).await;
    let placed_after = signalled_at.elapsed();

    // Admitted exactly once: one lease per key, the same id on every replay.
    let mut by_key: HashMap<&str, &str> = HashMap::new();
    for c in &created {
        assert!(
            by_key.insert(&c.key, &c.id).is_none(),
            "key {} answered twice",
            c.key
        );
    }
    let ids: HashSet<&str> = created.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), total, "two keys answered with the same lease");
    let in_db: HashSet<&str> = states.keys().map(String::as_str).collect();
    assert_eq!(
        in_db, ids,
        "the database holds exactly the leases the clients were answered with"
    );
    for c in &created {
        let url = format!("{}/v1/projects/{project}/leases", bases[survivor]);
        let body = json!({"profile": "1g.10gb", "count": 1, "duration_s": 3600});
        let (status, replay) = call(&client, Method::POST, &url, &lead, Some(body), Some(&c.key))
            .await
            .unwrap();
        assert_eq!(status, 201, "replay of {}: {replay}", c.key);
        assert_eq!(
            replay["id"],
            c.id.as_str(),
            "replay of {} on the survivor",
            c.key
        );
    }
    let count = query(&db, "SELECT count(*) AS n FROM leases").await[0]
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, total as i64, "replays created no lease");

    // Nothing left pending at the failover was lost.
    for id in &pending_at_failover {
        assert_eq!(
            states[id], "scheduled",
            "lease {id} pending at the failover"
        );
    }

    // What the first leader placed stays where it was (the survivor moved nothing).
    let final_placements = placements(&db).await;
    for (lease, at) in &placements_at_failover {
        assert_eq!(
            final_placements.get(lease),
            Some(at),
            "lease {lease} placed before the failover moved"
        );
    }

    // No memory slot claimed twice; every lease holds exactly its one placement and the
    // claims that match it.
    check_slots(&db, total).await;

    let retried: Vec<&Created> = created.iter().filter(|c| !c.failures.is_empty()).collect();
    let answered_by_old = created.iter().filter(|c| c.answered_by == leader).count();
    println!(
        "SIG{sig}: leader {} ({exit}); survivor {} led {took_over_after:?} and all {total} \
         leases were scheduled {placed_after:?} after the signal. The first leader placed \
         {} leases before the failover ({} of them beforehand), {} were pending when it was \
         gone; it answered {answered_by_old} requests; {} requests were retried, e.g. {:?}",
        replicas[leader].name,
        replicas[survivor].name,
        placed_by_old_leader,
        placed_by_first_leader.len(),
        pending_at_failover.len(),
        retried.len(),
        retried
            .iter()
            .take(3)
            .map(|c| (&c.key, &c.failures))
            .collect::<Vec<_>>()
    );
    db.close().await.unwrap();
    drop(replicas);
    drop(pg);
}

/// Waits until the project has `n` leases, all `scheduled`; returns their states.
async fn wait_scheduled(
    db: &DatabaseConnection,
    project: &str,
    n: usize,
    leader: &Replica,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + PLACE_DEADLINE;
    loop {
        let states = lease_states(db, project).await;
        if states.len() >= n && states.values().all(|s| s == "scheduled") {
            return states;
        }
        if Instant::now() >= deadline {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for s in states.values() {
                *count.entry(s.as_str()).or_default() += 1;
            }
            let reasons = query(
                db,
                "SELECT id::text AS id, state, coalesce(state_reason, '') AS reason \
                 FROM leases WHERE state <> 'scheduled' LIMIT 10",
            )
            .await
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.try_get::<String>("", "id").unwrap(),
                    r.try_get::<String>("", "state").unwrap(),
                    r.try_get::<String>("", "reason").unwrap()
                )
            })
            .collect::<Vec<_>>();
            panic!(
                "not every lease was scheduled within {PLACE_DEADLINE:?}: {count:?} of {n} \
                 expected; e.g. {reasons:#?}\n{}",
                leader.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lease id → (GPU id, start) of every placement.
async fn placements(db: &DatabaseConnection) -> BTreeMap<String, (String, i32)> {
    query(
        db,
        "SELECT lease_id::text AS lease, gpu_id::text AS gpu, start FROM lease_placements",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "lease").unwrap(),
            (
                r.try_get::<String>("", "gpu").unwrap(),
                r.try_get::<i32>("", "start").unwrap(),
            ),
        )
    })
    .collect()
}

/// Lease id → state for the project.
async fn lease_states(db: &DatabaseConnection, project: &str) -> BTreeMap<String, String> {
    query(
        db,
        &format!("SELECT id::text AS id, state FROM leases WHERE project_id = '{project}'"),
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "id").unwrap(),
            r.try_get::<String>("", "state").unwrap(),
        )
    })
    .collect()
}

/// Checks the placements and slot claims in the database.
async fn check_slots(db: &DatabaseConnection, total: usize) {
    let twice = query(
        db,
        "SELECT gpu_id::text AS gpu, slot, count(*) AS n FROM gpu_slot_claims \
         GROUP BY gpu_id, slot HAVING count(*) > 1",
    )
    .await;
    assert!(twice.is_empty(), "{} slots claimed twice", twice.len());
    let overlapping = query(
        db,
        "SELECT gpu_id::text AS gpu, start, count(*) AS n FROM lease_placements p \
         JOIN leases l ON l.id = p.lease_id WHERE l.state = 'scheduled' \
         GROUP BY gpu_id, start HAVING count(*) > 1",
    )
    .await;
    assert!(
        overlapping.is_empty(),
        "{} (GPU, start) pairs hold two 1g placements",
        overlapping.len()
    );
    // One placement per lease (count 1), one claim per placement (a 1g.10gb covers one
    // memory slot), the claim on the placement's GPU at its start.
    let per_lease = query(
        db,
        "SELECT l.id::text AS id, \
           (SELECT count(*) FROM lease_placements p WHERE p.lease_id = l.id) AS placements, \
           (SELECT count(*) FROM gpu_slot_claims c WHERE c.lease_id = l.id) AS claims, \
           (SELECT count(*) FROM gpu_slot_claims c JOIN lease_placements p \
              ON p.lease_id = c.lease_id AND p.gpu_id = c.gpu_id AND p.start = c.slot \
            WHERE c.lease_id = l.id) AS matching \
         FROM leases l",
    )
    .await;
    assert_eq!(per_lease.len(), total);
    for r in &per_lease {
        let id = r.try_get::<String>("", "id").unwrap();
        let counts: Vec<i64> = ["placements", "claims", "matching"]
            .iter()
            .map(|c| r.try_get::<i64>("", c).unwrap())
            .collect();
        assert_eq!(
            counts,
            [1, 1, 1],
            "lease {id}: placements, claims, claims matching the placement"
        );
    }
}
