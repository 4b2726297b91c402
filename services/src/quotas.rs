//! Quotas: hard caps on what a project or organisation holds at once, in compute slices
//! (7 per GPU), optionally per MIG profile and per site. An organisation without a quota
//! row gets its kind's default; a project without one may use its organisation's quota.

use crate::budget::SLICES_PER_GPU;
use crate::entities::{organizations as orgs, projects, quotas};
use crate::error::{Error, Result};
use crate::ids::{OrganizationId, ProjectId};
use crate::validate::Validator;
use crate::values::{OrganizationKind, Slug};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default GPU-equivalents held at once by an organisation of `kind`.
pub const fn default_gpu_equivalents(kind: OrganizationKind) -> i64 {
    match kind {
        OrganizationKind::Academic | OrganizationKind::Public => 16,
        OrganizationKind::Startup => 32,
        OrganizationKind::Industry => 64,
        OrganizationKind::Allocator => 0,
    }
}

/// The preemptible cap is this many times the guaranteed one by default.
pub const PREEMPTIBLE_FACTOR: i64 = 2;

/// The caps of one scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Compute slices held at once by guaranteed leases.
    pub max_compute_slices: i64,
    /// Compute slices held at once by preemptible leases.
    pub max_preemptible_compute_slices: i64,
    /// Profile name → most instances held at once.
    pub per_profile: BTreeMap<String, i64>,
    /// Site → most compute slices held at once there.
    pub per_site: BTreeMap<String, i64>,
}

impl QuotaLimits {
    /// The default caps of an organisation of `kind`.
    pub fn default_for(kind: OrganizationKind) -> Self {
        let slices = default_gpu_equivalents(kind) * SLICES_PER_GPU;
        Self {
            max_compute_slices: slices,
            max_preemptible_compute_slices: slices * PREEMPTIBLE_FACTOR,
            ..Self::default()
        }
    }

    /// Validates raw input: non-negative numbers, known profile names, slug site names.
    /// The preemptible cap defaults to twice the guaranteed one.
    pub fn parse(
        max: i64,
        preemptible: Option<i64>,
        per_profile: BTreeMap<String, i64>,
        per_site: BTreeMap<String, i64>,
    ) -> Result<Self> {
        let mut v = Validator::default();
        let bound = 1_000_000_000;
        let mut count = |field: String, n: i64| {
            if !(0..=bound).contains(&n) {
                v.check::<()>(Err(Error::invalid(
                    &field,
                    format!("must be between 0 and {bound}"),
                )));
            }
        };
        count("max_compute_slices".into(), max);
        let preemptible = preemptible.unwrap_or(max.saturating_mul(PREEMPTIBLE_FACTOR));
        count("max_preemptible_compute_slices".into(), preemptible);
        for (name, n) in &per_profile {
            count(format!("per_profile.{name}"), *n);
        }
        for (site, n) in &per_site {
            count(format!("per_site.{site}"), *n);
        }
        for name in per_profile.keys() {
            let known = aion_mig::GpuModel::ALL
                .iter()
                .any(|m| m.profiles().any(|p| p.name == name.as_str()));
            if !known {
                v.check::<()>(Err(Error::invalid(
                    &format!("per_profile.{name}"),
                    "is not a MIG profile of any supported GPU model (e.g. 1g.10gb, 3g.40gb)",
                )));
            }
        }
        for site in per_site.keys() {
            v.check(Slug::parse(&format!("per_site.{site}"), site));
        }
        v.finish()?;
        Ok(Self {
            max_compute_slices: max,
            max_preemptible_compute_slices: preemptible,
            per_profile,
            per_site,
        })
    }

    /// Fails unless every cap here is within `outer`'s (a project inside its organisation).
    pub fn check_within(&self, outer: &QuotaLimits) -> Result<()> {
        let mut v = Validator::default();
        let mut within = |field: String, inner: i64, cap: i64| {
            if inner > cap {
                v.check::<()>(Err(Error::invalid(
                    &field,
                    format!("must be at most the organisation's {cap}"),
                )));
            }
        };
        within(
            "max_compute_slices".into(),
            self.max_compute_slices,
            outer.max_compute_slices,
        );
        within(
            "max_preemptible_compute_slices".into(),
            self.max_preemptible_compute_slices,
            outer.max_preemptible_compute_slices,
        );
        for (name, n) in &self.per_profile {
            if let Some(cap) = outer.per_profile.get(name) {
                within(format!("per_profile.{name}"), *n, *cap);
            }
        }
        for (site, n) in &self.per_site {
            if let Some(cap) = outer.per_site.get(site) {
                within(format!("per_site.{site}"), *n, *cap);
            }
        }
        v.finish()
    }
}

/// The quota of one organisation or project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// The organisation (of the project, for project quotas).
    pub organization_id: OrganizationId,
    /// The project, for project quotas.
    pub project_id: Option<ProjectId>,
    /// The caps.
    pub limits: QuotaLimits,
    /// Whether no quota was set and the default applies.
    pub is_default: bool,
    /// When it was last set.
    pub updated_at: Option<DateTime<Utc>>,
}

impl Quota {
    /// The version tag used for `ETag` / `If-Match` (`default` while none was set).
    pub fn version(&self) -> String {
        self.updated_at.map_or_else(
            || "default".to_owned(),
            |t| t.timestamp_micros().to_string(),
        )
    }
}

/// What the lease admission of a project must respect: its own caps and its organisation's.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveQuota {
    /// The project's caps (its organisation's when it has none of its own).
    pub project: QuotaLimits,
    /// The organisation's caps, shared by all its projects.
    pub organization: QuotaLimits,
}

fn json_map(raw: Option<&str>) -> Result<BTreeMap<String, i64>> {
    raw.map_or(Ok(BTreeMap::new()), |s| {
        serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored quota map: {e}")))
    })
}

pub(crate) fn scope_key(org: OrganizationId, project: Option<ProjectId>) -> String {
    project.map_or_else(|| format!("org:{org}"), |p| format!("project:{p}"))
}

pub(crate) async fn row(db: &impl ConnectionTrait, key: &str) -> Result<Option<quotas::Model>> {
    Ok(quotas::Entity::find()
        .filter(quotas::Column::ScopeKey.eq(key))
        .one(db)
        .await?)
}

fn from_row(m: quotas::Model) -> Result<Quota> {
    Ok(Quota {
        organization_id: m.organization_id.into(),
        project_id: m.project_id.map(Into::into),
        limits: QuotaLimits {
            max_compute_slices: m.max_compute_slices,
            max_preemptible_compute_slices: m.max_preemptible_compute_slices,
            per_profile: json_map(m.per_profile.as_deref())?,
            per_site: json_map(m.per_site.as_deref())?,
        },
        is_default: false,
        updated_at: Some(m.updated_at),
    })
}

/// The organisation's quota: its row, or its kind's default.
pub(crate) async fn of_org(db: &impl ConnectionTrait, org: OrganizationId) -> Result<Quota> {
    if let Some(m) = row(db, &scope_key(org, None)).await? {
        return from_row(m);
    }
    let model = orgs::Entity::find_by_id(org.0)
        .one(db)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    let kind = OrganizationKind::parse("kind", &model.kind)
        .map_err(|_| Error::Internal(format!("organisation {org} has unknown kind")))?;
    Ok(Quota {
        organization_id: org,
        project_id: None,
        limits: QuotaLimits::default_for(kind),
        is_default: true,
        updated_at: None,
    })
}

/// The project's quota: its row, or its organisation's caps.
pub(crate) async fn of_project(
    db: &impl ConnectionTrait,
    org: OrganizationId,
    project: ProjectId,
) -> Result<Quota> {
    if let Some(m) = row(db, &scope_key(org, Some(project))).await? {
        return from_row(m);
    }
    let org_quota = of_org(db, org).await?;
    Ok(Quota {
        project_id: Some(project),
        is_default: true,
        updated_at: None,
        ..org_quota
    })
}

/// The caps a lease of `project` must respect (called by lease admission, inside its
/// transaction).
pub async fn effective(db: &impl ConnectionTrait, project: ProjectId) -> Result<EffectiveQuota> {
    let p = projects::Entity::find_by_id(project.0)
        .one(db)
        .await?
        .ok_or(Error::NotFound("project"))?;
    effective_in(db, OrganizationId(p.organization_id), project).await
}

/// Like [`effective`] when the organisation is known: both quota rows in one query (the
/// organisation's kind is read only when it has no row of its own).
pub async fn effective_in(
    db: &impl ConnectionTrait,
    org: OrganizationId,
    project: ProjectId,
) -> Result<EffectiveQuota> {
    let (org_key, project_key) = (scope_key(org, None), scope_key(org, Some(project)));
    let mut rows = quotas::Entity::find()
        .filter(quotas::Column::ScopeKey.is_in([org_key.clone(), project_key.clone()]))
        .all(db)
        .await?;
    let take = |rows: &mut Vec<quotas::Model>, key: &str| {
        rows.iter()
            .position(|m| m.scope_key == key)
            .map(|i| rows.swap_remove(i))
    };
    let organization = match take(&mut rows, &org_key) {
        Some(m) => from_row(m)?.limits,
        None => of_org(db, org).await?.limits,
    };
    let project = match take(&mut rows, &project_key) {
        Some(m) => from_row(m)?.limits,
        None => organization.clone(),
    };
    Ok(EffectiveQuota {
        project,
        organization,
    })
}

/// [`effective_in`] for many projects at once, in one query: `kinds` gives each
/// organisation's kind, for its default caps when it has no row of its own.
pub(crate) async fn effective_many(
    db: &impl ConnectionTrait,
    kinds: &std::collections::HashMap<OrganizationId, OrganizationKind>,
    pairs: &[(OrganizationId, ProjectId)],
) -> Result<std::collections::HashMap<ProjectId, EffectiveQuota>> {
    let mut keys: Vec<String> = kinds.keys().map(|o| scope_key(*o, None)).collect();
    keys.extend(pairs.iter().map(|(o, p)| scope_key(*o, Some(*p))));
    let mut rows: std::collections::HashMap<String, quotas::Model> = quotas::Entity::find()
        .filter(crate::pg_array::text_in(
            db.get_database_backend(),
            quotas::Column::ScopeKey,
            &keys,
        ))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.scope_key.clone(), m))
        .collect();
    let mut out = std::collections::HashMap::new();
    for (org, project) in pairs {
        let organization = match rows.get(&scope_key(*org, None)) {
            Some(m) => from_row(m.clone())?.limits,
            None => {
                QuotaLimits::default_for(*kinds.get(org).ok_or(Error::NotFound("organization"))?)
            }
        };
        let project_limits = match rows.remove(&scope_key(*org, Some(*project))) {
            Some(m) => from_row(m)?.limits,
            None => organization.clone(),
        };
        out.insert(
            *project,
            EffectiveQuota {
                project: project_limits,
                organization,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_academic_organisation_gets_16_gpus_and_twice_that_preemptible() {
        let d = QuotaLimits::default_for(OrganizationKind::Academic);
        assert_eq!(
            (d.max_compute_slices, d.max_preemptible_compute_slices),
            (112, 224)
        );
        assert_eq!(
            QuotaLimits::default_for(OrganizationKind::Allocator).max_compute_slices,
            0
        );
    }

    #[test]
    fn negative_caps_unknown_profiles_and_bad_sites_are_all_reported() {
        let profiles = BTreeMap::from([("9g.99gb".to_owned(), 1)]);
        let sites = BTreeMap::from([("Paris Saclay".to_owned(), 7)]);
        let Err(Error::Validation(fields)) = QuotaLimits::parse(-1, None, profiles, sites) else {
            panic!("must fail")
        };
        assert!(fields.contains_key("max_compute_slices"));
        assert!(fields.contains_key("per_profile.9g.99gb"));
        assert!(fields.contains_key("per_site.Paris Saclay"));
    }

    #[test]
    fn a_project_cap_above_its_organisations_is_refused() {
        let org = QuotaLimits::default_for(OrganizationKind::Academic);
        let ok = QuotaLimits::parse(
            112,
            Some(0),
            BTreeMap::from([("3g.40gb".into(), 2)]),
            BTreeMap::new(),
        )
        .unwrap();
        assert!(ok.check_within(&org).is_ok());
        let over = QuotaLimits::parse(113, Some(0), BTreeMap::new(), BTreeMap::new()).unwrap();
        assert!(over.check_within(&org).is_err());
    }
}
