//! The slice request form of a project page: the profiles it offers (those of the GPU
//! models of the project's grants valid now), and what it posts, read into the domain's
//! [`NewLease`] with one message per field that does not parse.

use crate::error::WebResult;
use crate::forms::{FormErrors, checked, optional};
use aion_mig::GpuModel;
use aion_services::leases::{self, NewLease};
use serde::Deserialize;

/// The fields the form posts (all text, so a bad value becomes a message, not a 400).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LeaseForm {
    /// `MODEL/profile` as offered by [`profile_options`] (or a bare profile name).
    #[serde(default)]
    pub profile: String,
    /// Instances.
    #[serde(default)]
    pub count: String,
    /// Optional site.
    pub site: Option<String>,
    /// Checkbox: all instances on one node.
    pub same_node: Option<String>,
    /// Checkbox: may be preempted.
    pub preemptible: Option<String>,
    /// Duration in hours (decimals allowed).
    #[serde(default)]
    pub duration_h: String,
    /// Idempotency key minted when the form was rendered.
    pub idem: Option<String>,
}

impl LeaseForm {
    /// The values of a fresh form.
    pub fn blank() -> Self {
        Self {
            count: "1".into(),
            duration_h: "8".into(),
            ..Self::default()
        }
    }

    /// Whether the same-node box is ticked.
    pub fn same_node_checked(&self) -> bool {
        checked(self.same_node.as_deref())
    }

    /// Whether the preemptible box is ticked.
    pub fn preemptible_checked(&self) -> bool {
        checked(self.preemptible.as_deref())
    }

    /// The site as typed, or empty.
    pub fn site_value(&self) -> &str {
        self.site.as_deref().unwrap_or("")
    }

    /// Reads the form into a lease request, or the messages to show with it.
    pub fn parse(&self) -> WebResult<Result<NewLease, FormErrors>> {
        let mut errors = FormErrors::default();
        let count = parse_count(&self.count)
            .map_err(|m| errors.add("count", m))
            .ok();
        let duration = duration_seconds(&self.duration_h)
            .map_err(|m| errors.add("duration_h", m))
            .ok();
        let (model, profile) = split_profile(&self.profile);
        if profile.is_empty() {
            errors.add("profile", "choose a profile");
        }
        let (Some(count), Some(duration), true) = (count, duration, errors.is_empty()) else {
            return Ok(Err(errors));
        };
        match NewLease::parse(
            profile,
            Some(count),
            model,
            optional(self.site.as_deref()),
            Some(self.same_node_checked()),
            Some(self.preemptible_checked()),
            Some(duration),
        ) {
            Ok(cmd) => Ok(Ok(cmd)),
            Err(e) => Ok(Err(errors_of(e)?)),
        }
    }
}

/// The messages of a refused lease request. The domain counts durations in seconds;
/// this form asks for hours, so its range is said in hours.
pub fn errors_of(e: aion_services::Error) -> WebResult<FormErrors> {
    let mut errors = FormErrors::from_service(e, FIELDS)?;
    if errors.field("duration_h").is_some() {
        errors.add(
            "duration_h",
            format!(
                "must be between {} minute and {} hours",
                leases::MIN_DURATION_S / 60,
                leases::MAX_DURATION_S / 3600
            ),
        );
    }
    Ok(errors)
}

/// The domain's field names → this form's.
pub const FIELDS: &[(&str, &str)] = &[
    ("profile", "profile"),
    ("gpu_model", "profile"),
    ("count", "count"),
    ("site", "site"),
    ("duration_s", "duration_h"),
];

/// One choice of the profile list.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileOption {
    /// What the form posts: `H100-80GB/3g.40gb`.
    pub value: String,
    /// What the person reads: `3g.40gb (H100-80GB, 3/7 GPU)`.
    pub label: String,
}

/// The profiles of `models`, smallest first per model, models in the order given
/// (duplicates once).
pub fn profile_options(models: &[GpuModel]) -> Vec<ProfileOption> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for model in models {
        if seen.contains(model) {
            continue;
        }
        seen.push(*model);
        for p in model.profiles() {
            out.push(ProfileOption {
                value: format!("{}/{}", model.name(), p.name),
                label: format!(
                    "{} ({}, {}/7 GPU)",
                    p.name,
                    model.name(),
                    p.geometry().compute_slices
                ),
            });
        }
    }
    out
}

/// Splits `MODEL/profile` into its parts; a bare profile has no model (the domain then
/// takes the model of the project's grant).
pub fn split_profile(raw: &str) -> (Option<&str>, &str) {
    match raw.trim().split_once('/') {
        Some((model, profile)) => (Some(model.trim()), profile.trim()),
        None => (None, raw.trim()),
    }
}

/// Instances asked for: a whole number.
pub fn parse_count(raw: &str) -> Result<i64, String> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| "must be a whole number, e.g. 1".to_owned())
}

/// Hours (`1.5` or `1,5`) as whole seconds.
pub fn duration_seconds(raw: &str) -> Result<i64, String> {
    let bad = || "must be a number of hours, e.g. 8 or 0.5".to_owned();
    let hours: f64 = raw.trim().replace(',', ".").parse().map_err(|_| bad())?;
    if !hours.is_finite() || hours <= 0.0 || hours > 1_000_000.0 {
        return Err(bad());
    }
    Ok((hours * 3600.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_hours_with_either_decimal_mark() {
        assert_eq!(duration_seconds("8"), Ok(8 * 3600));
        assert_eq!(duration_seconds("1.5"), Ok(5400));
        assert_eq!(duration_seconds(" 0,25 "), Ok(900));
        assert!(duration_seconds("0").is_err());
        assert!(duration_seconds("-2").is_err());
        assert!(duration_seconds("soon").is_err());
        assert!(duration_seconds("inf").is_err());
    }

    #[test]
    fn profiles_are_offered_per_model_of_the_grants() {
        let options = profile_options(&[GpuModel::H100_80GB, GpuModel::H100_80GB]);
        assert_eq!(options.len(), GpuModel::H100_80GB.profiles().count());
        assert_eq!(options[0].value, "H100-80GB/1g.10gb");
        assert!(options[0].label.starts_with("1g.10gb (H100-80GB, 1/7 GPU)"));
        assert!(options.iter().any(|o| o.value == "H100-80GB/7g.80gb"));
    }

    #[test]
    fn a_posted_profile_names_its_model() {
        assert_eq!(
            split_profile("H100-80GB/3g.40gb"),
            (Some("H100-80GB"), "3g.40gb")
        );
        assert_eq!(split_profile("3g.40gb"), (None, "3g.40gb"));
    }

    #[test]
    fn a_complete_form_makes_a_lease_request() {
        let form = LeaseForm {
            profile: "H100-80GB/1g.10gb".into(),
            count: "2".into(),
            site: Some("".into()),
            same_node: Some("on".into()),
            preemptible: None,
            duration_h: "1".into(),
            idem: None,
        };
        let cmd = form.parse().unwrap().unwrap();
        assert_eq!(cmd.profile(), "1g.10gb");
        assert_eq!(cmd.count(), 2);
        assert_eq!(cmd.site(), None);
        assert!(!cmd.preemptible());
        assert_eq!(cmd.duration_s(), 3600);
    }

    #[test]
    fn bad_fields_each_get_a_message() {
        let form = LeaseForm {
            profile: "H100-80GB/9g.900gb".into(),
            count: "two".into(),
            duration_h: "x".into(),
            ..LeaseForm::default()
        };
        let errors = form.parse().unwrap().unwrap_err();
        assert!(errors.field("count").is_some());
        assert!(errors.field("duration_h").is_some());
        let form = LeaseForm {
            profile: "H100-80GB/9g.900gb".into(),
            ..LeaseForm::blank()
        };
        let errors = form.parse().unwrap().unwrap_err();
        assert!(errors.field("profile").is_some(), "{errors:?}");
        let form = LeaseForm {
            profile: "H100-80GB/1g.10gb".into(),
            duration_h: "10000".into(),
            ..LeaseForm::blank()
        };
        let errors = form.parse().unwrap().unwrap_err();
        assert_eq!(
            errors.field("duration_h"),
            Some("must be between 1 minute and 720 hours")
        );
    }
}
