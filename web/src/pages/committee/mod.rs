//! The allocation committee's panel (`/admin/allocations`): the calls of the
//! organisations a person allocates for (create, open, close), each call's review queue
//! (approve with hours, reject with a reason) and its pool consumption and burn rate.
//! Allocators of an allocating organisation and platform admins only (403 for others;
//! another organisation's call answers 404).

pub mod burn;
pub mod call_form;
pub mod calls;
pub mod consumption;
pub mod decide;
pub mod review;

use actix_web::web;

/// Registers the panel's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/allocations", web::get().to(calls::list))
        .route("/admin/allocations/calls", web::post().to(calls::create))
        .route("/admin/allocations/calls/{id}", web::get().to(review::show))
        .route(
            "/admin/allocations/calls/{id}/open",
            web::post().to(calls::open),
        )
        .route(
            "/admin/allocations/calls/{id}/close",
            web::post().to(calls::close),
        )
        .route(
            "/admin/allocations/requests/{id}/approve",
            web::post().to(decide::approve),
        )
        .route(
            "/admin/allocations/requests/{id}/reject",
            web::post().to(decide::reject),
        );
}
