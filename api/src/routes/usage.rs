//! Usage and enforcement reports: agents post usage batches and enforcement events
//! (`/v1/agent/usage`, `/v1/agent/events`, node credential only); tenants read usage per
//! organisation, project and lease (`/v1/organizations/{id}/usage`, …), with the CO2e of
//! the energy at each site's grid intensity (`/v1/carbon-intensities`).

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use crate::node_auth::NodeAuthenticated;
use actix_web::{HttpResponse, get, post, web};
use aion_api_types as wire;
use aion_api_types::{
    AgentEventBatch, AgentEventsAck, CarbonIntensity, CarbonIntensityCreate, CarbonIntensityList,
    Problem, UsageAck, UsageBatch, UsageReport,
};
use aion_services::agent_events::{self, RawEvent};
use aion_services::carbon;
use aion_services::usage::{self, RawUsageRecord};
use aion_services::usage_report::{self, Totals, UsageQuery};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Stores a batch of usage records of leases placed on this node; a record already
/// stored with the same figures counts as a duplicate, with other figures it is a conflict.
#[utoipa::path(tag = "agent", security(("bearer" = [])), request_body = UsageBatch,
    responses((status = 200, body = UsageAck), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agent/usage")]
pub async fn report_usage(
    state: web::Data<AppState>,
    node: NodeAuthenticated,
    body: web::Json<UsageBatch>,
) -> Result<HttpResponse, ApiError> {
    let records = body
        .into_inner()
        .records
        .into_iter()
        .map(|r| RawUsageRecord {
            lease_id: r.lease_id,
            sequence: r.sequence,
            interval_start: r.interval_start,
            interval_end: r.interval_end,
            allocated_seconds: r.allocated_seconds,
            sm_utilisation_pct: r.sm_utilisation_pct,
            memory_used_mib: r.memory_used_mib,
            energy_mj: r.energy_mj,
        })
        .collect();
    let batch = usage::UsageBatch::parse(records, state.services.clock.now())?;
    let out = usage::record_batch(&state.services, node.auth, batch).await?;
    Ok(HttpResponse::Ok().json(UsageAck {
        accepted: out.accepted,
        duplicates: out.duplicates,
    }))
}

/// Audits a batch of enforcement events of this node, each once per `event_id`.
#[utoipa::path(tag = "agent", security(("bearer" = [])), request_body = AgentEventBatch,
    responses((status = 200, body = AgentEventsAck), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agent/events")]
pub async fn report_events(
    state: web::Data<AppState>,
    node: NodeAuthenticated,
    body: web::Json<AgentEventBatch>,
) -> Result<HttpResponse, ApiError> {
    let raw = body
        .into_inner()
        .events
        .into_iter()
        .map(|e| RawEvent {
            event_id: e.event_id,
            kind: e.kind,
            occurred_at: e.occurred_at,
            lease_id: e.lease_id,
            gpu_uuid: e.gpu_uuid,
            mig_device_uuid: e.mig_device_uuid,
            profile_id: e.profile_id,
            start: e.start,
            pid: e.pid,
            signal: e.signal,
            reason: e.reason,
            error: e.error,
        })
        .collect();
    let events = agent_events::parse_batch(raw, state.services.clock.now())?;
    let out = agent_events::record(&state.services, node.auth, events, &node.request_id).await?;
    Ok(HttpResponse::Ok().json(AgentEventsAck {
        recorded: out.recorded,
        duplicates: out.duplicates,
    }))
}

/// `?from=&to=&granularity=&by=` of usage reports.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Start of the span (RFC 3339); default 30 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End of the span (RFC 3339); default now.
    pub to: Option<DateTime<Utc>>,
    /// `hour`, `day` (default) or `month`, in UTC.
    pub granularity: Option<String>,
    /// `profile` to split each bucket by profile.
    pub by: Option<String>,
}

impl UsageParams {
    fn parse(&self, now: DateTime<Utc>) -> Result<UsageQuery, aion_services::Error> {
        UsageQuery::parse(
            self.from,
            self.to,
            self.granularity.as_deref(),
            self.by.as_deref(),
            now,
        )
    }
}

/// Usage of a project: allocated time, GPU-hours, energy and utilisation per bucket.
#[utoipa::path(tag = "usage", security(("bearer" = [])), params(("id" = Uuid, Path), UsageParams),
    responses((status = 200, body = UsageReport), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/projects/{id}/usage")]
pub async fn project(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<UsageParams>,
) -> Result<HttpResponse, ApiError> {
    let query = q.parse(state.services.clock.now())?;
    let report =
        usage_report::project_usage(&state.services, &caller, id.into_inner().into(), query)
            .await?;
    Ok(HttpResponse::Ok().json(to_wire(report)))
}

/// Usage of an organisation (all its projects): allocated time, GPU-hours, energy and
/// CO2e per bucket.
#[utoipa::path(tag = "usage", security(("bearer" = [])), params(("id" = Uuid, Path), UsageParams),
    responses((status = 200, body = UsageReport), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/organizations/{id}/usage")]
pub async fn organization(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<UsageParams>,
) -> Result<HttpResponse, ApiError> {
    let query = q.parse(state.services.clock.now())?;
    let report =
        usage_report::organization_usage(&state.services, &caller, id.into_inner().into(), query)
            .await?;
    Ok(HttpResponse::Ok().json(to_wire(report)))
}

/// Records a site's grid carbon intensity from a date on (platform admins).
#[utoipa::path(tag = "usage", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = CarbonIntensityCreate,
    responses((status = 201, body = CarbonIntensity), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/carbon-intensities")]
pub async fn create_carbon_intensity(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<CarbonIntensityCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let cmd =
        carbon::NewCarbonIntensity::parse(&b.site, b.effective_from, b.grams_per_kwh, &b.source)?;
    let value = carbon::create(&state.services, &caller, cmd, idem.get()).await?;
    Ok(HttpResponse::Created().json(carbon_wire(value)))
}

/// `?site=` and paging of the intensity list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CarbonListParams {
    /// Only this site.
    pub site: Option<String>,
    /// Page size.
    pub limit: Option<u64>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Lists grid carbon intensities (any signed-in caller).
#[utoipa::path(tag = "usage", security(("bearer" = [])), params(CarbonListParams),
    responses((status = 200, body = CarbonIntensityList), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/carbon-intensities")]
pub async fn list_carbon_intensities(
    state: web::Data<AppState>,
    _caller: Authenticated,
    q: web::Query<CarbonListParams>,
) -> Result<HttpResponse, ApiError> {
    let page = aion_services::pagination::PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = carbon::list(&state.services, q.site.as_deref(), &page).await?;
    Ok(HttpResponse::Ok().json(CarbonIntensityList {
        items: page.items.into_iter().map(carbon_wire).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn carbon_wire(c: carbon::CarbonIntensity) -> CarbonIntensity {
    CarbonIntensity {
        id: c.id,
        site: c.site,
        effective_from: c.effective_from,
        grams_per_kwh: c.grams_per_kwh,
        source: c.source,
        created_by: c.created_by,
        created_at: c.created_at,
    }
}

/// Usage of one lease, per bucket.
#[utoipa::path(tag = "usage", security(("bearer" = [])), params(("id" = Uuid, Path), UsageParams),
    responses((status = 200, body = UsageReport), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/leases/{id}/usage")]
pub async fn lease(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<UsageParams>,
) -> Result<HttpResponse, ApiError> {
    let query = q.parse(state.services.clock.now())?;
    let report =
        usage_report::lease_usage(&state.services, &caller, id.into_inner().into(), query).await?;
    Ok(HttpResponse::Ok().json(to_wire(report)))
}

fn totals(t: &Totals) -> wire::UsageTotals {
    wire::UsageTotals {
        allocated_seconds: t.allocated_seconds,
        gpu_hours: t.gpu_hours(),
        energy_wh: t.energy_wh(),
        sm_utilisation_pct: t.sm_utilisation_pct,
        peak_memory_used_mib: t.peak_memory_used_mib,
        records: t.records,
        co2e_g: t.co2e.grams(),
        energy_without_intensity_wh: t.co2e.unvalued_energy_mj as f64 / 3_600_000.0,
    }
}

fn to_wire(r: usage_report::UsageReport) -> UsageReport {
    UsageReport {
        from: r.from,
        to: r.to,
        granularity: r.granularity.as_str().into(),
        total: totals(&r.total),
        buckets: r
            .buckets
            .iter()
            .map(|b| wire::UsageBucket {
                start: b.start,
                end: b.end,
                profile: b.profile.clone(),
                totals: totals(&b.totals),
            })
            .collect(),
    }
}
