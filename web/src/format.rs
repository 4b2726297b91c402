//! Numbers and times as pages show them, in the reader's language (French writes
//! `1 234,5`, English `1,234.5`). Times are UTC, said so on the page.

use crate::i18n::{Lang, Tr};
use chrono::{DateTime, Utc};

/// Slice-seconds as GPU-hours (7 slice-seconds make a GPU-second), one decimal.
pub fn gpu_hours(t: Tr, slice_seconds: i64) -> String {
    decimal(t, slice_seconds as f64 / 7.0 / 3600.0, 1)
}

/// A number with `digits` decimals and grouped thousands.
pub fn decimal(t: Tr, value: f64, digits: usize) -> String {
    let raw = format!("{:.*}", digits, value.abs());
    let (int, frac) = raw.split_once('.').unwrap_or((&raw, ""));
    let (group, point) = match t.lang {
        Lang::En => (',', '.'),
        Lang::Fr => ('\u{202f}', ','),
    };
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(ch);
    }
    let sign = if value < 0.0 && raw.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{point}{frac}")
    }
}

/// A UTC time to the minute (`2026-11-25 14:03 UTC`).
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time, or a dash.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), time)
}

/// A duration in seconds as `2 h 05 min` (or `45 s`).
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

/// Percent of `part` in `whole`, clamped to 0..=100 (for meters).
pub fn percent(part: i64, whole: i64) -> u32 {
    if whole <= 0 {
        return 0;
    }
    ((part.max(0) as f64 / whole as f64) * 100.0)
        .round()
        .clamp(0.0, 100.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: Tr = Tr { lang: Lang::En };
    const FR: Tr = Tr { lang: Lang::Fr };

    #[test]
    fn numbers_follow_the_language() {
        assert_eq!(decimal(EN, 1234567.25, 1), "1,234,567.2");
        assert_eq!(decimal(FR, 1234.5, 1), "1\u{202f}234,5");
        assert_eq!(decimal(EN, -12.0, 0), "-12");
        assert_eq!(decimal(EN, -0.01, 1), "0.0");
        assert_eq!(decimal(EN, 999.0, 2), "999.00");
    }

    #[test]
    fn gpu_hours_count_seven_slice_seconds_per_gpu_second() {
        assert_eq!(gpu_hours(EN, 7 * 3600 * 10), "10.0");
        assert_eq!(gpu_hours(EN, 3 * 3600), "0.4");
    }

    #[test]
    fn durations_and_percentages_read_naturally() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(125), "2 min");
        assert_eq!(duration(7500), "2 h 05 min");
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(12, 10), 100);
    }
}
