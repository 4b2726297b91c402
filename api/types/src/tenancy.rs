//! Organisations, projects, members, users, API tokens, audit events and `/v1/me`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! list_type {
    ($(#[$doc:meta] $list:ident of $item:ty),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
        pub struct $list {
            /// Items of this page.
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; absent on the last page.
            pub next_cursor: Option<String>,
        }
    )*};
}

/// Kind of consortium member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrganizationKind {
    /// University or public research lab.
    Academic,
    /// AI start-up.
    Startup,
    /// Industrial partner.
    Industry,
    /// Other public body.
    Public,
    /// Grants compute hours (GENCI, CNRS).
    Allocator,
}

/// An organisation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    /// Id.
    pub id: Uuid,
    /// Unique short name (`a-z`, `0-9`, `-`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Kind of member.
    pub kind: OrganizationKind,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /v1/organizations`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationCreate {
    /// Unique short name: 2–63 of `a-z`, `0-9`, inner `-`.
    pub slug: String,
    /// Display name (1–200 characters).
    pub name: String,
    /// `academic`, `startup`, `industry`, `public` or `allocator`.
    pub kind: String,
    /// ISO 3166-1 alpha-2 country code; default `FR`.
    pub country: Option<String>,
}

/// Body of `PATCH /v1/organizations/{id}`; absent fields stay unchanged.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New kind (platform admins only).
    pub kind: Option<String>,
    /// New country.
    pub country: Option<String>,
}

/// A project.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// Id.
    pub id: Uuid,
    /// Owning organisation.
    pub organization_id: Uuid,
    /// Short name, unique in the organisation.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /v1/organizations/{id}/projects`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreate {
    /// Short name: 2–63 of `a-z`, `0-9`, inner `-`.
    pub slug: String,
    /// Display name (1–200 characters).
    pub name: String,
    /// Description (at most 2000 characters).
    pub description: Option<String>,
}

/// Body of `PATCH /v1/projects/{id}`; absent fields stay unchanged.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// A user.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// OIDC issuer.
    pub issuer: String,
    /// Subject at the issuer.
    pub subject: String,
    /// E-mail.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
}

/// A user's role in an organisation or project.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The user.
    pub user: User,
    /// Organisation roles: `admin`, `billing`, `member`, `allocator`; project roles:
    /// `lead`, `member`, `viewer`.
    pub role: String,
    /// Member since.
    pub since: DateTime<Utc>,
}

/// Body of `POST .../members`: either `user_id`, or `issuer` + `subject` (the user is
/// created if it has never signed in).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    /// An existing user.
    pub user_id: Option<Uuid>,
    /// OIDC issuer of a user to add by identity.
    pub issuer: Option<String>,
    /// Subject at that issuer.
    pub subject: Option<String>,
    /// E-mail to show until the user signs in.
    pub email: Option<String>,
    /// Role to give.
    pub role: String,
}

/// Body of `PATCH .../members/{user_id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    /// New role.
    pub role: String,
}

/// An API token (never with its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// Id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// Last four characters of the secret.
    pub hint: String,
    /// Organisation scope (also set for project tokens).
    pub organization_id: Option<Uuid>,
    /// Project scope.
    pub project_id: Option<Uuid>,
    /// Role it acts with.
    pub role: String,
    /// Who created it (`user:<id>`, `token:<id>`, `system`).
    pub created_by: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Expires at.
    pub expires_at: DateTime<Utc>,
    /// Revoked at.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use (precise to a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Answer of a token creation. `secret` is shown once: a replay of the same
/// `Idempotency-Key` answers without it, because Aion keeps only a hash.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The bearer secret (`aion_…`).
    pub secret: Option<String>,
}

/// Body of `POST .../tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What it is for (1–200 characters).
    pub name: String,
    /// Role in the scope (see [`Member::role`]).
    pub role: String,
    /// Expiry; default 90 days, at most 366 days away.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An audit event.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in the hash chain, from 1.
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// `user:<id>`, `token:<id>` or `system`.
    pub actor: String,
    /// Verb, e.g. `project.create`.
    pub action: String,
    /// Kind of target.
    pub target_kind: String,
    /// Target id.
    pub target_id: String,
    /// Organisation concerned.
    pub organization_id: Option<Uuid>,
    /// Project concerned.
    pub project_id: Option<Uuid>,
    /// Request that caused it.
    pub request_id: String,
    /// Extra facts.
    pub details: serde_json::Value,
    /// SHA-256 over the event and the previous hash.
    pub hash: String,
}

/// One role held by the caller.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleGrant {
    /// `platform`, `organization` or `project`.
    pub scope: String,
    /// Organisation, for organisation and project scopes.
    pub organization_id: Option<Uuid>,
    /// Project, for project scopes.
    pub project_id: Option<Uuid>,
    /// Role name.
    pub role: String,
}

/// Answer of `GET /v1/me`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `user` or `token`.
    pub kind: String,
    /// The user, for OIDC callers.
    pub user: Option<User>,
    /// The token, for API-token callers.
    pub token: Option<ApiToken>,
    /// Roles held.
    pub grants: Vec<RoleGrant>,
}

/// Answer of `/healthz` and `/readyz`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// Migrations not yet applied (`/readyz`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_migrations: Vec<String>,
}

list_type!(
    /// A page of organisations.
    OrganizationList of Organization,
    /// A page of projects.
    ProjectList of Project,
    /// A page of members.
    MemberList of Member,
    /// A page of API tokens.
    ApiTokenList of ApiToken,
    /// A page of audit events, newest first.
    AuditEventList of AuditEvent,
);
