//! Quotas of organisations and projects: caps on what is held at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A quota. Compute slices count 7 per GPU; GPU-equivalents are slices / 7.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    /// The organisation (of the project, for project quotas).
    pub organization_id: Uuid,
    /// The project, for project quotas.
    pub project_id: Option<Uuid>,
    /// GPU-equivalents held at once by guaranteed leases.
    pub max_gpu_equivalents: f64,
    /// The same, in compute slices.
    pub max_compute_slices: i64,
    /// GPU-equivalents held at once by preemptible leases.
    pub max_preemptible_gpu_equivalents: f64,
    /// The same, in compute slices.
    pub max_preemptible_compute_slices: i64,
    /// Profile name → most instances held at once.
    pub per_profile: BTreeMap<String, i64>,
    /// Site → most compute slices held at once there.
    pub per_site: BTreeMap<String, i64>,
    /// Whether none was set and the default applies (the kind's, or the organisation's).
    pub is_default: bool,
    /// When it was last set.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Body of `PUT /v1/organizations/{id}/quota` and `PUT /v1/projects/{id}/quota`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    /// Compute slices held at once by guaranteed leases (7 per GPU).
    pub max_compute_slices: i64,
    /// Compute slices held at once by preemptible leases; default twice the above.
    pub max_preemptible_compute_slices: Option<i64>,
    /// Profile name (e.g. `3g.40gb`) → most instances held at once.
    pub per_profile: Option<BTreeMap<String, i64>>,
    /// Site → most compute slices held at once there.
    pub per_site: Option<BTreeMap<String, i64>>,
}
