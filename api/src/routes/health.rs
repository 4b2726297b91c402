//! `/healthz` (the process answers) and `/readyz` (database reachable, migrations current).

use crate::AppState;
use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use aion_api_types::{Health, Problem};

/// Liveness: the process answers.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        pending_migrations: vec![],
    })
}

/// Readiness: the database answers and no migration is pending.
#[utoipa::path(tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    aion_services::db::ping(&state.services.db).await?;
    let pending = aion_services::db::pending_migrations(&state.services.db).await?;
    if !pending.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "migrations_pending",
            "Migrations pending",
            format!(
                "{} migration(s) not applied: {}; run `aion migrate`",
                pending.len(),
                pending.join(", ")
            ),
        ));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".into(),
        pending_migrations: vec![],
    }))
}
