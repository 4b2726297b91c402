//! First start: on an empty database, create one platform-admin API token so an operator
//! can reach the API at all. Later starts create nothing.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Caller, PlatformRole};
use crate::entities::{api_tokens, organizations};
use crate::error::Result;
use chrono::Duration;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

/// Lifetime of the bootstrap token: long enough to set up SSO and real tokens.
pub const BOOTSTRAP_TOKEN_DAYS: i64 = 365;

/// Creates the bootstrap platform-admin token if the database holds no organisation and
/// no token yet; returns its secret, or `None` if the database was not empty.
pub async fn admin_token_if_empty(svc: &Services) -> Result<Option<String>> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let caller = Caller::system("bootstrap");
    // Take the audit chain's head lock first: two replicas starting together on an empty
    // database then check one after the other, and only the first creates a token.
    crate::audit_chain::lock_head(&txn).await?;
    let tokens = api_tokens::Entity::find().count(&txn).await?;
    let orgs = organizations::Entity::find().count(&txn).await?;
    if tokens > 0 || orgs > 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let role = PlatformRole::PlatformAdmin.as_str();
    let created = crate::tokens::insert(
        &txn,
        now,
        &caller,
        "bootstrap platform admin",
        (None, None),
        role,
        now + Duration::days(BOOTSTRAP_TOKEN_DAYS),
    )
    .await?;
    audit::append(
        &txn,
        now,
        &caller,
        Record {
            action: "token.create",
            target_kind: "api_token",
            target_id: created.token.id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"name": created.token.name, "role": role}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(created.secret)
}
