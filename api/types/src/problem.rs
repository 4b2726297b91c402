//! RFC 9457 problem details, the body of every error answer.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An error answer (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// URI naming the kind of error; stable per `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind of error.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// Id of the request, also in the server's logs and the `x-request-id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field name → what is wrong with it (validation errors only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
}
