//! What every form of the console and the panels shares: the domain's refusals turned
//! into messages shown next to the form (status 422, the typed values kept), idempotency
//! keys minted when a form is rendered, checkbox and optional-field reading, and
//! redirects with a notice. Refusals that are not about the input (not found, forbidden,
//! internal) stay errors and render as an error page: there is nothing to correct.

use crate::chrome::html;
use crate::error::{WebError, WebResult};
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use aion_services::Error;
use aion_services::idempotency::IdempotencyKey;
use std::collections::BTreeMap;

/// The form of a button that carries nothing but its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct Empty {}

/// Messages to show with a form: one for the whole form, and one per field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FormErrors {
    /// A refusal of the whole request (quota, budget, conflict…).
    pub general: Option<String>,
    /// Field name (as the form names it) → message.
    pub fields: BTreeMap<String, String>,
}

impl FormErrors {
    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.general.is_none() && self.fields.is_empty()
    }

    /// The message of form field `name`, if any.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Adds a message to field `name`.
    pub fn add(&mut self, name: &str, message: impl Into<String>) {
        self.fields.insert(name.to_owned(), message.into());
    }

    /// Turns a domain refusal into messages, each field under the domain's name.
    pub fn from_error(e: Error) -> Result<Self, WebError> {
        Self::convert(e, |name| Some(name.to_owned()))
    }

    /// Turns a domain refusal into messages. `fields` maps the domain's field names to
    /// the form's (`duration_s` → `duration_h`); a field the form does not show goes to
    /// the general message.
    pub fn from_service(e: Error, fields: &[(&str, &str)]) -> Result<Self, WebError> {
        Self::convert(e, |name| {
            fields
                .iter()
                .find(|(domain, _)| *domain == name)
                .map(|(_, form)| (*form).to_owned())
        })
    }

    fn convert(e: Error, field: impl Fn(&str) -> Option<String>) -> Result<Self, WebError> {
        let mut out = Self::default();
        match e {
            Error::Validation(found) => {
                let mut rest = Vec::new();
                for (name, message) in found {
                    match field(&name) {
                        Some(form) => out.add(&form, message),
                        None => rest.push(format!("{name}: {message}")),
                    }
                }
                if !rest.is_empty() {
                    out.general = Some(rest.join("; "));
                }
            }
            Error::QuotaExceeded(m)
            | Error::BudgetExhausted(m)
            | Error::Conflict(m)
            | Error::NotPriced(m) => out.general = Some(m),
            e @ (Error::IdempotencyMismatch | Error::PreconditionFailed) => {
                out.general = Some(e.to_string());
            }
            other => return Err(other.into()),
        }
        Ok(out)
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
}

/// A fresh idempotency key for a form being rendered: a double submit of that form
/// carries the same key and makes one object.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Parses the idempotency key a form carried (absent or empty: none).
pub fn idempotency_key(raw: Option<&str>) -> WebResult<Option<IdempotencyKey>> {
    match raw.map(str::trim).filter(|k| !k.is_empty()) {
        None => Ok(None),
        Some(k) => Ok(Some(IdempotencyKey::parse(k)?)),
    }
}

/// An optional text field: trimmed, `None` when empty.
pub fn optional(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|v| !v.is_empty())
}

/// A checkbox: browsers send it only when it is ticked.
pub fn checked(raw: Option<&str>) -> bool {
    raw.is_some_and(|v| !v.is_empty())
}

/// `path` with `notice=key` added to its query.
pub fn with_notice(path: &str, key: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}notice={key}")
}

/// `path` with a query of the pairs whose value is set (for filter and next-page links).
pub fn link(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let set: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(set) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// A form page re-rendered with its messages: 422, so tools and tests see the refusal.
pub fn invalid(body: Result<String, askama::Error>) -> WebResult<HttpResponse> {
    let mut response = html(body)?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_land_on_the_forms_fields_or_in_the_general_message() {
        let mut found = aion_services::error::FieldErrors::new();
        found.insert("duration_s".into(), "too long".into());
        found.insert("gpu_model".into(), "unknown".into());
        let errors =
            FormErrors::from_service(Error::Validation(found), &[("duration_s", "duration_h")])
                .unwrap();
        assert_eq!(errors.field("duration_h"), Some("too long"));
        assert_eq!(errors.general.as_deref(), Some("gpu_model: unknown"));
    }

    #[test]
    fn quota_and_budget_refusals_are_shown_with_the_form() {
        let errors =
            FormErrors::from_service(Error::QuotaExceeded("over quota".into()), &[]).unwrap();
        assert_eq!(errors.general.as_deref(), Some("over quota"));
        let errors =
            FormErrors::from_service(Error::BudgetExhausted("no hours".into()), &[]).unwrap();
        assert_eq!(errors.general.as_deref(), Some("no hours"));
    }

    #[test]
    fn errors_not_about_the_input_stay_errors() {
        assert!(FormErrors::from_service(Error::NotFound("project"), &[]).is_err());
        assert!(FormErrors::from_service(Error::Internal("db".into()), &[]).is_err());
    }

    #[test]
    fn notices_are_appended_to_the_query() {
        assert_eq!(with_notice("/a", "k"), "/a?notice=k");
        assert_eq!(
            with_notice("/a?state=active", "k"),
            "/a?state=active&notice=k"
        );
    }

    #[test]
    fn links_carry_only_the_set_parameters() {
        assert_eq!(link("/p", &[("state", None), ("cursor", Some(""))]), "/p");
        assert_eq!(
            link("/p", &[("state", Some("active")), ("cursor", Some("a+b"))]),
            "/p?state=active&cursor=a%2Bb"
        );
    }

    #[test]
    fn empty_optional_fields_and_unticked_boxes_read_as_absent() {
        assert_eq!(optional(Some("  ")), None);
        assert_eq!(optional(Some(" paris ")), Some("paris"));
        assert!(checked(Some("on")));
        assert!(!checked(None));
    }

    #[test]
    fn idempotency_keys_are_optional_but_checked() {
        assert!(idempotency_key(None).unwrap().is_none());
        assert!(idempotency_key(Some("")).unwrap().is_none());
        assert!(
            idempotency_key(Some(&new_idempotency_key()))
                .unwrap()
                .is_some()
        );
        assert!(idempotency_key(Some("a b")).is_err());
    }
}
