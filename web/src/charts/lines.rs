//! Line charts: one or more series over the same categories (days); a missing value
//! breaks the line, an isolated value shows as a dot.

use super::{Chart, Frame, Scale, Series, Spec, finite};
use std::fmt::Write as _;

/// The scale that covers every finite value of every series (and zero).
pub fn scale(series: &[Series]) -> Scale {
    let values = series
        .iter()
        .flat_map(|s| s.values.iter().copied().filter_map(finite));
    let (min, max) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    Scale::covering(min, max)
}

/// The runs of consecutive values of a series, as points (x, y) of the plot.
pub fn runs(series: &Series, labels: usize, scale: &Scale) -> Vec<Vec<(f64, f64)>> {
    let frame = Frame::new(labels);
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for i in 0..labels {
        match finite(series.values.get(i).copied().flatten()) {
            Some(v) => current.push((frame.x(i), scale.y(v, frame.top, frame.bottom))),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Draws a line chart.
pub fn chart(spec: &Spec<'_>, series: &[Series]) -> Chart {
    super::draw(spec, series, || {
        let marks = |svg: &mut String, scale: &Scale| {
            // Dots only where they help: few points, or a value with no neighbour.
            let dots_everywhere = spec.labels.len() <= 31;
            for (k, s) in series.iter().enumerate() {
                let colour = super::PALETTE[k % super::PALETTE.len()];
                let dash = if s.dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                };
                for run in runs(s, spec.labels.len(), scale) {
                    if run.len() > 1 {
                        let points: Vec<String> =
                            run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                        let _ = write!(
                            svg,
                            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                            points.join(" ")
                        );
                    }
                    if (dots_everywhere && !s.dashed) || run.len() == 1 {
                        for (x, y) in &run {
                            let _ = write!(
                                svg,
                                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                            );
                        }
                    }
                }
            }
        };
        (scale(series), marks)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Lang, Tr};

    fn spec(labels: &[String]) -> Spec<'_> {
        Spec {
            id: "l1",
            title: "Energy",
            desc: "kWh per day",
            unit: "kWh",
            x_header: "Day",
            labels,
            digits: 2,
            t: Tr { lang: Lang::Fr },
        }
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn points_are_placed_proportionally_and_gaps_break_the_line() {
        let s = Series {
            name: "a".into(),
            values: vec![Some(0.0), Some(50.0), None, Some(100.0)],
            dashed: false,
        };
        let sc = scale(std::slice::from_ref(&s));
        assert_eq!(sc.hi, 100.0);
        let r = runs(&s, 4, &sc);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        let (y0, y50, y100) = (r[0][0].1, r[0][1].1, r[1][0].1);
        assert!(((y0 - y50) - (y50 - y100)).abs() < 1e-9);
        assert!(r[0][0].0 < r[0][1].0 && r[0][1].0 < r[1][0].0);
    }

    #[test]
    fn negative_values_extend_the_axis_below_zero() {
        let s = Series::new("delta", [-3.0, 7.0]);
        let sc = scale(std::slice::from_ref(&s));
        assert!(sc.lo <= -3.0 && sc.hi >= 7.0);
        assert!(sc.ticks().contains(&0.0));
    }

    #[test]
    fn a_single_point_is_drawn_as_a_dot() {
        let l = labels(1);
        let c = chart(&spec(&l), &[Series::new("a", [42.0])]);
        assert!(c.svg.contains("<circle"));
        assert!(!c.svg.contains("<polyline"));
        assert_eq!(c.rows, vec![vec!["d0".to_owned(), "42,00".to_owned()]]);
    }

    #[test]
    fn no_values_at_all_draws_the_no_data_chart() {
        let l = labels(3);
        let s = Series {
            name: "a".into(),
            values: vec![None, Some(f64::NAN), None],
            dashed: false,
        };
        let c = chart(&spec(&l), &[s]);
        assert!(c.svg.contains("Aucune donnée"));
        assert_eq!(c.rows[1], vec!["d1".to_owned(), "—".to_owned()]);
    }

    #[test]
    fn a_dashed_reference_series_is_drawn_dashed_without_dots() {
        let l = labels(40);
        let pool = Series {
            name: "pool".into(),
            values: vec![Some(1000.0); 40],
            dashed: true,
        };
        let c = chart(&spec(&l), &[pool]);
        assert!(c.svg.contains(r#"stroke-dasharray="6 4""#));
        assert!(!c.svg.contains("<circle"));
    }
}
