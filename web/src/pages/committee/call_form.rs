//! The create-call form: its raw fields, the dates it takes (whole UTC days) and the
//! messages shown next to its fields.

use aion_services::error::FieldErrors;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// The create-call form as posted (every field a string, so that a bad value is shown
/// back to the person instead of failing the whole request).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CallForm {
    /// The allocating organisation.
    #[serde(default)]
    pub organization_id: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// GPU model name.
    #[serde(default)]
    pub gpu_model: String,
    /// Pool, whole GPU-hours.
    #[serde(default)]
    pub pool_gpu_hours: String,
    /// First day requests are accepted (`YYYY-MM-DD`).
    #[serde(default)]
    pub opens_on: String,
    /// Last day requests are accepted.
    #[serde(default)]
    pub closes_on: String,
    /// First day of the grants.
    #[serde(default)]
    pub period_start_on: String,
    /// Last day of the grants.
    #[serde(default)]
    pub period_end_on: String,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// Which edge of a day a date stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// 00:00 UTC of the day.
    Start,
    /// 00:00 UTC of the next day: the day is included.
    End,
}

/// A `YYYY-MM-DD` date as a UTC instant; `None` when it is not a date.
pub fn day(raw: &str, edge: Edge) -> Option<DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()?;
    let start = date.and_hms_opt(0, 0, 0)?.and_utc();
    Some(match edge {
        Edge::Start => start,
        Edge::End => start + Duration::days(1),
    })
}

/// The raw values checked before the domain sees them: the organisation id, the pool
/// and the four dates. Messages go to `errors` under the domain's field names, so that
/// they sit next to the same inputs as the domain's own messages.
#[derive(Debug)]
pub struct Parsed {
    /// Organisation.
    pub organization_id: Uuid,
    /// Pool.
    pub pool_gpu_hours: i64,
    /// Opens at.
    pub opens_at: DateTime<Utc>,
    /// Closes at.
    pub closes_at: DateTime<Utc>,
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end.
    pub period_end: DateTime<Utc>,
}

impl CallForm {
    /// Checks the fields the domain takes typed; every bad one is reported.
    pub fn parse(&self) -> Result<Parsed, FieldErrors> {
        let mut errors = FieldErrors::new();
        let org = Uuid::parse_str(self.organization_id.trim()).ok();
        if org.is_none() {
            errors.insert("organization_id".into(), "choose an organisation".into());
        }
        let pool = self
            .pool_gpu_hours
            .trim()
            .replace([' ', '\u{202f}', ','], "");
        let pool = pool.parse::<i64>().ok();
        if pool.is_none() {
            errors.insert(
                "pool_gpu_hours".into(),
                "must be a whole number of GPU-hours".into(),
            );
        }
        let mut date = |field: &str, raw: &str, edge| {
            let parsed = day(raw, edge);
            if parsed.is_none() {
                errors.insert(field.into(), "must be a date (YYYY-MM-DD)".into());
            }
            parsed
        };
        let opens = date("opens_at", &self.opens_on, Edge::Start);
        let closes = date("closes_at", &self.closes_on, Edge::End);
        let start = date("period_start", &self.period_start_on, Edge::Start);
        let end = date("period_end", &self.period_end_on, Edge::End);
        match (org, pool, opens, closes, start, end) {
            (Some(o), Some(p), Some(a), Some(b), Some(c), Some(d)) if errors.is_empty() => {
                Ok(Parsed {
                    organization_id: o,
                    pool_gpu_hours: p,
                    opens_at: a,
                    closes_at: b,
                    period_start: c,
                    period_end: d,
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> CallForm {
        CallForm {
            organization_id: "7b0f4a7e-9d3f-4c51-8a57-1f2f0e6f5b11".into(),
            title: "Spring call".into(),
            gpu_model: "H100-80GB".into(),
            pool_gpu_hours: "10 000".into(),
            opens_on: "2026-12-01".into(),
            closes_on: "2026-12-31".into(),
            period_start_on: "2027-01-01".into(),
            period_end_on: "2027-06-30".into(),
            ..CallForm::default()
        }
    }

    #[test]
    fn closing_and_ending_days_are_included_whole() {
        let p = form().parse().unwrap();
        assert_eq!(p.opens_at.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(p.closes_at.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(p.period_end.to_rfc3339(), "2027-07-01T00:00:00+00:00");
        assert_eq!(p.pool_gpu_hours, 10_000);
    }

    #[test]
    fn every_bad_field_is_reported_under_the_domains_name() {
        let bad = CallForm {
            organization_id: "nope".into(),
            pool_gpu_hours: "lots".into(),
            closes_on: "31/12/2026".into(),
            ..form()
        };
        let errors = bad.parse().unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            vec!["closes_at", "organization_id", "pool_gpu_hours"]
        );
    }
}
