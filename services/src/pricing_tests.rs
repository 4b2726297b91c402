//! Tests of price list values, validation and resolution.

use super::*;
use crate::rating::{self, Allocation, Amount};
use chrono::Duration;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn entry(model: &str, price: &str, overrides: &[(&str, &str)]) -> ModelPricesInput {
    ModelPricesInput {
        gpu_model: model.into(),
        gpu_hour_price: price.into(),
        profile_prices: overrides
            .iter()
            .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn parse(entries: &[ModelPricesInput], discount: &str) -> Result<NewPriceList> {
    NewPriceList::parse(
        PriceScope::parse(Some("academic"), None),
        "Academic 2027",
        Some("EUR"),
        at("2027-01-01T00:00:00.250Z"),
        Some(discount),
        entries,
    )
}

fn version(scope: PriceScope, from: &str, price: &str) -> PriceList {
    PriceList {
        id: PriceListId::new(),
        scope,
        name: format!("{from} {price}"),
        currency: CURRENCY.into(),
        effective_from: at(from),
        preemptible_discount_percent: DiscountPercent::NONE,
        entries: vec![ModelPrices {
            gpu_model: GpuModel::H100_80GB,
            gpu_hour_price: Price::parse("p", price).unwrap(),
            profile_prices: vec![],
        }],
        created_by: "system".into(),
        created_at: at(from),
    }
}

fn fields(err: Error) -> Vec<String> {
    match err {
        Error::Validation(f) => f.into_keys().collect(),
        other => panic!("not a validation error: {other}"),
    }
}

#[test]
fn prices_are_kept_with_six_fractional_digits() {
    assert_eq!(
        Price::parse("p", "2.4").unwrap().get().to_string(),
        "2.400000"
    );
    assert_eq!(
        Price::parse("p", " 2.4000000 ").unwrap().micros(),
        2_400_000
    );
    assert_eq!(
        DiscountPercent::parse("d", "12.5")
            .unwrap()
            .get()
            .to_string(),
        "12.50"
    );
}

#[test]
fn zero_negative_over_precise_or_non_numeric_prices_are_rejected() {
    for bad in ["0", "-1", "0.0000001", "abc", "", "1e3", "NaN", "1000001"] {
        assert!(Price::parse("p", bad).is_err(), "{bad}");
    }
}

#[test]
fn a_discount_outside_0_to_100_or_finer_than_a_hundredth_is_rejected() {
    for bad in ["-1", "100.01", "12.345"] {
        assert!(DiscountPercent::parse("d", bad).is_err(), "{bad}");
    }
    assert!(DiscountPercent::parse("d", "100").is_ok());
}

#[test]
fn a_valid_list_keeps_its_date_to_the_second_and_names_profiles_canonically() {
    let list = parse(
        &[entry("h100-80gb", "2.40", &[("MIG 1G.10GB", "0.40")])],
        "30",
    )
    .unwrap();
    assert_eq!(list.effective_from, at("2027-01-01T00:00:00Z"));
    assert_eq!(list.entries[0].profile_prices[0].0, "1g.10gb");
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let err = parse(
        &[
            entry(
                "H100-80GB",
                "2.40",
                &[("1g.10gb", "0.4"), ("1g.10gb", "0.5")],
            ),
            entry("H100-80GB", "-2", &[("9g.1tb", "1")]),
            entry("B200", "2", &[]),
        ],
        "101",
    )
    .unwrap_err();
    let f = fields(err);
    for key in [
        "entries[0].profile_prices[1].profile",
        "entries[1].gpu_model",
        "entries[1].gpu_hour_price",
        "entries[1].profile_prices[0].profile",
        "entries[2].gpu_model",
        "preemptible_discount_percent",
    ] {
        assert!(f.contains(&key.to_owned()), "{key} missing from {f:?}");
    }
}

#[test]
fn both_or_neither_scope_and_a_currency_other_than_eur_are_rejected() {
    assert!(PriceScope::parse(None, None).is_err());
    assert!(PriceScope::parse(Some("academic"), Some(uuid::Uuid::now_v7())).is_err());
    assert!(PriceScope::parse(Some("hobbyist"), None).is_err());
    let err = NewPriceList::parse(
        PriceScope::parse(Some("startup"), None),
        "x",
        Some("USD"),
        Utc::now(),
        None,
        &[entry("H100-80GB", "1", &[])],
    )
    .unwrap_err();
    assert_eq!(fields(err), vec!["currency".to_owned()]);
    assert!(parse(&[], "0").is_err());
}

#[test]
fn the_latest_version_in_effect_applies_and_a_contract_wins_over_the_kind() {
    let org = OrganizationId::new();
    let kind = PriceScope::OrganizationKind(OrganizationKind::Academic);
    let contract = PriceScope::Organization(org);
    let versions = vec![
        version(kind, "2026-01-01T00:00:00Z", "2.00"),
        version(kind, "2027-01-01T00:00:00Z", "2.20"),
        version(contract, "2026-06-01T00:00:00Z", "1.50"),
        version(
            PriceScope::Organization(OrganizationId::new()),
            "2025-01-01T00:00:00Z",
            "0.1",
        ),
    ];
    let academic = OrganizationKind::Academic;
    let pick = |t: &str| applicable(&versions, org, academic, at(t)).unwrap().id;
    assert_eq!(pick("2026-03-01T00:00:00Z"), versions[0].id);
    assert_eq!(pick("2026-06-01T00:00:00Z"), versions[2].id);
    assert_eq!(pick("2027-06-01T00:00:00Z"), versions[2].id);
    let other = OrganizationId::new();
    assert_eq!(
        applicable(&versions, other, academic, at("2027-01-01T00:00:00Z"))
            .unwrap()
            .id,
        versions[1].id
    );
    let err = applicable(
        &versions,
        other,
        OrganizationKind::Startup,
        at("2027-01-01T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(err.code(), "no_price_list");
    assert!(err.to_string().contains(&other.to_string()));
}

#[test]
fn price_steps_follow_the_resolution_and_rate_each_side_of_a_change() {
    let org = OrganizationId::new();
    let kind = PriceScope::OrganizationKind(OrganizationKind::Startup);
    let versions = vec![
        version(kind, "2026-01-01T00:00:00Z", "2.00"),
        version(
            PriceScope::Organization(org),
            "2026-11-15T00:00:00Z",
            "1.00",
        ),
        // A kind change while the contract applies changes nothing for this organisation.
        version(kind, "2026-11-20T00:00:00Z", "5.00"),
    ];
    let profile = GpuModel::H100_80GB.parse_profile("7g.80gb").unwrap();
    let (from, to) = (at("2026-11-14T00:00:00Z"), at("2026-11-22T00:00:00Z"));
    let steps = price_steps(
        &versions,
        org,
        OrganizationKind::Startup,
        GpuModel::H100_80GB,
        &profile,
        from,
        to,
    )
    .unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].effective_from, from);
    assert_eq!(steps[1].price_list_id, versions[1].id);
    let alloc = Allocation {
        profile,
        count: 1,
        preemptible: false,
        active_at: from,
        ended_at: to,
    };
    let pieces = rating::rate(&alloc, &steps).unwrap();
    let total = Amount::sum(pieces.iter().map(|p| p.amount)).unwrap();
    // One day at 2.00 and seven at 1.00, 24 GPU-hours a day.
    assert_eq!(total.to_cents().unwrap(), Decimal::from(24 * 2 + 7 * 24));
    let missing = GpuModel::A100_40GB.parse_profile("7g.40gb").unwrap();
    let err = price_steps(
        &versions,
        org,
        OrganizationKind::Startup,
        GpuModel::A100_40GB,
        &missing,
        from,
        from + Duration::hours(1),
    )
    .unwrap_err();
    assert_eq!(err.code(), "no_price_list");
}

#[test]
fn a_lease_active_at_a_fraction_of_a_second_is_rated_from_that_second() {
    let org = OrganizationId::new();
    let versions = vec![version(
        PriceScope::Organization(org),
        "2026-01-01T00:00:00Z",
        "2.00",
    )];
    let profile = GpuModel::H100_80GB.parse_profile("7g.80gb").unwrap();
    let from = at("2026-11-14T00:00:00.123456Z");
    let to = from + Duration::hours(1);
    let kind = OrganizationKind::Public;
    let steps = price_steps(
        &versions,
        org,
        kind,
        GpuModel::H100_80GB,
        &profile,
        from,
        to,
    )
    .unwrap();
    let alloc = Allocation {
        profile,
        count: 1,
        preemptible: false,
        active_at: from,
        ended_at: to,
    };
    let pieces = rating::rate(&alloc, &steps).unwrap();
    assert_eq!(pieces[0].seconds, 3600);
    assert_eq!(pieces[0].amount.to_cents().unwrap(), Decimal::from(2));
}
