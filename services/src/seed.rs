//! Demo data for `aion dev`: the allocators GENCI and CNRS, two member organisations with
//! a project each, and the demo users of [`DEMO_USERS`] (two project leads, a GENCI
//! committee member and an operator), whom the console's development sign-in offers. Each demo project gets a contract grant of
//! [`DEMO_GPU_HOURS`] H100-80GB GPU-hours valid for a year, and its organisation a quota
//! of [`DEMO_COMPUTE_SLICES`] compute slices, so a newcomer's first lease request can
//! become `active` on the simulated nodes at once. Every organisation kind gets a demo
//! price list ([`DEMO_PRICES`]), so usage can be rated. Created through the normal domain
//! functions, so it is validated and audited like anything else. Runs only on a database
//! without organisations.

use crate::Services;
use crate::authz::Caller;
use crate::entities::organizations;
use crate::error::Result;
use crate::grants::{self, NewContractGrant};
use crate::members::{self, MemberRef};
use crate::organizations::{self as orgs, NewOrganization};
use crate::price_lists;
use crate::pricing::{ModelPricesInput, NewPriceList, PriceScope};
use crate::projects::{self, NewProject};
use crate::quota_settings;
use crate::quotas::QuotaLimits;
use crate::scope::Scope;
use sea_orm::{EntityTrait, PaginatorTrait};

/// Issuer of the demo users; a real provider never uses a `urn:` issuer.
pub const DEMO_ISSUER: &str = "urn:aion:dev";

/// A demo user: subject at [`DEMO_ISSUER`], name, and what they do.
#[derive(Clone, Copy, Debug)]
pub struct DemoUser {
    /// Subject (also the login name on the sign-in page).
    pub subject: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Their role, in a few words.
    pub role: &'static str,
}

/// The demo users seeded by [`demo_if_empty`].
pub const DEMO_USERS: [DemoUser; 4] = [
    DemoUser {
        subject: "alice",
        name: "Alice",
        role: "lead of hyperion-lab/climate-llm",
    },
    DemoUser {
        subject: "bob",
        name: "Bob",
        role: "lead of helios-ai/vision-pretrain",
    },
    DemoUser {
        subject: "gaspard",
        name: "Gaspard",
        role: "GENCI allocation committee",
    },
    DemoUser {
        subject: "olga",
        name: "Olga",
        role: "platform operator",
    },
];

/// GPU model of the demo grants (the model of `aion dev`'s simulated nodes).
pub const DEMO_GPU_MODEL: &str = "H100-80GB";
/// GPU-hours of each demo project's contract grant.
pub const DEMO_GPU_HOURS: i64 = 10_000;
/// Site of `aion dev`'s simulated nodes.
pub const DEMO_SITE: &str = "dev";
/// Demo grid carbon intensity of [`DEMO_SITE`], grams of CO2e per kWh (about the French
/// grid's yearly average), so the demo usage shows its carbon.
pub const DEMO_GRAMS_PER_KWH: i64 = 30;

/// GPU-hours in the pool of the demo GENCI call.
pub const DEMO_CALL_POOL_GPU_HOURS: i64 = 50_000;
/// Days the demo grants are valid for.
pub const DEMO_GRANT_DAYS: i64 = 365;
/// Compute slices each demo organisation (and its project) may hold at once: 32 GPUs,
/// the four default simulated nodes of `aion dev`.
pub const DEMO_COMPUTE_SLICES: i64 = 32 * 7;

/// Demo EUR prices of an H100-80GB GPU-hour per organisation kind; preemptible leases
/// get [`DEMO_PREEMPTIBLE_DISCOUNT`] percent off.
pub const DEMO_PRICES: [(&str, &str); 5] = [
    ("academic", "2.40"),
    ("public", "2.60"),
    ("allocator", "2.40"),
    ("startup", "3.20"),
    ("industry", "3.90"),
];
/// Demo discount on preemptible leases, in percent.
pub const DEMO_PREEMPTIBLE_DISCOUNT: &str = "30";

/// What was seeded, for printing.
#[derive(Debug, Default)]
pub struct Seeded {
    /// Slugs of the organisations created.
    pub organizations: Vec<String>,
}

/// Seeds the demo data if there is no organisation yet.
pub async fn demo_if_empty(svc: &Services) -> Result<Seeded> {
    if organizations::Entity::find().count(&svc.db).await? > 0 {
        return Ok(Seeded::default());
    }
    let system = Caller::system("seed");
    let mut seeded = Seeded::default();
    let mut genci = None;
    let mut first_project = None;
    for (kind, price) in DEMO_PRICES {
        let prices = ModelPricesInput {
            gpu_model: DEMO_GPU_MODEL.into(),
            gpu_hour_price: price.into(),
            profile_prices: Vec::new(),
        };
        let list = NewPriceList::parse(
            PriceScope::parse(Some(kind), None),
            &format!("Demo {kind} prices"),
            None,
            svc.clock.now(),
            Some(DEMO_PREEMPTIBLE_DISCOUNT),
            &[prices],
        )?;
        price_lists::create(svc, &system, list, None).await?;
    }
    for (slug, name, kind, country) in [
        ("genci", "GENCI", "allocator", "FR"),
        ("cnrs", "CNRS", "allocator", "FR"),
    ] {
        let org = orgs::create(
            svc,
            &system,
            NewOrganization::parse(slug, name, kind, Some(country))?,
            None,
        )
        .await?;
        if slug == "genci" {
            genci = Some(org.id);
            let who = demo_identity("gaspard", "genci");
            members::add(
                svc,
                &system,
                Scope::Organization(org.id),
                who,
                "allocator",
                None,
            )
            .await?;
        }
        seeded.organizations.push(org.slug);
    }
    crate::identity::give_platform_role(
        svc,
        &system,
        demo_identity("olga", "aion"),
        crate::authz::PlatformRole::PlatformAdmin,
    )
    .await?;
    let members_orgs = [
        (
            "hyperion-lab",
            "Laboratoire Hyperion",
            "academic",
            "climate-llm",
            "Climate downscaling LLM",
            "alice",
        ),
        (
            "helios-ai",
            "Helios AI",
            "startup",
            "vision-pretrain",
            "Vision model pre-training",
            "bob",
        ),
    ];
    for (slug, name, kind, project_slug, project_name, user) in members_orgs {
        let org = orgs::create(
            svc,
            &system,
            NewOrganization::parse(slug, name, kind, Some("FR"))?,
            None,
        )
        .await?;
        let project = projects::create(
            svc,
            &system,
            org.id,
            NewProject::parse(project_slug, project_name, None)?,
            None,
        )
        .await?;
        let who = demo_identity(user, slug);
        members::add(svc, &system, Scope::Project(project.id), who, "lead", None).await?;
        let limits = QuotaLimits::parse(
            DEMO_COMPUTE_SLICES,
            None,
            Default::default(),
            Default::default(),
        )?;
        quota_settings::set_org(svc, &system, org.id, limits.clone(), None).await?;
        quota_settings::set_project(svc, &system, project.id, limits, None).await?;
        let now = svc.clock.now();
        let grant = NewContractGrant::parse(
            project.id.0,
            DEMO_GPU_MODEL,
            DEMO_GPU_HOURS,
            now,
            now + chrono::Duration::days(DEMO_GRANT_DAYS),
            "demo contract (aion dev)",
        )?;
        grants::create_contract(svc, &system, grant, None).await?;
        first_project.get_or_insert(project.id);
        seeded.organizations.push(org.slug);
    }
    let intensity = crate::carbon::NewCarbonIntensity::parse(
        DEMO_SITE,
        chrono::DateTime::UNIX_EPOCH,
        DEMO_GRAMS_PER_KWH,
        "demo value (aion dev), about the French grid's yearly average",
    )?;
    crate::carbon::create(svc, &system, intensity, None).await?;
    if let (Some(genci), Some(project)) = (genci, first_project) {
        demo_call(svc, &system, genci, project).await?;
    }
    Ok(seeded)
}

/// An open GENCI call with one pending request of the first demo project, so the demo
/// committee member has something to review.
async fn demo_call(
    svc: &Services,
    system: &Caller,
    genci: crate::ids::OrganizationId,
    project: crate::ids::ProjectId,
) -> Result<()> {
    use crate::allocation_requests::{self, NewRequest};
    use crate::call_input::{CallFields, CallState, NewCall};
    let now = svc.clock.now();
    let call = NewCall::parse(CallFields {
        organization_id: genci.0,
        title: "GENCI AI call (demo)",
        description: Some("Demo call of aion dev: GPU-hours on H100-80GB for AI research."),
        gpu_model: DEMO_GPU_MODEL,
        pool_gpu_hours: DEMO_CALL_POOL_GPU_HOURS,
        opens_at: now - chrono::Duration::days(1),
        closes_at: now + chrono::Duration::days(60),
        period_start: now,
        period_end: now + chrono::Duration::days(DEMO_GRANT_DAYS),
    })?;
    let call = crate::calls::create(svc, system, call, None).await?;
    crate::calls::transition(svc, system, call.id, CallState::Open).await?;
    let request = NewRequest::parse(
        project.0,
        2_000,
        "Fine-tuning a climate downscaling model on 30 years of reanalysis data (demo request).",
    )?;
    allocation_requests::file(svc, system, call.id, request, None).await?;
    Ok(())
}

fn demo_identity(subject: &str, org_slug: &str) -> MemberRef {
    MemberRef::Identity {
        issuer: DEMO_ISSUER.into(),
        subject: subject.into(),
        email: Some(format!("{subject}@{org_slug}.example")),
    }
}

/// The user of a demo sign-in (`aion dev` only): one of [`DEMO_USERS`], whose profile
/// (name, e-mail) is refreshed the way an OpenID login refreshes it.
pub async fn demo_user(
    svc: &Services,
    subject: &str,
    request_id: &str,
) -> Result<crate::ids::UserId> {
    let user = DEMO_USERS
        .iter()
        .find(|u| u.subject == subject)
        .ok_or_else(|| crate::Error::invalid("user", "not a demo user"))?;
    let claims = crate::oidc::VerifiedClaims {
        issuer: DEMO_ISSUER.into(),
        subject: user.subject.into(),
        email: None,
        name: Some(user.name.into()),
    };
    crate::identity::upsert_oidc_user(svc, &claims, request_id).await
}
