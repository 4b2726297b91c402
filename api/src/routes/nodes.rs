//! The node registry for operators: join tokens (`/v1/join-tokens`) and nodes
//! (`/v1/nodes`: list, read, cordon, uncordon, drain). Platform admins change, auditors read.

use super::ListQuery;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, delete, get, post, web};
use aion_api_types as wire;
use aion_api_types::{
    CreatedJoinToken, JoinToken, JoinTokenCreate, JoinTokenList, Node, NodeDetail, NodeList,
    Problem,
};
use aion_services::join_tokens::{self, NewJoinToken};
use aion_services::nodes::{self, Filter, NodeState, Operation};
use aion_services::pagination::PageRequest;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Creates a one-time join token for a site; the secret is in this answer only.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("Idempotency-Key" = Option<String>, Header)),
    request_body = JoinTokenCreate, responses((status = 201, body = CreatedJoinToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/join-tokens")]
pub async fn create_join_token(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<JoinTokenCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let cmd = NewJoinToken::parse(&body.site, body.labels, body.expires_in_s)?;
    let created = join_tokens::create(&state.services, &caller, cmd, idem.get()).await?;
    let now = state.services.clock.now();
    Ok(HttpResponse::Created().json(CreatedJoinToken {
        join_token: join_token(created.token, now),
        secret: created.secret,
    }))
}

/// Lists join tokens, used and expired ones included (platform admins, auditors).
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = JoinTokenList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/join-tokens")]
pub async fn list_join_tokens(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = join_tokens::list(&state.services, &caller, &q.page()?).await?;
    let now = state.services.clock.now();
    Ok(HttpResponse::Ok().json(JoinTokenList {
        items: page.items.into_iter().map(|t| join_token(t, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revokes a join token (it expires now); an ended token is answered unchanged.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = JoinToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[delete("/v1/join-tokens/{id}")]
pub async fn revoke_join_token(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let token = join_tokens::revoke(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(join_token(token, state.services.clock.now())))
}

/// Filters and paging of the node list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NodeQuery {
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only nodes of this site.
    pub site: Option<String>,
    /// Only nodes in this state: `ready`, `cordoned`, `draining`, `unreachable`.
    pub state: Option<String>,
}

/// Lists nodes (platform admins, auditors).
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(NodeQuery),
    responses((status = 200, body = NodeList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/nodes")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<NodeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = Filter {
        site: q.site,
        state: q
            .state
            .as_deref()
            .map(|s| NodeState::parse("state", s))
            .transpose()?,
    };
    let page = nodes::list(&state.services, &caller, filter, &page).await?;
    Ok(HttpResponse::Ok().json(NodeList {
        items: page.items.into_iter().map(node).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads a node with its GPUs and the instances placed on them.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = NodeDetail), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/nodes/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let detail = nodes::get(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(node_detail(detail)))
}

async fn operate(
    state: &AppState,
    caller: &Authenticated,
    id: Uuid,
    op: Operation,
) -> Result<HttpResponse, ApiError> {
    let n = nodes::operate(&state.services, caller, id.into(), op).await?;
    Ok(HttpResponse::Ok().json(node(n)))
}

/// Cordons a node: no new placements; its leases stay.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Node), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/nodes/{id}/cordon")]
pub async fn cordon(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, &caller, id.into_inner(), Operation::Cordon).await
}

/// Uncordons a cordoned or draining node: it takes placements again.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Node), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/nodes/{id}/uncordon")]
pub async fn uncordon(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, &caller, id.into_inner(), Operation::Uncordon).await
}

/// Drains a node: no new placements, and its live leases stay until they end (nothing
/// is evicted); once empty it can be taken out of service.
#[utoipa::path(tag = "nodes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Node), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/nodes/{id}/drain")]
pub async fn drain(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, &caller, id.into_inner(), Operation::Drain).await
}

fn join_token(t: join_tokens::JoinToken, now: chrono::DateTime<chrono::Utc>) -> wire::JoinToken {
    let state = if t.used_at.is_some() {
        "used"
    } else if t.expires_at <= now {
        "expired"
    } else {
        "active"
    };
    wire::JoinToken {
        id: t.id.0,
        site: t.site,
        labels: t.labels,
        state: state.into(),
        created_by: t.created_by,
        created_at: t.created_at,
        expires_at: t.expires_at,
        used_at: t.used_at,
        node_id: t.node_id.map(|n| n.0),
    }
}

fn node(n: nodes::Node) -> wire::Node {
    wire::Node {
        id: n.id.0,
        hostname: n.hostname,
        site: n.site,
        labels: n.labels,
        state: n.state.as_str().into(),
        gpu_model: n.gpu_model,
        desired_revision: n.desired_revision,
        last_heartbeat_at: n.last_heartbeat_at,
        created_at: n.created_at,
        updated_at: n.updated_at,
    }
}

fn node_detail(d: nodes::NodeDetail) -> wire::NodeDetail {
    wire::NodeDetail {
        node: node(d.node),
        gpus: d
            .gpus
            .into_iter()
            .map(|g| wire::NodeGpu {
                id: g.id.0,
                uuid: g.uuid,
                index: g.index,
                model: g.model,
                memory_mib: g.memory_mib,
                mig_enabled: g.mig_enabled,
                health: g.health,
                instances: g
                    .instances
                    .into_iter()
                    .map(|i| wire::PlacedInstance {
                        lease_id: i.lease_id.0,
                        lease_state: i.lease_state.as_str().into(),
                        profile: i.profile,
                        profile_id: i.profile_id,
                        start: i.start,
                        mig_device_uuid: i.mig_device_uuid,
                    })
                    .collect(),
            })
            .collect(),
    }
}
