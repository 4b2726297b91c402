//! `/admin/nodes`: the node registry (paginated, filterable by site and state, states
//! refreshed live), one node with its GPUs, MIG instances and the leases holding them,
//! and the cordon / uncordon / drain buttons.

use super::{require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::{WebError, WebResult};
use crate::format;
use crate::forms::Empty;
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::Error;
use aion_services::nodes::{self, Filter, Node, NodeGpu, NodeState, Operation};
use aion_services::pagination::PageRequest;
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// A node as the pages show it.
struct Row {
    id: String,
    hostname: String,
    site: String,
    state: &'static str,
    gpu_model: String,
    labels: String,
    heartbeat: String,
}

fn row(n: &Node) -> Row {
    Row {
        id: n.id.to_string(),
        hostname: n.hostname.clone(),
        site: n.site.clone(),
        state: n.state.as_str(),
        gpu_model: n.gpu_model.clone(),
        labels: n
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        heartbeat: format::maybe_time(n.last_heartbeat_at),
    }
}

/// `?site=&state=&cursor=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    site: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/nodes.html")]
struct ListPage {
    c: Chrome,
    can_act: bool,
    nodes: Vec<Row>,
    states: Vec<&'static str>,
    site: String,
    state: String,
    next: Option<String>,
}

/// `GET /admin/nodes`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<ListQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let site = super::non_blank(&q.site);
    let node_state = super::non_blank(&q.state);
    let filter = Filter {
        site: site.map(str::to_owned),
        state: node_state
            .map(|v| NodeState::parse("state", v))
            .transpose()?,
    };
    let page = PageRequest::parse(Some(100), q.cursor.as_deref())?;
    let page = nodes::list(&state.services, &s.caller, filter, &page).await?;
    let next = page.next_cursor.as_deref().map(|cursor| {
        super::query_string(&[
            ("site", site),
            ("state", node_state),
            ("cursor", Some(cursor)),
        ])
    });
    html(
        ListPage {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            nodes: page.items.iter().map(row).collect(),
            states: NodeState::ALL.iter().map(|s| s.as_str()).collect(),
            site: site.unwrap_or_default().to_owned(),
            state: node_state.unwrap_or_default().to_owned(),
            next,
        }
        .render(),
    )
}

/// An instance on a GPU as the node page shows it.
struct Instance {
    profile: String,
    start: i32,
    lease_id: String,
    lease_state: &'static str,
    device: String,
}

/// A GPU as the node page shows it.
struct Gpu {
    index: i32,
    uuid: String,
    model: String,
    memory: String,
    mig: bool,
    health: String,
    instances: Vec<Instance>,
}

fn gpu(t: crate::i18n::Tr, mut g: NodeGpu) -> Gpu {
    g.instances.sort_by_key(|i| i.start);
    Gpu {
        index: g.index,
        uuid: g.uuid,
        model: g.model,
        memory: format!(
            "{} GiB",
            format::decimal(t, g.memory_mib as f64 / 1024.0, 0)
        ),
        mig: g.mig_enabled,
        health: g.health,
        instances: g
            .instances
            .into_iter()
            .map(|i| Instance {
                profile: i.profile,
                start: i.start,
                lease_id: i.lease_id.to_string(),
                lease_state: i.lease_state.as_str(),
                device: i.mig_device_uuid.unwrap_or_default(),
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "admin/node.html")]
struct ShowPage {
    c: Chrome,
    can_act: bool,
    n: Row,
    gpus: Vec<Gpu>,
    error: Option<String>,
}

/// `?notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// Notices after an operation.
const NOTICES: &[&str] = &[
    "admin.node.cordoned",
    "admin.node.uncordoned",
    "admin.node.drained",
];

async fn node_page(
    s: &Session,
    state: &WebState,
    id: Uuid,
    notice: Option<&str>,
    error: Option<String>,
) -> WebResult<Result<String, askama::Error>> {
    let detail = nodes::get(&state.services, &s.caller, id.into()).await?;
    Ok(ShowPage {
        c: Chrome::new(s, "admin").with_notice(notice, NOTICES),
        can_act: s.caller.is_platform_admin(),
        n: row(&detail.node),
        gpus: detail.gpus.into_iter().map(|g| gpu(s.t, g)).collect(),
        error,
    }
    .render())
}

/// `GET /admin/nodes/{id}`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    html(node_page(&s, &state, super::path_id(&id)?, q.notice.as_deref(), None).await?)
}

/// The operation named in the path, with the notice shown after it.
fn operation(raw: &str) -> Option<(Operation, &'static str)> {
    match raw {
        "cordon" => Some((Operation::Cordon, "admin.node.cordoned")),
        "uncordon" => Some((Operation::Uncordon, "admin.node.uncordoned")),
        "drain" => Some((Operation::Drain, "admin.node.drained")),
        _ => None,
    }
}

/// `POST /admin/nodes/{id}/{cordon|uncordon|drain}` (platform admins).
pub async fn operate(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> WebResult<HttpResponse> {
    let s = post.session;
    require_operator(&s)?;
    let (id, raw) = path.into_inner();
    let id = super::path_id(&id)?;
    let (op, notice) = operation(&raw).ok_or(Error::NotFound("operation"))?;
    match nodes::operate(&state.services, &s.caller, id.into(), op).await {
        Ok(_) => Ok(see_other(&format!("/admin/nodes/{id}?notice={notice}"))),
        Err(e @ Error::Conflict(_)) => {
            unprocessable(node_page(&s, &state, id, None, Some(e.to_string())).await?)
        }
        Err(e) => Err(WebError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_operations_are_accepted() {
        assert_eq!(operation("cordon").map(|o| o.0), Some(Operation::Cordon));
        assert_eq!(operation("drain").map(|o| o.1), Some("admin.node.drained"));
        assert!(operation("delete").is_none());
    }
}
