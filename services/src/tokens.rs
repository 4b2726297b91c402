//! Aion API tokens: high-entropy bearer secrets for partners and automation, scoped to an
//! organisation or a project with one role. Only a SHA-256 hash is stored (the secret has
//! 256 bits of entropy, so a slow hash would add nothing); the secret is shown once.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Actor, Caller, Grant};
use crate::entities::api_tokens;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::identity::TOKEN_PREFIX;
use crate::ids::{OrganizationId, ProjectId, TokenId};
use crate::pagination::{Page, PageRequest};
use crate::scope::Scope;
use crate::token_cache::CachedToken;
use crate::validate::{Validator, missing};
use crate::values::parse_name;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Lifetime of a token created without `expires_at`.
pub const DEFAULT_LIFETIME_DAYS: i64 = 90;
/// Longest lifetime a token may have.
pub const MAX_LIFETIME_DAYS: i64 = 366;

/// A token as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: TokenId,
    /// What it is for.
    pub name: String,
    /// Last four characters of the secret, to recognise it.
    pub hint: String,
    /// Organisation scope (also set for project tokens).
    pub organization_id: Option<OrganizationId>,
    /// Project scope.
    pub project_id: Option<ProjectId>,
    /// Role it acts with.
    pub role: String,
    /// Actor that created it.
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Expires at.
    pub expires_at: DateTime<Utc>,
    /// Revoked at.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly created token. `secret` is present only in the first answer; a replayed
/// idempotent create never returns it again, because it is not stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The bearer secret, shown once.
    pub secret: Option<String>,
}

/// A validated request to create a token.
#[derive(Clone, Debug, Serialize)]
pub struct NewToken {
    name: String,
    role: String,
    expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// Validates raw input (the role is checked against the scope on creation).
    pub fn parse(name: &str, role: &str, expires_at: Option<DateTime<Utc>>) -> Result<Self> {
        let mut v = Validator::default();
        let name = v.check(parse_name("name", name, 200));
        v.finish()?;
        Ok(Self {
            name: name.ok_or_else(missing)?,
            role: role.to_owned(),
            expires_at,
        })
    }
}

fn from_model(m: api_tokens::Model) -> ApiToken {
    ApiToken {
        id: m.id.into(),
        name: m.name,
        hint: m.hint,
        organization_id: m.organization_id.map(Into::into),
        project_id: m.project_id.map(Into::into),
        role: m.role,
        created_by: m.created_by,
        created_at: m.created_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        last_used_at: m.last_used_at,
    }
}

/// A new secret and what is stored of it: (secret, hash, hint).
pub fn generate_secret() -> (String, String, String) {
    let (secret, hash) = crate::secrets::new_secret(TOKEN_PREFIX);
    let hint = secret[secret.len() - 4..].to_owned();
    (secret, hash, hint)
}

use crate::secrets::hash_secret;

/// Inserts a token row; shared by the API path and the bootstrap of the first admin token.
pub(crate) async fn insert(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    creator: &Caller,
    name: &str,
    scope: (Option<OrganizationId>, Option<ProjectId>),
    role: &str,
    expires_at: DateTime<Utc>,
) -> Result<CreatedToken> {
    let (secret, hash, hint) = generate_secret();
    let model = api_tokens::ActiveModel {
        id: Set(TokenId::new().0),
        name: Set(name.to_owned()),
        token_hash: Set(hash),
        hint: Set(hint),
        organization_id: Set(scope.0.map(|o| o.0)),
        project_id: Set(scope.1.map(|p| p.0)),
        role: Set(role.to_owned()),
        created_by: Set(creator.actor.key()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(CreatedToken {
        token: from_model(model),
        secret: Some(secret),
    })
}

/// Creates a token in a scope the caller manages.
#[tracing::instrument(skip_all, err)]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    cmd: NewToken,
    idem: Option<&IdempotencyKey>,
) -> Result<CreatedToken> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let resolved = scope.resolve(&txn, caller).await?;
    caller.require(true, resolved.manageable, "scope")?;
    let role = scope.parse_role(&resolved, caller, &cmd.role)?;
    let expires_at = cmd
        .expires_at
        .unwrap_or(now + Duration::days(DEFAULT_LIFETIME_DAYS));
    if expires_at <= now || expires_at > now + Duration::days(MAX_LIFETIME_DAYS) {
        return Err(Error::invalid(
            "expires_at",
            format!("must be in the future and at most {MAX_LIFETIME_DAYS} days away"),
        ));
    }
    let op = format!("token.create:{}", scope.key());
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(token) => {
            return Ok(CreatedToken {
                token,
                secret: None,
            });
        }
        idempotency::Begin::Proceed(slot) => slot,
    };
    let created = insert(
        &txn,
        now,
        caller,
        &cmd.name,
        (Some(resolved.organization_id), resolved.project_id),
        role.as_str(),
        expires_at,
    )
    .await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "token.create",
            target_kind: "api_token",
            target_id: created.token.id.to_string(),
            organization_id: Some(resolved.organization_id),
            project_id: resolved.project_id,
            details: json!({"name": cmd.name, "role": role.as_str(), "expires_at": expires_at}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &created.token).await?;
    txn.commit().await?;
    Ok(created)
}

fn scope_filter(scope: Scope) -> sea_orm::Condition {
    match scope {
        Scope::Organization(org) => sea_orm::Condition::all()
            .add(api_tokens::Column::OrganizationId.eq(org.0))
            .add(api_tokens::Column::ProjectId.is_null()),
        Scope::Project(project) => {
            sea_orm::Condition::all().add(api_tokens::Column::ProjectId.eq(project.0))
        }
    }
}

/// Lists a scope's tokens (managers only), revoked ones included.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    page: &PageRequest,
) -> Result<Page<ApiToken>> {
    let resolved = scope.resolve(&svc.db, caller).await?;
    caller.require(true, resolved.manageable, "scope")?;
    let mut query = api_tokens::Entity::find().filter(scope_filter(scope));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(api_tokens::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(api_tokens::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    Ok(Page::from_rows(
        rows.into_iter().map(from_model).collect(),
        page,
        |t: &ApiToken| t.id.to_string(),
    ))
}

/// Revokes a token of the scope; revoking twice is harmless.
#[tracing::instrument(skip_all, err, fields(token_id = %id))]
pub async fn revoke(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    id: TokenId,
) -> Result<ApiToken> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let resolved = scope.resolve(&txn, caller).await?;
    let model = api_tokens::Entity::find_by_id(id.0)
        .filter(scope_filter(scope))
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("token"))?;
    caller.require(true, resolved.manageable, "token")?;
    if model.revoked_at.is_some() {
        return Ok(from_model(model));
    }
    let hash = model.token_hash.clone();
    let mut active: api_tokens::ActiveModel = model.into();
    active.revoked_at = Set(Some(now));
    let model = active.update(&txn).await?;
    // Other replicas forget their cached lookup when this commits.
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                crate::token_cache::NOTIFY_CHANNEL.into(),
                hash.clone().into(),
            ],
        ))
        .await?;
    }
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "token.revoke",
            target_kind: "api_token",
            target_id: id.to_string(),
            organization_id: Some(resolved.organization_id),
            project_id: resolved.project_id,
            details: json!({"name": model.name}),
        },
    )
    .await?;
    txn.commit().await?;
    svc.tokens.forget(&hash);
    Ok(from_model(model))
}

/// Reads one token by id (no access check: for describing the calling token itself).
pub async fn get_by_id(db: &impl ConnectionTrait, id: TokenId) -> Result<ApiToken> {
    api_tokens::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .map(from_model)
        .ok_or(Error::NotFound("token"))
}

/// Turns a presented secret into a caller, refusing unknown, revoked and expired tokens.
pub async fn authenticate(svc: &Services, secret: &str, request_id: &str) -> Result<Caller> {
    let now = svc.clock.now();
    let hash = hash_secret(secret);
    let token = match svc.tokens.get(&hash, now) {
        Some(hit) => hit,
        None => {
            let model = api_tokens::Entity::find()
                .filter(api_tokens::Column::TokenHash.eq(hash.clone()))
                .one(&svc.db)
                .await?
                .ok_or_else(|| Error::Unauthenticated("unknown API token".into()))?;
            if model.revoked_at.is_some() {
                return Err(Error::Unauthenticated("this API token was revoked".into()));
            }
            let entry = CachedToken::new(
                model.id,
                token_grant(&model)?,
                model.expires_at,
                model.last_used_at,
                now,
            );
            svc.tokens.put(&hash, entry.clone());
            entry
        }
    };
    if token.expires_at <= now {
        return Err(Error::Unauthenticated("this API token has expired".into()));
    }
    if token
        .last_used_at
        .is_none_or(|t| t < now - Duration::minutes(1))
    {
        api_tokens::Entity::update_many()
            .col_expr(
                api_tokens::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(api_tokens::Column::Id.eq(token.id))
            .exec(&svc.db)
            .await?;
        svc.tokens.touched(&hash, now);
    }
    Ok(Caller {
        actor: Actor::Token(token.id.into()),
        grants: vec![token.grant],
        request_id: request_id.to_owned(),
    })
}

fn token_grant(m: &api_tokens::Model) -> Result<Grant> {
    crate::identity::grant_from_parts(m.organization_id, m.project_id, &m.role)
        .ok_or_else(|| Error::Internal(format!("token {} has an inconsistent scope or role", m.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_high_entropy_and_stored_only_as_a_hash() {
        let (secret, hash, hint) = generate_secret();
        assert!(secret.starts_with("aion_"));
        assert_eq!(secret.len(), 5 + 43);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&secret[5..]));
        assert!(secret.ends_with(&hint));
        assert_ne!(generate_secret().0, secret);
    }
}
