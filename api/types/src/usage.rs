//! Usage and enforcement reports: what agents send (`/v1/agent/usage`,
//! `/v1/agent/events`) and what tenants read (`/v1/projects/{id}/usage`,
//! `/v1/leases/{id}/usage`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One usage record: what the node measured of one lease over one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// Lease measured.
    pub lease_id: Uuid,
    /// Per-lease sequence number, from 0; a record is stored once per (lease, sequence).
    pub sequence: i64,
    /// Interval start.
    pub interval_start: DateTime<Utc>,
    /// Interval end (after the start, at most one day later).
    pub interval_end: DateTime<Utc>,
    /// Instance-seconds the lease's instances existed during the interval.
    pub allocated_seconds: i64,
    /// Average SM utilisation, 0–100, where the hardware reported it.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub memory_used_mib: i64,
    /// Energy apportioned to the lease (GPU power × compute slices / 7), millijoules.
    pub energy_mj: i64,
}

/// Body of `POST /v1/agent/usage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 records.
    pub records: Vec<UsageRecord>,
}

/// Answer of `POST /v1/agent/usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageAck {
    /// Records stored now.
    pub accepted: u64,
    /// Records already stored with the same figures (a retried batch).
    pub duplicates: u64,
}

/// One enforcement action of an agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentEvent {
    /// Agent-side id: an event is audited once per id.
    pub event_id: Uuid,
    /// `process_terminated`, `rogue_process`, `instance_created` or `instance_destroyed`.
    pub kind: String,
    /// When the agent acted.
    pub occurred_at: DateTime<Utc>,
    /// Lease concerned, if any (it must be placed on this node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<Uuid>,
    /// GPU UUID (instance events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
    /// MIG device UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_device_uuid: Option<String>,
    /// NVML profile id (instance events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<i32>,
    /// First memory slice (instance events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i32>,
    /// Process id (process events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// `TERM` or `KILL` (`process_terminated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why the agent acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the action failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/agent/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentEventBatch {
    /// 1 to 500 events.
    pub events: Vec<AgentEvent>,
}

/// Answer of `POST /v1/agent/events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentEventsAck {
    /// Events audited now.
    pub recorded: u64,
    /// Events audited before (a retried batch).
    pub duplicates: u64,
}

/// Sums over a set of usage records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageTotals {
    /// Instance-seconds allocated.
    pub allocated_seconds: i64,
    /// GPU-hours: allocated seconds × compute slices / 7 / 3600.
    pub gpu_hours: f64,
    /// Energy, watt-hours.
    pub energy_wh: f64,
    /// Average SM utilisation weighted by allocated seconds, where reported.
    pub sm_utilisation_pct: Option<f64>,
    /// Peak memory used, MiB.
    pub peak_memory_used_mib: i64,
    /// Records summed.
    pub records: u64,
    /// CO2-equivalent of the energy, grams, at each site's grid intensity in force when
    /// each interval started (exact to the milligram).
    pub co2e_g: f64,
    /// Energy measured where no grid intensity was recorded, watt-hours (not counted in
    /// `co2e_g`, never assumed carbon-free).
    pub energy_without_intensity_wh: f64,
}

/// One bucket of a usage report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageBucket {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Profile, with `by=profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The sums.
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Usage of a project or lease over a span; only buckets with records are listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// Start of the span.
    pub from: DateTime<Utc>,
    /// End of the span.
    pub to: DateTime<Utc>,
    /// `hour`, `day` or `month`.
    pub granularity: String,
    /// Buckets in time order (then by profile).
    pub buckets: Vec<UsageBucket>,
    /// Sums over the span.
    pub total: UsageTotals,
}

/// A site's grid carbon intensity from a date on (until the site's next value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CarbonIntensity {
    /// Id.
    pub id: Uuid,
    /// The site, as nodes and join tokens name it.
    pub site: String,
    /// In force from.
    pub effective_from: DateTime<Utc>,
    /// Grams of CO2e per kWh.
    pub grams_per_kwh: i32,
    /// Where the figure comes from.
    pub source: String,
    /// Who recorded it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /v1/carbon-intensities` (platform admins).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarbonIntensityCreate {
    /// The site.
    pub site: String,
    /// In force from (until the site's next value).
    pub effective_from: DateTime<Utc>,
    /// Grams of CO2e per kWh, 0–2000.
    pub grams_per_kwh: i64,
    /// Where the figure comes from (1–200 characters).
    pub source: String,
}

/// A page of carbon intensities.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CarbonIntensityList {
    /// Items of this page.
    pub items: Vec<CarbonIntensity>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
