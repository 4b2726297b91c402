//! The agent's usage and enforcement reports: a sampler beside the reconcile loop feeds
//! the [`Accumulator`](crate::usage::Accumulator); closed intervals and the enforcement
//! events of each reconcile wait in the saved [`Outbox`] and are sent after every online
//! reconcile and every report interval, in batches, until acknowledged. Offline they
//! stay queued.

use super::{Agent, blocking};
use crate::client::Credential;
use crate::usage::{self, Accumulator, Outbox};
use crate::{Error, Result};
use aion_api_types::{AgentEvent, AgentEventBatch, UsageBatch, UsageRecord};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// How often the sampler reads the GPUs.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How often intervals are closed and sent.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Most records or events in one request.
pub const BATCH: usize = 500;

/// The sampler's state and the outbox.
pub(super) struct Reports {
    acc: Accumulator,
    outbox: Outbox,
    path: PathBuf,
    last_close: Option<DateTime<Utc>>,
    pub(super) sample_every: Duration,
    pub(super) report_every: Duration,
}

impl Reports {
    pub(super) fn load(state_dir: &Path) -> Self {
        let path = Outbox::path(state_dir);
        Self {
            acc: Accumulator::default(),
            outbox: Outbox::load(&path),
            path,
            last_close: None,
            sample_every: SAMPLE_EVERY,
            report_every: REPORT_EVERY,
        }
    }

    fn save(&self) {
        if let Err(e) = self.outbox.save(&self.path) {
            tracing::warn!(error = %e, "cannot save the usage outbox");
        }
    }
}

impl Agent {
    /// Samples the GPUs once for the live leases of the last known desired state; closes
    /// the intervals when the report interval has passed.
    pub async fn sample_usage(&self) -> Result<()> {
        let desired = self
            .state
            .lock()
            .await
            .desired
            .as_ref()
            .map(|(_, d)| d.clone());
        let Some(desired) = desired else {
            return Ok(());
        };
        // Without leases nothing is measured: the step only moves the accumulator's clock,
        // so the GPUs are not read (most nodes of a fleet, most of the time).
        let (present, samples) = if desired.leases.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            blocking(&self.backend, |b| Ok((b.instances()?, b.sample()?))).await?
        };
        let now = self.clock.now();
        let live = usage::live_instances(&desired, &present, now);
        let mut r = self.reports.lock().await;
        r.acc.observe(now, &live, &samples);
        let last = *r.last_close.get_or_insert(now);
        let every = chrono::Duration::from_std(r.report_every).unwrap_or(chrono::Duration::MAX);
        if now - last >= every {
            close(&mut r, now);
        }
        Ok(())
    }

    /// Closes the open intervals now and queues them (numbered and saved).
    pub async fn close_usage(&self) {
        let now = self.clock.now();
        close(&mut *self.reports.lock().await, now);
    }

    /// Records and events waiting to be sent.
    pub async fn queued_reports(&self) -> (Vec<UsageRecord>, Vec<AgentEvent>) {
        let r = self.reports.lock().await;
        (r.outbox.records.clone(), r.outbox.events.clone())
    }

    pub(super) async fn queue_events(&self, events: Vec<AgentEvent>) {
        if events.is_empty() {
            return;
        }
        let mut r = self.reports.lock().await;
        r.outbox.events.extend(events);
        r.save();
    }

    /// Sends what waits in the outbox. Stops at the first failure to reach the control
    /// plane (all stays queued); a batch it refuses is retried one item at a time and
    /// the items it refuses are dropped (logged), so one bad item never blocks the rest.
    pub async fn flush_reports(&self) -> Result<()> {
        let cred = self.state.lock().await.credential.clone();
        let Some(cred) = cred else {
            return Ok(());
        };
        self.flush_events(&cred).await?;
        self.flush_usage(&cred).await
    }

    async fn flush_events(&self, cred: &Credential) -> Result<()> {
        loop {
            let batch: Vec<AgentEvent> = {
                let r = self.reports.lock().await;
                r.outbox.events.iter().take(BATCH).cloned().collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let body = AgentEventBatch {
                events: batch.clone(),
            };
            match self.client.events(cred, &body).await {
                Ok(_) => {}
                Err(Error::Refused { .. }) if batch.len() > 1 => {
                    for e in &batch {
                        let one = AgentEventBatch {
                            events: vec![e.clone()],
                        };
                        refused_or(self.client.events(cred, &one).await, "event")?;
                    }
                }
                Err(e) => refused_or::<()>(Err(e), "event batch")?,
            }
            let mut r = self.reports.lock().await;
            r.outbox.ack_events(&batch);
            r.save();
        }
    }

    async fn flush_usage(&self, cred: &Credential) -> Result<()> {
        loop {
            let batch: Vec<UsageRecord> = {
                let r = self.reports.lock().await;
                r.outbox.records.iter().take(BATCH).cloned().collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let body = UsageBatch {
                records: batch.clone(),
            };
            match self.client.usage(cred, &body).await {
                Ok(ack) => tracing::debug!(
                    accepted = ack.accepted,
                    duplicates = ack.duplicates,
                    "usage sent"
                ),
                Err(Error::Refused { .. }) if batch.len() > 1 => {
                    for rec in &batch {
                        let one = UsageBatch {
                            records: vec![rec.clone()],
                        };
                        refused_or(self.client.usage(cred, &one).await, "usage record")?;
                    }
                }
                Err(e) => refused_or::<()>(Err(e), "usage batch")?,
            }
            let mut r = self.reports.lock().await;
            r.outbox.ack_records(&batch);
            r.save();
        }
    }

    /// Samples every `sample_every` until shutdown; sends after each close.
    pub(super) async fn sample_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let every = self.reports.lock().await.sample_every;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { return; }
                    continue;
                }
            }
            let before = self.reports.lock().await.outbox.records.len();
            if let Err(e) = self.sample_usage().await {
                tracing::warn!(error = %e, "usage sampling failed");
            }
            let after = self.reports.lock().await.outbox.records.len();
            if after != before
                && let Err(e) = self.flush_reports().await
            {
                tracing::info!(error = %e, "usage reports stay queued");
            }
        }
    }
}

fn close(r: &mut Reports, now: DateTime<Utc>) {
    let intervals = r.acc.close();
    r.last_close = Some(now);
    if !intervals.is_empty() {
        r.outbox.push_intervals(intervals, now);
        r.save();
    }
}

/// A refusal of one item is logged and the item dropped; anything else is returned.
fn refused_or<T>(res: Result<T>, what: &str) -> Result<()> {
    match res {
        Ok(_) => Ok(()),
        Err(e @ Error::Refused { .. }) => {
            tracing::error!(error = %e, "the control plane refused a {what}; dropped");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
