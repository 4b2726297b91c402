//! The researcher console beyond the dashboard: a project's page (grants, leases, the
//! slice request form), a lease's page, allocation requests, members and API tokens of a
//! project, and an organisation's billing documents.

pub mod allocation_request;
pub mod billing;
pub mod billing_view;
pub mod lease;
pub mod member_form;
pub mod members;
pub mod project;
pub mod request_form;
pub mod tokens;

use actix_web::web;

/// Registers the console's pages and forms.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/projects/{id}", web::get().to(project::show))
        .route(
            "/console/projects/{id}/leases",
            web::post().to(project::create_lease),
        )
        .route("/console/leases/{id}", web::get().to(lease::show))
        .route(
            "/console/leases/{id}/release",
            web::post().to(lease::release),
        )
        .route(
            "/console/projects/{id}/allocation-requests",
            web::get().to(allocation_request::show),
        )
        .route(
            "/console/projects/{id}/allocation-requests",
            web::post().to(allocation_request::file),
        )
        .route(
            "/console/projects/{id}/allocation-requests/{request}/withdraw",
            web::post().to(allocation_request::withdraw),
        )
        .route(
            "/console/projects/{id}/members",
            web::get().to(members::show),
        )
        .route(
            "/console/projects/{id}/members",
            web::post().to(members::add),
        )
        .route(
            "/console/projects/{id}/members/{user}/role",
            web::post().to(members::set_role),
        )
        .route(
            "/console/projects/{id}/members/{user}/remove",
            web::post().to(members::remove),
        )
        .route("/console/projects/{id}/tokens", web::get().to(tokens::show))
        .route(
            "/console/projects/{id}/tokens",
            web::post().to(tokens::create),
        )
        .route(
            "/console/projects/{id}/tokens/{token}/revoke",
            web::post().to(tokens::revoke),
        )
        .route(
            "/console/organizations/{id}/billing",
            web::get().to(billing::show),
        )
        .route(
            "/console/billing/documents/{id}",
            web::get().to(billing::document),
        )
        .route(
            "/console/billing/documents/{id}/csv",
            web::get().to(billing::csv),
        )
        .route(
            "/console/billing/documents/{id}/print",
            web::get().to(billing::print),
        );
}
