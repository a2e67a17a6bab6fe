//! The domain's own values against the schemas the api crate writes for
//! them.

use serde_json::{json, Value};

use crate::conformance::schema_validator;

/// The JSON of each named variant of a fieldless enum. The names go
/// through an exhaustive match, so a variant added to the enum fails to
/// compile here until it is named.
macro_rules! every_variant {
    ($enum:ident: $($variant:ident),+) => {{
        let json = |value: $enum| match value {
            $($enum::$variant)|+ => serde_json::to_value(value).unwrap(),
        };
        vec![$(json($enum::$variant)),+]
    }};
}

/// The api crate writes the schemas of the domain's types (so `domain`
/// stays free of HTTP); every value the domain can put on the wire must
/// match them.
#[test]
fn domain_values_match_their_documented_schemas() {
    use domain::services::{KeyPermission, KeyStatus};
    use domain::user::{Experience, RiskProfile};
    use domain::AggregateType;
    use domain::{Role, Side, Strategy};
    use projections::audit::stream::Until;
    use rust_decimal::Decimal;

    let document = serde_json::to_value(api::openapi::document()).unwrap();
    let validator_of = |name: &str| {
        schema_validator(
            &document,
            &json!({ "$ref": format!("#/components/schemas/{name}") }),
        )
    };
    let check = |name: &str, values: Vec<Value>| {
        let validator = validator_of(name);
        assert!(!values.is_empty());
        for value in values {
            assert!(
                validator.is_valid(&value),
                "{value} does not match the documented schema {name}"
            );
        }
    };
    // Each list names every variant: a new one fails to compile here.
    check("Role", every_variant!(Role: User, Support, Admin, Auditor));
    check(
        "RiskProfile",
        every_variant!(RiskProfile: Conservative, Balanced, Aggressive),
    );
    check(
        "Experience",
        every_variant!(Experience: Beginner, Intermediate, Expert),
    );
    check(
        "KeyPermission",
        every_variant!(KeyPermission: QueryFunds, QueryOrders, Trade, Withdraw),
    );
    check(
        "KeyStatus",
        every_variant!(KeyStatus: Untested, Tested, TestFailed, Disconnected),
    );
    check("Side", every_variant!(Side: Buy, Sell));
    let strategy = |s: Strategy| match s {
        Strategy::Dca { .. } | Strategy::Threshold { .. } => serde_json::to_value(s).unwrap(),
    };
    check(
        "Strategy",
        vec![
            strategy(Strategy::Dca {
                quote_amount: Decimal::new(2500, 2),
                interval_secs: 60,
            }),
            strategy(Strategy::Threshold {
                buy_below: Decimal::new(90_000, 0),
                sell_above: Decimal::new(110_000, 0),
                quote_amount: Decimal::new(50, 0),
            }),
        ],
    );
    check(
        "Pair",
        vec![serde_json::to_value(domain::Pair::parse("XBT/USD").unwrap()).unwrap()],
    );
    check(
        "AggregateType",
        AggregateType::ALL
            .iter()
            .map(|k| serde_json::to_value(k).unwrap())
            .collect(),
    );
    let until = |u: Until| match u {
        Until::End | Until::AsOf { .. } | Until::Sequence { .. } => {
            serde_json::to_value(u).unwrap()
        }
    };
    check(
        "Until",
        vec![
            until(Until::End),
            until(Until::AsOf {
                as_of: chrono::Utc::now(),
            }),
            until(Until::Sequence { sequence: 3 }),
        ],
    );
    // And the schemas are not vacuous: a value outside them is refused.
    let validator = validator_of("Strategy");
    assert!(!validator.is_valid(&json!({ "kind": "martingale" })));
    assert!(!validator.is_valid(&json!({ "kind": "dca", "quote_amount": 25, "interval_secs": 60 })));
}
