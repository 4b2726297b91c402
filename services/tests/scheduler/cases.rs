//! The scheduler's behaviours, each run on SQLite and PostgreSQL.

use super::*;

on_both_databases!(
    pending_leases_are_placed_with_their_slot_claims,
    no_memory_slot_is_claimed_twice_and_the_database_refuses_a_double_booking,
    a_gang_with_same_node_lands_on_one_node,
    an_unplaceable_lease_waits_with_a_reason_then_fails_after_the_timeout,
    a_guaranteed_lease_preempts_the_fewest_preemptible_leases,
    an_expired_lease_frees_its_slots_for_the_next_pending_lease,
    a_lease_released_elsewhere_frees_its_room_within_one_tick,
    a_restarted_scheduler_restores_the_fleet_without_double_booking,
    cordoned_nodes_get_no_new_placements,
    a_running_scheduler_sees_a_cordon_and_an_uncordon_at_its_next_tick,
    a_view_behind_the_fleet_commits_nothing_on_a_cordoned_node_then_catches_up,
    a_view_behind_the_fleet_rebuilds_before_it_preempts,
    a_fleet_read_in_the_background_adopts_what_was_committed_meanwhile,
    a_silent_node_becomes_unreachable_and_gets_no_new_placements,
    leadership_is_held_by_one_scheduler_and_passes_on_when_it_drops,
    a_leader_overtaken_by_a_new_one_commits_no_batch,
);

async fn pending_leases_are_placed_with_their_slot_claims(backend: Backend) {
    let w = World::new(backend).await;
    let node = w.node("n1", "ready", 2).await;
    let a = w.lease("3g.40gb", 1, false, false).await;
    let b = w.lease("3g.40gb", 1, false, false).await;

    let report = w.tick(&mut World::state()).await;

    assert_eq!((report.placed, report.pending), (2, 0));
    for id in [a, b] {
        let lease = w.get(id).await;
        assert_eq!(lease.state, "scheduled");
        assert!(lease.scheduled_at.is_some());
        let placed = w.placements(id).await;
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].node_id, node);
        assert_eq!(placed[0].profile_id, 9);
        assert!(placed[0].gpu_uuid.starts_with("GPU-n1-"));
    }
    // 3g.40gb covers four memory slices.
    assert_eq!(w.claims().await.len(), 8);
    assert_claims_consistent(&w).await;
    let n = nodes::Entity::find_by_id(node)
        .one(&w.svc.db)
        .await
        .unwrap()
        .unwrap();
    assert!(n.desired_revision >= 1);
}

async fn no_memory_slot_is_claimed_twice_and_the_database_refuses_a_double_booking(
    backend: Backend,
) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 2).await;
    for _ in 0..20 {
        w.lease("1g.10gb", 1, false, false).await;
    }

    let report = w.tick(&mut World::state()).await;

    // Two GPUs hold seven 1g.10gb each.
    assert_eq!((report.placed, report.pending), (14, 6));
    assert_claims_consistent(&w).await;
    let taken = &w.claims().await[0];
    let intruder = w.lease("1g.10gb", 1, false, false).await;
    let refused = gpu_slot_claims::ActiveModel {
        gpu_id: Set(taken.gpu_id),
        slot: Set(taken.slot),
        lease_id: Set(intruder),
    }
    .insert(&w.svc.db)
    .await;
    assert!(refused.is_err(), "the database accepted a double booking");
}

async fn a_gang_with_same_node_lands_on_one_node(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 2).await;
    w.node("n2", "ready", 2).await;
    // Take one 3g.40gb on each node, so a gang of three fits only on one of them.
    let first = w.lease("3g.40gb", 2, false, false).await;
    let mut state = World::state();
    w.tick(&mut state).await;
    let spread: BTreeSet<Uuid> = w
        .placements(first)
        .await
        .iter()
        .map(|p| p.node_id)
        .collect();
    let gang = w.lease("3g.40gb", 3, true, false).await;

    let report = w.tick(&mut state).await;

    assert_eq!(report.placed, 1, "{report:?} (first spread on {spread:?})");
    let nodes: BTreeSet<Uuid> = w.placements(gang).await.iter().map(|p| p.node_id).collect();
    assert_eq!(w.placements(gang).await.len(), 3);
    assert_eq!(nodes.len(), 1);
    assert_claims_consistent(&w).await;
}

async fn an_unplaceable_lease_waits_with_a_reason_then_fails_after_the_timeout(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 2).await;
    let id = w.lease("7g.80gb", 3, false, false).await;
    let mut state = World::state();

    let report = w.tick(&mut state).await;

    assert_eq!((report.placed, report.pending), (0, 1));
    let waiting = w.get(id).await;
    assert_eq!(waiting.state, "pending");
    let reason = waiting.state_reason.clone().unwrap();
    assert!(reason.contains("no capacity"), "{reason}");
    // An unchanged reason is not written again.
    w.svc.clock.advance(Duration::seconds(10));
    w.tick(&mut state).await;
    assert_eq!(w.get(id).await.updated_at, waiting.updated_at);

    w.svc.clock.advance(Duration::seconds(51));
    let report = w.tick(&mut state).await;

    assert_eq!(report.failed, 1);
    let failed = w.get(id).await;
    assert_eq!(failed.state, "failed");
    let reason = failed.state_reason.unwrap();
    assert!(
        reason.contains("could not be placed within 60 s"),
        "{reason}"
    );
    assert!(failed.ended_at.is_some());
}

async fn a_guaranteed_lease_preempts_the_fewest_preemptible_leases(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let mut state = World::state();
    // Fill the GPU: 4g.40gb at slice 0, then three 1g.10gb at 4, 5 and 6.
    let big = w.lease("4g.40gb", 1, false, true).await;
    w.tick(&mut state).await;
    let mut small = Vec::new();
    for _ in 0..3 {
        small.push(w.lease("1g.10gb", 1, false, true).await);
    }
    assert_eq!(w.tick(&mut state).await.placed, 3);
    let guaranteed = w.lease("3g.40gb", 1, false, false).await;

    let report = w.tick(&mut state).await;

    assert_eq!((report.placed, report.preempted), (1, 1), "{report:?}");
    let victim = w.get(big).await;
    assert_eq!(victim.state, "preempted");
    assert_eq!(
        victim.state_reason.as_deref(),
        Some(format!("preempted for lease {guaranteed}").as_str())
    );
    assert_eq!(w.get(guaranteed).await.state, "scheduled");
    for id in small {
        assert_eq!(w.get(id).await.state, "scheduled");
    }
    assert_claims_consistent(&w).await;
}

async fn an_expired_lease_frees_its_slots_for_the_next_pending_lease(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let mut state = World::state();
    let old = w.lease("7g.80gb", 1, false, false).await;
    w.tick(&mut state).await;
    let now = w.svc.clock.now();
    let mut active: leases::ActiveModel = w.get(old).await.into();
    active.state = Set("active".into());
    active.active_at = Set(Some(now - Duration::seconds(3600)));
    active.ends_at = Set(Some(now - Duration::seconds(1)));
    active.update(&w.svc.db).await.unwrap();
    let next = w.lease("7g.80gb", 1, false, false).await;

    let report = w.tick(&mut state).await;

    assert_eq!((report.expired, report.placed), (1, 1), "{report:?}");
    assert_eq!(w.get(old).await.state, "expired");
    assert_eq!(w.get(next).await.state, "scheduled");
    let claims = w.claims().await;
    assert_eq!(claims.len(), 8);
    assert!(claims.iter().all(|c| c.lease_id == next));
}

async fn a_lease_released_elsewhere_frees_its_room_within_one_tick(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let mut state = World::state();
    let old = w.lease("7g.80gb", 1, false, false).await;
    w.tick(&mut state).await;
    // The agent API ends it: scheduled → releasing → released.
    let caller = Caller::system("agent");
    let now = w.svc.clock.now();
    for to in [LeaseState::Releasing, LeaseState::Released] {
        let txn = w.svc.write_txn().await.unwrap();
        let lease = w.get(old).await;
        lease_lifecycle::transition(&txn, now, &caller, &lease, to, None)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    let next = w.lease("7g.80gb", 1, false, false).await;

    let report = w.tick(&mut state).await;

    assert_eq!(report.placed, 1, "{report:?}");
    assert_eq!(w.get(next).await.state, "scheduled");
    assert_claims_consistent(&w).await;
}

async fn a_restarted_scheduler_restores_the_fleet_without_double_booking(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let first = w.lease("3g.40gb", 1, false, false).await;
    w.tick(&mut World::state()).await;
    let second = w.lease("3g.40gb", 1, false, false).await;
    let third = w.lease("3g.40gb", 1, false, false).await;

    let report = w.tick(&mut World::state()).await;

    assert_eq!((report.placed, report.pending), (1, 1), "{report:?}");
    assert_eq!(w.get(first).await.state, "scheduled");
    assert_eq!(w.get(second).await.state, "scheduled");
    assert_eq!(w.get(third).await.state, "pending");
    assert_claims_consistent(&w).await;
}

async fn cordoned_nodes_get_no_new_placements(backend: Backend) {
    let w = World::new(backend).await;
    let cordoned = w.node("n1", "cordoned", 2).await;
    let ready = w.node("n2", "ready", 1).await;
    let a = w.lease("7g.80gb", 1, false, false).await;
    let b = w.lease("7g.80gb", 1, false, false).await;

    let report = w.tick(&mut World::state()).await;

    assert_eq!((report.placed, report.pending), (1, 1), "{report:?}");
    assert_eq!(w.placements(a).await[0].node_id, ready);
    assert_eq!(w.get(b).await.state, "pending");
    let on_cordoned = lease_placements::Entity::find()
        .filter(lease_placements::Column::NodeId.eq(cordoned))
        .count(&w.svc.db)
        .await
        .unwrap();
    assert_eq!(on_cordoned, 0);
}

async fn a_running_scheduler_sees_a_cordon_and_an_uncordon_at_its_next_tick(backend: Backend) {
    use aion_services::ids::NodeId;
    use aion_services::nodes::{self, Operation};
    let w = World::new(backend).await;
    let node = w.node("n1", "ready", 1).await;
    let mut state = World::state();
    // The scheduler's fleet is built with the node ready.
    let report = w.tick(&mut state).await;
    assert_eq!(report.placed, 0, "{report:?}");
    let admin = Caller::system("t");

    nodes::operate(&w.svc, &admin, NodeId(node), Operation::Cordon)
        .await
        .unwrap();
    let id = w.lease("1g.10gb", 1, false, false).await;
    let report = w.tick(&mut state).await;
    assert_eq!((report.placed, report.pending), (0, 1), "{report:?}");
    assert_eq!(w.get(id).await.state, "pending");

    nodes::operate(&w.svc, &admin, NodeId(node), Operation::Uncordon)
        .await
        .unwrap();
    let report = w.tick(&mut state).await;
    assert_eq!(report.placed, 1, "{report:?}");
    assert_eq!(w.placements(id).await[0].node_id, node);
    assert_claims_consistent(&w).await;
}

async fn a_view_behind_the_fleet_commits_nothing_on_a_cordoned_node_then_catches_up(
    backend: Backend,
) {
    use aion_services::ids::NodeId;
    use aion_services::nodes::{self, Operation};
    let w = World::new(backend).await;
    let first = w.node("n1", "ready", 1).await;
    // Rebuilds put off for good after the first one: the view falls behind the fleet.
    let mut state = SchedulerState::new(SchedulerConfig {
        rebuild_spacing: u32::MAX,
        ..World::config()
    });
    w.tick(&mut state).await;
    let second = w.node("n2", "ready", 1).await;
    nodes::operate(
        &w.svc,
        &Caller::system("t"),
        NodeId(first),
        Operation::Cordon,
    )
    .await
    .unwrap();
    let id = w.lease("7g.80gb", 1, false, false).await;

    // The view still has n1 ready and no n2: its plan targets n1, which the check refuses.
    let report = w.tick(&mut state).await;
    assert_eq!((report.placed, report.pending), (0, 1), "{report:?}");
    assert_eq!(w.get(id).await.state, "pending");
    assert!(w.placements(id).await.is_empty());

    // Dropping that batch rebuilt the view: the lease lands on n2.
    let report = w.tick(&mut state).await;
    assert_eq!(report.placed, 1, "{report:?}");
    assert_eq!(w.placements(id).await[0].node_id, second);
    assert_claims_consistent(&w).await;
}

async fn a_fleet_read_in_the_background_adopts_what_was_committed_meanwhile(backend: Backend) {
    let w = World::new(backend).await;
    let first = w.node("n1", "ready", 1).await;
    // Every rebuild after the first one is read in the background.
    let mut state = SchedulerState::new(SchedulerConfig {
        background_rebuild_above: std::time::Duration::ZERO,
        ..World::config()
    });
    w.tick(&mut state).await;
    assert!(!state.rebuilding_in_background());

    // A node registers: the next tick starts reading the fleet again and meanwhile places
    // on the view it has (which lacks the new node).
    let second = w.node("n2", "ready", 1).await;
    let mut early = Vec::new();
    for _ in 0..3 {
        early.push(w.lease("1g.10gb", 1, false, false).await);
    }
    let report = w.tick(&mut state).await;
    assert_eq!(report.placed, 3, "{report:?}");
    assert!(state.rebuilding_in_background());
    for id in &early {
        assert_eq!(w.placements(*id).await[0].node_id, first);
    }

    // Swapped in once read, with the three leases whatever the read saw: n1 has 4 of its
    // 7 slots left and n2 all 7, so of 12 more leases 11 land and none on a taken slot
    // (a view that forgot the three would double-book n1 and fail the commit).
    while !state.background_rebuild_done() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut late = Vec::new();
    for _ in 0..12 {
        late.push(w.lease("1g.10gb", 1, false, false).await);
    }
    let report = w.tick(&mut state).await;
    assert!(!state.rebuilding_in_background());
    // Swapped in, not dropped for a rebuild in the tick (which would place the same).
    let adopted = state.last_background_swap_adopted();
    assert!(matches!(adopted, Some(0..=3)), "{adopted:?}");
    assert_eq!((report.placed, report.pending), (11, 1), "{report:?}");
    assert_eq!(state.placed_in_view(), 14);
    let mut on_second = 0;
    for id in &late {
        on_second += w
            .placements(*id)
            .await
            .iter()
            .filter(|p| p.node_id == second)
            .count();
    }
    assert_eq!(on_second, 7);
    assert_claims_consistent(&w).await;
}

async fn a_view_behind_the_fleet_rebuilds_before_it_preempts(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let mut state = SchedulerState::new(SchedulerConfig {
        rebuild_spacing: u32::MAX,
        ..World::config()
    });
    let victim = w.lease("7g.80gb", 1, false, true).await;
    assert_eq!(w.tick(&mut state).await.placed, 1);
    // A new node the view does not know yet has room for the guaranteed lease.
    let second = w.node("n2", "ready", 1).await;
    let guaranteed = w.lease("7g.80gb", 1, false, false).await;

    let report = w.tick(&mut state).await;
    assert_eq!((report.placed, report.preempted), (0, 0), "{report:?}");
    assert_eq!(w.get(victim).await.state, "scheduled");

    let report = w.tick(&mut state).await;
    assert_eq!((report.placed, report.preempted), (1, 0), "{report:?}");
    assert_eq!(w.placements(guaranteed).await[0].node_id, second);
    assert_eq!(w.get(victim).await.state, "scheduled");
    assert_claims_consistent(&w).await;
}

async fn leadership_is_held_by_one_scheduler_and_passes_on_when_it_drops(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 2).await;
    let other = services(&w.db.url, &w.svc.clock).await;
    let first = Leadership::try_acquire(&w.svc).await.unwrap();
    assert!(first.is_some());
    if matches!(backend, Backend::Sqlite) {
        // A single SQLite process always leads.
        return;
    }
    assert!(Leadership::try_acquire(&other).await.unwrap().is_none());
    let mut leases = Vec::new();
    for _ in 0..4 {
        leases.push(w.lease("1g.10gb", 1, false, false).await);
    }
    assert_eq!(w.tick(&mut World::state()).await.placed, 4);
    for _ in 0..4 {
        leases.push(w.lease("1g.10gb", 1, false, false).await);
    }

    // The leader's session ends abruptly; the other replica takes over.
    first.unwrap().abandon();
    let mut second = None;
    for _ in 0..50 {
        second = Leadership::try_acquire(&other).await.unwrap();
        if second.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut second = second.expect("the follower took over");
    assert!(second.is_held().await);
    let report = run_once(&other, &mut World::state(), other.clock.now())
        .await
        .unwrap();

    assert_eq!(report.placed, 4, "{report:?}");
    for id in leases {
        assert_eq!(w.get(id).await.state, "scheduled");
        assert_eq!(w.placements(id).await.len(), 1);
    }
    assert_claims_consistent(&w).await;
}

/// A leader whose lock went with its session but which has not noticed yet (a network
/// cut) is fenced off: the new leader's epoch makes its batches fail, so only the new
/// leader places leases.
async fn a_leader_overtaken_by_a_new_one_commits_no_batch(backend: Backend) {
    let w = World::new(backend).await;
    w.node("n1", "ready", 1).await;
    let old = Leadership::try_acquire(&w.svc).await.unwrap().unwrap();
    let mut old_state = World::state().fenced(old.epoch());
    // The old leader's session ends; it goes on with its state as if it still led.
    old.abandon();
    let mut new = None;
    for _ in 0..50 {
        new = Leadership::try_acquire(&w.svc).await.unwrap();
        if new.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let new = new.expect("a new leader took over");
    assert!(new.epoch() > 0);
    let id = w.lease("1g.10gb", 1, false, false).await;

    let refused = run_once(&w.svc, &mut old_state, w.svc.clock.now()).await;
    assert!(
        matches!(refused, Err(aion_services::Error::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(w.get(id).await.state, "pending");
    assert!(w.placements(id).await.is_empty());

    let mut new_state = World::state().fenced(new.epoch());
    let report = run_once(&w.svc, &mut new_state, w.svc.clock.now())
        .await
        .unwrap();
    assert_eq!(report.placed, 1, "{report:?}");
    assert_eq!(w.get(id).await.state, "scheduled");
    assert_claims_consistent(&w).await;
}

async fn a_silent_node_becomes_unreachable_and_gets_no_new_placements(backend: Backend) {
    let w = World::new(backend).await;
    let node = w.node("n1", "ready", 1).await;
    w.svc.clock.advance(Duration::seconds(120));
    let id = w.lease("1g.10gb", 1, false, false).await;

    let report = w.tick(&mut World::state()).await;

    assert_eq!((report.placed, report.pending), (0, 1), "{report:?}");
    let n = nodes::Entity::find_by_id(node)
        .one(&w.svc.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.state, "unreachable");
    assert_eq!(w.get(id).await.state, "pending");
}
