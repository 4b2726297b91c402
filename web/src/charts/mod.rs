//! Charts drawn as SVG on the server, by hand: stacked bars ([`bars`]) and lines
//! ([`lines`]). Plotting crates need font metrics we do not have; these charts are simple
//! enough to lay out on a fixed grid. Every chart is an `<svg role="img">` with a
//! `<title>` and `<desc>`, and comes with its data as a table for screen readers (see
//! [`Chart`]). All text is XML-escaped here, so templates may insert [`Chart::svg`] as is.

pub mod bars;
pub mod lines;
pub mod scale;

pub use scale::{Scale, nice_step};

use crate::format;
use crate::i18n::Tr;
use std::fmt::Write as _;

/// Fixed colours of the series, in order (readable on white, distinct for common
/// colour-vision deficiencies: the Okabe–Ito palette, darkened where too light).
pub const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7a6a00", "#555555",
];

/// Width of every chart's drawing, in SVG units (it scales to the page).
pub const WIDTH: f64 = 720.0;
/// Height of the plot area's frame, without the legend.
pub const HEIGHT: f64 = 260.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const LEGEND_ROW: f64 = 20.0;
/// Width of a legend entry's swatch and gaps, besides its text.
const LEGEND_SWATCH: f64 = 40.0;
/// A generous average width of one character at the charts' font size: text cannot be
/// measured on the server, so entries are spaced for wide glyphs.
const CHAR_WIDTH: f64 = 7.0;

/// Escapes text for XML (element content and attribute values alike).
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// One named series: a value per category of the chart (`None`: no value there).
#[derive(Clone, Debug)]
pub struct Series {
    /// Name, shown in the legend and as a column of the data table.
    pub name: String,
    /// Values, one per label of the chart.
    pub values: Vec<Option<f64>>,
    /// Drawn dashed (a reference such as a pool), lines only.
    pub dashed: bool,
}

impl Series {
    /// A series with a value everywhere.
    pub fn new(name: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        Self {
            name: name.into(),
            values: values.into_iter().map(Some).collect(),
            dashed: false,
        }
    }
}

/// What a chart shows, besides its data.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    /// Unique id on the page (ids of the title and description derive from it).
    pub id: &'a str,
    /// Title (also the accessible name).
    pub title: &'a str,
    /// One sentence that says what the chart shows.
    pub desc: &'a str,
    /// Unit of the y axis (`GPU-h`, `%`, `kWh`).
    pub unit: &'a str,
    /// Header of the table's first column (what the labels are: `Day`).
    pub x_header: &'a str,
    /// The categories along x, in order (days…).
    pub labels: &'a [String],
    /// Decimals of the table's numbers.
    pub digits: usize,
    /// Texts of the page's language.
    pub t: Tr,
}

/// A drawn chart and its data as a table.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Id of the chart.
    pub id: String,
    /// Title, repeated as the table's caption.
    pub title: String,
    /// The SVG element, escaped already.
    pub svg: String,
    /// Headers of the data table.
    pub columns: Vec<String>,
    /// Rows of the data table: the label, then one cell per series.
    pub rows: Vec<Vec<String>>,
}

/// Keeps finite values only (NaN and infinities become missing).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Where the plot area lies, for `n` categories.
#[derive(Clone, Copy, Debug)]
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    n: usize,
}

impl Frame {
    fn new(n: usize) -> Self {
        Self {
            left: LEFT,
            right: WIDTH - RIGHT,
            top: TOP,
            bottom: HEIGHT - BOTTOM,
            n: n.max(1),
        }
    }

    /// Width of one category's slot.
    fn slot(&self) -> f64 {
        (self.right - self.left) / self.n as f64
    }

    /// Centre of category `i`.
    fn x(&self, i: usize) -> f64 {
        self.left + self.slot() * (i as f64 + 0.5)
    }
}

/// Height of the legend for `n` entries.
fn legend_height(series: &[Series]) -> f64 {
    let rows = legend_layout(series)
        .last()
        .map_or(0.0, |(_, y)| (y - HEIGHT) / LEGEND_ROW + 1.0);
    rows * LEGEND_ROW + 8.0
}

/// Where each legend entry starts: left to right, wrapping to a new row when the
/// next entry's estimated width would pass the right edge.
pub fn legend_layout(series: &[Series]) -> Vec<(f64, f64)> {
    let (mut x, mut y) = (LEFT, HEIGHT);
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        let width = LEGEND_SWATCH + s.name.chars().count() as f64 * CHAR_WIDTH;
        if x > LEFT && x + width > WIDTH - RIGHT {
            x = LEFT;
            y += LEGEND_ROW;
        }
        out.push((x, y));
        x += width;
    }
    out
}

/// Opens the `<svg>` with its accessible title and description.
fn open(svg: &mut String, spec: &Spec<'_>, legend: &[Series]) {
    let height = HEIGHT + legend_height(legend);
    let id = escape(spec.id);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="{id}-title {id}-desc" font-family="system-ui, sans-serif" font-size="12"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(spec.title),
        escape(spec.desc)
    );
}

/// Draws the y axis grid, tick labels and unit, and the x labels (thinned to ten or so).
fn axes(svg: &mut String, spec: &Spec<'_>, frame: &Frame, scale: &Scale) {
    let digits = scale.digits();
    for v in scale.ticks() {
        let y = scale.y(v, frame.top, frame.bottom);
        let stroke = if v == 0.0 { "#8a949e" } else { "#e5e8eb" };
        let _ = write!(
            svg,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#5d6d7e">{}</text>"##,
            frame.left,
            frame.right,
            frame.left - 6.0,
            y + 4.0,
            escape(&format::decimal(spec.t, v, digits))
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" fill="#5d6d7e">{}</text>"##,
        4.0,
        frame.top - 14.0,
        escape(spec.unit)
    );
    let every = spec.labels.len().div_ceil(10).max(1);
    for (i, label) in spec.labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#5d6d7e">{}</text>"##,
            frame.x(i),
            frame.bottom + 16.0,
            escape(label)
        );
    }
}

/// Draws the legend under the plot: a swatch and the name of each series.
fn legend(svg: &mut String, series: &[Series]) {
    for (i, (s, (x, y))) in series.iter().zip(legend_layout(series)).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // A dashed series gets a thin dashed swatch, like its line.
        let dash = if s.dashed {
            r#" stroke-width="3" stroke-dasharray="5 3""#
        } else {
            r#" stroke-width="8""#
        };
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 4.0,
            x + 16.0,
            y - 4.0,
            x + 22.0,
            y,
            escape(&s.name)
        );
    }
}

/// The "no data" picture: an empty frame with a sentence in the middle.
fn no_data(spec: &Spec<'_>) -> String {
    let mut svg = String::new();
    open(&mut svg, spec, &[]);
    let frame = Frame::new(1);
    let _ = write!(
        svg,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f4f6f8" stroke="#d5d8dc"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#5d6d7e">{}</text></svg>"##,
        frame.left,
        frame.top,
        frame.right - frame.left,
        frame.bottom - frame.top,
        (frame.left + frame.right) / 2.0,
        (frame.top + frame.bottom) / 2.0,
        escape(spec.t.s("charts.no_data"))
    );
    svg
}

/// The data table of a chart: one row per label, one column per series.
fn table(spec: &Spec<'_>, series: &[Series]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut columns = vec![spec.x_header.to_owned()];
    columns.extend(series.iter().map(|s| format!("{} ({})", s.name, spec.unit)));
    let rows = spec
        .labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let mut row = vec![label.clone()];
            row.extend(series.iter().map(|s| {
                finite(s.values.get(i).copied().flatten()).map_or_else(
                    || "—".to_owned(),
                    |v| format::decimal(spec.t, v, spec.digits),
                )
            }));
            row
        })
        .collect();
    (columns, rows)
}

/// A chart of `series`: the data table, and either the "no data" picture or the frame,
/// axes and legend around the marks that `plot` draws. `plot` answers the value scale
/// (for the axes) and a painter of the marks on that scale.
fn draw<M: FnOnce(&mut String, &Scale)>(
    spec: &Spec<'_>,
    series: &[Series],
    plot: impl FnOnce() -> (Scale, M),
) -> Chart {
    let (columns, rows) = table(spec, series);
    let svg = if has_data(spec, series) {
        let frame = Frame::new(spec.labels.len());
        let (scale, marks) = plot();
        let mut svg = String::new();
        open(&mut svg, spec, series);
        axes(&mut svg, spec, &frame, &scale);
        marks(&mut svg, &scale);
        legend(&mut svg, series);
        svg.push_str("</svg>");
        svg
    } else {
        no_data(spec)
    };
    Chart {
        id: spec.id.to_owned(),
        title: spec.title.to_owned(),
        svg,
        columns,
        rows,
    }
}

/// Whether there is anything to draw.
fn has_data(spec: &Spec<'_>, series: &[Series]) -> bool {
    !spec.labels.is_empty()
        && series
            .iter()
            .any(|s| s.values.iter().any(|v| finite(*v).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_the_five_xml_specials_and_drops_control_characters() {
        assert_eq!(escape("<&\"'>"), "&lt;&amp;&quot;&#39;&gt;");
        assert_eq!(escape("a\u{0}b\u{1b}c"), "abc");
        assert_eq!(escape("énergie 1 234"), "énergie 1 234");
    }

    #[test]
    fn legend_entries_wrap_before_the_right_edge_without_overlapping() {
        let long = "Consommé (toutes allocations)";
        let series: Vec<Series> = (0..6)
            .map(|i| Series::new(format!("{long} {i}"), [1.0]))
            .collect();
        let at = legend_layout(&series);
        assert_eq!(at[0], (LEFT, HEIGHT));
        for (pair, s) in at.windows(2).zip(&series) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if y1 == y0 {
                assert!(x1 >= x0 + s.name.chars().count() as f64 * CHAR_WIDTH);
            } else {
                assert_eq!((x1, y1), (LEFT, y0 + LEGEND_ROW));
            }
        }
        assert!(legend_height(&series) > 2.0 * LEGEND_ROW);
        assert_eq!(legend_height(&[]), 8.0);
    }
}
