//! `/console/leases/{id}`: a lease's state (refreshed live), where its slices run, the
//! budget it holds, how to use it; and its release.

use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms;
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::ids::LeaseId;
use aion_services::leases;
use aion_services::researcher::{self, PlacementView};
use aion_services::web_sessions::safe_return_to;
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// The CDI kind the node agent publishes its per-lease device specs under
/// (`aion-agent`'s `cdi::CDI_KIND`); a lease's device is named by the lease id.
pub const CDI_KIND: &str = "aion.eu/mig";

/// The fully qualified CDI device name of a lease (`aion.eu/mig=<lease id>`), as
/// container runtimes take it (`--device`).
pub fn cdi_device(lease: &str) -> String {
    format!("{CDI_KIND}={lease}")
}

/// The command that runs a program on the lease's slices from its node.
pub fn exec_command(lease: &str) -> String {
    format!("aion agent exec --lease {lease} -- nvidia-smi")
}

/// A timestamp of the lease's life.
pub struct Stamp {
    /// Text key of the event.
    pub label: &'static str,
    /// When, or a dash.
    pub at: String,
}

#[derive(Template)]
#[template(path = "console/lease.html")]
struct LeasePage {
    c: Chrome,
    id: String,
    project_id: String,
    what: String,
    gpu_model: String,
    state: &'static str,
    live: bool,
    can_use: bool,
    reason: Option<String>,
    stamps: Vec<Stamp>,
    placements: Vec<PlacementView>,
    site: String,
    same_node: bool,
    preemptible: bool,
    duration: String,
    held: String,
    charged: String,
    exec: String,
    cdi: String,
}

/// `?notice=`.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    /// Confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: &[&str] = &["console.lease_requested", "console.lease_released"];

/// `GET /console/leases/{id}`: anyone who may see the lease's project.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<NoticeQuery>,
) -> WebResult<HttpResponse> {
    let detail = researcher::lease_detail(&state.services, &s.caller, LeaseId(*id)).await?;
    let l = detail.lease;
    let t = s.t;
    let id = l.id.to_string();
    let stamps = vec![
        Stamp {
            label: "console.stamp_requested",
            at: format::time(l.created_at),
        },
        Stamp {
            label: "console.stamp_scheduled",
            at: format::maybe_time(l.scheduled_at),
        },
        Stamp {
            label: "console.stamp_active",
            at: format::maybe_time(l.active_at),
        },
        Stamp {
            label: "console.stamp_releasing",
            at: format::maybe_time(l.releasing_at),
        },
        Stamp {
            label: "console.stamp_ended",
            at: format::maybe_time(l.ended_at),
        },
        Stamp {
            label: "console.stamp_ends",
            at: format::maybe_time(l.ends_at),
        },
    ];
    let page = LeasePage {
        c: Chrome::new(&s, "console").with_notice(q.notice.as_deref(), NOTICES),
        project_id: l.project_id.to_string(),
        what: format!("{} × {}", l.count, l.profile),
        gpu_model: l.gpu_model,
        state: l.state.as_str(),
        live: l.state.is_live(),
        // Viewers see the lease but may not release it (the domain refuses them too).
        can_use: leases::can_use(&s.caller, l.organization_id, l.project_id),
        reason: l.state_reason,
        stamps,
        placements: detail.placements,
        site: l.site.unwrap_or_default(),
        same_node: l.same_node,
        preemptible: l.preemptible,
        duration: format::duration(l.duration_s),
        held: format::gpu_hours(t, l.held_slice_seconds),
        charged: format::gpu_hours(t, l.charged_slice_seconds),
        exec: exec_command(&id),
        cdi: cdi_device(&id),
        id,
    };
    html(page.render())
}

/// The release form: where to go back to.
#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    /// A path of this site (the page the button was on).
    pub back: Option<String>,
}

/// `POST /console/leases/{id}/release`: releases a lease (project members and leads,
/// organisation admins; the domain decides), then back to the page it came from.
pub async fn release(
    post: FormPost<ReleaseForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let lease = leases::release(&state.services, &post.session.caller, LeaseId(*id)).await?;
    let back = match post.form.back.as_deref() {
        Some(raw) => safe_return_to(Some(raw)),
        None => format!("/console/leases/{}", lease.id),
    };
    // A stale notice from the page's own query would otherwise repeat.
    let back = strip_notice(&back);
    Ok(see_other(&forms::with_notice(
        &back,
        "console.lease_released",
    )))
}

/// `path` without any `notice=` parameter.
pub fn strip_notice(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("notice=") && !p.is_empty())
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cdi_device_is_the_agents_kind_and_the_lease_id() {
        let id = "0193a5b2-0000-7000-8000-000000000001";
        assert_eq!(cdi_device(id), format!("aion.eu/mig={id}"));
        assert_eq!(
            exec_command(id),
            format!("aion agent exec --lease {id} -- nvidia-smi")
        );
    }

    #[test]
    fn going_back_drops_an_old_notice_but_keeps_filters() {
        assert_eq!(
            strip_notice("/p?state=active&notice=x&cursor=c"),
            "/p?state=active&cursor=c"
        );
        assert_eq!(strip_notice("/p?notice=x"), "/p");
        assert_eq!(strip_notice("/p"), "/p");
    }
}
