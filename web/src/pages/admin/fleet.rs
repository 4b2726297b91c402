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
    nodes: String,
    gpus: String,
    used: String,
    free: String,
    unavailable: String,
    total: String,
    used_pct: u32,
    stranded: String,
    fragmentation: String,
    empty_gpus: String,
    /// GPUs with 0..=7 slices used.
    by_used: Vec<(u8, u32, &'static str)>,
    svg: String,
    /// GPUs drawn, fewer than all of them when `capped`.
    drawn: usize,
    capped: bool,
}

/// Most GPUs drawn on the whole page (about 80 bytes each): past it, groups keep their
/// tables but lose their pictures, so a fleet of tens of thousands of GPUs stays a
/// page a browser opens quickly.
const PAGE_CELLS: usize = 4 * fleet_picture::MAX_CELLS;

/// A count with grouped thousands.
fn count(t: Tr, n: u64) -> String {
    format::decimal(t, n as f64, 0)
}

fn group(t: Tr, i: usize, o: Occupancy, budget: &mut usize) -> Group {
    let anchor = format!("fleet-{i}");
    let title = format!(
        "{} · {}: {} {}",
        o.site,
        o.gpu_model,
        count(t, o.gpus.into()),
        t.s("admin.fleet.gpus")
    );
    let desc = format!(
        "{}: {} / {} {}; {}: {}; {}: {}; {}: {} %",
        t.s("admin.fleet.used"),
        count(t, o.used),
        count(t, o.total),
        t.s("admin.fleet.slices"),
        t.s("admin.fleet.free"),
        count(t, o.free),
        t.s("admin.fleet.unavailable"),
        count(t, o.unavailable),
        t.s("admin.fleet.fragmentation"),
        format::decimal(t, o.fragmentation_pct(), 0),
    );
    let drawn = o.cells.len().min(*budget).min(fleet_picture::MAX_CELLS);
    *budget -= drawn;
    let svg = if drawn == 0 {
        String::new()
    } else {
        fleet_picture::grid(&anchor, &o.cells[..drawn], &title, &desc)
    };
    Group {
        site: o.site.clone(),
        model: o.gpu_model.clone(),
        nodes: count(t, o.nodes.into()),
        gpus: count(t, o.gpus.into()),
        used: count(t, o.used),
        free: count(t, o.free),
        unavailable: count(t, o.unavailable),
        total: count(t, o.total),
        used_pct: format::percent(o.used as i64, o.total as i64),
        stranded: count(t, o.stranded),
        fragmentation: format::decimal(t, o.fragmentation_pct(), 1),
        empty_gpus: count(t, o.empty_gpus.into()),
        by_used: (0u8..=7)
            .map(|n| (n, o.by_used[usize::from(n)], fleet_picture::colour(n)))
            .collect(),
        capped: drawn < o.cells.len(),
        drawn,
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
}

/// `GET /admin/fleet`.
pub async fn show(s: Session, state: web::Data<WebState>) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let fleet = fleet_occupancy::read(&state.services, &s.caller).await?;
    let mut budget = PAGE_CELLS;
    let groups = fleet
        .groups
        .into_iter()
        .enumerate()
        .map(|(i, o)| group(s.t, i, o, &mut budget))
        .collect();
    html(
        Page {
            c: Chrome::new(&s, "admin"),
            can_act: s.caller.is_platform_admin(),
            groups,
            legend: (0u8..=7).map(|n| (n, fleet_picture::colour(n))).collect(),
            stroke: fleet_picture::UNAVAILABLE_STROKE,
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;
    use aion_services::fleet_occupancy::GpuFill;

    fn occupancy(gpus: usize) -> Occupancy {
        Occupancy {
            site: "paris".into(),
            gpu_model: "H100-80GB".into(),
            nodes: 1,
            gpus: gpus as u32,
            total: 7 * gpus as u64,
            used: 0,
            free: 7 * gpus as u64,
            unavailable: 0,
            stranded: 0,
            empty_gpus: gpus as u32,
            by_used: [gpus as u32, 0, 0, 0, 0, 0, 0, 0],
            cells: vec![
                GpuFill {
                    used: 0,
                    placeable: true
                };
                gpus
            ],
        }
    }

    #[test]
    fn pictures_stop_once_the_page_budget_is_spent_but_tables_stay() {
        let t = Tr { lang: Lang::En };
        let mut budget = 10;
        let first = group(t, 0, occupancy(8), &mut budget);
        let second = group(t, 1, occupancy(8), &mut budget);
        let third = group(t, 2, occupancy(8), &mut budget);
        assert_eq!((first.drawn, first.capped), (8, false));
        assert_eq!((second.drawn, second.capped), (2, true));
        assert!(third.svg.is_empty() && third.capped);
        assert_eq!(third.by_used[0].1, 8);
    }
}
