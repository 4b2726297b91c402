//! The agent protocol, `/v1/agent/*`: registration with a join token, credential renewal,
//! the desired-state long-poll and status reports. Every route but `register` takes a
//! node credential ([`NodeAuthenticated`]) and acts on that node only.

use crate::AppState;
use crate::error::ApiError;
use crate::node_auth::{JoinBearer, NodeAuthenticated};
use actix_web::{HttpResponse, get, post, web};
use aion_api_types as wire;
use aion_api_types::{
    AgentRegister, DesiredState, NodeCredential, Problem, StatusAck, StatusReport,
};
use aion_services::agent::{self, IssuedCredential};
use aion_services::agent_input::{self, RawGpu, Registration};
use aion_services::agent_sync::{self, MAX_WAIT_S};
use serde::Deserialize;
use utoipa::IntoParams;

/// Registers a node with a one-time join token (`Authorization: Bearer aionjoin_…`) and
/// answers its first node credential.
#[utoipa::path(tag = "agent", security(("bearer" = [])), request_body = AgentRegister,
    responses((status = 201, body = NodeCredential), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agent/register")]
pub async fn register(
    state: web::Data<AppState>,
    join: JoinBearer,
    body: web::Json<AgentRegister>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let gpus: Vec<RawGpu> = body
        .gpus
        .into_iter()
        .map(|g| RawGpu {
            uuid: g.uuid,
            index: g.index,
            model: g.model,
            memory_mib: g.memory_mib,
            mig_enabled: g.mig_enabled,
        })
        .collect();
    let reg = Registration::parse(&body.hostname, &gpus)?;
    let issued = agent::register(&state.services, &join.secret, reg, &join.request_id).await?;
    Ok(HttpResponse::Created().json(credential(issued)))
}

/// Issues a new node credential; the one used keeps working for 5 more minutes.
#[utoipa::path(tag = "agent", security(("bearer" = [])),
    responses((status = 200, body = NodeCredential), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agent/renew")]
pub async fn renew(
    state: web::Data<AppState>,
    node: NodeAuthenticated,
) -> Result<HttpResponse, ApiError> {
    let issued = agent::renew(&state.services, node.auth, &node.request_id).await?;
    Ok(HttpResponse::Ok().json(credential(issued)))
}

/// `?revision=&wait=` of the desired-state long-poll.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DesiredQuery {
    /// The revision the agent has; with `wait`, answer only once it changes.
    pub revision: Option<i64>,
    /// Seconds to wait for a change, 0–60 (default 0).
    pub wait: Option<u64>,
}

/// The node's desired state; long-polls up to `wait` seconds while the revision equals
/// `revision`. Counts as a heartbeat.
#[utoipa::path(tag = "agent", security(("bearer" = [])), params(DesiredQuery),
    responses((status = 200, body = DesiredState), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/agent/desired-state")]
pub async fn desired_state(
    state: web::Data<AppState>,
    node: NodeAuthenticated,
    q: web::Query<DesiredQuery>,
) -> Result<HttpResponse, ApiError> {
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_WAIT_S {
        return Err(aion_services::Error::invalid(
            "wait",
            format!("must be 0 to {MAX_WAIT_S} seconds"),
        )
        .into());
    }
    let desired = agent_sync::desired_state(
        &state.services,
        node.auth,
        q.revision,
        std::time::Duration::from_secs(wait),
        &node.request_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(DesiredState {
        revision: desired.revision,
        node_state: desired.node_state.as_str().into(),
        leases: desired
            .leases
            .into_iter()
            .map(|l| wire::DesiredLease {
                lease_id: l.lease_id.0,
                state: l.state.as_str().into(),
                ends_at: l.ends_at,
                instances: l
                    .instances
                    .into_iter()
                    .map(|i| wire::DesiredInstance {
                        placement_id: i.placement_id.0,
                        gpu_uuid: i.gpu_uuid,
                        gpu_index: i.gpu_index,
                        profile_id: i.profile_id,
                        profile: i.profile,
                        start: i.start,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// Reports the instances present and GPU health; moves leases `scheduled → active` and
/// `releasing → released`. Answers the current revision.
#[utoipa::path(tag = "agent", security(("bearer" = [])), request_body = StatusReport,
    responses((status = 200, body = StatusAck), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agent/status")]
pub async fn status(
    state: web::Data<AppState>,
    node: NodeAuthenticated,
    body: web::Json<StatusReport>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let report = agent_input::StatusReport::parse(
        body.instances
            .into_iter()
            .map(|i| agent_input::ReportedInstance {
                gpu_uuid: i.gpu_uuid,
                profile_id: i.profile_id,
                start: i.start,
                mig_device_uuid: i.mig_device_uuid,
            })
            .collect(),
        body.gpus.into_iter().map(|g| (g.uuid, g.health)).collect(),
    )?;
    let revision =
        agent_sync::report_status(&state.services, node.auth, report, &node.request_id).await?;
    Ok(HttpResponse::Ok().json(StatusAck { revision }))
}

fn credential(c: IssuedCredential) -> NodeCredential {
    NodeCredential {
        node_id: c.node_id.0,
        credential: c.credential,
        expires_at: c.expires_at,
        renew_after: c.renew_after,
    }
}
