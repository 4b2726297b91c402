//! `/v1/dev/clock`: the simulated clock of `aion dev --dev-clock-start …`, which moves
//! only when a platform admin advances it (billing simulations run a month in seconds).
//! These routes exist only in that mode; `aion serve` never registers them.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpResponse, get, post, web};
use aion_services::Error;
use serde::Deserialize;
use serde_json::json;

/// Longest single step: a year.
const MAX_STEP_S: i64 = 366 * 24 * 3600;

/// Body of `POST /v1/dev/clock/advance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    /// Seconds to move forward, 1 to one year.
    pub seconds: i64,
}

fn admin_only(caller: &Authenticated) -> Result<(), ApiError> {
    caller.require(true, caller.is_platform_admin(), "clock")?;
    Ok(())
}

/// The simulated time.
#[get("/v1/dev/clock")]
pub async fn now(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller)?;
    Ok(HttpResponse::Ok().json(json!({"now": state.services.clock.now()})))
}

/// Moves the simulated time forward and wakes the scheduler, which then ends what is due.
#[post("/v1/dev/clock/advance")]
pub async fn advance(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: web::Json<Advance>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller)?;
    if !(1..=MAX_STEP_S).contains(&body.seconds) {
        return Err(Error::invalid("seconds", format!("must be from 1 to {MAX_STEP_S}")).into());
    }
    let svc = &state.services;
    svc.clock.advance(chrono::Duration::seconds(body.seconds));
    svc.events.wake_scheduler();
    Ok(HttpResponse::Ok().json(json!({"now": svc.clock.now()})))
}
