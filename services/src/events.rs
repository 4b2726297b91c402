//! In-process change notices that wake long-polls and the scheduler without polling the
//! database. Each notice is a counter that only grows; a waiter remembers the value it saw
//! and wakes when it changes, then reads what changed (acting on current state, never on
//! the notice itself; the desired-state cache of `agent_sync` trusts its reads only while
//! notices are complete, see [`Events::notice_epoch`]). Other replicas learn of changes through PostgreSQL
//! LISTEN/NOTIFY, which feeds the same counters.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// More changed nodes than this between two looks count as "all of them".
const CHANGED_NODES_MAX: usize = 10_000;

/// Change notices of one process.
pub struct Events {
    leases: watch::Sender<u64>,
    nodes: watch::Sender<u64>,
    changed_nodes: Mutex<(ChangedNodes, ChangedNodes)>,
    scheduler: Notify,
    /// Whether every change made by another replica reaches this process as a notice.
    notices_complete: AtomicBool,
    /// Grows each time notices from other replicas stop or start again.
    notice_epoch: AtomicU64,
}

/// Which nodes changed since the last [`Events::take_changed_nodes`]: the long-polls'
/// revision watch re-reads only those, not the whole fleet, on each notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangedNodes {
    /// These nodes (possibly none).
    Some(HashSet<Uuid>),
    /// Unknown which: any node may have changed.
    All,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            leases: watch::channel(0).0,
            nodes: watch::channel(0).0,
            changed_nodes: Mutex::new((
                ChangedNodes::Some(HashSet::new()),
                ChangedNodes::Some(HashSet::new()),
            )),
            scheduler: Notify::new(),
            // One process (SQLite, tests): every change is made here and noticed here.
            notices_complete: AtomicBool::new(true),
            notice_epoch: AtomicU64::new(0),
        }
    }
}

impl Events {
    /// Some lease changed state.
    pub fn lease_changed(&self) {
        self.leases.send_modify(|n| *n += 1);
    }

    /// Some nodes' desired state or status changed, unknown which (every watched node
    /// is read again).
    pub fn node_changed(&self) {
        self.changed_guard().0 = ChangedNodes::All;
        self.nodes.send_modify(|n| *n += 1);
    }

    /// These nodes' desired state or status changed.
    pub fn nodes_changed(&self, ids: impl IntoIterator<Item = Uuid>) {
        {
            let mut guard = self.changed_guard();
            let changed = &mut guard.0;
            if let ChangedNodes::Some(set) = changed {
                set.extend(ids);
                if set.len() > CHANGED_NODES_MAX {
                    *changed = ChangedNodes::All;
                }
            }
        }
        self.nodes.send_modify(|n| *n += 1);
    }

    /// The nodes changed since the last call (for the one reader of the revisions); they
    /// count as changing until [`changed_nodes_read`](Self::changed_nodes_read).
    pub fn take_changed_nodes(&self) -> ChangedNodes {
        let mut changed = self.changed_guard();
        let taken = std::mem::replace(&mut changed.0, ChangedNodes::Some(HashSet::new()));
        changed.1 = taken.clone();
        taken
    }

    /// The reader of the revisions has read (or given up on) what it last took.
    pub fn changed_nodes_read(&self) {
        self.changed_guard().1 = ChangedNodes::Some(HashSet::new());
    }

    /// Whether `node` changed and its revision was not read since: what was read of it
    /// before must not be trusted yet (a poll right after a change made here reads it).
    pub fn is_changing(&self, node: Uuid) -> bool {
        let changed = self.changed_guard();
        [&changed.0, &changed.1].into_iter().any(|c| match c {
            ChangedNodes::All => true,
            ChangedNodes::Some(ids) => ids.contains(&node),
        })
    }

    /// (Changed and not taken yet, taken and being read.)
    fn changed_guard(&self) -> std::sync::MutexGuard<'_, (ChangedNodes, ChangedNodes)> {
        self.changed_nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pending work for the scheduler (a new lease, freed capacity, a new node).
    pub fn wake_scheduler(&self) {
        self.scheduler.notify_one();
    }

    /// A receiver of lease changes.
    pub fn leases(&self) -> watch::Receiver<u64> {
        self.leases.subscribe()
    }

    /// A receiver of node changes.
    pub fn nodes(&self) -> watch::Receiver<u64> {
        self.nodes.subscribe()
    }

    /// Says whether other replicas' changes arrive as notices (on PostgreSQL: while the
    /// LISTEN bridge is connected). Each call starts a new [`notice_epoch`](Self::notice_epoch).
    pub fn set_notices_complete(&self, complete: bool) {
        self.notice_epoch.fetch_add(1, Ordering::AcqRel);
        self.notices_complete.store(complete, Ordering::Release);
    }

    /// The current notice epoch, if notices are complete now: what was read from the
    /// database after the epoch began stays current until a notice says otherwise, as long
    /// as the epoch is the same. `None` while notices may be missed.
    pub fn notice_epoch(&self) -> Option<u64> {
        let epoch = self.notice_epoch.load(Ordering::Acquire);
        self.notices_complete
            .load(Ordering::Acquire)
            .then_some(epoch)
    }

    /// Waits until the scheduler is woken (a wake while nobody waits is kept).
    pub async fn scheduler_woken(&self) {
        self.scheduler.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_nodes_are_collected_until_taken_and_an_unknown_change_means_all() {
        let events = Events::default();
        let mut seen = events.nodes();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        events.nodes_changed([a]);
        events.nodes_changed([b, a]);
        assert!(seen.has_changed().unwrap());
        assert_eq!(
            events.take_changed_nodes(),
            ChangedNodes::Some(HashSet::from([a, b]))
        );
        assert_eq!(
            events.take_changed_nodes(),
            ChangedNodes::Some(HashSet::new())
        );
        seen.borrow_and_update();
        events.node_changed();
        events.nodes_changed([a]);
        assert!(seen.has_changed().unwrap());
        assert_eq!(events.take_changed_nodes(), ChangedNodes::All);
        events.nodes_changed((0..=CHANGED_NODES_MAX).map(|_| Uuid::now_v7()));
        assert_eq!(events.take_changed_nodes(), ChangedNodes::All);
    }

    #[test]
    fn a_changed_node_counts_as_changing_until_its_revision_was_read() {
        let events = Events::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        events.nodes_changed([a]);
        assert!(events.is_changing(a));
        assert!(!events.is_changing(b));
        // Taken by the reader: still changing while it reads.
        events.take_changed_nodes();
        assert!(events.is_changing(a));
        events.changed_nodes_read();
        assert!(!events.is_changing(a));
        events.node_changed();
        assert!(events.is_changing(b));
        events.take_changed_nodes();
        assert!(events.is_changing(b));
        events.changed_nodes_read();
        assert!(!events.is_changing(b));
    }

    #[test]
    fn a_notice_epoch_exists_only_while_notices_are_complete_and_changes_each_time() {
        let events = Events::default();
        let first = events.notice_epoch();
        assert!(first.is_some());
        events.set_notices_complete(false);
        assert_eq!(events.notice_epoch(), None);
        events.set_notices_complete(true);
        let again = events.notice_epoch();
        assert!(again.is_some());
        assert_ne!(again, first);
    }
}
