//! `/v1/price-lists` and `/v1/organizations/{id}/price-list`: versioned prices in EUR.

use crate::AppState;
use crate::convert;
use crate::error::ApiError;
use crate::extract::{Authenticated, IdemKey};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use aion_api_types as wire;
use aion_api_types::{PriceListCreate, PriceListPage, Problem};
use aion_services::pagination::PageRequest;
use aion_services::price_lists::{self, ListFilter};
use aion_services::pricing::{ModelPricesInput, NewPriceList, PriceList, PriceScope};
use aion_services::values::OrganizationKind;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// Domain version → wire version.
fn price_list(l: PriceList) -> wire::PriceList {
    let (organization_kind, organization_id) = match l.scope {
        PriceScope::OrganizationKind(k) => (Some(convert::kind(k)), None),
        PriceScope::Organization(o) => (None, Some(o.0)),
    };
    wire::PriceList {
        id: l.id.0,
        organization_kind,
        organization_id,
        name: l.name,
        currency: l.currency,
        effective_from: l.effective_from,
        preemptible_discount_percent: l.preemptible_discount_percent.get().to_string(),
        entries: l
            .entries
            .into_iter()
            .map(|e| wire::PriceListEntry {
                gpu_model: e.gpu_model.name().to_owned(),
                gpu_hour_price: e.gpu_hour_price.get().to_string(),
                profile_prices: e
                    .profile_prices
                    .into_iter()
                    .map(|(profile, price)| wire::ProfilePrice {
                        profile,
                        price: price.get().to_string(),
                    })
                    .collect(),
            })
            .collect(),
        created_by: l.created_by,
        created_at: l.created_at,
    }
}

/// Publishes a price list version (platform admins). It may not take effect in the past.
#[utoipa::path(tag = "pricing", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = PriceListCreate,
    responses(
        (status = 201, body = wire::PriceList),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ))]
#[post("/v1/price-lists")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    idem: IdemKey,
    body: web::Json<PriceListCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let entries: Vec<ModelPricesInput> = b
        .entries
        .into_iter()
        .map(|e| ModelPricesInput {
            gpu_model: e.gpu_model,
            gpu_hour_price: e.gpu_hour_price,
            profile_prices: e
                .profile_prices
                .into_iter()
                .map(|p| (p.profile, p.price))
                .collect(),
        })
        .collect();
    let cmd = NewPriceList::parse(
        PriceScope::parse(b.organization_kind.as_deref(), b.organization_id),
        &b.name,
        b.currency.as_deref(),
        b.effective_from,
        b.preemptible_discount_percent.as_deref(),
        &entries,
    )?;
    let version = price_lists::create(&state.services, &caller, cmd, idem.get()).await?;
    Ok(HttpResponse::Created().json(price_list(version)))
}

/// `?organization_kind=&organization_id=&limit=&cursor=` of the price list index.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PriceListQuery {
    /// Only the versions of this organisation kind.
    pub organization_kind: Option<String>,
    /// Only the contract versions of this organisation.
    pub organization_id: Option<Uuid>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists the price list versions the caller may see, oldest published first.
#[utoipa::path(tag = "pricing", security(("bearer" = [])), params(PriceListQuery), responses(
    (status = 200, body = PriceListPage),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/price-lists")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    q: web::Query<PriceListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = ListFilter {
        organization_kind: q
            .organization_kind
            .as_deref()
            .map(|k| OrganizationKind::parse("organization_kind", k))
            .transpose()?,
        organization_id: q.organization_id.map(Into::into),
    };
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = price_lists::list(&state.services, &caller, filter, &page).await?;
    Ok(HttpResponse::Ok().json(PriceListPage {
        items: page.items.into_iter().map(price_list).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Reads a price list version.
#[utoipa::path(tag = "pricing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = wire::PriceList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/price-lists/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let version = price_lists::get(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(price_list(version)))
}

/// Always refused (409): versions are never edited. Publish a successor, or withdraw a
/// version that has not taken effect yet.
#[utoipa::path(tag = "pricing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[patch("/v1/price-lists/{id}")]
pub async fn edit(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let version = price_lists::edit(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(price_list(version)))
}

/// Withdraws a version before it takes effect (platform admins); 409 once it has.
#[utoipa::path(tag = "pricing", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[delete("/v1/price-lists/{id}")]
pub async fn withdraw(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    price_lists::withdraw(&state.services, &caller, id.into_inner().into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?at=` of the organisation's price list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant (RFC 3339); default now.
    pub at: Option<DateTime<Utc>>,
}

/// The version that prices an organisation at an instant: its contract list in effect,
/// else its kind's.
#[utoipa::path(tag = "pricing", security(("bearer" = [])), params(("id" = Uuid, Path), AtQuery), responses(
    (status = 200, body = wire::PriceList),
    (status = "4XX", body = Problem, content_type = "application/problem+json"),
))]
#[get("/v1/organizations/{id}/price-list")]
pub async fn for_organization(
    state: web::Data<AppState>,
    caller: Authenticated,
    id: web::Path<Uuid>,
    q: web::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let version =
        price_lists::for_organization(&state.services, &caller, id.into_inner().into(), q.at)
            .await?;
    Ok(HttpResponse::Ok().json(price_list(version)))
}
