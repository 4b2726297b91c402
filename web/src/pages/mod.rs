//! The pages: the researcher console (`/console`), the allocation committee's panel
//! (`/admin/allocations`) and the operators' panel (`/admin`). Handlers stay thin: they
//! call the domain functions with the session's caller (the same authorisation as the
//! API) and render a template.

pub mod admin;
pub mod committee;
pub mod console;
pub mod dashboard;
pub mod usage;

use actix_web::web;

/// Registers every page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(dashboard::show));
    console::configure(cfg);
    cfg.route("/console/projects/{id}/usage", web::get().to(usage::show));
    committee::configure(cfg);
    admin::configure(cfg);
}
