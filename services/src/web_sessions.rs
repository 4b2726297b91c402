//! Sessions of the web console. The browser's cookie holds a random secret; the table
//! holds only its SHA-256, the user, and the CSRF token every form must echo. Sessions
//! expire after a period of idleness (pushed forward while used) and at a hard limit.
//! Logins in flight keep their OpenID `state`, `nonce` and PKCE verifier here, never in
//! the browser, and each can be finished once.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Actor, Caller};
use crate::entities::{web_logins, web_sessions};
use crate::error::{Error, Result};
use crate::identity;
use crate::ids::UserId;
use crate::secrets::{hash_secret, new_secret};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

/// Prefix of session secrets (recognisable if one leaks into a log).
const SESSION_PREFIX: &str = "aions_";
/// How long a login may stay at the identity provider.
pub const LOGIN_TTL_S: i64 = 600;
/// Longest accepted return path.
const MAX_RETURN_TO: usize = 2000;

/// How long sessions live.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// Ends a session unused for this long.
    pub idle: Duration,
    /// Ends every session this long after sign-in.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::hours(8),
            absolute: Duration::hours(24),
        }
    }
}

/// An OpenID login between the redirect to the provider and its callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingLogin {
    /// Configured provider name.
    pub provider: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// Local path to return to.
    pub return_to: String,
}

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    /// Row id.
    pub id: uuid::Uuid,
    /// Who signed in.
    pub user: UserId,
    /// Provider name (`dev` for the development sign-in).
    pub provider: String,
    /// The token forms must carry.
    pub csrf_token: String,
    /// The login's ID token (for `id_token_hint` at logout).
    pub id_token: Option<String>,
    /// Current idle expiry.
    pub expires_at: DateTime<Utc>,
}

/// A new session: the cookie secret (shown once) and the session itself.
pub struct OpenedSession {
    /// The value of the session cookie.
    pub secret: String,
    /// The session.
    pub session: WebSession,
}

/// A local path that is safe to redirect to after login: absolute, on this site (no
/// scheme, no `//host`, no backslash), printable. Anything else becomes `/console`.
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= MAX_RETURN_TO
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// Records a login the browser is being sent to the provider for, keyed by its `state`.
#[tracing::instrument(skip_all, err, fields(provider = %login.provider))]
pub async fn begin_login(svc: &Services, state: &str, login: PendingLogin) -> Result<()> {
    let now = svc.clock.now();
    // Logins abandoned at the provider are forgotten here, on the next login.
    web_logins::Entity::delete_many()
        .filter(web_logins::Column::ExpiresAt.lt(now))
        .exec(&svc.db)
        .await?;
    web_logins::ActiveModel {
        state_hash: Set(hash_secret(state)),
        provider: Set(login.provider),
        nonce: Set(login.nonce),
        pkce_verifier: Set(login.pkce_verifier),
        return_to: Set(safe_return_to(Some(&login.return_to))),
        created_at: Set(now),
        expires_at: Set(now + Duration::seconds(LOGIN_TTL_S)),
    }
    .insert(&svc.db)
    .await?;
    Ok(())
}

/// Takes the login of a callback's `state`: each can be finished once, before it expires.
#[tracing::instrument(skip_all, err)]
pub async fn finish_login(svc: &Services, state: &str) -> Result<PendingLogin> {
    let hash = hash_secret(state);
    let txn = svc.write_txn().await?;
    let found = web_logins::Entity::find_by_id(hash.clone())
        .one(&txn)
        .await?;
    web_logins::Entity::delete_by_id(hash).exec(&txn).await?;
    txn.commit().await?;
    let unknown = || {
        Error::Unauthenticated(
            "this sign-in link is unknown, already used or expired: please sign in again".into(),
        )
    };
    let row = found.ok_or_else(unknown)?;
    if row.expires_at < svc.clock.now() {
        return Err(unknown());
    }
    Ok(PendingLogin {
        provider: row.provider,
        nonce: row.nonce,
        pkce_verifier: row.pkce_verifier,
        return_to: row.return_to,
    })
}

/// Opens a session for a user who just signed in, audited.
#[tracing::instrument(skip_all, err, fields(user = %user, provider))]
pub async fn open(
    svc: &Services,
    policy: SessionPolicy,
    user: UserId,
    provider: &str,
    id_token: Option<String>,
    request_id: &str,
) -> Result<OpenedSession> {
    let now = svc.clock.now();
    let (secret, hash) = new_secret(SESSION_PREFIX);
    let (csrf, _) = new_secret("");
    let id = uuid::Uuid::now_v7();
    let expires_at = (now + policy.idle).min(now + policy.absolute);
    let txn = svc.write_txn().await?;
    web_sessions::Entity::delete_many()
        .filter(web_sessions::Column::ExpiresAt.lt(now))
        .exec(&txn)
        .await?;
    web_sessions::ActiveModel {
        id: Set(id),
        token_hash: Set(hash),
        user_id: Set(user.0),
        provider: Set(provider.to_owned()),
        csrf_token: Set(csrf.clone()),
        id_token: Set(id_token.clone()),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
        absolute_expires_at: Set(now + policy.absolute),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        &user_caller(user, request_id),
        Record {
            action: "session.open",
            target_kind: "user",
            target_id: user.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"provider": provider}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(OpenedSession {
        secret,
        session: WebSession {
            id,
            user,
            provider: provider.to_owned(),
            csrf_token: csrf,
            id_token,
            expires_at,
        },
    })
}

/// The live session of a cookie secret, if any; pushes its idle expiry forward (at most
/// once a minute, so reading pages does not write on every request).
#[tracing::instrument(skip_all, err(level = "debug"))]
pub async fn resolve(
    svc: &Services,
    policy: SessionPolicy,
    secret: &str,
) -> Result<Option<WebSession>> {
    if !secret.starts_with(SESSION_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    let now = svc.clock.now();
    let Some(row) = web_sessions::Entity::find()
        .filter(web_sessions::Column::TokenHash.eq(hash_secret(secret)))
        .one(&svc.db)
        .await?
    else {
        return Ok(None);
    };
    if row.expires_at <= now || row.absolute_expires_at <= now {
        return Ok(None);
    }
    let mut expires_at = row.expires_at;
    if now - row.last_seen_at >= Duration::minutes(1) {
        expires_at = (now + policy.idle).min(row.absolute_expires_at);
        let mut active: web_sessions::ActiveModel = row.clone().into();
        active.last_seen_at = Set(now);
        active.expires_at = Set(expires_at);
        active.update(&svc.db).await?;
    }
    Ok(Some(WebSession {
        id: row.id,
        user: row.user_id.into(),
        provider: row.provider,
        csrf_token: row.csrf_token,
        id_token: row.id_token,
        expires_at,
    }))
}

/// Ends a session (sign-out), audited. Ending an unknown or ended session is not an error.
#[tracing::instrument(skip_all, err)]
pub async fn close(svc: &Services, session: &WebSession, request_id: &str) -> Result<()> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let deleted = web_sessions::Entity::delete_by_id(session.id)
        .exec(&txn)
        .await?;
    if deleted.rows_affected > 0 {
        audit::append(
            &txn,
            now,
            &user_caller(session.user, request_id),
            Record {
                action: "session.close",
                target_kind: "user",
                target_id: session.user.to_string(),
                organization_id: None,
                project_id: None,
                details: json!({"provider": session.provider}),
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The caller of a session's requests, with the user's current roles (read on every
/// request, so a role removed in the API counts at once in the console).
pub async fn caller(svc: &Services, session: &WebSession, request_id: &str) -> Result<Caller> {
    Ok(Caller {
        actor: Actor::User(session.user),
        grants: identity::load_grants(&svc.db, session.user).await?,
        request_id: request_id.to_owned(),
    })
}

fn user_caller(user: UserId, request_id: &str) -> Caller {
    Caller {
        actor: Actor::User(user),
        grants: Vec::new(),
        request_id: request_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(
            safe_return_to(Some("/console/projects/x")),
            "/console/projects/x"
        );
        assert_eq!(safe_return_to(Some("/admin?x=1")), "/admin?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "console",
            "/a b",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/console");
    }
}
