//! The scheduler against a real database (SQLite file or a fresh PostgreSQL database):
//! nodes, GPUs and pending leases are written directly, then ticks are driven with
//! `run_once` and a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aion_mig::GpuModel;
use aion_services::authz::Caller;
use aion_services::clock::Clock;
use aion_services::entities::{
    gpu_slot_claims, gpus, grant_ledger, grants, lease_placements, leases, nodes,
};
use aion_services::ids::{GrantId, OrganizationId, ProjectId};
use aion_services::lease_lifecycle;
use aion_services::lease_state::LeaseState;
use aion_services::oidc::OidcVerifier;
use aion_services::scheduler::{Leadership, SchedulerConfig, SchedulerState, run_once};
use aion_services::{Services, db, organizations, projects};
use chrono::{Duration, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

fn postgres_admin_url() -> String {
    std::env::var("AION_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database for one test, removed when dropped.
struct TestDb {
    url: String,
    _dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}/aion.db?mode=rwc", dir.path().display()),
                _dir: dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("aion_test_{}", Uuid::new_v4().simple());
                let conn = sea_orm::Database::connect(&admin).await.unwrap();
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
                Self {
                    url: format!("{base}/{name}"),
                    _dir: dir,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.clone() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(conn) = sea_orm::Database::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = conn.execute_unprepared(&sql).await;
                    let _ = conn.close().await;
                }
            })
        })
        .join();
    }
}

async fn services(url: &str, clock: &Clock) -> Services {
    let conn = db::connect(url, 5).await.unwrap();
    Services {
        db: conn,
        clock: clock.clone(),
        oidc: Arc::new(OidcVerifier::new(vec![], 0, clock.clone()).unwrap()),
        events: Arc::default(),
        admission: Arc::default(),
        budget: Arc::default(),
        tokens: Arc::default(),
        node_credentials: Arc::default(),
        heartbeats: Arc::default(),
    }
}

/// One test's world: a database with an organisation and a project.
struct World {
    svc: Services,
    org: OrganizationId,
    project: ProjectId,
    db: TestDb,
}

impl World {
    async fn new(backend: Backend) -> Self {
        Self::with_migrations(backend, None).await
    }

    /// A world whose database has only the first `steps` migrations (all when `None`).
    async fn with_migrations(backend: Backend, steps: Option<u32>) -> Self {
        use migration::MigratorTrait;
        let db = TestDb::new(backend).await;
        let clock = Clock::manual(Utc::now().trunc_subsecs(6));
        let svc = services(&db.url, &clock).await;
        migration::Migrator::up(&svc.db, steps).await.unwrap();
        let caller = Caller::system("t");
        let cmd = organizations::NewOrganization::parse("lab", "Lab", "academic", None).unwrap();
        let org = organizations::create(&svc, &caller, cmd, None)
            .await
            .unwrap();
        let cmd = projects::NewProject::parse("proj", "Project", None).unwrap();
        let project = projects::create(&svc, &caller, org.id, cmd, None)
            .await
            .unwrap();
        Self {
            svc,
            org: org.id,
            project: project.id,
            db,
        }
    }

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            batch_size: 64,
            tick: std::time::Duration::from_millis(50),
            pending_timeout: std::time::Duration::from_secs(60),
            // Every fleet change is seen at the next tick, whatever the machine's speed
            // (the spacing has its own test).
            rebuild_spacing: 0,
            // Rebuilt in the tick, however slow the machine (the background read has its
            // own test).
            background_rebuild_above: std::time::Duration::MAX,
            ..SchedulerConfig::default()
        }
    }

    fn state() -> SchedulerState {
        SchedulerState::new(Self::config())
    }

    /// A node with `gpu_count` H100-80GB GPUs in `state`.
    async fn node(&self, hostname: &str, state: &str, gpu_count: i32) -> Uuid {
        let now = self.svc.clock.now();
        let id = Uuid::now_v7();
        nodes::ActiveModel {
            id: Set(id),
            hostname: Set(hostname.into()),
            site: Set("paris-1".into()),
            labels: Set("{}".into()),
            state: Set(state.into()),
            gpu_model: Set("H100-80GB".into()),
            desired_revision: Set(0),
            last_heartbeat_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.svc.db)
        .await
        .unwrap();
        for index in 0..gpu_count {
            gpus::ActiveModel {
                id: Set(Uuid::now_v7()),
                node_id: Set(id),
                uuid: Set(format!("GPU-{hostname}-{index}")),
                gpu_index: Set(index),
                model: Set("H100-80GB".into()),
                memory_mib: Set(81_559),
                mig_enabled: Set(true),
                health: Set("ok".into()),
            }
            .insert(&self.svc.db)
            .await
            .unwrap();
        }
        // As the registry's writers do: the scheduler rebuilds its fleet when it moves.
        self.svc
            .db
            .execute_unprepared("UPDATE fleet_revision SET revision = revision + 1")
            .await
            .unwrap();
        id
    }

    /// A pending lease of `count` instances of `profile` on H100-80GB.
    async fn lease(&self, profile: &str, count: i32, same_node: bool, preemptible: bool) -> Uuid {
        let p = GpuModel::H100_80GB.parse_profile(profile).unwrap();
        let compute = i64::from(p.geometry().compute_slices) * i64::from(count);
        let now = self.svc.clock.now();
        let id = Uuid::now_v7();
        leases::ActiveModel {
            id: Set(id),
            project_id: Set(self.project.0),
            organization_id: Set(self.org.0),
            grant_id: Set(None),
            profile: Set(profile.into()),
            profile_id: Set(i32::from(p.id().get())),
            gpu_model: Set("H100-80GB".into()),
            count: Set(count),
            compute_slices: Set(compute),
            site: Set(None),
            same_node: Set(same_node),
            preemptible: Set(preemptible),
            duration_s: Set(3600),
            state: Set("pending".into()),
            state_reason: Set(None),
            held_slice_seconds: Set(3600 * compute),
            charged_slice_seconds: Set(0),
            created_by: Set("t".into()),
            created_at: Set(now),
            scheduled_at: Set(None),
            active_at: Set(None),
            releasing_at: Set(None),
            ended_at: Set(None),
            ends_at: Set(None),
            updated_at: Set(now),
        }
        .insert(&self.svc.db)
        .await
        .unwrap();
        id
    }

    async fn get(&self, id: Uuid) -> leases::Model {
        leases::Entity::find_by_id(id)
            .one(&self.svc.db)
            .await
            .unwrap()
            .unwrap()
    }

    async fn placements(&self, id: Uuid) -> Vec<lease_placements::Model> {
        lease_placements::Entity::find()
            .filter(lease_placements::Column::LeaseId.eq(id))
            .all(&self.svc.db)
            .await
            .unwrap()
    }

    async fn claims(&self) -> Vec<gpu_slot_claims::Model> {
        gpu_slot_claims::Entity::find()
            .all(&self.svc.db)
            .await
            .unwrap()
    }

    async fn tick(&self, state: &mut SchedulerState) -> aion_services::scheduler::BatchReport {
        run_once(&self.svc, state, self.svc.clock.now())
            .await
            .unwrap()
    }
}

/// Every claim matches a placement of a live lease, and no (GPU, slot) repeats.
async fn assert_claims_consistent(w: &World) {
    let claims = w.claims().await;
    let distinct: HashSet<(Uuid, i32)> = claims.iter().map(|c| (c.gpu_id, c.slot)).collect();
    assert_eq!(distinct.len(), claims.len(), "a slot is claimed twice");
    for c in &claims {
        let lease = w.get(c.lease_id).await;
        assert!(
            ["scheduled", "active", "releasing"].contains(&lease.state.as_str()),
            "claim of a {} lease",
            lease.state
        );
    }
}

mod audit_arrays;
mod cases;
mod grant_end;
mod heartbeats;
mod ledger_migration;
