//! The fleet picture: an SVG grid with one small cell per GPU, coloured by how many of
//! its 7 compute slices live leases use, and outlined when the GPU takes no placements.
//! Drawn on the server as text (every text escaped here), shown with a legend and a
//! table of the same figures for readers who cannot see it.

use crate::charts::escape;
use aion_services::fleet_occupancy::GpuFill;
use std::fmt::Write;

/// Side of a cell, in SVG units.
const CELL: usize = 10;
/// Space between cells.
const GAP: usize = 2;
/// Extra space after every [`GROUP`] cells of a row (one HGX node's GPUs).
const GROUP_GAP: usize = 4;
/// Cells between the extra gaps: the GPUs of one 8-GPU node.
pub const GROUP: usize = 8;
/// Cells per row: eight nodes of eight GPUs.
pub const PER_ROW: usize = 64;
/// Most GPUs drawn in one picture; the table still counts them all.
pub const MAX_CELLS: usize = 8192;
/// Pictures of at most this many GPUs are shown twice as large (a few nodes would
/// otherwise be a thin strip).
const ENLARGE_UP_TO: usize = 1024;

/// Fill colour for `used` compute slices (0..=7), light to dark.
pub fn colour(used: u8) -> &'static str {
    const RAMP: [&str; 8] = [
        "#eef3fb", "#d0def3", "#b1c9ea", "#8fb1df", "#6b96d2", "#4a7bc2", "#2f5fa8", "#163a75",
    ];
    RAMP[usize::from(used.min(7))]
}

/// Outline of GPUs that take no placements (node not ready, or GPU unhealthy).
pub const UNAVAILABLE_STROKE: &str = "#b3261e";

/// Top-left corner of cell `i`.
fn position(i: usize) -> (usize, usize) {
    let (row, col) = (i / PER_ROW, i % PER_ROW);
    let x = col * (CELL + GAP) + (col / GROUP) * GROUP_GAP;
    (x, row * (CELL + GAP))
}

/// Width and height of a picture of `n` cells.
pub fn size(n: usize) -> (usize, usize) {
    let n = n.clamp(1, MAX_CELLS);
    let cols = n.min(PER_ROW);
    let rows = n.div_ceil(PER_ROW);
    let width = cols * (CELL + GAP) + ((cols - 1) / GROUP) * GROUP_GAP;
    (width, rows * (CELL + GAP))
}

/// The SVG of one group's GPUs. `id` makes the title and description ids unique on the
/// page; `title` and `desc` are plain text.
pub fn grid(id: &str, cells: &[GpuFill], title: &str, desc: &str) -> String {
    let shown = &cells[..cells.len().min(MAX_CELLS)];
    let (w, h) = size(shown.len());
    let scale = if shown.len() <= ENLARGE_UP_TO { 2 } else { 1 };
    let (sw, sh) = (w * scale, h * scale);
    let id = escape(id);
    let mut svg = String::with_capacity(2048 + shown.len() * 40);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{sw}" height="{sh}" role="img" aria-labelledby="{id}-t {id}-d"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        escape(title),
        escape(desc)
    );
    // Sixteen cell shapes (7 + 1 fills, placeable or not) are defined once; each GPU
    // is then a short `<use>`, which halves the page of a large fleet.
    svg.push_str("<defs>");
    for used in 0..=7u8 {
        let fill = colour(used);
        let _ = write!(
            svg,
            r#"<rect id="{id}-u{used}" width="{CELL}" height="{CELL}" fill="{fill}"/><rect id="{id}-x{used}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="{UNAVAILABLE_STROKE}" stroke-width="1.2" stroke-dasharray="2 1"/>"#
        );
    }
    svg.push_str("</defs>");
    for (i, cell) in shown.iter().enumerate() {
        let (x, y) = position(i);
        let kind = if cell.placeable { 'u' } else { 'x' };
        let _ = write!(
            svg,
            r##"<use href="#{id}-{kind}{}" x="{x}" y="{y}"/>"##,
            cell.used.min(7)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(used: u8, placeable: bool) -> GpuFill {
        GpuFill { used, placeable }
    }

    #[test]
    fn one_cell_per_gpu_drawn_with_its_fill_and_availability() {
        let svg = grid(
            "g",
            &[cell(0, true), cell(7, true), cell(3, false)],
            "t",
            "d",
        );
        assert_eq!(svg.matches("<use").count(), 3);
        assert!(svg.contains(r##"<use href="#g-u7" x="12" y="0"/>"##));
        assert!(svg.contains(r##"<use href="#g-x3" x="24" y="0"/>"##));
        let seven = format!(r#"id="g-u7" width="10" height="10" fill="{}""#, colour(7));
        assert!(svg.contains(&seven));
    }

    #[test]
    fn nodes_of_eight_gpus_are_set_apart_and_rows_wrap_at_sixty_four() {
        assert_eq!(position(7), (7 * 12, 0));
        assert_eq!(position(8), (8 * 12 + GROUP_GAP, 0));
        assert_eq!(position(64), (0, 12));
        assert_eq!(size(64), (64 * 12 + 7 * GROUP_GAP, 12));
        assert_eq!(size(65).1, 24);
    }

    #[test]
    fn texts_are_escaped_and_the_picture_is_labelled() {
        let svg = grid("a\"b", &[cell(1, true)], "<site> & co", "it's");
        assert!(svg.contains("&lt;site&gt; &amp; co"));
        assert!(svg.contains("it&#39;s"));
        assert!(svg.contains(r#"aria-labelledby="a&quot;b-t a&quot;b-d""#));
        assert!(!svg.contains("<site>"));
    }

    #[test]
    fn huge_groups_are_capped() {
        let cells = vec![cell(2, true); MAX_CELLS + 10];
        assert_eq!(
            grid("g", &cells, "t", "d").matches("<use").count(),
            MAX_CELLS
        );
    }

    #[test]
    fn the_colour_ramp_darkens_with_use() {
        assert_ne!(colour(0), colour(7));
        assert_eq!(colour(9), colour(7));
    }
}
