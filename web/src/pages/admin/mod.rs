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

use crate::error::WebResult;
use crate::session::Session;
use actix_web::web;
use aion_services::Error;
use serde::Deserialize;
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

pub use crate::forms::{FormErrors, invalid as unprocessable};

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
    use crate::error::WebError;

    #[test]
    fn validation_errors_are_shown_per_field_and_conflicts_as_a_whole() {
        let p = FormErrors::from_error(Error::invalid("slug", "taken")).unwrap();
        assert_eq!(p.field("slug"), Some("taken"));
        assert!(p.general.is_none());
        let p = FormErrors::from_error(Error::Conflict("already".into())).unwrap();
        assert_eq!(p.general.as_deref(), Some("already"));
        assert!(FormErrors::from_error(Error::NotFound("x")).is_err());
        assert!(FormErrors::from_error(Error::Forbidden("auditor".into())).is_err());
    }

    #[test]
    fn fields_without_an_input_are_listed_apart() {
        let p = FormErrors::from_error(Error::invalid("entries", "empty")).unwrap();
        assert_eq!(p.others(&["name"]), vec!["entries: empty".to_owned()]);
        assert!(p.others(&["entries"]).is_empty());
        let p = FormErrors::from_error(Error::invalid("price.H100-80GB", "bad")).unwrap();
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
