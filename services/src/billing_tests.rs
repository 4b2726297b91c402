//! Tests of the monthly documents: months, line gathering and the totals' rules.

use super::*;
use crate::ids::PriceListId;
use crate::pricing::{DiscountPercent, Price};
use crate::rating::{PriceBasis, PriceStep, UnitPrice};
use aion_mig::GpuModel;
use chrono::Duration;
use proptest::prelude::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn step(price: &str) -> PriceStep {
    PriceStep {
        price_list_id: PriceListId::new(),
        effective_from: at("2026-01-01T00:00:00Z"),
        unit: UnitPrice::new(PriceBasis::GpuHour, Price::parse("p", price).unwrap()),
        preemptible_discount: DiscountPercent::parse("d", "30").unwrap(),
    }
}

const PROFILES: [&str; 5] = ["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"];

/// A lease of `PROFILES[profile]` active from `start_s` to `end_s` seconds into
/// November 2026 (the end may run into December), rated and kept for November.
fn rated_lease(
    project: u8,
    profile: usize,
    preemptible: bool,
    start_s: i64,
    len_s: i64,
    statement: bool,
) -> RatedLease {
    let november = Month::parse("m", "2026-11").unwrap();
    let from = november.start() + Duration::seconds(start_s);
    let to = Ord::min(from + Duration::seconds(len_s), november.end());
    let alloc = Allocation {
        profile: GpuModel::H100_80GB
            .parse_profile(PROFILES[profile])
            .unwrap(),
        count: 1,
        preemptible,
        active_at: from,
        ended_at: to,
    };
    RatedLease {
        kind: if statement {
            DocumentKind::Statement
        } else {
            DocumentKind::Invoice
        },
        project: Uuid::from_u128(u128::from(project) + 1),
        gpu_model: "H100-80GB".into(),
        profile: PROFILES[profile].into(),
        site: "par-1".into(),
        preemptible,
        pieces: rating::rate(&alloc, &[step("2.40")]).unwrap(),
        energy: vec![(from, 3_600_000, Some(56))],
    }
}

#[test]
fn months_parse_and_bound_exactly() {
    let m = Month::parse("month", "2026-12").unwrap();
    assert_eq!(m.start(), at("2026-12-01T00:00:00Z"));
    assert_eq!(m.end(), at("2027-01-01T00:00:00Z"));
    assert_eq!(m.key(), "2026-12");
    assert_eq!(Month::of(at("2026-02-28T23:59:59Z")).key(), "2026-02");
    for bad in [
        "2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "abcd-ef",
    ] {
        assert!(Month::parse("month", bad).is_err(), "{bad}");
    }
}

#[test]
fn one_line_per_project_profile_and_price_and_vat_on_the_net() {
    let leases = vec![
        rated_lease(0, 2, false, 0, 3600, false),
        rated_lease(0, 2, false, 7200, 3600, false),
        rated_lease(0, 2, true, 0, 3600, false),
        rated_lease(1, 0, false, 0, 3600, true),
    ];
    let names = HashMap::new();
    let (invoice, _) = lines_of(&leases, DocumentKind::Invoice, &names).unwrap();
    assert_eq!(invoice.len(), 2, "guaranteed and preemptible 3g lines");
    assert_eq!(invoice[0].seconds, 7200);
    assert_eq!(invoice[0].slice_seconds, 3 * 7200);
    // 2 h × 3/7 GPU at 2.40 = 2.057142… → 2.06; preemptible 30 % off: 0.72 → 0.72.
    assert_eq!(invoice[0].amount, Decimal::new(206, 2));
    assert_eq!(invoice[1].amount, Decimal::new(72, 2));
    assert_eq!(invoice[0].energy_mj, 7_200_000);
    let doc = document(
        OrganizationId(Uuid::nil()),
        DocumentKind::Invoice,
        Month::parse("m", "2026-11").unwrap(),
        invoice,
        vat::treatment("FR"),
        0,
    );
    assert_eq!(doc.net, Decimal::new(278, 2));
    assert_eq!(doc.vat_amount, Decimal::new(56, 2));
    assert_eq!(doc.total, Decimal::new(334, 2));
    let (statement, _) = lines_of(&leases, DocumentKind::Statement, &names).unwrap();
    assert_eq!(statement.len(), 1);
    // Energy at a site and time with no recorded intensity is counted apart, per document.
    let mut unknown = rated_lease(1, 0, false, 0, 3600, true);
    unknown.energy = vec![(unknown.pieces[0].start, 7_000, None)];
    let (lines, unvalued) = lines_of(&[unknown], DocumentKind::Statement, &names).unwrap();
    assert_eq!(
        (lines[0].energy_mj, lines[0].co2e_mg, unvalued),
        (7_000, 0, 7_000)
    );
    assert_eq!(statement[0].profile.as_deref(), Some("1g.10gb"));
}

proptest! {
    #[test]
    fn totals_are_the_sums_of_lines_and_lines_of_rated_time(
        leases in proptest::collection::vec(
            (0u8..3, 0usize..5, any::<bool>(), 0i64..(29 * 86_400), 1i64..(5 * 86_400), any::<bool>()),
            1..12,
        )
    ) {
        let rated: Vec<RatedLease> = leases
            .iter()
            .map(|(p, prof, pre, start, len, st)| rated_lease(*p, *prof, *pre, *start, *len, *st))
            .collect();
        let names = HashMap::new();
        for kind in [DocumentKind::Invoice, DocumentKind::Statement] {
            let (lines, unvalued) = lines_of(&rated, kind, &names).unwrap();
            prop_assert_eq!(unvalued, 0, "every test record has an intensity");
            let mine: Vec<&RatedLease> = rated.iter().filter(|l| l.kind == kind).collect();
            // Every rated second and slice-second lands on exactly one line.
            let seconds: i64 = mine.iter().flat_map(|l| &l.pieces).map(|p| p.seconds).sum();
            prop_assert_eq!(lines.iter().map(|l| l.seconds).sum::<i64>(), seconds);
            // Each line is its pieces' exact sum rounded once; the net differs from the
            // rounded exact total by at most half a cent per line.
            let exact = Amount::sum(mine.iter().flat_map(|l| &l.pieces).map(|p| p.amount)).unwrap();
            let doc = document(
                OrganizationId(Uuid::nil()),
                kind,
                Month::parse("m", "2026-11").unwrap(),
                lines.clone(),
                vat::treatment("FR"),
                0,
            );
            prop_assert_eq!(doc.net, lines.iter().map(|l| l.amount).sum::<Decimal>());
            let drift = (doc.net - exact.to_decimal().unwrap()).abs();
            prop_assert!(drift <= Decimal::new(5, 3) * Decimal::from(lines.len().max(1)));
            prop_assert_eq!(doc.total, doc.net + doc.vat_amount);
            prop_assert_eq!(doc.energy_mj, mine.len() as i64 * 3_600_000);
            // Splitting a line's leases differently never changes its amount: a line is
            // the rounding of the exact sum of its pieces.
            for line in &lines {
                let of_line = Amount::sum(
                    mine.iter()
                        .filter(|l| Some(l.profile.as_str()) == line.profile.as_deref()
                            && l.preemptible == line.preemptible
                            && Some(ProjectId(l.project)) == line.project_id)
                        .flat_map(|l| &l.pieces)
                        .filter(|p| p.unit_price == line.unit_price)
                        .map(|p| p.amount),
                ).unwrap();
                prop_assert_eq!(line.amount, of_line.to_cents().unwrap());
            }
        }
    }
}
