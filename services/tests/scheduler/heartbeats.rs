//! Heartbeats kept in memory and written together (`aion_services::heartbeats`): the
//! written time is the recorded one, the unreachable sweep sees this replica's waiting
//! heartbeats, an unreachable node is not revived by a buffered one, and a poll of an
//! unreachable node brings it back at once. Polls of a node whose revision did not move
//! are answered from memory, and only while change notices are complete.

use super::*;
use aion_services::agent::NodeAuth;
use aion_services::{agent_sync, nodes as node_registry};
use sea_orm::ExprTrait;

on_both_databases!(
    a_flushed_heartbeat_is_the_recorded_time_and_never_goes_back,
    the_unreachable_sweep_counts_heartbeats_still_in_memory,
    a_poll_records_a_heartbeat_and_brings_an_unreachable_node_back,
    polls_are_answered_from_memory_until_a_notice_moves_the_revision,
    a_status_report_racing_the_unreachable_sweep_brings_the_node_back,
);

async fn node_row(w: &World, node: Uuid) -> nodes::Model {
    nodes::Entity::find_by_id(node)
        .one(&w.svc.db)
        .await
        .unwrap()
        .unwrap()
}

async fn heartbeat_of(w: &World, node: Uuid) -> Option<chrono::DateTime<Utc>> {
    node_row(w, node).await.last_heartbeat_at
}

async fn state_of(w: &World, node: Uuid) -> String {
    node_row(w, node).await.state
}

async fn a_flushed_heartbeat_is_the_recorded_time_and_never_goes_back(backend: Backend) {
    let w = World::new(backend).await;
    let t0 = w.svc.clock.now();
    let (a, b) = (w.node("a", "ready", 1).await, w.node("b", "ready", 1).await);
    let down = w.node("down", "unreachable", 1).await;
    let t1 = t0 + Duration::milliseconds(20_123);
    w.svc.heartbeats.record(a, t1);
    w.svc.heartbeats.record(b, t1 + Duration::seconds(3));
    // An older heartbeat of `a` arriving later does not win over the newer one.
    w.svc.heartbeats.record(a, t1 - Duration::seconds(5));
    w.svc.heartbeats.record(down, t1);
    assert_eq!(w.svc.heartbeats.len(), 3);
    assert_eq!(w.svc.heartbeats.flush(&w.svc.db).await.unwrap(), 3);
    assert!(w.svc.heartbeats.is_empty());
    assert_eq!(heartbeat_of(&w, a).await, Some(t1));
    assert_eq!(heartbeat_of(&w, b).await, Some(t1 + Duration::seconds(3)));
    // The unreachable node comes back only through the audited path, not a buffer.
    assert_eq!(heartbeat_of(&w, down).await, Some(t0));
    // A stale heartbeat flushed after a newer one was written does not move it back.
    w.svc.heartbeats.record(b, t1);
    w.svc.heartbeats.flush(&w.svc.db).await.unwrap();
    assert_eq!(heartbeat_of(&w, b).await, Some(t1 + Duration::seconds(3)));
}

async fn the_unreachable_sweep_counts_heartbeats_still_in_memory(backend: Backend) {
    let w = World::new(backend).await;
    let t0 = w.svc.clock.now();
    let (quiet, heard) = (
        w.node("quiet", "ready", 1).await,
        w.node("heard", "ready", 1).await,
    );
    w.svc.heartbeats.record(heard, t0 + Duration::seconds(50));
    // 91 s after the last written heartbeat of both; `heard` was heard 41 s ago, in memory.
    let marked = node_registry::mark_unreachable_after(
        &w.svc,
        t0 + Duration::seconds(91),
        Duration::seconds(90),
    )
    .await
    .unwrap();
    assert_eq!(marked, 1);
    assert_eq!(state_of(&w, quiet).await, "unreachable");
    assert_eq!(state_of(&w, heard).await, "ready");
    assert!(w.svc.heartbeats.is_empty());
}

async fn a_poll_records_a_heartbeat_and_brings_an_unreachable_node_back(backend: Backend) {
    let w = World::new(backend).await;
    let t0 = w.svc.clock.now();
    let (up, down) = (
        w.node("up", "ready", 1).await,
        w.node("down", "unreachable", 1).await,
    );
    w.svc.clock.advance(Duration::seconds(20));
    let auth = |node: Uuid| NodeAuth {
        node_id: node.into(),
        credential_id: Uuid::now_v7(),
    };
    let poll =
        |node| agent_sync::desired_state(&w.svc, auth(node), None, std::time::Duration::ZERO, "t");
    poll(up).await.unwrap();
    // Recorded in memory (the flusher task may have written it already: a second).
    w.svc.heartbeats.flush(&w.svc.db).await.unwrap();
    assert_eq!(heartbeat_of(&w, up).await, Some(t0 + Duration::seconds(20)));
    // A second poll within the freshness window records nothing.
    poll(up).await.unwrap();
    assert!(w.svc.heartbeats.is_empty());
    // The unreachable node is ready again after its poll, written at once.
    let state = poll(down).await.unwrap();
    assert_eq!(state.node_state.as_str(), "ready");
    assert_eq!(
        heartbeat_of(&w, down).await,
        Some(t0 + Duration::seconds(20))
    );
    assert!(w.svc.heartbeats.is_empty());
}

/// Bumps a node's revision behind the process's back: no notice, as if another replica's
/// notice were lost.
async fn bump_silently(w: &World, node: Uuid) {
    nodes::Entity::update_many()
        .col_expr(
            nodes::Column::DesiredRevision,
            sea_orm::sea_query::Expr::col(nodes::Column::DesiredRevision).add(1),
        )
        .filter(nodes::Column::Id.eq(node))
        .exec(&w.svc.db)
        .await
        .unwrap();
}

async fn polls_are_answered_from_memory_until_a_notice_moves_the_revision(backend: Backend) {
    let w = World::new(backend).await;
    let node = w.node("n", "ready", 1).await;
    let auth = || NodeAuth {
        node_id: node.into(),
        credential_id: Uuid::now_v7(),
    };
    let poll = |known: Option<i64>, wait_ms: u64| {
        agent_sync::desired_state(
            &w.svc,
            auth(),
            known,
            std::time::Duration::from_millis(wait_ms),
            "t",
        )
    };
    let first = poll(None, 0).await.unwrap().revision;
    // Nothing announced the change: the known state answers, without reading the row.
    bump_silently(&w, node).await;
    assert_eq!(poll(None, 0).await.unwrap().revision, first);
    // A notice for the node makes the watch read it: a waiting poll wakes with it.
    w.svc.events.nodes_changed([node]);
    let woken = poll(Some(first), 5_000).await.unwrap();
    assert_eq!(woken.revision, first + 1);
    // Until the watch has read the noticed node, polls read it too (on a slow machine
    // that outlasts the poll above): wait for it, so what follows is about epochs.
    for _ in 0..500 {
        if !w.svc.events.is_changing(node) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!w.svc.events.is_changing(node));
    // While other replicas' notices may be missed, every poll reads the database.
    w.svc.events.set_notices_complete(false);
    bump_silently(&w, node).await;
    assert_eq!(poll(None, 0).await.unwrap().revision, first + 2);
    bump_silently(&w, node).await;
    assert_eq!(poll(None, 0).await.unwrap().revision, first + 3);
    // Once notices are complete again, what was read before is not trusted; what is
    // read from then on is.
    w.svc.events.set_notices_complete(true);
    assert_eq!(poll(None, 0).await.unwrap().revision, first + 3);
    bump_silently(&w, node).await;
    assert_eq!(poll(None, 0).await.unwrap().revision, first + 3);
}

async fn a_status_report_racing_the_unreachable_sweep_brings_the_node_back(backend: Backend) {
    use sea_orm::{ActiveModelTrait, QuerySelect, Set, TransactionTrait};
    let w = World::new(backend).await;
    let node = w.node("n", "ready", 1).await;
    // The sweep's transaction: the node locked and marked, not yet committed.
    let sweep = w.svc.db.begin().await.unwrap();
    let row = nodes::Entity::find_by_id(node)
        .lock_exclusive()
        .one(&sweep)
        .await
        .unwrap()
        .unwrap();
    let mut marked: nodes::ActiveModel = row.into();
    marked.state = Set("unreachable".into());
    marked.update(&sweep).await.unwrap();
    // Meanwhile the node reports; its transaction waits for the sweep's.
    let svc = w.svc.clone();
    let report = tokio::spawn(async move {
        let auth = NodeAuth {
            node_id: node.into(),
            credential_id: Uuid::now_v7(),
        };
        let empty = aion_services::agent_input::StatusReport::parse(Vec::new(), Vec::new());
        agent_sync::report_status(&svc, auth, empty.unwrap(), "t").await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sweep.commit().await.unwrap();
    report.await.unwrap().unwrap();
    // The report saw the node as the sweep left it, and brought it back.
    assert_eq!(state_of(&w, node).await, "ready");
}
