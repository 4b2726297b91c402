//! The price list form: its fields as typed, and how they become the domain's
//! `NewPriceList` (one GPU-hour price per GPU model, blank for models the version does
//! not price), with every problem reported against the input that caused it.

use aion_mig::GpuModel;
use aion_services::Error;
use aion_services::error::FieldErrors;
use aion_services::pricing::{ModelPricesInput, NewPriceList, PriceScope};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::HashMap;

/// The form as typed (kept when it comes back with problems).
#[derive(Clone, Debug, Default)]
pub struct PriceForm {
    /// `kind` (every organisation of a kind) or `contract` (one organisation).
    pub scope: String,
    /// Organisation kind, for `kind`.
    pub organization_kind: String,
    /// Organisation id, for `contract`.
    pub organization_id: String,
    /// Name of the version.
    pub name: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub effective_from: String,
    /// Preemptible discount, percent.
    pub discount: String,
    /// (GPU model, GPU-hour price as typed) for every model, in [`GpuModel::ALL`] order.
    pub prices: Vec<(&'static str, String)>,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// Name of the price input of a model (`price.H100-80GB`).
pub fn price_field(model: &str) -> String {
    format!("price.{model}")
}

impl PriceForm {
    /// A blank form, with every model listed.
    pub fn blank() -> Self {
        Self::from_fields(&HashMap::new())
    }

    /// Reads the posted fields.
    pub fn from_fields(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        let scope = match get("scope").as_str() {
            "contract" => "contract".to_owned(),
            _ => "kind".to_owned(),
        };
        Self {
            scope,
            organization_kind: get("organization_kind"),
            organization_id: get("organization_id"),
            name: get("name"),
            effective_from: get("effective_from"),
            discount: get("discount"),
            prices: GpuModel::ALL
                .iter()
                .map(|m| (m.name(), get(&price_field(m.name()))))
                .collect(),
            idem: f.get("idem").cloned(),
        }
    }

    /// The price typed for `model` (for the template).
    pub fn price_of(&self, model: &str) -> &str {
        self.prices
            .iter()
            .find(|(m, _)| *m == model)
            .map_or("", |(_, p)| p.as_str())
    }

    /// The domain command, or every problem keyed by this form's input names.
    pub fn command(&self) -> Result<NewPriceList, Error> {
        let mut problems = FieldErrors::new();
        let effective_from = parse_utc(&self.effective_from).unwrap_or_else(|| {
            problems.insert(
                "effective_from".into(),
                "must be a date and time (UTC), e.g. 2026-12-01T00:00".into(),
            );
            DateTime::<Utc>::UNIX_EPOCH
        });
        let scope = if self.scope == "contract" {
            match uuid::Uuid::parse_str(&self.organization_id) {
                Ok(id) => PriceScope::parse(None, Some(id)),
                Err(_) => Err(Error::invalid("organization_id", "choose an organisation")),
            }
        } else {
            PriceScope::parse(Some(&self.organization_kind), None)
        };
        let priced: Vec<&(&'static str, String)> =
            self.prices.iter().filter(|(_, p)| !p.is_empty()).collect();
        let entries: Vec<ModelPricesInput> = priced
            .iter()
            .map(|(m, p)| ModelPricesInput {
                gpu_model: (*m).to_owned(),
                gpu_hour_price: p.clone(),
                profile_prices: Vec::new(),
            })
            .collect();
        let discount = Some(self.discount.as_str()).filter(|d| !d.is_empty());
        let parsed =
            NewPriceList::parse(scope, &self.name, None, effective_from, discount, &entries);
        match parsed {
            Ok(cmd) if problems.is_empty() => Ok(cmd),
            Ok(_) => Err(Error::Validation(problems)),
            Err(Error::Validation(fields)) => {
                for (k, v) in fields {
                    problems.insert(form_field(&k, &priced), v);
                }
                Err(Error::Validation(problems))
            }
            Err(other) => Err(other),
        }
    }
}

/// Maps a domain field (`entries[1].gpu_hour_price`) to this form's input name.
fn form_field(domain: &str, priced: &[&(&'static str, String)]) -> String {
    let entry = domain
        .strip_prefix("entries[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok())
        .and_then(|i| priced.get(i));
    match (domain, entry) {
        (_, Some((model, _))) => price_field(model),
        ("entries", None) => "prices".into(),
        ("preemptible_discount_percent", None) => "discount".into(),
        (other, None) => other.into(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]` (what `<input type="datetime-local">` sends) as UTC.
pub fn parse_utc(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> PriceForm {
        PriceForm::from_fields(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_complete_kind_form_becomes_a_command() {
        let f = form(&[
            ("scope", "kind"),
            ("organization_kind", "startup"),
            ("name", "Start-ups 2027"),
            ("effective_from", "2027-01-01T00:00"),
            ("discount", "30"),
            ("price.H100-80GB", "2.40"),
        ]);
        let cmd = f.command().unwrap();
        assert_eq!(
            cmd.scope(),
            PriceScope::OrganizationKind(aion_services::values::OrganizationKind::Startup)
        );
    }

    #[test]
    fn a_bad_price_is_reported_against_its_models_input() {
        let f = form(&[
            ("organization_kind", "startup"),
            ("name", "x"),
            ("effective_from", "2027-01-01T00:00"),
            ("price.A100-40GB", "1"),
            ("price.H200-141GB", "-3"),
        ]);
        let Err(Error::Validation(fields)) = f.command() else {
            panic!("expected a validation error");
        };
        assert!(fields.contains_key("price.H200-141GB"), "{fields:?}");
        assert!(!fields.contains_key("price.A100-40GB"));
    }

    #[test]
    fn no_price_at_all_and_a_bad_date_are_both_reported() {
        let f = form(&[("organization_kind", "startup"), ("name", "x")]);
        let Err(Error::Validation(fields)) = f.command() else {
            panic!("expected a validation error");
        };
        assert!(fields.contains_key("prices"));
        assert!(fields.contains_key("effective_from"));
    }

    #[test]
    fn a_contract_needs_an_organisation() {
        let f = form(&[("scope", "contract"), ("organization_id", "nope")]);
        let Err(Error::Validation(fields)) = f.command() else {
            panic!("expected a validation error");
        };
        assert!(fields.contains_key("organization_id"));
    }

    #[test]
    fn datetime_local_values_are_read_as_utc() {
        let t = parse_utc("2026-12-01T08:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T08:30:00+00:00");
        assert!(parse_utc("2026-12-01").is_some());
        assert!(parse_utc("tomorrow").is_none());
    }
}
