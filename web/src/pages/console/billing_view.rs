//! A billing document as the console shows it: amounts, energy (kWh) and CO2e (kg) in
//! the reader's language. Amounts stay exact decimals (never floats) until written out.

use crate::format;
use crate::i18n::{Lang, Tr};
use aion_services::billing::{BillingDocument, DocumentKind, Month};
use rust_decimal::Decimal;

/// One line item.
pub struct LineRow {
    /// Number on the document.
    pub no: usize,
    /// What it is.
    pub description: String,
    /// GPU-hours.
    pub gpu_hours: String,
    /// Unit price.
    pub unit_price: String,
    /// Amount.
    pub amount: String,
    /// Energy, kWh.
    pub energy_kwh: String,
    /// CO2e, kg.
    pub co2e_kg: String,
}

/// A document.
pub struct DocView {
    /// Id, once finalised.
    pub id: Option<String>,
    /// Text key of its kind.
    pub kind: &'static str,
    /// Final (stored) or a draft recomputed on every read.
    pub finalised: bool,
    /// Month (`YYYY-MM`).
    pub month: String,
    /// Gapless number, for final invoices and credit notes.
    pub number: String,
    /// Currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<LineRow>,
    /// Net.
    pub net: String,
    /// VAT rate, percent.
    pub vat_rate: String,
    /// VAT.
    pub vat: String,
    /// Total.
    pub total: String,
    /// Energy, kWh.
    pub energy_kwh: String,
    /// Energy measured where the grid intensity is unknown, kWh.
    pub unvalued_kwh: String,
    /// Whether some energy has no known intensity (its CO2e is not counted).
    pub has_unvalued: bool,
    /// CO2e, kg.
    pub co2e_kg: String,
    /// The VAT mention.
    pub vat_note: String,
    /// Why, for credit notes.
    pub reason: String,
    /// Issued at.
    pub issued: String,
}

/// Text key of a document kind.
pub fn kind_key(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Invoice => "console.doc_invoice",
        DocumentKind::Statement => "console.doc_statement",
        DocumentKind::CreditNote => "console.doc_credit_note",
    }
}

/// An exact amount with its decimals as stored (at least two), in the reader's
/// language (`1234.5` → `1234.50` / `1234,50`).
pub fn money(t: Tr, amount: Decimal) -> String {
    let scale = amount.scale().max(2) as usize;
    let text = format!("{amount:.scale$}");
    match t.lang {
        Lang::En => text,
        Lang::Fr => text.replace('.', ","),
    }
}

/// A rate as written (`20`, `5.5`), without trailing zeros, in the reader's language.
pub fn rate(t: Tr, value: Decimal) -> String {
    let text = value.normalize().to_string();
    match t.lang {
        Lang::En => text,
        Lang::Fr => text.replace('.', ","),
    }
}

/// Millijoules as kWh, three decimals.
pub fn kwh(t: Tr, mj: i64) -> String {
    format::decimal(t, mj as f64 / 3_600_000_000.0, 3)
}

/// Milligrams as kg, three decimals.
pub fn kg(t: Tr, mg: i64) -> String {
    format::decimal(t, mg as f64 / 1_000_000.0, 3)
}

/// The view of a document.
pub fn doc_view(t: Tr, d: &BillingDocument) -> DocView {
    DocView {
        id: d.id.map(|id| id.to_string()),
        kind: kind_key(d.kind),
        finalised: d.finalised,
        month: Month::of(d.period_start).key(),
        number: d.number.clone().unwrap_or_default(),
        currency: d.currency.clone(),
        lines: d
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineRow {
                no: i + 1,
                description: l.description.clone(),
                gpu_hours: money(t, l.gpu_hours.round_dp(3)),
                unit_price: money(t, l.unit_price),
                amount: money(t, l.amount),
                energy_kwh: kwh(t, l.energy_mj),
                co2e_kg: kg(t, l.co2e_mg),
            })
            .collect(),
        net: money(t, d.net),
        vat_rate: rate(t, d.vat.rate_percent),
        vat: money(t, d.vat_amount),
        total: money(t, d.total),
        energy_kwh: kwh(t, d.energy_mj),
        unvalued_kwh: kwh(t, d.energy_without_intensity_mj),
        has_unvalued: d.energy_without_intensity_mj > 0,
        co2e_kg: kg(t, d.co2e_mg),
        vat_note: d.vat.note.clone(),
        reason: d.reason.clone().unwrap_or_default(),
        issued: format::maybe_time(d.finalised_at),
    }
}

/// The download name of a document's CSV: its number when it has one, else its kind
/// and month (`aion-statement-2026-10.csv`); only safe characters.
pub fn csv_file_name(d: &BillingDocument) -> String {
    let stem = match &d.number {
        Some(n) => format!("aion-{}-{n}", d.kind.as_str()),
        None => format!(
            "aion-{}-{}",
            d.kind.as_str(),
            Month::of(d.period_start).key()
        ),
    };
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{safe}.csv")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const EN: Tr = Tr { lang: Lang::En };
    const FR: Tr = Tr { lang: Lang::Fr };

    #[test]
    fn amounts_keep_their_exact_decimals() {
        let d = Decimal::from_str("1234.5").unwrap();
        assert_eq!(money(EN, d), "1234.50");
        assert_eq!(money(FR, d), "1234,50");
        assert_eq!(money(EN, Decimal::from_str("0.4375").unwrap()), "0.4375");
        assert_eq!(money(EN, Decimal::from(-12)), "-12.00");
    }

    #[test]
    fn rates_lose_their_trailing_zeros() {
        assert_eq!(rate(EN, Decimal::from_str("20.00").unwrap()), "20");
        assert_eq!(rate(FR, Decimal::from_str("5.50").unwrap()), "5,5");
    }

    #[test]
    fn energy_and_carbon_are_shown_in_kwh_and_kg() {
        assert_eq!(kwh(EN, 3_600_000_000), "1.000");
        assert_eq!(kwh(FR, 5_400_000_000), "1,500");
        assert_eq!(kg(EN, 2_500_000), "2.500");
    }
}
