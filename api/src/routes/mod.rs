//! Handlers of `/v1`, one module per resource. Each parses input into domain commands,
//! calls one `services` function and maps the result to wire types; nothing else.

pub mod agent;
pub mod allocation_requests;
pub mod audit;
pub mod calls;
pub mod dev_clock;
pub mod grants;
pub mod health;
pub mod invoices;
pub mod leases;
pub mod me;
pub mod members;
pub mod nodes;
pub mod organizations;
pub mod price_lists;
pub mod projects;
pub mod quotas;
pub mod tokens;
pub mod usage;

use aion_services::pagination::PageRequest;
use serde::Deserialize;
use utoipa::IntoParams;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Validates into a page request.
    pub fn page(&self) -> Result<PageRequest, aion_services::Error> {
        PageRequest::parse(self.limit, self.cursor.as_deref())
    }
}
