//! In-process change notices that wake long-polls and the scheduler without polling the
//! database. Each notice is a counter that only grows; a waiter remembers the value it saw
//! and wakes when it changes, then re-reads the database (acting on current state, never
//! on the notice itself). Other replicas learn of changes through PostgreSQL
//! LISTEN/NOTIFY, which feeds the same counters.

use tokio::sync::{Notify, watch};

/// Change notices of one process.
pub struct Events {
    leases: watch::Sender<u64>,
    nodes: watch::Sender<u64>,
    scheduler: Notify,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            leases: watch::channel(0).0,
            nodes: watch::channel(0).0,
            scheduler: Notify::new(),
        }
    }
}

impl Events {
    /// Some lease changed state.
    pub fn lease_changed(&self) {
        self.leases.send_modify(|n| *n += 1);
    }

    /// Some node's desired state or status changed.
    pub fn node_changed(&self) {
        self.nodes.send_modify(|n| *n += 1);
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

    /// Waits until the scheduler is woken (a wake while nobody waits is kept).
    pub async fn scheduler_woken(&self) {
        self.scheduler.notified().await;
    }
}
