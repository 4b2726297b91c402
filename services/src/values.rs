//! Validated domain values: parse once at the edge, then trust the type.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A URL-safe short name: 2–63 chars of `a-z`, `0-9` and inner `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug, naming `field` in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if raw.len() < 2 || raw.len() > 63 {
            return Err(Error::invalid(field, "must be 2 to 63 characters long"));
        }
        if !ok_chars || raw.starts_with('-') || raw.ends_with('-') {
            return Err(Error::invalid(
                field,
                "must use only a-z, 0-9 and '-', and not start or end with '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human-readable name: trimmed, 1 to `max` characters, no control characters.
pub fn parse_name(field: &str, raw: &str, max: usize) -> Result<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    check_text(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// Free text (may be empty) of at most `max` characters without control characters
/// other than newlines and tabs.
pub fn check_text(field: &str, raw: &str, max: usize) -> Result<()> {
    if raw.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// The kind of a consortium member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganizationKind {
    /// University or public research lab.
    Academic,
    /// AI start-up.
    Startup,
    /// Industrial partner.
    Industry,
    /// Public body that is not an allocator.
    Public,
    /// Grants compute hours (GENCI, CNRS).
    Allocator,
}

impl OrganizationKind {
    /// Every kind, in display order.
    pub const ALL: [OrganizationKind; 5] = [
        Self::Academic,
        Self::Startup,
        Self::Industry,
        Self::Public,
        Self::Allocator,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Academic => "academic",
            Self::Startup => "startup",
            Self::Industry => "industry",
            Self::Public => "public",
            Self::Allocator => "allocator",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be one of academic, startup, industry, public, allocator",
                )
            })
    }
}

/// An ISO 3166-1 alpha-2 country code (upper case), used later for VAT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    /// Parses two ASCII letters, upper-casing them.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(raw.to_ascii_uppercase()))
        } else {
            Err(Error::invalid(
                field,
                "must be a two-letter ISO 3166-1 country code",
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a GPU model name (`H100-80GB`) into the MIG engine's model, listing the valid
/// names on error.
pub fn parse_gpu_model(field: &str, raw: &str) -> Result<aion_mig::GpuModel> {
    raw.parse::<aion_mig::GpuModel>()
        .map_err(|e| Error::invalid(field, e.to_string()))
}

/// Reads a stored GPU model name back (an unknown one is a bug, never user input).
pub fn stored_gpu_model(raw: &str) -> Result<aion_mig::GpuModel> {
    raw.parse::<aion_mig::GpuModel>()
        .map_err(|e| Error::Internal(format!("stored GPU model: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_with_upper_case_letters_is_rejected() {
        assert!(Slug::parse("slug", "Lab").is_err());
    }

    #[test]
    fn a_slug_starting_with_a_dash_is_rejected() {
        assert!(Slug::parse("slug", "-lab").is_err());
    }

    #[test]
    fn a_slug_of_64_characters_is_rejected_and_63_accepted() {
        assert!(Slug::parse("slug", &"a".repeat(64)).is_err());
        assert!(Slug::parse("slug", &"a".repeat(63)).is_ok());
    }

    #[test]
    fn a_name_with_a_control_character_is_rejected() {
        assert!(parse_name("name", "lab\u{0}", 200).is_err());
    }

    #[test]
    fn a_blank_name_is_rejected_and_a_padded_one_trimmed() {
        assert!(parse_name("name", "   ", 200).is_err());
        assert_eq!(parse_name("name", "  Lab  ", 200).unwrap(), "Lab");
    }

    #[test]
    fn country_codes_are_upper_cased() {
        assert_eq!(CountryCode::parse("country", "fr").unwrap().as_str(), "FR");
        assert!(CountryCode::parse("country", "FRA").is_err());
    }

    #[test]
    fn an_unknown_gpu_model_is_rejected_with_the_valid_ones() {
        assert_eq!(
            parse_gpu_model("gpu_model", "h100-80gb").unwrap().name(),
            "H100-80GB"
        );
        let err = parse_gpu_model("gpu_model", "V100")
            .unwrap_err()
            .to_string();
        assert!(err.contains("H100-80GB"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn every_accepted_slug_is_url_safe(raw in "\\PC{0,70}") {
            if let Ok(slug) = Slug::parse("slug", &raw) {
                proptest::prop_assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }
    }
}
