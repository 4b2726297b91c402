//! The committee's decisions: approve (hours, possibly fewer than asked) and reject (a
//! reason), posted from the call page; a refused decision shows the page again with the
//! reason next to the request and what was typed.

use super::review::{Failure, render};
use crate::WebState;
use crate::chrome::see_other;
use crate::error::WebResult;
use crate::session::FormPost;
use actix_web::{HttpResponse, http::StatusCode, web};
use aion_services::allocation_requests as requests;
use aion_services::committee;
use aion_services::decisions::{self, Approval, Rejection};
use aion_services::{Error, budget::GpuHours};
use serde::Deserialize;
use uuid::Uuid;

/// The approve and reject forms.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    /// GPU-hours to grant (approve; empty: all that were asked for).
    #[serde(default)]
    pub gpu_hours: String,
    /// The committee's reason (required to reject, optional to approve).
    #[serde(default)]
    pub reason: String,
}

/// The hours typed in the approve form: none when empty (everything asked for).
pub fn hours(raw: &str) -> Result<Option<i64>, Error> {
    let cleaned = raw.trim().replace([' ', '\u{202f}', ','], "");
    if cleaned.is_empty() {
        return Ok(None);
    }
    let h = cleaned
        .parse::<i64>()
        .map_err(|_| Error::invalid("gpu_hours", "must be a whole number of GPU-hours"))?;
    GpuHours::parse("gpu_hours", h)?;
    Ok(Some(h))
}

/// Shows a refused decision next to its request, or fails the page for other errors.
fn refused(e: Error) -> Result<(String, StatusCode), Error> {
    match e {
        Error::Validation(fields) => Ok((
            fields
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; "),
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        Error::Conflict(m) => Ok((m, StatusCode::CONFLICT)),
        Error::QuotaExceeded(m) | Error::BudgetExhausted(m) => {
            Ok((m, StatusCode::UNPROCESSABLE_ENTITY))
        }
        other => Err(other),
    }
}

async fn decide(
    post: FormPost<DecisionForm>,
    state: web::Data<WebState>,
    id: Uuid,
    approve: bool,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    let svc = &state.services;
    let request = requests::get(svc, &s.caller, id.into()).await?;
    // Someone who can see the request without running its call gets the call's 404.
    committee::reviewed_call(svc, &s.caller, request.call_id).await?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let outcome = if approve {
        match hours(&form.gpu_hours).and_then(|h| Approval::parse(h, reason)) {
            Ok(cmd) => decisions::approve(svc, &s.caller, id.into(), cmd)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        match Rejection::parse(&form.reason) {
            Ok(cmd) => decisions::reject(svc, &s.caller, id.into(), cmd)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    };
    match outcome {
        Ok(()) => {
            let notice = if approve {
                "committee.approved"
            } else {
                "committee.rejected"
            };
            Ok(see_other(&format!(
                "/admin/allocations/calls/{}?notice={notice}#queue",
                request.call_id
            )))
        }
        Err(e) => {
            let (message, status) = refused(e)?;
            let failure = Failure {
                request_id: id.to_string(),
                message,
                hours: form.gpu_hours,
                reason: form.reason,
            };
            render(
                &s,
                &state,
                request.call_id,
                None,
                None,
                Some((failure, status)),
            )
            .await
        }
    }
}

/// `POST /admin/allocations/requests/{id}/approve`.
pub async fn approve(
    post: FormPost<DecisionForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    decide(post, state, id.into_inner(), true).await
}

/// `POST /admin/allocations/requests/{id}/reject`.
pub async fn reject(
    post: FormPost<DecisionForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    decide(post, state, id.into_inner(), false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_hours_are_whole_positive_numbers_or_nothing() {
        assert_eq!(hours("").unwrap(), None);
        assert_eq!(hours(" 1 500 ").unwrap(), Some(1500));
        assert_eq!(hours("2,000").unwrap(), Some(2000));
        assert!(hours("1.5").is_err());
        assert!(hours("-3").is_err());
        assert!(hours("many").is_err());
    }
}
