//! Memberships: which users hold which role in an organisation or a project.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{memberships, users};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::identity::{User, user_from_model};
use crate::ids::{MembershipId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::scope::{Resolved, Scope};
use crate::values::check_text;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A user's role in a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user: User,
    /// The role.
    pub role: String,
    /// Member since.
    pub since: DateTime<Utc>,
}

/// Who to add: a known user, or an identity that may not have signed in yet.
#[derive(Clone, Debug, Serialize)]
pub enum MemberRef {
    /// An existing user.
    User(UserId),
    /// An (issuer, subject) pair; the user is pre-provisioned if unknown.
    Identity {
        /// OIDC issuer URL.
        issuer: String,
        /// Subject at that issuer.
        subject: String,
        /// E-mail to show until the user signs in.
        email: Option<String>,
    },
}

impl MemberRef {
    /// Validates raw input: exactly one of `user_id` or `issuer` + `subject`.
    pub fn parse(
        user_id: Option<uuid::Uuid>,
        issuer: Option<&str>,
        subject: Option<&str>,
        email: Option<&str>,
    ) -> Result<Self> {
        match (user_id, issuer, subject) {
            (Some(id), None, None) => Ok(MemberRef::User(id.into())),
            (None, Some(issuer), Some(subject)) => {
                check_text("issuer", issuer, 500)?;
                check_text("subject", subject, 255)?;
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(Error::invalid("issuer", "must be an http(s) URL"));
                }
                if subject.is_empty() {
                    return Err(Error::invalid("subject", "must not be empty"));
                }
                if let Some(e) = email {
                    check_text("email", e, 320)?;
                }
                Ok(MemberRef::Identity {
                    issuer: issuer.into(),
                    subject: subject.into(),
                    email: email.map(Into::into),
                })
            }
            _ => Err(Error::invalid(
                "user_id",
                "give either user_id, or issuer and subject",
            )),
        }
    }
}

fn scope_columns(resolved: &Resolved) -> (Option<uuid::Uuid>, Option<uuid::Uuid>) {
    (
        Some(resolved.organization_id.0),
        resolved.project_id.map(|p| p.0),
    )
}

pub(crate) async fn find_or_provision(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    who: &MemberRef,
) -> Result<users::Model> {
    match who {
        MemberRef::User(id) => users::Entity::find_by_id(id.0)
            .one(txn)
            .await?
            .ok_or(Error::NotFound("user")),
        MemberRef::Identity {
            issuer,
            subject,
            email,
        } => {
            let found = users::Entity::find()
                .filter(users::Column::Issuer.eq(issuer))
                .filter(users::Column::Subject.eq(subject))
                .one(txn)
                .await?;
            match found {
                Some(user) => Ok(user),
                None => Ok(users::ActiveModel {
                    id: Set(UserId::new().0),
                    issuer: Set(issuer.clone()),
                    subject: Set(subject.clone()),
                    email: Set(email.clone()),
                    display_name: Set(None),
                    created_at: Set(now),
                    last_seen_at: Set(None),
                }
                .insert(txn)
                .await?),
            }
        }
    }
}

/// Adding by `user_id` reveals the user's profile, so it is limited to users already in
/// the organisation (e.g. an organisation member joining one of its projects); other
/// people are added by their identity. Platform admins may add anyone.
async fn ensure_known_in_org(
    txn: &impl ConnectionTrait,
    caller: &Caller,
    user: UserId,
    org: crate::ids::OrganizationId,
) -> Result<()> {
    if caller.is_platform_admin() {
        return Ok(());
    }
    let known = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.0))
        .filter(memberships::Column::OrganizationId.eq(org.0))
        .one(txn)
        .await?;
    known.map(|_| ()).ok_or(Error::NotFound("user"))
}

/// Adds a member (409 if the user already has a role here).
#[tracing::instrument(skip_all, err)]
pub async fn add(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    who: MemberRef,
    role: &str,
    idem: Option<&IdempotencyKey>,
) -> Result<Member> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let resolved = scope.resolve(&txn, caller).await?;
    caller.require(true, resolved.manageable, "scope")?;
    let role = scope.parse_role(&resolved, caller, role)?;
    let op = format!("member.add:{}", scope.key());
    let slot =
        match idempotency::begin(&txn, now, caller, &op, idem, &(&who, role.as_str())).await? {
            idempotency::Begin::Replay(member) => return Ok(member),
            idempotency::Begin::Proceed(slot) => slot,
        };
    if let MemberRef::User(id) = &who {
        ensure_known_in_org(&txn, caller, *id, resolved.organization_id).await?;
    }
    let user = find_or_provision(&txn, now, &who).await?;
    let existing = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.id))
        .filter(memberships::Column::ScopeKey.eq(scope.key()))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(Error::Conflict(
            "this user is already a member; change the role instead".into(),
        ));
    }
    let (org, project) = scope_columns(&resolved);
    memberships::ActiveModel {
        id: Set(MembershipId::new().0),
        user_id: Set(user.id),
        scope_key: Set(scope.key()),
        organization_id: Set(org),
        project_id: Set(project),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "member.add",
            target_kind: "user",
            target_id: user.id.to_string(),
            organization_id: Some(resolved.organization_id),
            project_id: resolved.project_id,
            details: json!({"role": role.as_str(), "scope": scope.key()}),
        },
    )
    .await?;
    let member = Member {
        user: user_from_model(user),
        role: role.as_str().to_owned(),
        since: now,
    };
    idempotency::finish(&txn, slot, &member).await?;
    txn.commit().await?;
    Ok(member)
}

/// Lists a scope's members (anyone who may see the scope).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    page: &PageRequest,
) -> Result<Page<Member>> {
    scope.resolve(&svc.db, caller).await?;
    let mut query =
        memberships::Entity::find().filter(memberships::Column::ScopeKey.eq(scope.key()));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(memberships::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(memberships::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let users: std::collections::HashMap<_, _> = users::Entity::find()
        .filter(users::Column::Id.is_in(rows.iter().map(|m| m.user_id)))
        .all(&svc.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut members = Vec::with_capacity(rows.len());
    for m in rows {
        let user = users.get(&m.user_id).cloned();
        let user =
            user.ok_or_else(|| Error::Internal(format!("membership {} has no user", m.id)))?;
        members.push((
            m.id,
            Member {
                user: user_from_model(user),
                role: m.role,
                since: m.created_at,
            },
        ));
    }
    let page = Page::from_rows(members, page, |(id, _)| id.to_string());
    Ok(page.map(|(_, m)| m))
}

async fn find_membership(
    txn: &impl ConnectionTrait,
    scope: Scope,
    user: UserId,
) -> Result<memberships::Model> {
    memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.0))
        .filter(memberships::Column::ScopeKey.eq(scope.key()))
        .one(txn)
        .await?
        .ok_or(Error::NotFound("member"))
}

/// Changes a member's role.
#[tracing::instrument(skip_all, err, fields(user_id = %user))]
pub async fn set_role(
    svc: &Services,
    caller: &Caller,
    scope: Scope,
    user: UserId,
    role: &str,
) -> Result<Member> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let resolved = scope.resolve(&txn, caller).await?;
    let membership = find_membership(&txn, scope, user).await?;
    caller.require(true, resolved.manageable, "member")?;
    let role = scope.parse_role(&resolved, caller, role)?;
    let previous = scope.stored_role(&membership.role)?;
    if previous.as_str() == "allocator" && !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins change an allocator's role".into(),
        ));
    }
    let since = membership.created_at;
    let mut active: memberships::ActiveModel = membership.into();
    active.role = Set(role.as_str().to_owned());
    active.update(&txn).await?;
    audit::append(&txn, now, caller, Record {
        action: "member.update",
        target_kind: "user",
        target_id: user.to_string(),
        organization_id: Some(resolved.organization_id),
        project_id: resolved.project_id,
        details: json!({"role": role.as_str(), "previous_role": previous.as_str(), "scope": scope.key()}),
    })
    .await?;
    let user = users::Entity::find_by_id(user.0)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("user"))?;
    txn.commit().await?;
    Ok(Member {
        user: user_from_model(user),
        role: role.as_str().to_owned(),
        since,
    })
}

/// Removes a member.
#[tracing::instrument(skip_all, err, fields(user_id = %user))]
pub async fn remove(svc: &Services, caller: &Caller, scope: Scope, user: UserId) -> Result<()> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let resolved = scope.resolve(&txn, caller).await?;
    let membership = find_membership(&txn, scope, user).await?;
    caller.require(true, resolved.manageable, "member")?;
    if membership.role == "allocator" && !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins remove an allocator".into(),
        ));
    }
    memberships::Entity::delete_by_id(membership.id)
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "member.remove",
            target_kind: "user",
            target_id: user.to_string(),
            organization_id: Some(resolved.organization_id),
            project_id: resolved.project_id,
            details: json!({"role": membership.role, "scope": scope.key()}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
