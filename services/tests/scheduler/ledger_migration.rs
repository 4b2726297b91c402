//! Migration 000007 carries grants and leases recorded before the ledger into it.

use super::*;
use migration::MigratorTrait;
use sea_orm::QueryOrder;

on_both_databases!(existing_grants_and_leases_are_carried_into_the_ledger);

async fn existing_grants_and_leases_are_carried_into_the_ledger(backend: Backend) {
    // A database as the previous release left it: a grant, a live lease holding budget,
    // an ended lease that used some, and an ended one that never ran.
    let w = World::with_migrations(backend, Some(6)).await;
    let now = w.svc.clock.now();
    let grant = Uuid::now_v7();
    let allocated = 25_200 * 100;
    grants::Entity::insert(grants::ActiveModel {
        id: Set(grant),
        project_id: Set(w.project.0),
        organization_id: Set(w.org.0),
        gpu_model: Set("H100-80GB".into()),
        slice_seconds: Set(allocated),
        valid_from: Set(now - Duration::days(1)),
        valid_until: Set(now + Duration::days(30)),
        source: Set("contract".into()),
        call_id: Set(None),
        request_id: Set(None),
        funded_by_org_id: Set(None),
        reference: Set("t".into()),
        created_by: Set("t".into()),
        created_at: Set(now - Duration::days(1)),
        ..Default::default()
    })
    .exec_without_returning(&w.svc.db)
    .await
    .unwrap();
    let live = w.lease("7g.80gb", 1, false, false).await;
    let used = w.lease("1g.10gb", 1, false, false).await;
    let unused = w.lease("1g.10gb", 1, false, false).await;
    for (id, state, held, charged) in [
        (live, "pending", 7 * 3600, 0),
        (used, "expired", 0, 1_800),
        (unused, "failed", 0, 0),
    ] {
        let mut m: leases::ActiveModel = w.get(id).await.into();
        m.grant_id = Set(Some(grant));
        m.state = Set(state.into());
        m.held_slice_seconds = Set(held);
        m.charged_slice_seconds = Set(charged);
        if state != "pending" {
            m.ended_at = Set(Some(now));
        }
        m.update(&w.svc.db).await.unwrap();
    }

    migration::Migrator::up(&w.svc.db, None).await.unwrap();

    let standing = aion_services::ledger::verify(&w.svc.db, GrantId(grant))
        .await
        .unwrap();
    assert_eq!(standing.held, 7 * 3600);
    assert_eq!(standing.used, 1_800);
    assert_eq!(standing.balance, allocated - 7 * 3600 - 1_800);
    let entries = grant_ledger::Entity::find()
        .filter(grant_ledger::Column::GrantId.eq(grant))
        .order_by_asc(grant_ledger::Column::Seq)
        .all(&w.svc.db)
        .await
        .unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["allocation", "hold", "usage"]);

    // The carried-over hold comes back when the live lease ends.
    let txn = w.svc.write_txn().await.unwrap();
    let lease = w.get(live).await;
    lease_lifecycle::transition(
        &txn,
        now,
        &Caller::system("t"),
        &lease,
        LeaseState::Released,
        None,
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let standing = aion_services::ledger::verify(&w.svc.db, GrantId(grant))
        .await
        .unwrap();
    assert_eq!((standing.held, standing.used), (0, 1_800));
    assert_eq!(standing.balance, allocated - 1_800);
}
