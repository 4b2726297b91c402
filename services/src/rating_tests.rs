//! Tests of rating: worked examples, the rounding rules, and properties of splitting.

use super::*;
use crate::ids::PriceListId;
use aion_mig::GpuModel;
use chrono::Duration;
use proptest::prelude::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn profile(name: &str) -> Profile {
    GpuModel::H100_80GB.parse_profile(name).unwrap()
}

fn step(from: &str, basis: PriceBasis, price: &str, discount: &str) -> PriceStep {
    PriceStep {
        price_list_id: PriceListId::new(),
        effective_from: at(from),
        unit: UnitPrice::new(basis, Price::parse("p", price).unwrap()),
        preemptible_discount: DiscountPercent::parse("d", discount).unwrap(),
    }
}

fn alloc(profile_name: &str, count: u32, from: &str, to: &str) -> Allocation {
    Allocation {
        profile: profile(profile_name),
        count,
        preemptible: false,
        active_at: at(from),
        ended_at: at(to),
    }
}

fn total(pieces: &[RatedPiece]) -> Amount {
    Amount::sum(pieces.iter().map(|p| p.amount)).unwrap()
}

#[test]
fn a_3g_40gb_hour_costs_three_sevenths_of_a_gpu_hour_rounded_once_to_cents() {
    let a = alloc("3g.40gb", 1, "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z");
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::GpuHour,
            "2.40",
            "0",
        )],
    )
    .unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].slice_seconds, 3 * 3600);
    // 2.40 × 3/7 = 1.0285714…: exact in the piece, 1.03 once rounded.
    let exact = total(&pieces).to_decimal().unwrap();
    assert!(exact > Decimal::new(1_028_571, 6) && exact < Decimal::new(1_028_572, 6));
    assert_eq!(total(&pieces).to_cents().unwrap(), Decimal::new(103, 2));
}

#[test]
fn a_whole_h100_for_all_of_november_at_2_40_costs_1728_euros() {
    let a = alloc("7g.80gb", 1, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::GpuHour,
            "2.40",
            "0",
        )],
    )
    .unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].gpu_hours, Decimal::from(720));
    assert_eq!(total(&pieces).to_cents().unwrap(), Decimal::new(172_800, 2));
}

#[test]
fn a_lease_across_midnight_at_a_month_end_is_cut_there() {
    let a = alloc("1g.10gb", 1, "2026-12-31T23:30:00Z", "2027-01-01T00:30:00Z");
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::GpuHour,
            "2.40",
            "0",
        )],
    )
    .unwrap();
    let months: Vec<_> = pieces.iter().map(|p| (p.month, p.seconds)).collect();
    assert_eq!(
        months,
        vec![
            (NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), 1800),
            (NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), 1800),
        ]
    );
}

#[test]
fn a_price_change_inside_a_month_cuts_the_piece_and_each_side_pays_its_price() {
    let a = alloc("7g.80gb", 1, "2026-11-10T11:00:00Z", "2026-11-10T13:00:00Z");
    let steps = [
        step("2026-01-01T00:00:00Z", PriceBasis::GpuHour, "2.00", "0"),
        step("2026-11-10T12:00:00Z", PriceBasis::GpuHour, "3.00", "0"),
    ];
    let pieces = rate(&a, &steps).unwrap();
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0].price_list_id, steps[0].price_list_id);
    assert_eq!(pieces[1].unit_price, Decimal::from(3));
    assert_eq!(total(&pieces).to_cents().unwrap(), Decimal::from(5));
}

#[test]
fn a_profile_override_is_paid_per_instance_hour() {
    let a = alloc("1g.10gb", 2, "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z");
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::InstanceHour,
            "0.50",
            "0",
        )],
    )
    .unwrap();
    assert_eq!(pieces[0].basis, PriceBasis::InstanceHour);
    assert_eq!(total(&pieces).to_decimal().unwrap(), Decimal::ONE);
}

#[test]
fn a_preemptible_lease_pays_the_discounted_price() {
    let mut a = alloc("7g.80gb", 1, "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z");
    a.preemptible = true;
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::GpuHour,
            "2.40",
            "30",
        )],
    )
    .unwrap();
    assert_eq!(pieces[0].unit_price, Decimal::new(168, 2));
    assert_eq!(total(&pieces).to_cents().unwrap(), Decimal::new(168, 2));
}

#[test]
fn half_a_cent_rounds_to_the_even_cent() {
    assert_eq!(round_cents(Decimal::new(125, 3)), Decimal::new(12, 2));
    assert_eq!(round_cents(Decimal::new(135, 3)), Decimal::new(14, 2));
    assert_eq!(round_cents(Decimal::new(1251, 4)), Decimal::new(13, 2));
    let half = UNITS_PER_CENT / 2;
    assert_eq!(
        Amount(12 * UNITS_PER_CENT + half).to_cents().unwrap(),
        Decimal::new(12, 2)
    );
    assert_eq!(
        Amount(13 * UNITS_PER_CENT + half).to_cents().unwrap(),
        Decimal::new(14, 2)
    );
    assert_eq!(
        Amount(13 * UNITS_PER_CENT + half + 1).to_cents().unwrap(),
        Decimal::new(14, 2)
    );
    assert_eq!(
        Amount(12 * UNITS_PER_CENT + half - 1).to_cents().unwrap(),
        Decimal::new(12, 2)
    );
}

#[test]
fn fractions_of_a_second_are_not_rated() {
    let mut a = alloc("7g.80gb", 1, "2026-11-02T10:00:00Z", "2026-11-02T10:00:10Z");
    a.active_at += Duration::milliseconds(900);
    a.ended_at += Duration::milliseconds(900);
    let pieces = rate(
        &a,
        &[step(
            "2026-01-01T00:00:00Z",
            PriceBasis::GpuHour,
            "2.40",
            "0",
        )],
    )
    .unwrap();
    assert_eq!(pieces[0].seconds, 10);
}

#[test]
fn time_before_the_first_price_is_not_priced_and_a_reversed_interval_is_refused() {
    let a = alloc("7g.80gb", 1, "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z");
    let late = [step(
        "2026-11-02T10:30:00Z",
        PriceBasis::GpuHour,
        "2.40",
        "0",
    )];
    assert_eq!(rate(&a, &late).unwrap_err().code(), "no_price_list");
    let reversed = alloc("7g.80gb", 1, "2026-11-02T11:00:00Z", "2026-11-02T10:00:00Z");
    assert_eq!(
        rate(&reversed, &late).unwrap_err().code(),
        "validation_failed"
    );
    let empty = alloc("7g.80gb", 1, "2026-11-02T11:00:00Z", "2026-11-02T11:00:00Z");
    assert!(rate(&empty, &late).unwrap().is_empty());
}

/// A lease of random shape over up to 400 days between 2026 and 2030, with a random price.
fn arb_case() -> impl Strategy<Value = (Allocation, PriceStep)> {
    let profiles = [
        "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
    ];
    (
        proptest::sample::select(profiles.to_vec()),
        1u32..=64,
        any::<bool>(),
        0i64..(4 * 365 * 86_400),
        0i64..(400 * 86_400),
        1i64..=100_000_000,
        0i64..=10_000,
        any::<bool>(),
    )
        .prop_map(
            |(p, count, preemptible, offset, length, micros, bp, per_instance)| {
                let start = at("2026-01-01T00:00:00Z") + Duration::seconds(offset);
                let alloc = Allocation {
                    profile: profile(p),
                    count,
                    preemptible,
                    active_at: start,
                    ended_at: start + Duration::seconds(length),
                };
                let basis = if per_instance {
                    PriceBasis::InstanceHour
                } else {
                    PriceBasis::GpuHour
                };
                let price = Decimal::new(micros, 6).to_string();
                let discount = Decimal::new(bp, 2).to_string();
                let mut s = step("2025-12-01T00:00:00Z", basis, &price, &discount);
                s.unit = UnitPrice::new(basis, Price::parse("p", &price).unwrap());
                (alloc, s)
            },
        )
}

proptest! {
    #[test]
    fn splitting_at_month_boundaries_conserves_seconds_and_money((a, s) in arb_case()) {
        let pieces = rate(&a, &[s]).unwrap();
        let seconds = (a.ended_at - a.active_at).num_seconds();
        prop_assert_eq!(pieces.iter().map(|p| p.seconds).sum::<i64>(), seconds);
        prop_assert_eq!(total(&pieces), amount_at(&a, &s, seconds).unwrap());
    }

    #[test]
    fn pieces_never_cross_a_month_and_follow_each_other((a, s) in arb_case()) {
        let pieces = rate(&a, &[s]).unwrap();
        let mut expected_start = a.active_at;
        for p in &pieces {
            prop_assert_eq!(p.start, expected_start);
            prop_assert!(p.seconds > 0);
            let last_second = p.end - Duration::seconds(1);
            prop_assert_eq!(p.start.date_naive().with_day(1).unwrap(), p.month);
            prop_assert_eq!(last_second.date_naive().with_day(1).unwrap(), p.month);
            expected_start = p.end;
        }
        prop_assert_eq!(expected_start, a.ended_at);
    }

    #[test]
    fn a_preemptible_lease_costs_exactly_the_discounted_guaranteed_price((a, s) in arb_case()) {
        let guaranteed = Allocation { preemptible: false, ..a.clone() };
        let preemptible = Allocation { preemptible: true, ..a };
        let g = total(&rate(&guaranteed, &[s]).unwrap());
        let p = total(&rate(&preemptible, &[s]).unwrap());
        // p = (1 - d/100) × g, with d/100 = basis points / 10,000, in exact integers.
        let keep = 10_000 - s.preemptible_discount.basis_points();
        prop_assert_eq!(p.0 * 10_000, g.0 * keep);
    }

    #[test]
    fn exact_cents_agree_with_banker_rounding_of_the_decimal(units in 0i128..10i128.pow(24)) {
        let amount = Amount(units);
        prop_assert_eq!(amount.to_cents().unwrap(), round_cents(amount.to_decimal().unwrap()));
    }

    #[test]
    fn price_changes_split_pieces_and_each_piece_pays_its_own_step(
        (a, s) in arb_case(),
        change in 1i64..(500 * 86_400),
    ) {
        let mut later = s;
        later.price_list_id = PriceListId::new();
        later.effective_from = a.active_at + Duration::seconds(change);
        later.unit = UnitPrice::new(s.unit.basis, Price::parse("p", "9.99").unwrap());
        let steps = [s, later];
        let pieces = rate(&a, &steps).unwrap();
        let seconds = (a.ended_at - a.active_at).num_seconds();
        prop_assert_eq!(pieces.iter().map(|p| p.seconds).sum::<i64>(), seconds);
        for p in &pieces {
            let which = if p.start >= later.effective_from { &later } else { &s };
            prop_assert_eq!(p.price_list_id, which.price_list_id);
            prop_assert!(p.end <= later.effective_from || p.start >= later.effective_from);
            prop_assert_eq!(p.amount, amount_at(&a, which, p.seconds).unwrap());
        }
    }
}
