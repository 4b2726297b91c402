//! A grant's budget ledger: append-only entries in exact slice-seconds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerEntryKind {
    /// The hours granted.
    Allocation,
    /// Budget held by an admitted lease (its duration × compute slices).
    Hold,
    /// A hold given back when its lease ended.
    HoldRelease,
    /// Allocated time (active → end) debited when a lease ended.
    Usage,
    /// A manual correction with a reason.
    Adjustment,
}

/// One ledger entry, with the grant's running totals after it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    /// Id.
    pub id: Uuid,
    /// The grant.
    pub grant_id: Uuid,
    /// Position in the grant's ledger, from 1 (the list's cursor).
    pub seq: i64,
    /// What it records.
    pub kind: LedgerEntryKind,
    /// Change to the balance, slice-seconds (negative takes budget).
    pub amount_slice_seconds: i64,
    /// Balance after this entry: the sum of the entries up to it.
    pub balance_slice_seconds: i64,
    /// Held by live leases after this entry.
    pub held_slice_seconds: i64,
    /// Used after this entry.
    pub used_slice_seconds: i64,
    /// The lease, for holds, hold releases and usage.
    pub lease_id: Option<Uuid>,
    /// Why, for adjustments.
    pub reason: Option<String>,
    /// Who caused it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of ledger entries, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerList {
    /// Items of this page.
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/grants/{id}/adjustments`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentCreate {
    /// Change to the balance in slice-seconds (25,200 per GPU-hour): positive adds
    /// budget, negative takes it back. Not zero.
    pub slice_seconds: i64,
    /// Why (1–1000 characters); kept in the ledger and the audit log.
    pub reason: String,
}

/// A warning a grant raised (once each).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantWarning {
    /// `used_80` (or another configured percentage), `ends_soon` or `overdrawn`.
    pub warning: String,
    /// When.
    pub raised_at: DateTime<Utc>,
}
