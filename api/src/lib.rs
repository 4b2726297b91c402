//! The Aion `/v1` REST API on actix-web: routes, authentication extractors,
//! problem+json errors and the OpenAPI 3.1 document.

pub mod convert;
pub mod error;
pub mod extract;
pub mod node_auth;
pub mod routes;

use actix_web::{HttpRequest, HttpResponse, web};
use aion_services::Services;
use error::ApiError;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

/// Shared state of every handler.
pub struct AppState {
    /// The domain layer.
    pub services: Services,
}

/// Largest JSON body accepted (bodies here are small; this bounds memory per request).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// The OpenAPI document, generated from the handlers and wire types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Aion API", description = "Control plane of a sovereign GPU cloud: MIG slices under quotas and budgets."),
    modifiers(&BearerAuth),
    paths(
        routes::health::healthz, routes::health::readyz, routes::me::get_me,
        routes::organizations::create, routes::organizations::list, routes::organizations::get,
        routes::organizations::update, routes::organizations::remove,
        routes::projects::create, routes::projects::list, routes::projects::get,
        routes::projects::update, routes::projects::remove,
        routes::members::add_org, routes::members::list_org, routes::members::update_org, routes::members::remove_org,
        routes::members::add_project, routes::members::list_project, routes::members::update_project, routes::members::remove_project,
        routes::tokens::create_org, routes::tokens::list_org, routes::tokens::revoke_org,
        routes::tokens::create_project, routes::tokens::list_project, routes::tokens::revoke_project,
        routes::audit::list,
        routes::leases::create, routes::leases::list, routes::leases::get, routes::leases::release,
        routes::calls::create, routes::calls::list, routes::calls::get, routes::calls::update,
        routes::calls::open, routes::calls::close,
        routes::allocation_requests::create, routes::allocation_requests::list,
        routes::allocation_requests::get, routes::allocation_requests::withdraw,
        routes::allocation_requests::approve, routes::allocation_requests::reject,
        routes::grants::create, routes::grants::get, routes::grants::list_project,
        routes::grants::list_ledger, routes::grants::adjust,
        routes::quotas::get_org, routes::quotas::put_org,
        routes::quotas::get_project, routes::quotas::put_project,
        routes::nodes::create_join_token, routes::nodes::list_join_tokens, routes::nodes::revoke_join_token,
        routes::nodes::list, routes::nodes::get, routes::nodes::cordon, routes::nodes::uncordon, routes::nodes::drain,
        routes::agent::register, routes::agent::renew, routes::agent::desired_state, routes::agent::status,
        routes::usage::report_usage, routes::usage::report_events, routes::usage::project, routes::usage::lease,
        routes::usage::organization, routes::usage::create_carbon_intensity, routes::usage::list_carbon_intensities,
        routes::price_lists::create, routes::price_lists::list, routes::price_lists::get,
        routes::price_lists::edit, routes::price_lists::withdraw, routes::price_lists::for_organization,
        routes::invoices::list, routes::invoices::month_documents, routes::invoices::finalize,
        routes::invoices::get, routes::invoices::credit_note,
    ),
    tags(
        (name = "organizations", description = "Consortium members and allocators"),
        (name = "projects", description = "Units of budget, quota and billing"),
        (name = "members", description = "Roles of users in organisations and projects"),
        (name = "tokens", description = "API tokens for partners and automation"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "leases", description = "MIG slices held by projects"),
        (name = "allocation", description = "Calls, allocation requests and grants of GPU-hours"),
        (name = "quotas", description = "Caps on what organisations and projects hold at once"),
        (name = "nodes", description = "The node registry: join tokens, nodes, cordon and drain"),
        (name = "agent", description = "The node agent protocol (node credentials only)"),
        (name = "usage", description = "Measured usage of projects and leases"),
        (name = "pricing", description = "Versioned price lists in EUR, per organisation kind or per contract"),
        (name = "billing", description = "Monthly invoices, statements of grant-funded usage and credit notes"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An Aion API token (`aion_…`) or an OIDC access token (JWT)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The simulated-clock routes of `aion dev --dev-clock-start` (never of `aion serve`).
pub fn configure_dev_clock(cfg: &mut web::ServiceConfig) {
    cfg.service(routes::dev_clock::now)
        .service(routes::dev_clock::advance);
}

/// Registers every route of the API, the documentation and the error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use routes::*;
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_JSON_BYTES)
            .error_handler(|err, _| {
                ApiError::bad_request(format!("invalid JSON body: {err}")).into()
            }),
    )
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::from(aion_services::Error::invalid("path", format!("{err}"))).into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::from(aion_services::Error::invalid("query", format!("{err}"))).into()
    }))
    .service(health::healthz)
    .service(health::readyz)
    .service(me::get_me)
    .service(organizations::create)
    .service(organizations::list)
    .service(organizations::get)
    .service(organizations::update)
    .service(organizations::remove)
    .service(projects::create)
    .service(projects::list)
    .service(projects::get)
    .service(projects::update)
    .service(projects::remove)
    .service(members::add_org)
    .service(members::list_org)
    .service(members::update_org)
    .service(members::remove_org)
    .service(members::add_project)
    .service(members::list_project)
    .service(members::update_project)
    .service(members::remove_project)
    .service(tokens::create_org)
    .service(tokens::list_org)
    .service(tokens::revoke_org)
    .service(tokens::create_project)
    .service(tokens::list_project)
    .service(tokens::revoke_project)
    .service(audit::list)
    .service(leases::create)
    .service(leases::list)
    .service(leases::get)
    .service(leases::release)
    .service(calls::create)
    .service(calls::list)
    .service(calls::get)
    .service(calls::update)
    .service(calls::open)
    .service(calls::close)
    .service(allocation_requests::create)
    .service(allocation_requests::list)
    .service(allocation_requests::get)
    .service(allocation_requests::withdraw)
    .service(allocation_requests::approve)
    .service(allocation_requests::reject)
    .service(grants::create)
    .service(grants::get)
    .service(grants::list_project)
    .service(grants::list_ledger)
    .service(grants::adjust)
    .service(quotas::get_org)
    .service(quotas::put_org)
    .service(quotas::get_project)
    .service(quotas::put_project)
    .service(nodes::create_join_token)
    .service(nodes::list_join_tokens)
    .service(nodes::revoke_join_token)
    .service(nodes::list)
    .service(nodes::get)
    .service(nodes::cordon)
    .service(nodes::uncordon)
    .service(nodes::drain)
    .service(agent::register)
    .service(agent::renew)
    .service(agent::desired_state)
    .service(agent::status)
    .service(usage::report_usage)
    .service(usage::report_events)
    .service(usage::project)
    .service(usage::lease)
    .service(usage::organization)
    .service(usage::create_carbon_intensity)
    .service(usage::list_carbon_intensities)
    .service(price_lists::create)
    .service(price_lists::list)
    .service(price_lists::get)
    .service(price_lists::edit)
    .service(price_lists::withdraw)
    .service(price_lists::for_organization)
    .service(invoices::list)
    .service(invoices::finalize)
    .service(invoices::month_documents)
    .service(invoices::get)
    .service(invoices::credit_note)
    .service(SwaggerUi::new("/v1/docs/{_:.*}").url("/v1/openapi.json", ApiDoc::openapi()));
}

/// Answer for paths and methods that match no route.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "Not found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
