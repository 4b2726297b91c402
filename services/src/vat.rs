//! VAT on invoices, by the customer organisation's country.
//!
//! Aion's operator sells compute services from France to organisations (businesses,
//! laboratories, public bodies: all taxable persons). The place of supply of such
//! business-to-business services is the customer's country (article 44 of Directive
//! 2006/112/EC), so:
//! * a customer in France pays French VAT at the standard rate (20 %);
//! * a customer elsewhere in the EU self-accounts for VAT (reverse charge, article 196):
//!   the invoice shows 0 % and says so;
//! * a customer outside the EU is outside the scope of EU VAT: 0 %, with that mention.
//!
//! The operator's country is a constant here because the operator is French; the rates
//! are data, checked against the directive's standard rates in the tests.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The operator's country (where Aion's services are supplied from).
pub const SUPPLIER_COUNTRY: &str = "FR";

/// Standard VAT rates of the EU member states, in percent (2026).
const EU_STANDARD_RATES: [(&str, u32); 27] = [
    ("AT", 20),
    ("BE", 21),
    ("BG", 20),
    ("CY", 19),
    ("CZ", 21),
    ("DE", 19),
    ("DK", 25),
    ("EE", 24),
    ("ES", 21),
    ("FI", 255), // 25.5 %, in tenths below
    ("FR", 20),
    ("GR", 24),
    ("HR", 25),
    ("HU", 27),
    ("IE", 23),
    ("IT", 22),
    ("LT", 21),
    ("LU", 17),
    ("LV", 21),
    ("MT", 18),
    ("NL", 21),
    ("PL", 23),
    ("PT", 23),
    ("RO", 21),
    ("SE", 25),
    ("SI", 22),
    ("SK", 23),
];

/// How an invoice is taxed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VatRegime {
    /// Domestic supply: the operator charges its country's VAT.
    Domestic,
    /// Customer in another member state: reverse charge.
    ReverseCharge,
    /// Customer outside the EU: outside the scope of EU VAT.
    OutsideEu,
    /// A statement of grant-funded usage: nothing is invoiced.
    NotInvoiced,
}

impl VatRegime {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domestic => "domestic",
            Self::ReverseCharge => "reverse_charge",
            Self::OutsideEu => "outside_eu",
            Self::NotInvoiced => "not_invoiced",
        }
    }

    /// Parses a stored name.
    pub fn stored(raw: &str) -> Option<Self> {
        [
            Self::Domestic,
            Self::ReverseCharge,
            Self::OutsideEu,
            Self::NotInvoiced,
        ]
        .into_iter()
        .find(|r| r.as_str() == raw)
    }
}

/// The VAT treatment of one customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatTreatment {
    /// Which rule applies.
    pub regime: VatRegime,
    /// Rate in percent (0 unless domestic).
    pub rate_percent: Decimal,
    /// The mention printed on the invoice.
    pub note: String,
}

fn standard_rate(country: &str) -> Option<Decimal> {
    EU_STANDARD_RATES
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, r)| {
            if *r > 100 {
                Decimal::new(i64::from(*r), 1)
            } else {
                Decimal::from(*r)
            }
        })
}

/// The VAT treatment of a customer in `country` (ISO 3166-1 alpha-2).
pub fn treatment(country: &str) -> VatTreatment {
    let country = country.to_ascii_uppercase();
    if country == SUPPLIER_COUNTRY {
        let rate = standard_rate(SUPPLIER_COUNTRY).unwrap_or_default();
        return VatTreatment {
            regime: VatRegime::Domestic,
            rate_percent: rate,
            note: format!("VAT {rate} %"),
        };
    }
    if standard_rate(&country).is_some() {
        return VatTreatment {
            regime: VatRegime::ReverseCharge,
            rate_percent: Decimal::ZERO,
            note: "Reverse charge: VAT to be accounted for by the customer (art. 196, Directive 2006/112/EC)".into(),
        };
    }
    VatTreatment {
        regime: VatRegime::OutsideEu,
        rate_percent: Decimal::ZERO,
        note: "Outside the scope of EU VAT (art. 44, Directive 2006/112/EC)".into(),
    }
}

/// VAT on a net amount, rounded to cents half to even (the invoices' one rounding rule).
pub fn vat_on(net: Decimal, t: &VatTreatment) -> Decimal {
    (net * t.rate_percent / Decimal::from(100))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn french_customers_pay_twenty_percent() {
        let t = treatment("fr");
        assert_eq!(t.regime, VatRegime::Domestic);
        assert_eq!(t.rate_percent, d("20"));
        assert_eq!(vat_on(d("123.45"), &t), d("24.69"));
    }

    #[test]
    fn other_member_states_reverse_charge_and_others_are_out_of_scope() {
        assert_eq!(treatment("DE").regime, VatRegime::ReverseCharge);
        assert_eq!(treatment("FI").regime, VatRegime::ReverseCharge);
        assert_eq!(treatment("CH").regime, VatRegime::OutsideEu);
        assert_eq!(treatment("US").rate_percent, Decimal::ZERO);
        assert_eq!(vat_on(d("1000"), &treatment("DE")), Decimal::ZERO);
    }

    #[test]
    fn vat_rounds_half_to_even_at_the_cent() {
        let t = treatment("FR");
        // 20 % of 0.125 is 0.025 → 0.02; of 0.175 is 0.035 → 0.04.
        assert_eq!(vat_on(d("0.125"), &t), d("0.02"));
        assert_eq!(vat_on(d("0.175"), &t), d("0.04"));
    }

    #[test]
    fn the_table_has_the_27_member_states_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (c, _) in EU_STANDARD_RATES {
            assert!(seen.insert(c), "{c} twice");
        }
        assert_eq!(seen.len(), 27);
        assert_eq!(standard_rate("FI"), Some(d("25.5")));
        assert_eq!(standard_rate("DE"), Some(d("19")));
    }
}
