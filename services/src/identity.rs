//! Users and authentication: who a bearer credential belongs to and which roles it holds.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::{Actor, Caller, Grant, OrgRole, PlatformRole, ProjectRole};
use crate::entities::{memberships, users};
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId, UserId};
use crate::oidc::VerifiedClaims;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Prefix of every Aion API token, so leaked tokens are recognisable by scanners.
pub const TOKEN_PREFIX: &str = "aion_";

/// A person known to Aion, identified by (OIDC issuer, subject).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// OIDC issuer.
    pub issuer: String,
    /// Subject at that issuer.
    pub subject: String,
    /// E-mail, from the identity provider.
    pub email: Option<String>,
    /// Display name, from the identity provider.
    pub display_name: Option<String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
}

pub(crate) fn user_from_model(m: users::Model) -> User {
    User {
        id: m.id.into(),
        issuer: m.issuer,
        subject: m.subject,
        email: m.email,
        display_name: m.display_name,
        created_at: m.created_at,
    }
}

/// Authenticates a bearer credential: an Aion API token or an OIDC access token.
#[tracing::instrument(skip_all, err(level = "debug"))]
pub async fn authenticate(svc: &Services, bearer: &str, request_id: &str) -> Result<Caller> {
    if bearer.starts_with(TOKEN_PREFIX) {
        return crate::tokens::authenticate(svc, bearer, request_id).await;
    }
    let claims = svc.oidc.verify(bearer).await?;
    let user = upsert_oidc_user(svc, &claims, request_id).await?;
    let grants = load_grants(&svc.db, user).await?;
    Ok(Caller {
        actor: Actor::User(user),
        grants,
        request_id: request_id.to_owned(),
    })
}

/// Finds or creates the user of a verified token, refreshing its profile.
pub async fn upsert_oidc_user(
    svc: &Services,
    claims: &VerifiedClaims,
    request_id: &str,
) -> Result<UserId> {
    let now = svc.clock.now();
    let found = users::Entity::find()
        .filter(users::Column::Issuer.eq(&claims.issuer))
        .filter(users::Column::Subject.eq(&claims.subject))
        .one(&svc.db)
        .await?;
    if let Some(user) = found {
        // Refresh at most every five minutes: authentication should not write per request.
        let stale = user
            .last_seen_at
            .is_none_or(|t| t < now - Duration::minutes(5));
        if stale || user.email != claims.email || user.display_name != claims.name {
            let mut active: users::ActiveModel = user.clone().into();
            active.last_seen_at = Set(Some(now));
            active.email = Set(claims.email.clone().or(user.email.clone()));
            active.display_name = Set(claims.name.clone().or(user.display_name.clone()));
            active.update(&svc.db).await?;
        }
        return Ok(user.id.into());
    }
    match create_user(svc, claims, now, request_id).await {
        // Two first requests of the same user raced (the unique index on issuer and
        // subject refused the second insert): use the user the other one created.
        Err(Error::Conflict(_)) => users::Entity::find()
            .filter(users::Column::Issuer.eq(&claims.issuer))
            .filter(users::Column::Subject.eq(&claims.subject))
            .one(&svc.db)
            .await?
            .map(|u| u.id.into())
            .ok_or_else(|| Error::Internal("user vanished after a concurrent insert".into())),
        other => other,
    }
}

/// Inserts the user of a first valid token, audited, in its own transaction.
async fn create_user(
    svc: &Services,
    claims: &VerifiedClaims,
    now: DateTime<Utc>,
    request_id: &str,
) -> Result<UserId> {
    let txn = svc.write_txn().await?;
    let id = UserId::new();
    users::ActiveModel {
        id: Set(id.0),
        issuer: Set(claims.issuer.clone()),
        subject: Set(claims.subject.clone()),
        email: Set(claims.email.clone()),
        display_name: Set(claims.name.clone()),
        created_at: Set(now),
        last_seen_at: Set(Some(now)),
    }
    .insert(&txn)
    .await?;
    let caller = Caller {
        actor: Actor::User(id),
        grants: vec![],
        request_id: request_id.to_owned(),
    };
    audit::append(
        &txn,
        now,
        &caller,
        Record {
            action: "user.create",
            target_kind: "user",
            target_id: id.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"issuer": claims.issuer, "subject": claims.subject}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Loads the roles of a user from its memberships.
pub async fn load_grants(db: &impl ConnectionTrait, user: UserId) -> Result<Vec<Grant>> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.0))
        .all(db)
        .await?;
    rows.iter().map(grant_of).collect()
}

fn grant_of(m: &memberships::Model) -> Result<Grant> {
    grant_from_parts(m.organization_id, m.project_id, &m.role)
        .ok_or_else(|| Error::Internal(format!("membership {} is inconsistent", m.id)))
}

/// The role stored with a scope (organisation and project columns, both null for the
/// platform), as memberships and tokens store it; `None` if they do not fit together.
pub(crate) fn grant_from_parts(
    org: Option<uuid::Uuid>,
    project: Option<uuid::Uuid>,
    role: &str,
) -> Option<Grant> {
    match (org, project) {
        (None, None) => PlatformRole::parse("role", role).ok().map(Grant::Platform),
        (Some(org), None) => OrgRole::parse("role", role)
            .ok()
            .map(|r| Grant::Organization(OrganizationId(org), r)),
        (Some(org), Some(project)) => ProjectRole::parse("role", role)
            .ok()
            .map(|r| Grant::Project(OrganizationId(org), ProjectId(project), r)),
        (None, Some(_)) => None,
    }
}

/// The caller as `/v1/me` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Me {
    /// The user, when a person is calling.
    pub user: Option<User>,
    /// The token, when an API token is calling.
    pub token: Option<crate::tokens::ApiToken>,
    /// Roles held.
    pub grants: Vec<Grant>,
}

/// Describes the caller.
pub async fn me(svc: &Services, caller: &Caller) -> Result<Me> {
    let (user, token) = match &caller.actor {
        Actor::User(id) => {
            let m = users::Entity::find_by_id(id.0)
                .one(&svc.db)
                .await?
                .ok_or(Error::NotFound("user"))?;
            (Some(user_from_model(m)), None)
        }
        Actor::Token(id) => (None, Some(crate::tokens::get_by_id(&svc.db, *id).await?)),
        Actor::System => (None, None),
    };
    Ok(Me {
        user,
        token,
        grants: caller.grants.clone(),
    })
}

/// Gives the user (issuer, subject) a platform role, creating the user if it never signed
/// in. For the operators' CLI (`aion admin platform-role`); there is no API for it on purpose.
pub async fn grant_platform_role(
    svc: &Services,
    caller: &Caller,
    issuer: &str,
    subject: &str,
    role: PlatformRole,
) -> Result<UserId> {
    let who = crate::members::MemberRef::parse(None, Some(issuer), Some(subject), None)?;
    give_platform_role(svc, caller, who, role).await
}

/// [`grant_platform_role`] for an identity already checked (the demo users of `aion dev`
/// have a `urn:` issuer, which the operators' CLI refuses).
pub(crate) async fn give_platform_role(
    svc: &Services,
    caller: &Caller,
    who: crate::members::MemberRef,
    role: PlatformRole,
) -> Result<UserId> {
    if !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins grant platform roles".into(),
        ));
    }
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let user: UserId = crate::members::find_or_provision(&txn, now, &who)
        .await?
        .id
        .into();
    memberships::Entity::delete_many()
        .filter(memberships::Column::UserId.eq(user.0))
        .filter(memberships::Column::ScopeKey.eq("platform"))
        .exec(&txn)
        .await?;
    memberships::ActiveModel {
        id: Set(crate::ids::MembershipId::new().0),
        user_id: Set(user.0),
        scope_key: Set("platform".into()),
        organization_id: Set(None),
        project_id: Set(None),
        role: Set(role.as_str().into()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "platform_role.grant",
            target_kind: "user",
            target_id: user.to_string(),
            organization_id: None,
            project_id: None,
            details: json!({"role": role.as_str()}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}
