//! `GET /admin`: the platform at a glance: organisations, projects, users, nodes by
//! state and live leases, with links to each part of the panel.

use super::require_operator;
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::operator_views::{self, Overview};
use askama::Template;

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Page {
    c: Chrome,
    can_act: bool,
    o: Overview,
    nodes: Vec<(&'static str, u64)>,
}

/// `GET /admin`.
pub async fn show(s: Session, state: web::Data<WebState>) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let o = operator_views::overview(&state.services, &s.caller).await?;
    let nodes = o.nodes.iter().map(|(st, n)| (st.as_str(), *n)).collect();
    html(
        Page {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            o,
            nodes,
        }
        .render(),
    )
}
