//! Calls, allocation requests and grants. Budgets show both GPU-hours (a number, for
//! display) and the exact integer slice-seconds (one GPU-hour = 25,200).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lifecycle of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Being prepared; visible only to its organisation.
    Draft,
    /// Accepting requests.
    Open,
    /// No longer accepting requests.
    Closed,
}

/// A call for allocation requests.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Call {
    /// Id.
    pub id: Uuid,
    /// The allocating organisation running the call.
    pub organization_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// GPU model, e.g. `H100-80GB`.
    pub gpu_model: String,
    /// State.
    pub state: CallState,
    /// The pool, in GPU-hours.
    pub pool_gpu_hours: f64,
    /// The pool, exactly.
    pub pool_slice_seconds: i64,
    /// Granted so far, in GPU-hours.
    pub granted_gpu_hours: f64,
    /// Granted so far, exactly.
    pub granted_slice_seconds: i64,
    /// Left to grant, in GPU-hours.
    pub remaining_gpu_hours: f64,
    /// Left to grant, exactly.
    pub remaining_slice_seconds: i64,
    /// Requests accepted from.
    pub opens_at: DateTime<Utc>,
    /// Requests accepted until.
    pub closes_at: DateTime<Utc>,
    /// Grants valid from.
    pub period_start: DateTime<Utc>,
    /// Grants valid until.
    pub period_end: DateTime<Utc>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /v1/calls`: a draft call.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallCreate {
    /// The allocating organisation (kind `allocator`).
    pub organization_id: Uuid,
    /// Title (1–200 characters).
    pub title: String,
    /// Description (at most 10,000 characters).
    pub description: Option<String>,
    /// GPU model, e.g. `H100-80GB`.
    pub gpu_model: String,
    /// The pool, in whole GPU-hours.
    pub pool_gpu_hours: i64,
    /// Requests accepted from.
    pub opens_at: DateTime<Utc>,
    /// Requests accepted until (after `opens_at`).
    pub closes_at: DateTime<Utc>,
    /// Grants valid from.
    pub period_start: DateTime<Utc>,
    /// Grants valid until (after `period_start`).
    pub period_end: DateTime<Utc>,
}

/// Body of `PATCH /v1/calls/{id}`: any field of a draft; only a larger pool otherwise.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallUpdate {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New GPU model.
    pub gpu_model: Option<String>,
    /// New pool in whole GPU-hours.
    pub pool_gpu_hours: Option<i64>,
    /// New `opens_at`.
    pub opens_at: Option<DateTime<Utc>>,
    /// New `closes_at`.
    pub closes_at: Option<DateTime<Utc>>,
    /// New `period_start`.
    pub period_start: Option<DateTime<Utc>>,
    /// New `period_end`.
    pub period_end: Option<DateTime<Utc>>,
}

/// A page of calls.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CallList {
    /// Items of this page.
    pub items: Vec<Call>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lifecycle of an allocation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllocationRequestState {
    /// Waiting for the committee.
    Submitted,
    /// Approved; a grant exists.
    Approved,
    /// Rejected with a reason.
    Rejected,
    /// Withdrawn by the project.
    Withdrawn,
}

/// An allocation request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationRequest {
    /// Id.
    pub id: Uuid,
    /// The call.
    pub call_id: Uuid,
    /// The requesting project.
    pub project_id: Uuid,
    /// The project's organisation.
    pub organization_id: Uuid,
    /// Hours asked for.
    pub requested_gpu_hours: f64,
    /// Hours asked for, exactly.
    pub requested_slice_seconds: i64,
    /// Why.
    pub justification: String,
    /// State.
    pub state: AllocationRequestState,
    /// Hours granted, once approved.
    pub granted_gpu_hours: Option<f64>,
    /// Hours granted, exactly.
    pub granted_slice_seconds: Option<i64>,
    /// The committee's reason.
    pub decision_reason: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When it was decided or withdrawn.
    pub decided_at: Option<DateTime<Utc>>,
    /// Filed at.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /v1/calls/{id}/requests`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationRequestCreate {
    /// The requesting project.
    pub project_id: Uuid,
    /// Whole GPU-hours asked for.
    pub gpu_hours: i64,
    /// Why (1–10,000 characters).
    pub justification: String,
}

/// A page of allocation requests.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationRequestList {
    /// Items of this page.
    pub items: Vec<AllocationRequest>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/allocation-requests/{id}/approve`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// Whole GPU-hours granted (at most those requested; default all of them).
    pub gpu_hours: Option<i64>,
    /// Optional note for the project.
    pub reason: Option<String>,
}

/// Body of `POST /v1/allocation-requests/{id}/reject`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    /// Why (required).
    pub reason: String,
}

/// Answer of an approval: the request and the grant it created.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// The approved request.
    pub request: AllocationRequest,
    /// The new grant.
    pub grant: Grant,
}

/// Where a grant's hours come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// An approved request on a call.
    Call,
    /// A commercial contract.
    Contract,
}

/// A grant of GPU-hours to a project.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    /// Id.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// The project's organisation.
    pub organization_id: Uuid,
    /// GPU model.
    pub gpu_model: String,
    /// The budget, in GPU-hours.
    pub gpu_hours: f64,
    /// The budget, exactly.
    pub slice_seconds: i64,
    /// Valid from.
    pub valid_from: DateTime<Utc>,
    /// Valid until.
    pub valid_until: DateTime<Utc>,
    /// Call or contract.
    pub source: GrantSource,
    /// The call, for call grants.
    pub call_id: Option<Uuid>,
    /// The approved request, for call grants.
    pub request_id: Option<Uuid>,
    /// The funding allocator; absent for commercial contracts.
    pub funded_by: Option<Uuid>,
    /// Contract reference.
    pub reference: String,
    /// Who created it.
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// What is left to hold or spend, from the ledger (negative when overdrawn).
    pub balance_slice_seconds: i64,
    /// Held by live leases.
    pub held_slice_seconds: i64,
    /// Debited for allocated time of ended leases.
    pub used_slice_seconds: i64,
    /// Balance in GPU-hours, for display.
    pub gpu_hours_left: f64,
    /// Held and used, in percent of the allocation and adjustments (rounded down).
    pub committed_percent: i64,
    /// Warnings raised, oldest first.
    pub warnings: Vec<crate::ledger::GrantWarning>,
    /// Since when the balance is below zero; its leases end after the grace.
    pub overdrawn_since: Option<DateTime<Utc>>,
}

/// Body of `POST /v1/grants`: a commercial contract (platform admins).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCreate {
    /// The project.
    pub project_id: Uuid,
    /// GPU model.
    pub gpu_model: String,
    /// Whole GPU-hours.
    pub gpu_hours: i64,
    /// Valid from.
    pub valid_from: DateTime<Utc>,
    /// Valid until (after `valid_from`).
    pub valid_until: DateTime<Utc>,
    /// Contract reference (1–200 characters).
    pub reference: String,
}

/// A page of grants.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantList {
    /// Items of this page.
    pub items: Vec<Grant>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
