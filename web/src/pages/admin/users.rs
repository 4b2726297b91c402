//! `GET /admin/users`: the people known to Aion (paginated), with their identity
//! provider, roles and when they were last seen.

use super::{PageQuery, require_operator};
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::operator_views::{self, RoleAt};
use aion_services::pagination::PageRequest;
use askama::Template;

/// A person as the list shows them.
struct Row {
    name: String,
    email: String,
    issuer: String,
    subject: String,
    roles: Vec<RoleAt>,
    last_seen: String,
    created: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct Page {
    c: Chrome,
    can_act: bool,
    users: Vec<Row>,
    next: Option<String>,
}

/// `GET /admin/users`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let page = PageRequest::parse(Some(50), q.cursor.as_deref())?;
    let page = operator_views::users(&state.services, &s.caller, &page).await?;
    let users = page
        .items
        .into_iter()
        .map(|u| Row {
            name: u.display_name.unwrap_or_default(),
            email: u.email.unwrap_or_default(),
            issuer: u.issuer,
            subject: u.subject,
            roles: u.roles,
            last_seen: format::maybe_time(u.last_seen_at),
            created: format::time(u.created_at),
        })
        .collect();
    html(
        Page {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            users,
            next: page.next_cursor,
        }
        .render(),
    )
}
