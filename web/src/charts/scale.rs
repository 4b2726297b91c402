//! The y axis of the charts: a range that covers the data and zero, cut by round ticks.

/// A y axis from `lo` to `hi` with round ticks (1, 2, 2.5 or 5 times a power of ten)
/// that cover the data and include zero.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// Bottom of the axis (zero or below).
    pub lo: f64,
    /// Top of the axis (zero or above, above `lo`).
    pub hi: f64,
    /// Distance between ticks.
    pub step: f64,
}

impl Scale {
    /// A scale that covers `min..=max` (and zero) with about five ticks.
    pub fn covering(min: f64, max: f64) -> Self {
        let min = if min.is_finite() { min.min(0.0) } else { 0.0 };
        let max = if max.is_finite() { max.max(0.0) } else { 0.0 };
        let span = max - min;
        if span <= 0.0 || !span.is_finite() {
            return Self {
                lo: 0.0,
                hi: 1.0,
                step: 0.2,
            };
        }
        let step = nice_step(span / 5.0);
        let lo = (min / step).floor() * step;
        let hi = (max / step).ceil() * step;
        Self { lo, hi, step }
    }

    /// The tick values, bottom to top.
    pub fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round().clamp(1.0, 100.0) as usize;
        (0..=n).map(|i| self.lo + self.step * i as f64).collect()
    }

    /// Decimals needed to print the ticks.
    pub fn digits(&self) -> usize {
        (0..=6)
            .find(|d| {
                let scaled = self.step * 10f64.powi(*d);
                (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
            })
            .unwrap_or(6) as usize
    }

    /// The y coordinate of `v` in a plot area from `top` to `bottom`.
    pub fn y(&self, v: f64, top: f64, bottom: f64) -> f64 {
        let frac = (v.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo);
        bottom - frac * (bottom - top)
    }
}

/// The round step (1, 2, 2.5, 5 × 10ⁿ) at or above `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let mult = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|m| norm <= *m + 1e-9)
        .unwrap_or(10.0);
    mult * mag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(130.0), 200.0);
        assert!((nice_step(0.013) - 0.02).abs() < 1e-12);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum_and_zero() {
        let s = Scale::covering(0.0, 87.0);
        assert_eq!(s.step, 20.0);
        assert_eq!(s.ticks(), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let s = Scale::covering(-12.0, 30.0);
        assert!(s.lo <= -12.0 && s.hi >= 30.0);
        assert!(s.ticks().contains(&0.0));
        let huge = Scale::covering(0.0, 3.2e12);
        assert!(huge.hi >= 3.2e12 && huge.ticks().len() <= 11);
    }

    #[test]
    fn an_empty_or_flat_range_still_gets_an_axis() {
        assert_eq!(Scale::covering(0.0, 0.0).ticks().len(), 6);
        assert_eq!(Scale::covering(f64::NAN, f64::INFINITY).hi, 1.0);
    }

    #[test]
    fn tick_labels_get_the_decimals_their_step_needs() {
        assert_eq!(Scale::covering(0.0, 87.0).digits(), 0);
        assert_eq!(Scale::covering(0.0, 0.9).digits(), 1);
        assert_eq!(Scale::covering(0.0, 1.1).digits(), 2);
        assert_eq!(Scale::covering(0.0, 0.09).digits(), 2);
        assert_eq!(Scale::covering(0.0, 12.0).digits(), 1);
    }

    #[test]
    fn the_scale_maps_the_axis_onto_the_plot_area() {
        let s = Scale::covering(0.0, 100.0);
        assert_eq!(s.y(0.0, 20.0, 220.0), 220.0);
        assert_eq!(s.y(100.0, 20.0, 220.0), 20.0);
        assert_eq!(s.y(50.0, 20.0, 220.0), 120.0);
        assert_eq!(s.y(1e9, 20.0, 220.0), 20.0);
    }
}
