//! Stacked bar charts: one bar per category (day), one coloured segment per series
//! (profile), stacked bottom-up in the series' order.

use super::{Chart, Frame, Scale, Series, Spec, escape, finite};
use crate::format;
use std::fmt::Write as _;

/// One drawn segment of a bar (kept apart from the SVG text for the tests).
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Category.
    pub index: usize,
    /// Series.
    pub series: usize,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// The value drawn.
    pub value: f64,
}

/// The value a bar segment shows: stacked bars show amounts, so missing, negative and
/// non-finite values draw nothing (the data table still shows what was given).
fn amount(v: Option<f64>) -> f64 {
    finite(v).unwrap_or(0.0).max(0.0)
}

/// The scale of stacked bars: from zero to the highest stack.
fn scale(labels: usize, series: &[Series]) -> Scale {
    let top = (0..labels)
        .map(|i| {
            series
                .iter()
                .map(|s| amount(s.values.get(i).copied().flatten()))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    Scale::covering(0.0, top)
}

/// Lays out the segments of every bar.
pub fn layout(labels: usize, series: &[Series]) -> (Scale, Vec<Segment>) {
    let frame = Frame::new(labels);
    let scale = scale(labels, series);
    let width = (frame.slot() * 0.7).max(1.0);
    let mut out = Vec::new();
    for i in 0..labels {
        let mut base = 0.0;
        for (k, s) in series.iter().enumerate() {
            let v = amount(s.values.get(i).copied().flatten());
            if v <= 0.0 {
                continue;
            }
            let y_bottom = scale.y(base, frame.top, frame.bottom);
            let y_top = scale.y(base + v, frame.top, frame.bottom);
            out.push(Segment {
                index: i,
                series: k,
                x: frame.x(i) - width / 2.0,
                y: y_top,
                width,
                height: y_bottom - y_top,
                value: v,
            });
            base += v;
        }
    }
    (scale, out)
}

/// Draws a stacked bar chart.
pub fn stacked(spec: &Spec<'_>, series: &[Series]) -> Chart {
    super::draw(spec, series, || {
        let (scale, segments) = layout(spec.labels.len(), series);
        let marks = move |svg: &mut String, _: &Scale| {
            for seg in &segments {
                let name = series.get(seg.series).map_or("", |s| s.name.as_str());
                let label = spec.labels.get(seg.index).map_or("", String::as_str);
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} · {}: {} {}</title></rect>"#,
                    seg.x,
                    seg.y,
                    seg.width,
                    seg.height,
                    super::PALETTE[seg.series % super::PALETTE.len()],
                    escape(label),
                    escape(name),
                    escape(&format::decimal(spec.t, seg.value, spec.digits)),
                    escape(spec.unit)
                );
            }
        };
        (scale, marks)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Lang, Tr};

    fn spec<'a>(labels: &'a [String]) -> Spec<'a> {
        Spec {
            id: "c1",
            title: "GPU-hours <per> day",
            desc: "Tom & Jerry's \"chart\"",
            unit: "GPU-h",
            x_header: "Day",
            labels,
            digits: 1,
            t: Tr { lang: Lang::En },
        }
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn bar_heights_are_proportional_to_values_and_stack() {
        let series = vec![
            Series::new("a", [10.0, 20.0]),
            Series::new("b", [30.0, 0.0]),
        ];
        let (scale, segs) = layout(2, &series);
        assert_eq!(scale.hi, 40.0);
        let a0 = &segs[0];
        let b0 = &segs[1];
        let a1 = &segs[2];
        assert_eq!((a0.index, a0.series, b0.series, a1.index), (0, 0, 1, 1));
        assert!((b0.height - 3.0 * a0.height).abs() < 1e-9);
        assert!((a1.height - 2.0 * a0.height).abs() < 1e-9);
        // b sits on top of a, and the stack of 40 reaches the top of the axis.
        assert!((b0.y + b0.height - a0.y).abs() < 1e-9);
        assert!((b0.y - super::super::TOP).abs() < 1e-9);
        // A zero value draws no segment.
        assert_eq!(segs.len(), 3);
    }

    #[test]
    fn negative_missing_and_infinite_values_draw_nothing() {
        let series = vec![Series {
            name: "x".into(),
            values: vec![Some(-5.0), None, Some(f64::INFINITY), Some(2.0)],
            dashed: false,
        }];
        let (_, segs) = layout(4, &series);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].index, 3);
    }

    #[test]
    fn empty_data_draws_a_no_data_chart_with_its_title() {
        let chart = stacked(&spec(&[]), &[]);
        assert!(chart.svg.contains("No data"));
        assert!(chart.svg.contains("GPU-hours &lt;per&gt; day"));
        assert!(chart.rows.is_empty());
        let zeros = stacked(&spec(&labels(3)), &[Series::new("a", [0.0, 0.0, 0.0])]);
        assert!(!zeros.svg.contains("<rect x=\"72.0\" y"));
        assert_eq!(zeros.rows.len(), 3);
    }

    #[test]
    fn the_svg_is_accessible_and_escaped() {
        let chart = stacked(&spec(&labels(1)), &[Series::new("1g.10gb <&>", [1.5])]);
        assert!(chart.svg.starts_with("<svg "));
        assert!(
            chart
                .svg
                .contains(r#"role="img" aria-labelledby="c1-title c1-desc""#)
        );
        assert!(
            chart
                .svg
                .contains("<desc id=\"c1-desc\">Tom &amp; Jerry&#39;s &quot;chart&quot;</desc>")
        );
        assert!(chart.svg.contains("1g.10gb &lt;&amp;&gt;"));
        assert!(!chart.svg.contains("<&>"));
        assert_eq!(chart.columns, vec!["Day", "1g.10gb <&> (GPU-h)"]);
        assert_eq!(chart.rows, vec![vec!["d0".to_owned(), "1.5".to_owned()]]);
    }

    #[test]
    fn a_single_bar_and_huge_values_stay_inside_the_frame() {
        let (scale, segs) = layout(1, &[Series::new("a", [4.0e15])]);
        assert!(scale.hi >= 4.0e15);
        let s = &segs[0];
        assert!(s.y >= super::super::TOP - 1e-9);
        assert!(s.x >= super::super::LEFT && s.x + s.width <= super::super::WIDTH);
    }
}
