//! One-time join tokens: a platform admin creates one for a site (with labels), an agent
//! presents it once to register its node. Like API tokens, only a SHA-256 hash of the
//! 256-bit secret is stored and the secret is shown once. Revoking expires it at once.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::join_tokens;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{JoinTokenId, NodeId};
use crate::pagination::{Page, PageRequest};
pub(crate) use crate::secrets::{hash_secret, new_secret};
use crate::validate::{Validator, missing};
use crate::values::Slug;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Prefix of join token secrets.
pub const JOIN_PREFIX: &str = "aionjoin_";
/// Lifetime of a join token created without `expires_in_s`.
pub const DEFAULT_LIFETIME_S: i64 = 3600;
/// Longest lifetime of a join token (7 days).
pub const MAX_LIFETIME_S: i64 = 7 * 24 * 3600;
/// Most labels a join token (and so a node) may carry.
pub const MAX_LABELS: usize = 32;

/// Node labels: key → value, validated.
pub type Labels = BTreeMap<String, String>;

/// A join token as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinToken {
    /// Id.
    pub id: JoinTokenId,
    /// Site of the node that registers with it.
    pub site: String,
    /// Labels of that node.
    pub labels: Labels,
    /// Actor that created it.
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Expires at (set to the revocation time when revoked).
    pub expires_at: DateTime<Utc>,
    /// When a node registered with it.
    pub used_at: Option<DateTime<Utc>>,
    /// The node that registered with it.
    pub node_id: Option<NodeId>,
}

/// A freshly created join token; `secret` only in the first answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedJoinToken {
    /// The token.
    pub token: JoinToken,
    /// The secret, shown once.
    pub secret: Option<String>,
}

/// A validated request to create a join token.
#[derive(Clone, Debug, Serialize)]
pub struct NewJoinToken {
    site: Slug,
    labels: Labels,
    expires_in_s: i64,
}

impl NewJoinToken {
    /// Validates raw input.
    pub fn parse(site: &str, labels: Labels, expires_in_s: Option<i64>) -> Result<Self> {
        let mut v = Validator::default();
        let site = v.check(Slug::parse("site", site));
        let labels = v.check(parse_labels(labels));
        let expires_in_s = expires_in_s.unwrap_or(DEFAULT_LIFETIME_S);
        if !(1..=MAX_LIFETIME_S).contains(&expires_in_s) {
            v.check::<()>(Err(Error::invalid(
                "expires_in_s",
                format!("must be between 1 and {MAX_LIFETIME_S} seconds (7 days)"),
            )));
        }
        v.finish()?;
        Ok(Self {
            site: site.ok_or_else(missing)?,
            labels: labels.ok_or_else(missing)?,
            expires_in_s,
        })
    }
}

fn parse_labels(labels: Labels) -> Result<Labels> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (k, val) in &labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if !key_ok {
            return Err(Error::invalid(
                &format!("labels.{k}"),
                "keys are 1 to 63 characters of a-z, A-Z, 0-9, '-', '_', '.', '/'",
            ));
        }
        crate::values::check_text(&format!("labels.{k}"), val, 253)?;
    }
    Ok(labels)
}

/// Reads stored labels (written by this module, so unreadable ones are a bug).
pub(crate) fn stored_labels(raw: &str) -> Result<Labels> {
    serde_json::from_str(raw).map_err(|e| Error::Internal(format!("stored labels: {e}")))
}

fn from_model(m: join_tokens::Model) -> Result<JoinToken> {
    Ok(JoinToken {
        id: m.id.into(),
        site: m.site,
        labels: stored_labels(&m.labels)?,
        created_by: m.created_by,
        created_at: m.created_at,
        expires_at: m.expires_at,
        used_at: m.used_at,
        node_id: m.node_id.map(Into::into),
    })
}

fn require_admin(caller: &Caller) -> Result<()> {
    if caller.is_platform_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only platform admins manage join tokens".into(),
        ))
    }
}

/// Creates a join token (platform admins).
#[tracing::instrument(skip_all, err)]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cmd: NewJoinToken,
    idem: Option<&IdempotencyKey>,
) -> Result<CreatedJoinToken> {
    require_admin(caller)?;
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let slot = match idempotency::begin(&txn, now, caller, "join_token.create", idem, &cmd).await? {
        idempotency::Begin::Replay(token) => {
            return Ok(CreatedJoinToken {
                token,
                secret: None,
            });
        }
        idempotency::Begin::Proceed(slot) => slot,
    };
    let (secret, hash) = new_secret(JOIN_PREFIX);
    let labels =
        serde_json::to_string(&cmd.labels).map_err(|e| Error::Internal(format!("labels: {e}")))?;
    let model = join_tokens::ActiveModel {
        id: Set(JoinTokenId::new().0),
        token_hash: Set(hash),
        site: Set(cmd.site.as_str().to_owned()),
        labels: Set(labels),
        expires_at: Set(now + Duration::seconds(cmd.expires_in_s)),
        used_at: Set(None),
        node_id: Set(None),
        created_by: Set(caller.actor.key()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let token = from_model(model)?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "join_token.create",
            target_kind: "join_token",
            target_id: token.id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"site": token.site, "labels": token.labels, "expires_at": token.expires_at}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &token).await?;
    txn.commit().await?;
    Ok(CreatedJoinToken {
        token,
        secret: Some(secret),
    })
}

/// Lists join tokens, used and expired ones included (platform admins and auditors).
pub async fn list(svc: &Services, caller: &Caller, page: &PageRequest) -> Result<Page<JoinToken>> {
    if !caller.reads_everything() {
        return Err(Error::Forbidden(
            "only platform admins and auditors read join tokens".into(),
        ));
    }
    let mut query = join_tokens::Entity::find();
    if let Some(after) = page.after_uuid()? {
        query = query.filter(join_tokens::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(join_tokens::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |t: &JoinToken| {
        t.id.to_string()
    }))
}

/// Revokes a join token by expiring it now; revoking an ended token changes nothing.
#[tracing::instrument(skip_all, err, fields(join_token_id = %id))]
pub async fn revoke(svc: &Services, caller: &Caller, id: JoinTokenId) -> Result<JoinToken> {
    require_admin(caller)?;
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let model = join_tokens::Entity::find_by_id(id.0)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("join token"))?;
    if model.used_at.is_some() || model.expires_at <= now {
        return from_model(model);
    }
    let mut active: join_tokens::ActiveModel = model.into();
    active.expires_at = Set(now);
    let model = active.update(&txn).await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "join_token.revoke",
            target_kind: "join_token",
            target_id: id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"site": model.site}),
        },
    )
    .await?;
    txn.commit().await?;
    from_model(model)
}

/// Consumes a presented join token inside the registration transaction: refuses unknown,
/// used, expired and revoked tokens (401), and marks it used by `node` (a concurrent use
/// of the same token loses: the update only matches an unused row).
pub(crate) async fn consume(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    secret: &str,
    node: NodeId,
) -> Result<JoinToken> {
    let refused =
        || Error::Unauthenticated("this join token is unknown, used, expired or revoked".into());
    if !secret.starts_with(JOIN_PREFIX) {
        return Err(Error::Unauthenticated(
            "registration needs a join token (aionjoin_…)".into(),
        ));
    }
    let model = join_tokens::Entity::find()
        .filter(join_tokens::Column::TokenHash.eq(hash_secret(secret)))
        .one(txn)
        .await?
        .ok_or_else(refused)?;
    if model.used_at.is_some() || model.expires_at <= now {
        return Err(refused());
    }
    let res = join_tokens::Entity::update_many()
        .col_expr(
            join_tokens::Column::UsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            join_tokens::Column::NodeId,
            sea_orm::sea_query::Expr::value(node.0),
        )
        .filter(join_tokens::Column::Id.eq(model.id))
        .filter(join_tokens::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(refused());
    }
    let mut token = from_model(model)?;
    token.used_at = Some(now);
    token.node_id = Some(node);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_secrets_are_prefixed_and_carry_256_bits() {
        let (secret, hash) = new_secret(JOIN_PREFIX);
        assert!(secret.starts_with(JOIN_PREFIX));
        assert_eq!(secret.len(), JOIN_PREFIX.len() + 43);
        assert_eq!(hash, hash_secret(&secret));
    }

    #[test]
    fn a_lifetime_above_seven_days_or_a_bad_label_key_is_rejected() {
        assert!(NewJoinToken::parse("paris-1", Labels::new(), Some(MAX_LIFETIME_S + 1)).is_err());
        assert!(NewJoinToken::parse("paris-1", Labels::new(), Some(0)).is_err());
        let bad = Labels::from([("rack id".to_owned(), "a".to_owned())]);
        assert!(NewJoinToken::parse("paris-1", bad, None).is_err());
        assert!(NewJoinToken::parse("paris-1", Labels::new(), None).is_ok());
    }
}
