//! Leases of MIG slices.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /v1/projects/{id}/leases`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseCreate {
    /// MIG profile name on the GPU model (e.g. `3g.40gb`) or NVML profile id (e.g. `9`).
    pub profile: String,
    /// Instances (1–64; a gang when more than one). Default 1.
    pub count: Option<i64>,
    /// GPU model, e.g. `H100-80GB`; default: the model of the project's grant valid now.
    pub gpu_model: Option<String>,
    /// Only GPUs at this site.
    pub site: Option<String>,
    /// All instances on one node.
    pub same_node: Option<bool>,
    /// May be preempted for guaranteed leases (counts against the preemptible cap).
    pub preemptible: Option<bool>,
    /// Seconds from activation to expiry (60 s – 30 days); default 8 hours.
    pub duration_s: Option<i64>,
}

/// One MIG instance of a lease.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LeasePlacement {
    /// Node.
    pub node_id: Uuid,
    /// GPU UUID (`GPU-…`).
    pub gpu_uuid: String,
    /// NVML GPU instance profile id.
    pub profile_id: i32,
    /// First memory slice of the instance.
    pub start: i32,
    /// MIG device UUID (`MIG-…`), once the node created it.
    pub mig_device_uuid: Option<String>,
}

/// A lease.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    /// Id.
    pub id: Uuid,
    /// Project.
    pub project_id: Uuid,
    /// Organisation.
    pub organization_id: Uuid,
    /// Grant whose budget it holds.
    pub grant_id: Option<Uuid>,
    /// Profile name.
    pub profile: String,
    /// GPU model.
    pub gpu_model: String,
    /// Instances.
    pub count: i32,
    /// Compute slices of all instances (7 per GPU).
    pub compute_slices: i64,
    /// GPU-equivalents held (compute slices / 7).
    pub gpu_equivalents: f64,
    /// Site constraint.
    pub site: Option<String>,
    /// Gang on one node.
    pub same_node: bool,
    /// Preemptible.
    pub preemptible: bool,
    /// Duration from activation, seconds.
    pub duration_s: i64,
    /// `pending`, `scheduled`, `active`, `releasing`, `released`, `failed`, `expired`, `preempted`.
    pub state: String,
    /// Why it is pending, failed or preempted.
    pub state_reason: Option<String>,
    /// Budget held while live, slice-seconds (25,200 per GPU-hour).
    pub held_slice_seconds: i64,
    /// Budget used, slice-seconds, once ended.
    pub charged_slice_seconds: i64,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Placed at.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Usable since.
    pub active_at: Option<DateTime<Utc>>,
    /// Release asked at.
    pub releasing_at: Option<DateTime<Utc>>,
    /// Ended at.
    pub ended_at: Option<DateTime<Utc>>,
    /// Reaches its duration at.
    pub ends_at: Option<DateTime<Utc>>,
    /// Where it runs.
    pub placements: Vec<LeasePlacement>,
}

/// A page of leases, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LeaseList {
    /// Items of this page.
    pub items: Vec<Lease>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}
