//! Organisations: consortium members and allocating bodies.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{organizations as orgs, projects};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::OrganizationId;
use crate::pagination::{Page, PageRequest};
use crate::validate::{Validator, missing};
use crate::values::{CountryCode, OrganizationKind, Slug, parse_name};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Id.
    pub id: OrganizationId,
    /// Unique short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Kind of member.
    pub kind: OrganizationKind,
    /// Country (ISO 3166-1 alpha-2).
    pub country: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at; also the version for `If-Match`.
    pub updated_at: DateTime<Utc>,
}

impl Organization {
    /// The version tag used for `ETag` / `If-Match`.
    pub fn version(&self) -> String {
        self.updated_at.timestamp_micros().to_string()
    }
}

/// A validated request to create an organisation.
#[derive(Clone, Debug, Serialize)]
pub struct NewOrganization {
    slug: Slug,
    name: String,
    kind: OrganizationKind,
    country: CountryCode,
}

impl NewOrganization {
    /// Validates raw input, reporting every bad field.
    pub fn parse(slug: &str, name: &str, kind: &str, country: Option<&str>) -> Result<Self> {
        let mut v = Validator::default();
        let slug = v.check(Slug::parse("slug", slug));
        let name = v.check(parse_name("name", name, 200));
        let kind = v.check(OrganizationKind::parse("kind", kind));
        let country = v.check(CountryCode::parse("country", country.unwrap_or("FR")));
        v.finish()?;
        match (slug, name, kind, country) {
            (Some(slug), Some(name), Some(kind), Some(country)) => Ok(Self {
                slug,
                name,
                kind,
                country,
            }),
            _ => Err(missing()),
        }
    }
}

/// A validated partial update.
#[derive(Clone, Debug, Default)]
pub struct OrganizationPatch {
    name: Option<String>,
    kind: Option<OrganizationKind>,
    country: Option<CountryCode>,
}

impl OrganizationPatch {
    /// Validates raw input, reporting every bad field.
    pub fn parse(name: Option<&str>, kind: Option<&str>, country: Option<&str>) -> Result<Self> {
        let mut v = Validator::default();
        let name = name.and_then(|n| v.check(parse_name("name", n, 200)));
        let kind = kind.and_then(|k| v.check(OrganizationKind::parse("kind", k)));
        let country = country.and_then(|c| v.check(CountryCode::parse("country", c)));
        v.finish()?;
        Ok(Self {
            name,
            kind,
            country,
        })
    }
}

pub(crate) fn from_model(m: orgs::Model) -> Result<Organization> {
    Ok(Organization {
        id: m.id.into(),
        kind: OrganizationKind::parse("kind", &m.kind).map_err(|_| {
            Error::Internal(format!("organisation {} has unknown kind {}", m.id, m.kind))
        })?,
        slug: m.slug,
        name: m.name,
        country: m.country,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// Loads an organisation the caller may see (404 otherwise).
pub(crate) async fn load_visible(
    db: &impl sea_orm::ConnectionTrait,
    caller: &Caller,
    id: OrganizationId,
) -> Result<Organization> {
    let model = orgs::Entity::find_by_id(id.0).one(db).await?;
    match model {
        Some(m) if caller.can_see_org(id) => from_model(m),
        _ => Err(Error::NotFound("organization")),
    }
}

/// Creates an organisation (platform admins only).
#[tracing::instrument(skip_all, err, fields(slug = %cmd.slug.as_str()))]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cmd: NewOrganization,
    idem: Option<&IdempotencyKey>,
) -> Result<Organization> {
    if !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins create organisations".into(),
        ));
    }
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let slot =
        match idempotency::begin(&txn, now, caller, "organization.create", idem, &cmd).await? {
            idempotency::Begin::Replay(org) => return Ok(org),
            idempotency::Begin::Proceed(slot) => slot,
        };
    let taken = orgs::Entity::find()
        .filter(orgs::Column::Slug.eq(cmd.slug.as_str()))
        .count(&txn)
        .await?;
    if taken > 0 {
        return Err(Error::Conflict(format!(
            "an organisation with slug '{}' already exists",
            cmd.slug.as_str()
        )));
    }
    let model = orgs::ActiveModel {
        id: Set(OrganizationId::new().0),
        slug: Set(cmd.slug.as_str().to_owned()),
        name: Set(cmd.name.clone()),
        kind: Set(cmd.kind.as_str().to_owned()),
        country: Set(cmd.country.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let org = from_model(model)?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "organization.create",
            target_kind: "organization",
            target_id: org.id.to_string(),
            organization_id: Some(org.id),
            project_id: None,
            details: json!({"slug": org.slug, "name": org.name, "kind": org.kind}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &org).await?;
    txn.commit().await?;
    Ok(org)
}

/// Reads one organisation.
pub async fn get(svc: &Services, caller: &Caller, id: OrganizationId) -> Result<Organization> {
    load_visible(&svc.db, caller, id).await
}

/// Lists the organisations the caller may see, in creation order.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    page: &PageRequest,
) -> Result<Page<Organization>> {
    let mut query = orgs::Entity::find();
    if let Some(visible) = caller.visible_orgs() {
        query = query.filter(orgs::Column::Id.is_in(visible.into_iter().map(|o| o.0)));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(orgs::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(orgs::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |o| o.id.to_string()))
}

/// Changes name, kind (platform admins only) or country.
#[tracing::instrument(skip_all, err, fields(organization_id = %id))]
pub async fn update(
    svc: &Services,
    caller: &Caller,
    id: OrganizationId,
    patch: OrganizationPatch,
    if_match: Option<&str>,
) -> Result<Organization> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let current = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.can_admin_org(id), "organization")?;
    if patch.kind.is_some() && !caller.is_platform_admin() {
        return Err(Error::Forbidden(
            "only platform admins change an organisation's kind".into(),
        ));
    }
    if if_match.is_some_and(|v| v != current.version()) {
        return Err(Error::PreconditionFailed);
    }
    let mut model: orgs::ActiveModel = orgs::ActiveModel {
        id: Set(id.0),
        ..Default::default()
    };
    if let Some(name) = &patch.name {
        model.name = Set(name.clone());
    }
    if let Some(kind) = patch.kind {
        model.kind = Set(kind.as_str().to_owned());
    }
    if let Some(country) = &patch.country {
        model.country = Set(country.as_str().to_owned());
    }
    let updated_at = crate::clock::next_version(now, current.updated_at);
    model.updated_at = Set(updated_at);
    let res = orgs::Entity::update_many()
        .set(model)
        .filter(orgs::Column::Id.eq(id.0))
        .filter(orgs::Column::UpdatedAt.eq(current.updated_at))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::PreconditionFailed);
    }
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "organization.update",
            target_kind: "organization",
            target_id: id.to_string(),
            organization_id: Some(id),
            project_id: None,
            details: json!({"name": patch.name, "kind": patch.kind, "country": patch.country}),
        },
    )
    .await?;
    let updated = load_visible(&txn, caller, id).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes an empty organisation (platform admins only; 409 while it has projects).
#[tracing::instrument(skip_all, err, fields(organization_id = %id))]
pub async fn delete(svc: &Services, caller: &Caller, id: OrganizationId) -> Result<()> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let org = load_visible(&txn, caller, id).await?;
    caller.require(true, caller.is_platform_admin(), "organization")?;
    let projects = projects::Entity::find()
        .filter(projects::Column::OrganizationId.eq(id.0))
        .count(&txn)
        .await?;
    if projects > 0 {
        return Err(Error::Conflict(format!(
            "the organisation still has {projects} project(s); delete them first"
        )));
    }
    orgs::Entity::delete_by_id(id.0).exec(&txn).await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "organization.delete",
            target_kind: "organization",
            target_id: id.to_string(),
            organization_id: Some(id),
            project_id: None,
            details: json!({"slug": org.slug}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
