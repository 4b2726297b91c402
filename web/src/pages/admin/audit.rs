//! `GET /admin/audit`: the audit log, newest first, filtered by action, target,
//! organisation, project, actor and time range (UTC), with cursor pagination that keeps
//! the filters.

use super::price_forms::parse_utc;
use super::{FormErrors, require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::format;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::Error;
use aion_services::audit::{self, AuditEvent, Filter};
use aion_services::error::FieldErrors;
use aion_services::pagination::PageRequest;
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// Longest details text shown in the table.
const DETAILS_CHARS: usize = 300;

/// The filters as typed (`?action=&target_kind=&…&cursor=`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    target_kind: Option<String>,
    target_id: Option<String>,
    organization_id: Option<String>,
    project_id: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

impl AuditQuery {
    /// The domain filter, or every field that does not parse.
    fn filter(&self) -> Result<Filter, Error> {
        let mut problems = FieldErrors::new();
        let mut id = |field: &str, raw: &Option<String>| -> Option<Uuid> {
            let raw = super::non_blank(raw)?;
            Uuid::parse_str(raw)
                .map_err(|_| problems.insert(field.into(), "must be an id (UUID)".into()))
                .ok()
        };
        let organization_id = id("organization_id", &self.organization_id);
        let project_id = id("project_id", &self.project_id);
        let mut time = |field: &str, raw: &Option<String>| {
            let raw = super::non_blank(raw)?;
            parse_utc(raw).or_else(|| {
                problems.insert(
                    field.into(),
                    "must be a date, or a date and time (UTC), e.g. 2026-11-01T00:00".into(),
                );
                None
            })
        };
        let since = time("since", &self.since);
        let until = time("until", &self.until);
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let text = |raw: &Option<String>| super::non_blank(raw).map(str::to_owned);
        Ok(Filter {
            actor: text(&self.actor),
            action: text(&self.action),
            target_kind: text(&self.target_kind),
            target_id: text(&self.target_id),
            organization_id: organization_id.map(Into::into),
            project_id: project_id.map(Into::into),
            since,
            until,
        })
    }

    /// The query of the next page: these filters and `cursor`.
    fn next(&self, cursor: &str) -> String {
        let v = super::non_blank;
        super::query_string(&[
            ("action", v(&self.action)),
            ("target_kind", v(&self.target_kind)),
            ("target_id", v(&self.target_id)),
            ("organization_id", v(&self.organization_id)),
            ("project_id", v(&self.project_id)),
            ("actor", v(&self.actor)),
            ("since", v(&self.since)),
            ("until", v(&self.until)),
            ("cursor", Some(cursor)),
        ])
    }

    /// A typed value, for the form.
    fn value(raw: &Option<String>) -> String {
        raw.clone().unwrap_or_default()
    }
}

/// An event as the table shows it.
struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    organization_id: Option<String>,
    request_id: String,
    details: String,
}

fn row(e: AuditEvent) -> Row {
    let mut details = e.details.to_string();
    if details.chars().count() > DETAILS_CHARS {
        details = details.chars().take(DETAILS_CHARS).collect::<String>() + "…";
    }
    Row {
        seq: e.seq,
        at: format::time(e.occurred_at),
        actor: e.actor,
        action: e.action,
        target_kind: e.target_kind,
        target_id: e.target_id,
        organization_id: e.organization_id.map(|o| o.to_string()),
        request_id: e.request_id,
        details,
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct Page {
    c: Chrome,
    can_act: bool,
    f: [(&'static str, &'static str, String); 8],
    events: Vec<Row>,
    next: Option<String>,
    problems: FormErrors,
    shown: &'static [&'static str],
}

/// `GET /admin/audit`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<AuditQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let q = q.into_inner();
    let v = AuditQuery::value;
    let fields = [
        ("action", "admin.audit.action", v(&q.action)),
        ("target_kind", "admin.audit.target_kind", v(&q.target_kind)),
        ("target_id", "admin.audit.target_id", v(&q.target_id)),
        (
            "organization_id",
            "admin.audit.organization",
            v(&q.organization_id),
        ),
        ("project_id", "admin.audit.project", v(&q.project_id)),
        ("actor", "admin.audit.actor", v(&q.actor)),
        ("since", "admin.audit.since", v(&q.since)),
        ("until", "admin.audit.until", v(&q.until)),
    ];
    let page = |events, next, problems| Page {
        c: Chrome::new(&s, "admin"),
        can_act: s.caller.is_platform_admin(),
        f: fields.clone(),
        events,
        next,
        problems,
        shown: &[],
    };
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            let problems = FormErrors::from_error(e)?;
            return unprocessable(page(Vec::new(), None, problems).render());
        }
    };
    let request = PageRequest::parse(Some(50), q.cursor.as_deref())?;
    let found = audit::list(&state.services.db, &s.caller, filter, &request).await?;
    let next = found.next_cursor.as_deref().map(|c| q.next(c));
    let events = found.items.into_iter().map(row).collect();
    html(page(events, next, FormErrors::default()).render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_filters_are_ignored_and_typed_ones_kept() {
        let q = AuditQuery {
            action: Some("node.drain".into()),
            actor: Some(" ".into()),
            since: Some("2026-11-01".into()),
            ..AuditQuery::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(f.action.as_deref(), Some("node.drain"));
        assert!(f.actor.is_none());
        assert_eq!(f.since.unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
    }

    #[test]
    fn bad_ids_and_times_are_all_reported() {
        let q = AuditQuery {
            organization_id: Some("acme".into()),
            until: Some("later".into()),
            ..AuditQuery::default()
        };
        let Err(Error::Validation(fields)) = q.filter() else {
            panic!("expected a validation error");
        };
        assert!(fields.contains_key("organization_id") && fields.contains_key("until"));
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        let q = AuditQuery {
            target_kind: Some("node".into()),
            ..AuditQuery::default()
        };
        assert_eq!(q.next("abc"), "target_kind=node&cursor=abc");
    }
}
