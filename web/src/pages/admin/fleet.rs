//! `GET /admin/fleet`: fleet occupancy per site and GPU model (compute slices used,
//! free and unavailable, fragmentation) with a picture of every GPU and a table of the
//! same figures.

use super::require_operator;
use crate::WebState;
use crate::chrome::{Chrome, html};
use crate::error::WebResult;
use crate::fleet_picture;
use crate::format;
use crate::i18n::Tr;
use crate::session::Session;
use actix_web::{HttpResponse, web};
use aion_services::fleet_occupancy::{self, Occupancy};
use askama::Template;

/// One (site, model) group as the page shows it.
struct Group {
    anchor: String,
    site: String,
    model: String,
    nodes: u32,
    gpus: u32,
    used: u64,
    free: u64,
    unavailable: u64,
    total: u64,
    used_pct: u32,
    stranded: u64,
    fragmentation: String,
    empty_gpus: u32,
    /// GPUs with 0..=7 slices used.
    by_used: Vec<(u8, u32, &'static str)>,
    svg: String,
    capped: bool,
}

fn group(t: Tr, i: usize, o: Occupancy) -> Group {
    let anchor = format!("fleet-{i}");
    let title = format!("{} · {}: {} GPUs", o.site, o.gpu_model, o.gpus);
    let desc = format!(
        "{}: {} / {} {}; {}: {}; {}: {}; {}: {} %",
        t.s("admin.fleet.used"),
        o.used,
        o.total,
        t.s("admin.fleet.slices"),
        t.s("admin.fleet.free"),
        o.free,
        t.s("admin.fleet.unavailable"),
        o.unavailable,
        t.s("admin.fleet.fragmentation"),
        format::decimal(t, o.fragmentation_pct(), 0),
    );
    let svg = fleet_picture::grid(&anchor, &o.cells, &title, &desc);
    Group {
        site: o.site.clone(),
        model: o.gpu_model.clone(),
        nodes: o.nodes,
        gpus: o.gpus,
        used: o.used,
        free: o.free,
        unavailable: o.unavailable,
        total: o.total,
        used_pct: format::percent(o.used as i64, o.total as i64),
        stranded: o.stranded,
        fragmentation: format::decimal(t, o.fragmentation_pct(), 1),
        empty_gpus: o.empty_gpus,
        by_used: (0u8..=7)
            .map(|n| (n, o.by_used[usize::from(n)], fleet_picture::colour(n)))
            .collect(),
        capped: o.cells.len() > fleet_picture::MAX_CELLS,
        svg,
        anchor,
    }
}

#[derive(Template)]
#[template(path = "admin/fleet.html")]
struct Page {
    c: Chrome,
    can_act: bool,
    groups: Vec<Group>,
    legend: Vec<(u8, &'static str)>,
    stroke: &'static str,
    max_cells: usize,
}

/// `GET /admin/fleet`.
pub async fn show(s: Session, state: web::Data<WebState>) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let fleet = fleet_occupancy::read(&state.services, &s.caller).await?;
    let groups = fleet
        .groups
        .into_iter()
        .enumerate()
        .map(|(i, o)| group(s.t, i, o))
        .collect();
    html(
        Page {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            groups,
            legend: (0u8..=7).map(|n| (n, fleet_picture::colour(n))).collect(),
            stroke: fleet_picture::UNAVAILABLE_STROKE,
            max_cells: fleet_picture::MAX_CELLS,
        }
        .render(),
    )
}
