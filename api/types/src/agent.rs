//! The node registry (`/v1/join-tokens`, `/v1/nodes`) and the agent protocol
//! (`/v1/agent/*`): registration, credentials, desired state and status reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /v1/join-tokens`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenCreate {
    /// Site of the node that will register (2–63 of `a-z`, `0-9`, inner `-`).
    pub site: String,
    /// Labels of that node (at most 32).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Lifetime in seconds: default 3600, at most 604800 (7 days).
    pub expires_in_s: Option<i64>,
}

/// A join token (never with its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinToken {
    /// Id.
    pub id: Uuid,
    /// Site.
    pub site: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `active`, `used` or `expired` (revoked tokens are expired).
    pub state: String,
    /// Actor that created it.
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Expires at.
    pub expires_at: DateTime<Utc>,
    /// When a node registered with it.
    pub used_at: Option<DateTime<Utc>>,
    /// The node that registered with it.
    pub node_id: Option<Uuid>,
}

/// Answer of `POST /v1/join-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedJoinToken {
    /// The token.
    pub join_token: JoinToken,
    /// `aionjoin_…`, shown once (absent when an idempotent retry is replayed).
    pub secret: Option<String>,
}

/// A page of join tokens.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinTokenList {
    /// Items of this page.
    pub items: Vec<JoinToken>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One GPU in a registration.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentGpu {
    /// NVIDIA UUID, `GPU-…`.
    pub uuid: String,
    /// Index on the node (0–15).
    pub index: i64,
    /// `H100-80GB` or an NVML product name (`NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// Memory in MiB.
    pub memory_mib: i64,
    /// Whether MIG mode is enabled.
    pub mig_enabled: bool,
}

/// Body of `POST /v1/agent/register` (authenticated by a join token).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRegister {
    /// RFC 1123 host name, at most 253 characters.
    pub hostname: String,
    /// 1 to 16 GPUs of one model, unique UUIDs and indexes.
    pub gpus: Vec<AgentGpu>,
}

/// A node credential (answer of register and renew).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeCredential {
    /// The node.
    pub node_id: Uuid,
    /// `aionnode_…`: the bearer secret of `/v1/agent/*`.
    pub credential: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Renew after this time.
    pub renew_after: DateTime<Utc>,
}

/// One MIG instance the node must run.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DesiredInstance {
    /// Placement id.
    pub placement_id: Uuid,
    /// GPU UUID.
    pub gpu_uuid: String,
    /// GPU index.
    pub gpu_index: i32,
    /// NVML profile id.
    pub profile_id: i32,
    /// Profile name, e.g. `3g.40gb`.
    pub profile: String,
    /// Start slot.
    pub start: i32,
}

/// A lease with instances on the node.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DesiredLease {
    /// Lease id.
    pub lease_id: Uuid,
    /// `scheduled` (create), `active` (keep) or `releasing` (tear down).
    pub state: String,
    /// When the lease reaches its duration (set once active); cut off from the control
    /// plane, the agent keeps the lease until then.
    pub ends_at: Option<DateTime<Utc>>,
    /// Its instances on this node.
    pub instances: Vec<DesiredInstance>,
}

/// Answer of `GET /v1/agent/desired-state`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DesiredState {
    /// Revision; pass it back as `revision` to wait for the next change.
    pub revision: i64,
    /// `ready`, `cordoned`, `draining` or `unreachable`.
    pub node_state: String,
    /// Leases placed on the node.
    pub leases: Vec<DesiredLease>,
}

/// A MIG instance present on the node.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedInstance {
    /// GPU UUID.
    pub gpu_uuid: String,
    /// NVML profile id.
    pub profile_id: i32,
    /// Start slot.
    pub start: i32,
    /// MIG device UUID.
    pub mig_device_uuid: String,
}

/// Health of one GPU.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuHealth {
    /// GPU UUID.
    pub uuid: String,
    /// `ok` or `unhealthy`.
    pub health: String,
}

/// Body of `POST /v1/agent/status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// Every MIG instance present.
    #[serde(default)]
    pub instances: Vec<ReportedInstance>,
    /// GPU health.
    #[serde(default)]
    pub gpus: Vec<GpuHealth>,
}

/// Answer of `POST /v1/agent/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusAck {
    /// Current desired revision: re-fetch the desired state if it differs from yours.
    pub revision: i64,
}

/// A node.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Id.
    pub id: Uuid,
    /// Host name.
    pub hostname: String,
    /// Site.
    pub site: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `ready`, `cordoned`, `draining` or `unreachable`.
    pub state: String,
    /// GPU model.
    pub gpu_model: String,
    /// Desired-state revision.
    pub desired_revision: i64,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// A page of nodes.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// Items of this page.
    pub items: Vec<Node>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A MIG instance placed on a GPU.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PlacedInstance {
    /// Lease.
    pub lease_id: Uuid,
    /// Lease state.
    pub lease_state: String,
    /// Profile name.
    pub profile: String,
    /// NVML profile id.
    pub profile_id: i32,
    /// Start slot.
    pub start: i32,
    /// MIG device UUID once reported.
    pub mig_device_uuid: Option<String>,
}

/// A GPU of a node.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeGpu {
    /// Id.
    pub id: Uuid,
    /// NVIDIA UUID.
    pub uuid: String,
    /// Index.
    pub index: i32,
    /// Model.
    pub model: String,
    /// Memory in MiB.
    pub memory_mib: i64,
    /// MIG mode.
    pub mig_enabled: bool,
    /// `ok` or `unhealthy`.
    pub health: String,
    /// Instances of live leases.
    pub instances: Vec<PlacedInstance>,
}

/// A node with its GPUs (`GET /v1/nodes/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    pub node: Node,
    /// Its GPUs.
    pub gpus: Vec<NodeGpu>,
}
