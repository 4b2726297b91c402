//! Read models of the operators' panel that no API route needs as such: the platform's
//! headline counts, and the people known to Aion with their roles. Platform admins and
//! auditors only.

use crate::Services;
use crate::authz::Caller;
use crate::entities::{leases, memberships, nodes, organizations as orgs, projects, users};
use crate::error::{Error, Result};
use crate::lease_state::LeaseState;
use crate::nodes::NodeState;
use crate::pagination::{Page, PageRequest};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

fn require_reader(caller: &Caller) -> Result<()> {
    if caller.reads_everything() {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only platform admins and auditors open the operators' panel".into(),
        ))
    }
}

/// The platform's headline counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overview {
    /// Organisations.
    pub organizations: u64,
    /// Projects.
    pub projects: u64,
    /// Users.
    pub users: u64,
    /// Nodes per state, in [`NodeState::ALL`] order.
    pub nodes: Vec<(NodeState, u64)>,
    /// Leases that are not over (pending to releasing).
    pub live_leases: u64,
}

async fn count<E: EntityTrait>(select: sea_orm::Select<E>, db: &impl ConnectionTrait) -> Result<u64>
where
    E::Model: Send + Sync,
{
    Ok(select.count(db).await?)
}

/// Reads the headline counts (a handful of `COUNT` queries, whatever the fleet's size).
#[tracing::instrument(skip_all, err)]
pub async fn overview(svc: &Services, caller: &Caller) -> Result<Overview> {
    require_reader(caller)?;
    let db = &svc.db;
    let per_state: HashMap<String, i64> = nodes::Entity::find()
        .select_only()
        .column(nodes::Column::State)
        .column_as(nodes::Column::Id.count(), "n")
        .group_by(nodes::Column::State)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(Overview {
        organizations: count(orgs::Entity::find(), db).await?,
        projects: count(projects::Entity::find(), db).await?,
        users: count(users::Entity::find(), db).await?,
        nodes: NodeState::ALL
            .into_iter()
            .map(|s| {
                let n = per_state.get(s.as_str()).copied().unwrap_or(0);
                (s, u64::try_from(n).unwrap_or(0))
            })
            .collect(),
        live_leases: count(
            leases::Entity::find().filter(leases::Column::State.is_in(LeaseState::live_names())),
            db,
        )
        .await?,
    })
}

/// One role of a person, with where it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleAt {
    /// Role name (`platform-admin`, `admin`, `lead`…).
    pub role: String,
    /// `platform`, or the organisation's name, or `organisation / project`.
    pub scope: String,
    /// The organisation, for a link.
    pub organization_id: Option<Uuid>,
}

/// A person as the users list shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub id: Uuid,
    /// E-mail.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// OIDC issuer.
    pub issuer: String,
    /// Subject at the issuer.
    pub subject: String,
    /// Roles held.
    pub roles: Vec<RoleAt>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last signed in or called the API.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Lists the people known to Aion, oldest first, with their roles: one page of users
/// and one query each for their memberships, organisations and projects.
#[tracing::instrument(skip_all, err)]
pub async fn users(svc: &Services, caller: &Caller, page: &PageRequest) -> Result<Page<UserRow>> {
    require_reader(caller)?;
    let db = &svc.db;
    let mut query = users::Entity::find();
    if let Some(after) = page.after_uuid()? {
        query = query.filter(users::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(users::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|u| u.id).collect();
    let members = memberships::Entity::find()
        .filter(memberships::Column::UserId.is_in(ids))
        .order_by_asc(memberships::Column::CreatedAt)
        .all(db)
        .await?;
    let org_names: HashMap<Uuid, String> = orgs::Entity::find()
        .filter(orgs::Column::Id.is_in(members.iter().filter_map(|m| m.organization_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let project_names: HashMap<Uuid, String> = projects::Entity::find()
        .filter(projects::Column::Id.is_in(members.iter().filter_map(|m| m.project_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let mut roles: HashMap<Uuid, Vec<RoleAt>> = HashMap::new();
    for m in members {
        let org = m.organization_id.and_then(|o| org_names.get(&o)).cloned();
        let scope = match (org, m.project_id.and_then(|p| project_names.get(&p))) {
            (Some(o), Some(p)) => format!("{o} / {p}"),
            (Some(o), None) => o,
            _ => "platform".to_owned(),
        };
        roles.entry(m.user_id).or_default().push(RoleAt {
            role: m.role,
            scope,
            organization_id: m.organization_id,
        });
    }
    let items = rows
        .into_iter()
        .map(|u| UserRow {
            roles: roles.remove(&u.id).unwrap_or_default(),
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            issuer: u.issuer,
            subject: u.subject,
            created_at: u.created_at,
            last_seen_at: u.last_seen_at,
        })
        .collect();
    Ok(Page::from_rows(items, page, |u: &UserRow| u.id.to_string()))
}

/// Most memberships an organisation page lists.
pub const MAX_ORG_MEMBERS: u64 = 500;

/// A role held in an organisation or one of its projects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgMember {
    /// The person's display name, else e-mail, else subject.
    pub who: String,
    /// E-mail.
    pub email: Option<String>,
    /// Role name.
    pub role: String,
    /// The project's name, for a project role.
    pub project: Option<String>,
    /// Since.
    pub since: DateTime<Utc>,
}

/// Everyone holding a role in the organisation or one of its projects, oldest first, at
/// most [`MAX_ORG_MEMBERS`] (the flag says whether there were more).
#[tracing::instrument(skip_all, err, fields(organization_id = %org))]
pub async fn organization_members(
    svc: &Services,
    caller: &Caller,
    org: crate::ids::OrganizationId,
) -> Result<(Vec<OrgMember>, bool)> {
    require_reader(caller)?;
    let db = &svc.db;
    let mut rows = memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org.0))
        .order_by_asc(memberships::Column::CreatedAt)
        .limit(MAX_ORG_MEMBERS + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > MAX_ORG_MEMBERS;
    rows.truncate(MAX_ORG_MEMBERS as usize);
    let people: HashMap<Uuid, users::Model> = users::Entity::find()
        .filter(users::Column::Id.is_in(rows.iter().map(|m| m.user_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let project_names: HashMap<Uuid, String> = projects::Entity::find()
        .filter(projects::Column::Id.is_in(rows.iter().filter_map(|m| m.project_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let members = rows
        .into_iter()
        .filter_map(|m| {
            let u = people.get(&m.user_id)?;
            Some(OrgMember {
                who: u
                    .display_name
                    .clone()
                    .or_else(|| u.email.clone())
                    .unwrap_or_else(|| u.subject.clone()),
                email: u.email.clone(),
                role: m.role,
                project: m.project_id.and_then(|p| project_names.get(&p).cloned()),
                since: m.created_at,
            })
        })
        .collect();
    Ok((members, more))
}
