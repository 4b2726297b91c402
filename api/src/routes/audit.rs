//! `GET /v1/audit-events`, filterable, newest first.

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpResponse, get, web};
use aion_api_types::{AuditEventList, Problem};
use aion_services::audit::{self, Filter};
use aion_services::pagination::PageRequest;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Filters and paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Actor, e.g. `user:<id>` or `token:<id>`.
    pub actor: Option<String>,
    /// Action, e.g. `project.create`.
    pub action: Option<String>,
    /// Target kind, e.g. `project`.
    pub target_kind: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Organisation.
    pub organization_id: Option<Uuid>,
    /// Project.
    pub project_id: Option<Uuid>,
    /// At or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

/// Reads the audit log: everything for platform admins and auditors, their
/// organisations' events for organisation admins.
#[utoipa::path(tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = AuditEventList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/audit-events")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = Filter {
        actor: q.actor,
        action: q.action,
        target_kind: q.target_kind,
        target_id: q.target_id,
        organization_id: q.organization_id.map(Into::into),
        project_id: q.project_id.map(Into::into),
        since: q.since,
        until: q.until,
    };
    let page = audit::list(&state.services.db, &caller, filter, &page).await?;
    Ok(HttpResponse::Ok().json(AuditEventList {
        items: page.items.into_iter().map(convert::audit_event).collect(),
        next_cursor: page.next_cursor,
    }))
}
