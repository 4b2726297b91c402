//! The operators' panel (`/admin`, except the committee's `/admin/allocations`):
//! organisations and users, price lists, invoices, nodes, fleet occupancy and the audit
//! log. Platform admins act; auditors read, and see no action buttons (the domain
//! refuses their forms anyway); everyone else gets 403.

pub mod audit;
pub mod credit_notes;
pub mod fleet;
pub mod invoices;
pub mod nodes;
pub mod organizations;
pub mod overview;
pub mod price_forms;
pub mod price_lists;
pub mod users;

use crate::error::{WebError, WebResult};
use crate::session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use aion_services::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Registers the operators' pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(overview::show))
        .route("/admin/organizations", web::get().to(organizations::list))
        .route(
            "/admin/organizations",
            web::post().to(organizations::create),
        )
        .route(
            "/admin/organizations/new",
            web::get().to(organizations::new),
        )
        .route(
            "/admin/organizations/{id}",
            web::get().to(organizations::show),
        )
        .route(
            "/admin/organizations/{id}/invoices",
            web::get().to(invoices::show_month),
        )
        .route(
            "/admin/organizations/{id}/invoices/{month}/finalise",
            web::post().to(invoices::finalise),
        )
        .route(
            "/admin/invoices/{id}",
            web::get().to(credit_notes::document),
        )
        .route(
            "/admin/invoices/{id}/credit-notes",
            web::post().to(credit_notes::credit),
        )
        .route("/admin/users", web::get().to(users::list))
        .route("/admin/price-lists", web::get().to(price_lists::list))
        .route("/admin/price-lists", web::post().to(price_lists::create))
        .route("/admin/price-lists/new", web::get().to(price_lists::new))
        .route("/admin/price-lists/{id}", web::get().to(price_lists::show))
        .route(
            "/admin/price-lists/{id}/withdraw",
            web::post().to(price_lists::withdraw),
        )
        .route("/admin/nodes", web::get().to(nodes::list))
        .route("/admin/nodes/{id}", web::get().to(nodes::show))
        .route(
            "/admin/nodes/{id}/{operation}",
            web::post().to(nodes::operate),
        )
        .route("/admin/fleet", web::get().to(fleet::show))
        .route("/admin/audit", web::get().to(audit::list));
}

/// Lets platform admins and auditors in; anyone else gets 403.
pub fn require_operator(s: &Session) -> WebResult<()> {
    if s.caller.reads_everything() {
        Ok(())
    } else {
        Err(
            Error::Forbidden("the operators' panel is for platform admins and auditors".into())
                .into(),
        )
    }
}

/// `?cursor=&notice=` of a paginated page.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A notice key after a form.
    pub notice: Option<String>,
}

/// What went wrong with a form, shown next to it: one message per field, and a general
/// one for errors about the whole request (a conflict, a refusal).
#[derive(Debug, Default)]
pub struct FormProblems {
    fields: BTreeMap<String, String>,
    /// A message about the whole form.
    pub general: Option<String>,
}

impl FormProblems {
    /// The problems of a domain error a form can show, or the error itself when a form
    /// cannot (not found, forbidden, internal…), to be rendered as an error page: an
    /// auditor who posts a form gets the domain's 403, not a form to correct.
    pub fn from_error(e: Error) -> Result<Self, WebError> {
        match e {
            Error::Validation(fields) => Ok(Self {
                fields: fields.into_iter().collect(),
                general: None,
            }),
            Error::Conflict(m)
            | Error::QuotaExceeded(m)
            | Error::BudgetExhausted(m)
            | Error::NotPriced(m) => Ok(Self {
                fields: BTreeMap::new(),
                general: Some(m),
            }),
            other => Err(other.into()),
        }
    }

    /// The message about `field`, if any.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Messages about fields the form does not show next to an input (`shown` names
    /// fields, or families of fields when it ends with a dot: `price.`).
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        let is_shown = |k: &str| {
            shown
                .iter()
                .any(|s| *s == k || (s.ends_with('.') && k.starts_with(s)))
        };
        self.fields
            .iter()
            .filter(|(k, _)| !is_shown(k))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect()
    }

    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }
}

/// A form page re-rendered with its problems (422).
pub fn unprocessable(body: Result<String, askama::Error>) -> WebResult<HttpResponse> {
    let mut page = crate::chrome::html(body)?;
    *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(page)
}

/// The id in a page's path; anything else is a page that does not exist (a readable
/// 404 page rather than the framework's plain-text answer).
pub fn path_id(raw: &str) -> WebResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::NotFound("page").into())
}

/// An optional form field: blank means absent.
pub fn non_blank(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A query string of the non-blank pairs (for "next page" links that keep filters).
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_are_shown_per_field_and_conflicts_as_a_whole() {
        let p = FormProblems::from_error(Error::invalid("slug", "taken")).unwrap();
        assert_eq!(p.field("slug"), Some("taken"));
        assert!(p.general.is_none());
        let p = FormProblems::from_error(Error::Conflict("already".into())).unwrap();
        assert_eq!(p.general.as_deref(), Some("already"));
        assert!(FormProblems::from_error(Error::NotFound("x")).is_err());
        assert!(FormProblems::from_error(Error::Forbidden("auditor".into())).is_err());
    }

    #[test]
    fn fields_without_an_input_are_listed_apart() {
        let p = FormProblems::from_error(Error::invalid("entries", "empty")).unwrap();
        assert_eq!(p.others(&["name"]), vec!["entries: empty".to_owned()]);
        assert!(p.others(&["entries"]).is_empty());
        let p = FormProblems::from_error(Error::invalid("price.H100-80GB", "bad")).unwrap();
        assert!(p.others(&["price."]).is_empty());
    }

    #[test]
    fn a_path_that_is_not_an_id_is_a_missing_page() {
        assert!(path_id("01a21547-e4ff-77a8-97b8-a0c97d5ea704").is_ok());
        assert!(matches!(
            path_id("new"),
            Err(WebError::Service(Error::NotFound(_)))
        ));
    }

    #[test]
    fn blank_fields_count_as_absent_and_leave_links_clean() {
        assert_eq!(non_blank(&Some("  ".into())), None);
        assert_eq!(non_blank(&Some(" a ".into())), Some("a"));
        assert_eq!(
            query_string(&[
                ("action", Some("node.drain")),
                ("actor", Some("")),
                ("x", None)
            ]),
            "action=node.drain"
        );
    }
}
