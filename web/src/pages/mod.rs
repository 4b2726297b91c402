//! The pages: the researcher console (`/console`), the allocation committee's panel
//! (`/admin/allocations`) and the operators' panel (`/admin`). Handlers stay thin: they
//! call the domain functions with the session's caller (the same authorisation as the
//! API) and render a template.

pub mod admin;
pub mod dashboard;

use actix_web::web;

/// Registers every page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(dashboard::show));
    admin::configure(cfg);
}
