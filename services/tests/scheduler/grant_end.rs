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
    }
    .insert(&w.svc.db)
    .await
    .unwrap();
    let placed = w.lease("4g.40gb", 1, false, false).await;
    let waiting = w.lease("7g.80gb", 1, false, false).await;
    for id in [placed, waiting] {
        let mut m: leases::ActiveModel = w.get(id).await.into();
        m.grant_id = Set(Some(grant));
        m.update(&w.svc.db).await.unwrap();
    }
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
}
