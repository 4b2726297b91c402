//! Injected time, so expiry and ordering are testable without sleeping.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time, truncated to microseconds (what both databases store).
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A manually driven clock for tests (microseconds since the epoch).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now().trunc_subsecs(6),
            Clock::Manual(micros) => {
                DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).unwrap_or_default()
            }
        }
    }

    /// A manual clock starting at `at`.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(at.timestamp_micros())))
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: chrono::Duration) {
        if let Clock::Manual(micros) = self {
            let step = by.num_microseconds().unwrap_or(i64::MAX);
            micros.fetch_add(step, Ordering::SeqCst);
        }
    }
}

/// A version timestamp strictly after `prev`, even within one clock tick, so an
/// `updated_at` used as an `ETag` never repeats.
pub fn next_version(now: DateTime<Utc>, prev: DateTime<Utc>) -> DateTime<Utc> {
    if now > prev {
        now
    } else {
        prev + chrono::Duration::microseconds(1)
    }
}
