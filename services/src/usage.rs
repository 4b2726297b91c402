//! Usage reports of agents: per lease per interval, allocated instance-seconds, SM
//! utilisation, peak memory and energy. Idempotent by (lease, node, sequence): a record
//! already stored with the same content is a duplicate (counted once), one with other
//! content under the same sequence is a conflict. A node credential reports only for
//! leases placed on its own node. Reading and aggregation are in [`crate::usage_report`].

use crate::Services;
use crate::agent::NodeAuth;
use crate::entities::{lease_placements, leases, usage_records};
use crate::error::{Error, FieldErrors, Result};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Most records in one batch.
pub const MAX_RECORDS: usize = 1000;
/// Longest interval of one record: one day.
pub const MAX_INTERVAL_S: i64 = 24 * 3600;
/// How far in the future an interval may end (clock skew between node and server).
pub const MAX_SKEW_S: i64 = 300;
/// Largest memory figure accepted, MiB (1 TiB, far above any GPU).
const MAX_MEMORY_MIB: i64 = 1 << 20;

/// One record as an agent sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawUsageRecord {
    /// Lease measured.
    pub lease_id: Uuid,
    /// The agent's per-lease sequence number, from 0.
    pub sequence: i64,
    /// Interval start.
    pub interval_start: DateTime<Utc>,
    /// Interval end (after the start).
    pub interval_end: DateTime<Utc>,
    /// Instance-seconds the lease's instances existed in the interval.
    pub allocated_seconds: i64,
    /// Average SM utilisation, 0–100, where reported.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub memory_used_mib: i64,
    /// Energy apportioned to the lease, millijoules.
    pub energy_mj: i64,
}

/// A validated batch (no two records with the same lease and sequence).
#[derive(Clone, Debug)]
pub struct UsageBatch {
    /// Distinct records with their index in the batch as sent (for error field names).
    records: Vec<(usize, RawUsageRecord)>,
    in_batch_duplicates: u64,
}

impl UsageBatch {
    /// Validates every record against `now`; errors name the field (`records[3].interval_end`).
    pub fn parse(records: Vec<RawUsageRecord>, now: DateTime<Utc>) -> Result<Self> {
        let mut errors = FieldErrors::new();
        if records.is_empty() {
            errors.insert("records".into(), "must hold at least one record".into());
        }
        if records.len() > MAX_RECORDS {
            errors.insert("records".into(), format!("at most {MAX_RECORDS} records"));
        }
        for (i, r) in records.iter().enumerate() {
            check_record(&mut errors, i, r, now);
        }
        let mut seen: BTreeMap<(Uuid, i64), usize> = BTreeMap::new();
        let mut unique: Vec<(usize, RawUsageRecord)> = Vec::with_capacity(records.len());
        let mut in_batch_duplicates = 0;
        for (i, r) in records.into_iter().enumerate() {
            match seen.get(&(r.lease_id, r.sequence)) {
                Some(&j) if same_raw(&unique[j].1, &r) => in_batch_duplicates += 1,
                Some(_) => {
                    errors.insert(
                        format!("records[{i}].sequence"),
                        "another record of this batch has this lease and sequence".into(),
                    );
                }
                None => {
                    seen.insert((r.lease_id, r.sequence), unique.len());
                    unique.push((i, r));
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        Ok(Self {
            records: unique,
            in_batch_duplicates,
        })
    }
}

/// The most energy one record may claim per second of its interval: 2 kW in mJ/s.
const MAX_MILLIJOULES_PER_S: i64 = 2_000_000;

fn check_record(errors: &mut FieldErrors, i: usize, r: &RawUsageRecord, now: DateTime<Utc>) {
    let mut bad = |field: &str, msg: &str| {
        errors.insert(format!("records[{i}].{field}"), msg.to_owned());
    };
    if r.sequence < 0 {
        bad("sequence", "must not be negative");
    }
    let length = (r.interval_end - r.interval_start).num_seconds();
    if r.interval_end <= r.interval_start {
        bad("interval_end", "must be after interval_start");
    } else if length > MAX_INTERVAL_S {
        bad("interval_end", "an interval lasts at most one day");
    }
    if r.interval_end > now + Duration::seconds(MAX_SKEW_S) {
        bad("interval_end", "is in the future");
    }
    if r.allocated_seconds < 0 {
        bad("allocated_seconds", "must not be negative");
    }
    match r.sm_utilisation_pct {
        Some(p) if !(0.0..=100.0).contains(&p) => bad("sm_utilisation_pct", "must be 0 to 100"),
        _ => {}
    }
    if !(0..=MAX_MEMORY_MIB).contains(&r.memory_used_mib) {
        bad("memory_used_mib", "must be 0 to 1048576");
    }
    // No GPU draws 2 kW: a figure above that over the interval is a bug or a lie, and
    // keeps report totals far from overflowing.
    if r.energy_mj < 0 || r.energy_mj > length.max(0).saturating_mul(MAX_MILLIJOULES_PER_S) {
        bad(
            "energy_mj",
            "must be 0 to 2,000,000 per second of the interval (2 kW)",
        );
    }
}

fn same_pct(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() < 1e-6,
        _ => false,
    }
}

fn same_raw(a: &RawUsageRecord, b: &RawUsageRecord) -> bool {
    a.interval_start == b.interval_start
        && a.interval_end == b.interval_end
        && a.allocated_seconds == b.allocated_seconds
        && same_pct(a.sm_utilisation_pct, b.sm_utilisation_pct)
        && a.memory_used_mib == b.memory_used_mib
        && a.energy_mj == b.energy_mj
}

fn same_stored(m: &usage_records::Model, r: &RawUsageRecord) -> bool {
    // Databases keep microseconds: compare times at that precision.
    let us = |t: DateTime<Utc>| t.timestamp_micros();
    us(m.interval_start) == us(r.interval_start)
        && us(m.interval_end) == us(r.interval_end)
        && m.allocated_seconds == r.allocated_seconds
        && same_pct(m.sm_utilisation_pct, r.sm_utilisation_pct)
        && m.memory_used_mib == r.memory_used_mib
        && m.energy_mj == r.energy_mj
}

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Records stored now.
    pub accepted: u64,
    /// Records already stored with the same content (or repeated in the batch).
    pub duplicates: u64,
}

/// Stores a batch in one transaction. A lease not placed on the caller's node answers
/// 404 (whatever tenant it belongs to); a sequence stored with other content, 409.
#[tracing::instrument(skip_all, err, fields(node_id = %node.node_id, records = batch.records.len()))]
pub async fn record_batch(
    svc: &Services,
    node: NodeAuth,
    batch: UsageBatch,
) -> Result<BatchOutcome> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let lease_ids: BTreeSet<Uuid> = batch.records.iter().map(|(_, r)| r.lease_id).collect();
    let ids: Vec<Uuid> = lease_ids.iter().copied().collect();
    let mut on_node: BTreeMap<Uuid, i64> = BTreeMap::new();
    for p in lease_placements::Entity::find()
        .filter(lease_placements::Column::NodeId.eq(node.node_id.0))
        .filter(lease_placements::Column::LeaseId.is_in(ids.clone()))
        .all(&txn)
        .await?
    {
        *on_node.entry(p.lease_id).or_default() += 1;
    }
    if let Some(missing) = lease_ids.iter().find(|id| !on_node.contains_key(id)) {
        tracing::info!(lease_id = %missing, "usage for a lease not placed on this node");
        return Err(Error::NotFound("lease"));
    }
    let leases: BTreeMap<Uuid, leases::Model> = leases::Entity::find()
        .filter(leases::Column::Id.is_in(ids.clone()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let sequences: BTreeSet<i64> = batch.records.iter().map(|(_, r)| r.sequence).collect();
    let stored: BTreeMap<(Uuid, i64), usage_records::Model> = usage_records::Entity::find()
        .filter(usage_records::Column::NodeId.eq(node.node_id.0))
        .filter(usage_records::Column::LeaseId.is_in(ids))
        .filter(usage_records::Column::Sequence.is_in(sequences))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| ((m.lease_id, m.sequence), m))
        .collect();
    let mut outcome = BatchOutcome {
        duplicates: batch.in_batch_duplicates,
        ..BatchOutcome::default()
    };
    let mut rows = Vec::new();
    for (i, r) in batch.records {
        if let Some(m) = stored.get(&(r.lease_id, r.sequence)) {
            if !same_stored(m, &r) {
                return Err(Error::Conflict(format!(
                    "usage record {} of lease {} was already stored with other figures",
                    r.sequence, r.lease_id
                )));
            }
            outcome.duplicates += 1;
            continue;
        }
        let lease = leases.get(&r.lease_id).ok_or(Error::NotFound("lease"))?;
        let instances = on_node.get(&r.lease_id).copied().unwrap_or(1);
        let length = (r.interval_end - r.interval_start).num_seconds() + 1;
        if r.allocated_seconds > length * instances {
            return Err(Error::invalid(
                &format!("records[{i}].allocated_seconds"),
                format!(
                    "lease {} has {instances} instance(s) here: at most {} seconds in this interval",
                    r.lease_id,
                    length * instances
                ),
            ));
        }
        rows.push(row(lease, node, &r, now));
        outcome.accepted += 1;
    }
    for chunk in rows.chunks(200) {
        usage_records::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .map_err(concurrent_retry)?;
    }
    txn.commit().await.map_err(concurrent_retry)?;
    Ok(outcome)
}

fn row(
    lease: &leases::Model,
    node: NodeAuth,
    r: &RawUsageRecord,
    now: DateTime<Utc>,
) -> usage_records::ActiveModel {
    let per_instance = lease.compute_slices / i64::from(lease.count.max(1));
    usage_records::ActiveModel {
        lease_id: Set(r.lease_id),
        node_id: Set(node.node_id.0),
        sequence: Set(r.sequence),
        project_id: Set(lease.project_id),
        organization_id: Set(lease.organization_id),
        profile: Set(lease.profile.clone()),
        // At most 7 (a lease's profile has 1 to 7 compute slices per instance).
        compute_slices: Set(i32::try_from(per_instance.clamp(0, 7)).unwrap_or_default()),
        interval_start: Set(r.interval_start),
        interval_end: Set(r.interval_end),
        allocated_seconds: Set(r.allocated_seconds),
        sm_utilisation_pct: Set(r.sm_utilisation_pct),
        memory_used_mib: Set(r.memory_used_mib),
        energy_mj: Set(r.energy_mj),
        received_at: Set(now),
    }
}

/// Two retries of one batch raced: the loser retries and then sees duplicates.
fn concurrent_retry(e: sea_orm::DbErr) -> Error {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            Error::Unavailable("the same usage was being stored concurrently; retry".into())
        }
        _ => e.into(),
    }
}
