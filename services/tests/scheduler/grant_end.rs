//! Leases end when their grant ends.

use super::*;

on_both_databases!(leases_of_an_ended_grant_expire_and_free_their_slots);

async fn leases_of_an_ended_grant_expire_and_free_their_slots(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let mut state = World::state();
    let now = w.svc.clock.now();
    let grant = Uuid::now_v7();
    grants::ActiveModel {
        id: Set(grant),
        project_id: Set(w.project.0),
        organization_id: Set(w.org.0),
        gpu_model: Set("H100-80GB".into()),
        slice_seconds: Set(25_200 * 100),
        valid_from: Set(now - Duration::days(1)),
        valid_until: Set(now + Duration::hours(1)),
        source: Set("contract".into()),
        call_id: Set(None),
        request_id: Set(None),
        funded_by_org_id: Set(None),
        reference: Set("t".into()),
        created_by: Set("t".into()),
        created_at: Set(now),
        overdrawn_since: Set(None),
    }
    .insert(&w.svc.db)
    .await
    .unwrap();
    let placed = w.lease("4g.40gb", 1, false, false).await;
    let waiting = w.lease("7g.80gb", 1, false, false).await;
    // The grant's ledger as admission writes it: the allocation, then each lease's hold.
    let allocated = 25_200 * 100;
    let entry = |seq: i64, kind: &str, amount: i64, balance: i64, held: i64, lease| {
        grant_ledger::ActiveModel {
            id: Set(Uuid::now_v7()),
            grant_id: Set(grant),
            seq: Set(seq),
            kind: Set(kind.into()),
            amount: Set(amount),
            balance: Set(balance),
            held: Set(held),
            used: Set(0),
            lease_id: Set(lease),
            reason: Set(None),
            actor: Set("t".into()),
            created_at: Set(now),
        }
    };
    let mut rows = vec![entry(1, "allocation", allocated, allocated, 0, None)];
    let (mut balance, mut held) = (allocated, 0);
    for (i, id) in [placed, waiting].into_iter().enumerate() {
        let mut m: leases::ActiveModel = w.get(id).await.into();
        m.grant_id = Set(Some(grant));
        let hold = m.held_slice_seconds.clone().unwrap();
        m.update(&w.svc.db).await.unwrap();
        (balance, held) = (balance - hold, held + hold);
        rows.push(entry(i as i64 + 2, "hold", -hold, balance, held, Some(id)));
    }
    grant_ledger::Entity::insert_many(rows)
        .exec(&w.svc.db)
        .await
        .unwrap();
    w.tick(&mut state).await;
    assert_eq!(w.get(placed).await.state, "scheduled");
    assert_eq!(
        w.get(waiting).await.state,
        "pending",
        "no room for a 7g next to the 4g"
    );

    w.svc.clock.advance(Duration::hours(2));
    let report = w.tick(&mut state).await;

    assert_eq!(report.expired, 2, "{report:?}");
    for id in [placed, waiting] {
        let lease = w.get(id).await;
        assert_eq!(lease.state, "expired");
        assert_eq!(lease.state_reason.as_deref(), Some("its grant ended"));
        assert_eq!(lease.held_slice_seconds, 0);
    }
    assert!(w.claims().await.is_empty());
    // Both holds came back and nothing was used (neither lease became active).
    let standing = aion_services::ledger::verify(&w.svc.db, GrantId(grant))
        .await
        .unwrap();
    assert_eq!(
        (standing.balance, standing.held, standing.used),
        (allocated, 0, 0)
    );
}
