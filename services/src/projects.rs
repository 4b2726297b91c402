//! Projects: the unit of budget, quota and billing, inside one organisation.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::projects;
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{OrganizationId, ProjectId};
use crate::organizations::load_visible as load_org;
use crate::pagination::{Page, PageRequest};
use crate::validate::{Validator, missing};
use crate::values::{Slug, check_text, parse_name};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Id.
    pub id: ProjectId,
    /// Owning organisation.
    pub organization_id: OrganizationId,
    /// Short name, unique in the organisation.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Free description.
    pub description: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at; also the version for `If-Match`.
    pub updated_at: DateTime<Utc>,
}

impl Project {
    /// The version tag used for `ETag` / `If-Match`.
    pub fn version(&self) -> String {
        self.updated_at.timestamp_micros().to_string()
    }
}

/// A validated request to create a project.
#[derive(Clone, Debug, Serialize)]
pub struct NewProject {
    slug: Slug,
    name: String,
    description: String,
}

impl NewProject {
    /// Validates raw input, reporting every bad field.
    pub fn parse(slug: &str, name: &str, description: Option<&str>) -> Result<Self> {
        let mut v = Validator::default();
        let slug = v.check(Slug::parse("slug", slug));
        let name = v.check(parse_name("name", name, 200));
        let description = description.unwrap_or("").trim().to_owned();
        v.check(check_text("description", &description, 2000));
        v.finish()?;
        match (slug, name) {
            (Some(slug), Some(name)) => Ok(Self {
                slug,
                name,
                description,
            }),
            _ => Err(missing()),
        }
    }
}

/// A validated partial update.
#[derive(Clone, Debug, Default)]
pub struct ProjectPatch {
    name: Option<String>,
    description: Option<String>,
}

impl ProjectPatch {
    /// Validates raw input, reporting every bad field.
    pub fn parse(name: Option<&str>, description: Option<&str>) -> Result<Self> {
        let mut v = Validator::default();
        let name = name.and_then(|n| v.check(parse_name("name", n, 200)));
        let description = description.map(|d| d.trim().to_owned());
        if let Some(d) = &description {
            v.check(check_text("description", d, 2000));
        }
        v.finish()?;
        Ok(Self { name, description })
    }
}

pub(crate) fn from_model(m: projects::Model) -> Project {
    Project {
        id: m.id.into(),
        organization_id: m.organization_id.into(),
        slug: m.slug,
        name: m.name,
        description: m.description,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// Loads a project the caller may see (404 otherwise, also for other tenants' projects).
pub async fn load_visible(
    db: &impl ConnectionTrait,
    caller: &Caller,
    id: ProjectId,
) -> Result<Project> {
    match projects::Entity::find_by_id(id.0).one(db).await? {
        Some(m) if caller.can_see_project(m.organization_id.into(), id) => Ok(from_model(m)),
        _ => Err(Error::NotFound("project")),
    }
}

/// Creates a project in an organisation (organisation admins and platform admins).
#[tracing::instrument(skip_all, err, fields(organization_id = %org_id))]
pub async fn create(
    svc: &Services,
    caller: &Caller,
    org_id: OrganizationId,
    cmd: NewProject,
    idem: Option<&IdempotencyKey>,
) -> Result<Project> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    load_org(&txn, caller, org_id).await?;
    caller.require(true, caller.can_admin_org(org_id), "organization")?;
    let op = format!("project.create:{org_id}");
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(project) => return Ok(project),
        idempotency::Begin::Proceed(slot) => slot,
    };
    let taken = projects::Entity::find()
        .filter(projects::Column::OrganizationId.eq(org_id.0))
        .filter(projects::Column::Slug.eq(cmd.slug.as_str()))
        .count(&txn)
        .await?;
    if taken > 0 {
        return Err(Error::Conflict(format!(
            "the organisation already has a project with slug '{}'",
            cmd.slug.as_str()
        )));
    }
    let model = projects::ActiveModel {
        id: Set(ProjectId::new().0),
        organization_id: Set(org_id.0),
        slug: Set(cmd.slug.as_str().to_owned()),
        name: Set(cmd.name.clone()),
        description: Set(cmd.description.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let project = from_model(model);
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "project.create",
            target_kind: "project",
            target_id: project.id.to_string(),
            organization_id: Some(org_id),
            project_id: Some(project.id),
            details: json!({"slug": project.slug, "name": project.name}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &project).await?;
    txn.commit().await?;
    Ok(project)
}

/// Reads one project.
pub async fn get(svc: &Services, caller: &Caller, id: ProjectId) -> Result<Project> {
    load_visible(&svc.db, caller, id).await
}

/// Lists an organisation's projects that the caller may see.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    org_id: OrganizationId,
    page: &PageRequest,
) -> Result<Page<Project>> {
    load_org(&svc.db, caller, org_id).await?;
    let mut query = projects::Entity::find().filter(projects::Column::OrganizationId.eq(org_id.0));
    if let Some(own) = caller.projects_seen_in(org_id) {
        // Only a project-level role: list just those projects.
        query = query.filter(projects::Column::Id.is_in(own.into_iter().map(|p| p.0)));
    }
    if let Some(after) = page.after_uuid()? {
        query = query.filter(projects::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(projects::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows.into_iter().map(from_model).collect();
    Ok(Page::from_rows(items, page, |p: &Project| p.id.to_string()))
}

/// Changes a project's name or description (project leads and organisation admins).
#[tracing::instrument(skip_all, err, fields(project_id = %id))]
pub async fn update(
    svc: &Services,
    caller: &Caller,
    id: ProjectId,
    patch: ProjectPatch,
    if_match: Option<&str>,
) -> Result<Project> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let current = load_visible(&txn, caller, id).await?;
    caller.require(
        true,
        caller.can_manage_project(current.organization_id, id),
        "project",
    )?;
    if if_match.is_some_and(|v| v != current.version()) {
        return Err(Error::PreconditionFailed);
    }
    let mut model = projects::ActiveModel {
        id: Set(id.0),
        ..Default::default()
    };
    if let Some(name) = &patch.name {
        model.name = Set(name.clone());
    }
    if let Some(d) = &patch.description {
        model.description = Set(d.clone());
    }
    let updated_at = crate::clock::next_version(now, current.updated_at);
    model.updated_at = Set(updated_at);
    let res = projects::Entity::update_many()
        .set(model)
        .filter(projects::Column::Id.eq(id.0))
        .filter(projects::Column::UpdatedAt.eq(current.updated_at))
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
            action: "project.update",
            target_kind: "project",
            target_id: id.to_string(),
            organization_id: Some(current.organization_id),
            project_id: Some(id),
            details: json!({"name": patch.name, "description": patch.description}),
        },
    )
    .await?;
    let updated = load_visible(&txn, caller, id).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes a project with its memberships and tokens (organisation admins).
#[tracing::instrument(skip_all, err, fields(project_id = %id))]
pub async fn delete(svc: &Services, caller: &Caller, id: ProjectId) -> Result<()> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let project = load_visible(&txn, caller, id).await?;
    caller.require(
        true,
        caller.can_admin_org(project.organization_id),
        "project",
    )?;
    projects::Entity::delete_by_id(id.0).exec(&txn).await?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "project.delete",
            target_kind: "project",
            target_id: id.to_string(),
            organization_id: Some(project.organization_id),
            project_id: Some(id),
            details: json!({"slug": project.slug}),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
