//! The Kafka JSON Schemas in `schemas/kafka/` against real events.
//!
//! Every variant of every event enum is built (Option fields both set and
//! unset, every strategy kind), serialised exactly as the event store does
//! (`serde_json::to_value` of the enum) and validated against
//! `events/<wire name>.schema.json`; each is also wrapped in a Kafka envelope
//! and validated against `envelope.schema.json`, whose `$ref`s to the event
//! schemas are resolved offline from the files. The set of schema files must
//! equal the set of wire names the enums themselves declare, so an event type
//! without a schema fails; and broken payloads and envelopes must be refused,
//! so the schemas are not vacuous.
//!
//! The end-to-end mirror test validates every message it reads with
//! [`envelope_validator`] too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::DomainEvent;
use domain::bot::{BotEvent, Fill};
use domain::exchange_key::ExchangeKeyEvent;
use domain::notification::{NotificationEvent, NotificationKind, NotificationSubject};
use domain::portfolio::{Portfolio, PortfolioEvent, Position, TradeFill};
use domain::services::KeyPermission;
use domain::support_ticket::SupportTicketEvent;
use domain::user::{
    Experience, NotificationPreferences, PasswordChangeKind, ProfileChanges, RiskProfile, UserEvent,
};
use domain::AggregateType;
use domain::{Decimal, Pair, Role, Side, Strategy};
use jsonschema::{Registry, Validator};
use serde_json::{json, Value};
use uuid::Uuid;

/// The schemas, at the repository's root.
const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/kafka");

const SCHEMA_SUFFIX: &str = ".schema.json";

// ---------------------------------------------------------------------------
// Loading the schemas
// ---------------------------------------------------------------------------

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

/// `events/*.schema.json` by wire name. Any other file in `events/` fails.
fn event_schemas() -> BTreeMap<String, Value> {
    let dir = Path::new(SCHEMA_DIR).join("events");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    let mut schemas = BTreeMap::new();
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = file
            .strip_suffix(SCHEMA_SUFFIX)
            .unwrap_or_else(|| panic!("unexpected file in events/: {}", path.display()));
        schemas.insert(name.to_string(), read_json(&path));
    }
    schemas
}

fn envelope_schema() -> Value {
    read_json(&Path::new(SCHEMA_DIR).join("envelope.schema.json"))
}

fn id_of(schema: &Value) -> &str {
    schema["$id"]
        .as_str()
        .expect("every schema has a string $id")
}

/// A validator that checks `format` too (2020-12 makes it an annotation by
/// default), so UUIDs and date-times are really checked.
pub fn validator(schema: &Value) -> Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("schema {} does not compile: {error}", id_of(schema)))
}

fn event_validators() -> BTreeMap<String, Validator> {
    event_schemas()
        .iter()
        .map(|(name, schema)| (name.clone(), validator(schema)))
        .collect()
}

/// The envelope validator; the event schemas are registered under their
/// `$id`s, so the envelope's relative `$ref`s resolve without any fetching.
pub fn envelope_validator() -> Validator {
    let events = event_schemas();
    let registry = Registry::new()
        .extend(
            events
                .values()
                .map(|schema| (id_of(schema).to_string(), schema.clone())),
        )
        .expect("event schema $ids are URIs")
        .prepare()
        .expect("event schemas form a registry");
    jsonschema::options()
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&envelope_schema())
        .unwrap_or_else(|error| panic!("envelope schema does not compile: {error}"))
}

pub fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|error| format!("{} (at {})", error, error.instance_path()))
        .collect()
}

fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors = errors(validator, instance);
    assert!(
        errors.is_empty(),
        "{what} does not match its schema:\n  {}\ninstance: {}",
        errors.join("\n  "),
        serde_json::to_string_pretty(instance).unwrap_or_default()
    );
}

fn assert_invalid(validator: &Validator, instance: &Value, what: &str) {
    assert!(
        !validator.is_valid(instance),
        "{what} was accepted but must be refused: {instance}"
    );
}

// ---------------------------------------------------------------------------
// The wire names, from the Rust types themselves
// ---------------------------------------------------------------------------

/// Every wire name of an event enum, read from serde's refusal of an unknown
/// `type` ("unknown variant `x`, expected one of `a`, `b`, …"), so a variant
/// added to the enum shows up here without anyone listing it.
fn wire_names<E: DomainEvent>() -> BTreeSet<String> {
    let error = serde_json::from_value::<E>(json!({"type": "no such event"}))
        .expect_err("an unknown event type is refused")
        .to_string();
    let (_, expected) = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("unexpected serde error: {error}"));
    let names: BTreeSet<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!names.is_empty(), "no wire names in: {error}");
    names
}

/// The wire names of one aggregate's events. The match is exhaustive, so
/// an aggregate added to the registry must be added here.
fn wire_names_of(kind: AggregateType) -> BTreeSet<String> {
    match kind {
        AggregateType::User => wire_names::<UserEvent>(),
        AggregateType::ExchangeKey => wire_names::<ExchangeKeyEvent>(),
        AggregateType::Bot => wire_names::<BotEvent>(),
        AggregateType::Portfolio => wire_names::<PortfolioEvent>(),
        AggregateType::SupportTicket => wire_names::<SupportTicketEvent>(),
        AggregateType::Notification => wire_names::<NotificationEvent>(),
    }
}

/// Wire name → aggregate type, for every aggregate of the registry.
pub fn all_wire_names() -> BTreeMap<String, &'static str> {
    let mut all = BTreeMap::new();
    for kind in AggregateType::ALL {
        for name in wire_names_of(kind) {
            let previous = all.insert(name.clone(), kind.as_str());
            assert!(previous.is_none(), "wire name {name} used twice");
        }
    }
    all
}

/// Every event type belongs to its aggregate's families in the registry,
/// and the mirror routes every family to a topic: an aggregate or event
/// family added in one place and not the other fails here, not in
/// production (where the mirror would stop at the first unrouted event).
#[test]
fn every_event_type_is_in_its_aggregates_families_and_routed_to_a_topic() {
    let layout = kafka_mirror::KafkaSettings::from_lookup(&|_| None)
        .expect("the default Kafka settings")
        .layout;
    for (name, aggregate) in all_wire_names() {
        assert_eq!(
            AggregateType::of_event_type(&name).map(AggregateType::as_str),
            Some(aggregate),
            "{name} is not in the families of {aggregate} (domain::aggregates)"
        );
        assert!(
            layout.topic_for(&name).is_some(),
            "{name} has no Kafka topic (kafka_mirror::topics::TopicLayout::topic_for)"
        );
    }
    for kind in AggregateType::ALL {
        for family in kind.event_families() {
            assert!(
                layout.topic_for(&format!("{family}.any")).is_some(),
                "the family {family} of {kind} has no Kafka topic"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// One or more real events of every variant
// ---------------------------------------------------------------------------

struct Sample {
    event_type: String,
    event_version: String,
    aggregate_type: &'static str,
    payload: Value,
}

fn sample<E: DomainEvent>(aggregate_type: &'static str, event: E) -> Sample {
    Sample {
        event_type: event.event_type(),
        event_version: event.event_version(),
        aggregate_type,
        payload: serde_json::to_value(&event).expect("an event serialises"),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a decimal literal")
}

fn pair(text: &str) -> Pair {
    Pair::parse(text).expect("a valid pair")
}

fn id() -> Uuid {
    Uuid::new_v4()
}

/// Two kinds of timestamps: with nanoseconds, and on a whole second (which
/// chrono writes without a fraction).
fn times() -> [DateTime<Utc>; 2] {
    [
        Utc::now(),
        Utc.with_ymd_and_hms(2026, 11, 24, 2, 26, 15)
            .single()
            .expect("a valid time"),
    ]
}

fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::Dca {
            quote_amount: dec("25.00"),
            interval_secs: 60,
        },
        Strategy::Dca {
            quote_amount: dec("0.5"),
            interval_secs: domain::common::MAX_INTERVAL_SECS,
        },
        Strategy::Threshold {
            buy_below: dec("58000"),
            sell_above: dec("61000.125"),
            quote_amount: dec("100"),
        },
    ]
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let [now, whole] = times();
    let user = id();

    // User: personal data sealed as the command side seals it.
    let data_key = domain::personal::DataKey::from_bytes(rand::random());
    let seal = |field: &str, text: &str| data_key.seal(user, field, rand::random(), text);
    for (display_name, at) in [
        (Some(seal("display_name", "Ada Lovelace")), now),
        (None, whole),
    ] {
        out.push(sample(
            "User",
            UserEvent::UserCreated {
                user_id: user,
                email: seal("email", "ada@example.com"),
                display_name,
                role: Role::User,
                at,
            },
        ));
    }
    out.push(sample("User", UserEvent::UserLoggedIn { at: now }));
    for (source, at) in [("ip:203.0.113.7", now), ("ip:2001:db8::1", whole)] {
        out.push(sample(
            "User",
            UserEvent::LoginFailed {
                source: seal("source", source),
                at,
            },
        ));
    }
    for display_name in ["Ada", "Zoë Ørsted-Łukasz 🚀"] {
        out.push(sample(
            "User",
            UserEvent::UserUpdated {
                changes: ProfileChanges {
                    display_name: Some(seal("display_name", display_name)),
                    ..ProfileChanges::default()
                },
                at: whole,
            },
        ));
    }
    out.push(sample(
        "User",
        UserEvent::UserUpdated {
            changes: ProfileChanges {
                display_name: None,
                timezone: Some("America/Argentina/Buenos_Aires".to_string()),
                notifications: Some(NotificationPreferences {
                    trade_fills: true,
                    bot_errors: false,
                    security: true,
                    in_app: domain::notification::NotificationLevel::ErrorsOnly,
                }),
                risk_profile: Some(RiskProfile::Conservative),
            },
            at: now,
        },
    ));
    out.push(sample("User", UserEvent::EmailVerified { at: now }));
    for by in [PasswordChangeKind::Changed, PasswordChangeKind::Reset] {
        out.push(sample("User", UserEvent::PasswordChanged { by, at: whole }));
    }
    for (disabled_by, reason) in [(Some(id()), Some("chargebacks".to_string())), (None, None)] {
        out.push(sample(
            "User",
            UserEvent::UserDisabled {
                disabled_by,
                reason,
                at: now,
            },
        ));
    }
    for enabled_by in [Some(id()), None] {
        out.push(sample(
            "User",
            UserEvent::UserEnabled {
                enabled_by,
                at: now,
            },
        ));
    }
    for (risk_profile, experience) in [
        (RiskProfile::Conservative, Experience::Beginner),
        (RiskProfile::Balanced, Experience::Intermediate),
        (RiskProfile::Aggressive, Experience::Expert),
    ] {
        out.push(sample(
            "User",
            UserEvent::OnboardingCompleted {
                risk_profile,
                experience,
                terms_version: "2026-01".to_string(),
                at: now,
            },
        ));
    }
    for erased_by in [Some(id()), None] {
        out.push(sample("User", UserEvent::UserErased { erased_by, at: now }));
    }
    for (role, assigned_by) in [
        (Role::Admin, Some(id())),
        (Role::Auditor, None),
        (Role::User, Some(id())),
        (Role::Support, Some(id())),
    ] {
        out.push(sample(
            "User",
            UserEvent::RoleAssigned {
                role,
                assigned_by,
                at: now,
            },
        ));
    }

    // ExchangeKey
    let key = id();
    let all_permissions = vec![
        KeyPermission::QueryFunds,
        KeyPermission::QueryOrders,
        KeyPermission::Trade,
    ];
    for (label, permissions) in [
        (Some("main".to_string()), all_permissions.clone()),
        (None, vec![KeyPermission::QueryFunds]),
        (Some("empty".to_string()), vec![]),
    ] {
        out.push(sample(
            "ExchangeKey",
            ExchangeKeyEvent::KeyConnected {
                key_id: key,
                owner_id: user,
                exchange: "kraken".to_string(),
                label,
                fingerprint: "sha256:0123456789abcdef".to_string(),
                permissions,
                at: now,
            },
        ));
    }
    for (label, fingerprint, permissions) in [
        (Some("renamed".to_string()), None, None),
        (
            None,
            Some("sha256:fedcba9876543210".to_string()),
            Some(all_permissions.clone()),
        ),
        (
            Some("both".to_string()),
            Some("sha256:00000000ffffffff".to_string()),
            Some(vec![KeyPermission::Trade]),
        ),
    ] {
        out.push(sample(
            "ExchangeKey",
            ExchangeKeyEvent::KeyUpdated {
                label,
                fingerprint,
                permissions,
                at: whole,
            },
        ));
    }
    out.push(sample(
        "ExchangeKey",
        ExchangeKeyEvent::KeyTested {
            permissions: all_permissions,
            at: now,
        },
    ));
    for reason in ["key has withdrawal permission", "EAPI:Invalid key", ""] {
        out.push(sample(
            "ExchangeKey",
            ExchangeKeyEvent::KeyTestFailed {
                key_id: key,
                owner_id: user,
                reason: reason.to_string(),
                at: now,
            },
        ));
    }
    out.push(sample(
        "ExchangeKey",
        ExchangeKeyEvent::KeyDisconnected { at: whole },
    ));

    // Bot
    let bot = id();
    for (index, strategy) in strategies().into_iter().enumerate() {
        out.push(sample(
            "Bot",
            BotEvent::BotConfigured {
                bot_id: bot,
                owner_id: user,
                key_id: key,
                pair: pair("XBT/USD"),
                strategy: strategy.clone(),
                at: now,
            },
        ));
        out.push(sample(
            "Bot",
            BotEvent::BotStartRequested {
                bot_id: bot,
                owner_id: user,
                key_id: key,
                pair: pair("ETH/EUR"),
                strategy,
                requested_by: index.is_multiple_of(2).then_some(user),
                at: whole,
            },
        ));
    }
    out.push(sample("Bot", BotEvent::BotStarted { at: now }));
    for (requested_by, reason) in [
        (Some(user), Some("market too volatile".to_string())),
        (None, None),
        (Some(user), None),
        (None, Some("operator".to_string())),
    ] {
        out.push(sample(
            "Bot",
            BotEvent::BotStopRequested {
                requested_by,
                reason,
                at: now,
            },
        ));
    }
    for reason in [Some("stop requested".to_string()), None] {
        out.push(sample("Bot", BotEvent::BotStopped { reason, at: whole }));
    }
    for requested_by in [Some(user), None] {
        out.push(sample(
            "Bot",
            BotEvent::TradeTriggered {
                trigger_id: id(),
                requested_by,
                at: now,
            },
        ));
    }
    let fills = [
        Fill {
            trigger_id: Some(id()),
            order_id: "OQCLML-BW3P3-BUCMWZ".to_string(),
            side: Side::Buy,
            quantity: dec("0.00041234"),
            price: dec("60625.1"),
            fee: dec("0.065"),
            executed_at: now,
        },
        Fill {
            trigger_id: None,
            order_id: "paper-2".to_string(),
            side: Side::Sell,
            quantity: dec("0.0004"),
            price: dec("59000"),
            fee: dec("0"),
            executed_at: whole,
        },
    ];
    for fill in &fills {
        out.push(sample(
            "Bot",
            BotEvent::TradeExecuted {
                owner_id: user,
                pair: pair("XBT/USD"),
                fill: fill.clone(),
            },
        ));
    }
    for trigger_id in [Some(id()), None] {
        out.push(sample(
            "Bot",
            BotEvent::TradeSkipped {
                trigger_id,
                reason: "price above buy_below".to_string(),
                at: now,
            },
        ));
    }
    out.push(sample(
        "Bot",
        BotEvent::BotErrored {
            owner_id: user,
            message: "exchange timed out after 3 attempts".to_string(),
            at: now,
        },
    ));

    // Portfolio: the positions and P&L the aggregate itself computes, a buy
    // then a losing sell of part and a sell of the rest.
    let mut position = Position::default();
    for fill in fills.iter().chain([&Fill {
        trigger_id: None,
        order_id: "paper-3".to_string(),
        side: Side::Sell,
        quantity: dec("0.00001234"),
        price: dec("61000"),
        fee: dec("0.0001"),
        executed_at: now,
    }]) {
        let trade = TradeFill {
            user_id: user,
            bot_id: bot,
            order_id: fill.order_id.clone(),
            pair: pair("XBT/USD"),
            side: fill.side,
            quantity: fill.quantity,
            price: fill.price,
            fee: fill.fee,
            executed_at: fill.executed_at,
        };
        let (after, realised_pnl) =
            Portfolio::position_after(&position, &trade).expect("a recordable trade");
        position = after.clone();
        out.push(sample(
            "Portfolio",
            PortfolioEvent::TradeRecorded {
                trade,
                realised_pnl,
                position: after,
            },
        ));
    }

    out.extend(support_ticket_samples(user, &data_key));
    out.extend(notification_samples(user));
    out
}

/// Notification: each kind, with and without what it names.
fn notification_samples(owner: Uuid) -> Vec<Sample> {
    let [now, whole] = times();
    let mut out = Vec::new();
    for (kind, subject) in [
        (
            NotificationKind::BotError,
            NotificationSubject {
                bot_id: Some(id()),
                ..NotificationSubject::default()
            },
        ),
        (
            NotificationKind::KeyTestFailed,
            NotificationSubject {
                key_id: Some(id()),
                ..NotificationSubject::default()
            },
        ),
        (
            NotificationKind::SupportReply,
            NotificationSubject {
                ticket_id: Some(id()),
                ..NotificationSubject::default()
            },
        ),
        (NotificationKind::BotStopped, NotificationSubject::default()),
        (
            NotificationKind::TradeExecuted,
            NotificationSubject::default(),
        ),
    ] {
        let notification_id = id();
        out.push(sample(
            "Notification",
            NotificationEvent::Raised {
                notification_id,
                owner_id: owner,
                kind,
                subject,
                message: "bot stopped: exchange timed out after 3 attempts".to_string(),
                source_event_id: id(),
                source_event_type: "bot.error".to_string(),
                at: now,
            },
        ));
    }
    out.push(sample(
        "Notification",
        NotificationEvent::Read {
            owner_id: owner,
            at: whole,
        },
    ));
    out
}

/// SupportTicket: texts sealed under the owner's key as the command side
/// seals them, a staff member's reply among them.
fn support_ticket_samples(owner: Uuid, key: &domain::personal::DataKey) -> Vec<Sample> {
    let seal = |field: &str, text: &str| key.seal(owner, field, rand::random(), text);
    let [now, whole] = times();
    let (ticket, agent) = (id(), id());
    let mut out = vec![sample(
        "SupportTicket",
        SupportTicketEvent::TicketOpened {
            ticket_id: ticket,
            owner_id: owner,
            subject: seal("subject", "My bot stopped"),
            body: seal("body", "Hello,\n\tit stopped at 02:26. Zoë 🚀"),
            at: now,
        },
    )];
    for (reply_number, author_id, at) in [(1, owner, now), (200, agent, whole)] {
        out.push(sample(
            "SupportTicket",
            SupportTicketEvent::ReplyAdded {
                owner_id: owner,
                reply_number,
                author_id,
                from_staff: author_id != owner,
                body: seal("body", "x"),
                at,
            },
        ));
    }
    for assigned_by in [Some(agent), None] {
        out.push(sample(
            "SupportTicket",
            SupportTicketEvent::TicketAssigned {
                owner_id: owner,
                assignee_id: agent,
                assigned_by,
                at: now,
            },
        ));
    }
    for by in [Some(owner), None] {
        out.push(sample(
            "SupportTicket",
            SupportTicketEvent::TicketClosed {
                owner_id: owner,
                closed_by: by,
                at: whole,
            },
        ));
        out.push(sample(
            "SupportTicket",
            SupportTicketEvent::TicketReopened {
                owner_id: owner,
                reopened_by: by,
                at: now,
            },
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------

fn rest_metadata(user: Uuid) -> Value {
    let command = id().to_string();
    json!({
        "command_id": command,
        "command_type": "bot.configure",
        "source": "rest",
        "correlation_id": command,
        "causation_id": "req-7f3a",
        "user_id": user.to_string(),
        "role": "user",
        "idempotency_key": "8d6c1e2a",
        "request_id": "req-7f3a",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    })
}

fn system_metadata() -> Value {
    let command = id().to_string();
    json!({
        "command_id": command,
        "command_type": "portfolio.record_trade",
        "source": "process-manager",
        "correlation_id": command,
        "causation_id": id().to_string(),
        "role": "system",
    })
}

fn envelope(sample: &Sample, index: usize) -> Value {
    let index = index as u64;
    let metadata = if index.is_multiple_of(2) {
        rest_metadata(id())
    } else {
        system_metadata()
    };
    json!({
        "event_id": id().to_string(),
        "event_type": sample.event_type,
        "event_version": sample.event_version,
        "aggregate_type": sample.aggregate_type,
        "aggregate_id": id().to_string(),
        "sequence": index + 1,
        "global_position": 1_000 + index,
        "position": format!("{}.{}", 7_000_000 + index, 1_000 + index),
        "recorded_at": "2026-11-24T02:26:15.123456Z",
        "metadata": metadata,
        "payload": sample.payload,
    })
}

/// `value` with the JSON pointer `at` replaced by `new`, or removed.
fn changed(value: &Value, at: &str, new: Option<Value>) -> Value {
    let mut value = value.clone();
    let (parent, key) = at.rsplit_once('/').expect("a pointer below the root");
    let parent = value
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"));
    match new {
        Some(new) => {
            parent.insert(key.to_string(), new);
        }
        None => {
            parent
                .remove(key)
                .unwrap_or_else(|| panic!("nothing to remove at {at}"));
        }
    }
    value
}

fn first_of<'a>(samples: &'a [Sample], event_type: &str) -> &'a Sample {
    samples
        .iter()
        .find(|sample| sample.event_type == event_type)
        .unwrap_or_else(|| panic!("no sample of {event_type}"))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn schema_files_are_exactly_the_wire_names() {
    let wire_names: BTreeSet<String> = all_wire_names().into_keys().collect();
    let files: BTreeSet<String> = event_schemas().into_keys().collect();
    let missing: Vec<_> = wire_names.difference(&files).collect();
    let extra: Vec<_> = files.difference(&wire_names).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "events/ must hold one schema per wire name; missing: {missing:?}, without an event: {extra:?}"
    );

    let envelope = envelope_schema();
    let base = id_of(&envelope)
        .strip_suffix("envelope.schema.json")
        .expect("the envelope's $id ends in envelope.schema.json");
    let listed: BTreeSet<String> = envelope["properties"]["event_type"]["enum"]
        .as_array()
        .expect("the envelope lists the event types")
        .iter()
        .map(|name| name.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(listed, wire_names, "envelope event_type enum");

    let aggregates = all_wire_names();
    for (name, schema) in event_schemas() {
        assert_eq!(
            id_of(&schema),
            format!("{base}events/{name}{SCHEMA_SUFFIX}"),
            "$id of {name}"
        );
        assert_eq!(schema["title"], json!(name), "title of {name}");
        assert_eq!(schema["properties"]["type"]["const"], json!(name));
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        assert_eq!(
            schema["x-aggregate-type"],
            json!(aggregates[&name]),
            "{name}"
        );
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name} needs a description"
        );
    }
}

#[test]
fn every_event_variant_matches_its_schema() {
    let validators = event_validators();
    let samples = samples();
    let aggregates = all_wire_names();

    let sampled: BTreeSet<&str> = samples.iter().map(|s| s.event_type.as_str()).collect();
    let unsampled: Vec<_> = aggregates
        .keys()
        .filter(|name| !sampled.contains(name.as_str()))
        .collect();
    assert!(
        unsampled.is_empty(),
        "event types without a sample: {unsampled:?}"
    );

    for sample in &samples {
        assert_eq!(
            sample.payload["type"],
            json!(sample.event_type),
            "event_type() and the serialised type of {} differ",
            sample.event_type
        );
        assert_eq!(
            aggregates.get(&sample.event_type).copied(),
            Some(sample.aggregate_type)
        );
        let schema = validators
            .get(&sample.event_type)
            .unwrap_or_else(|| panic!("no schema for {}", sample.event_type));
        assert_valid(schema, &sample.payload, &sample.event_type);
    }
}

#[test]
fn envelopes_of_every_event_match_the_envelope_schema() {
    let envelope_validator = envelope_validator();
    let schemas = event_schemas();
    for (index, sample) in samples().iter().enumerate() {
        assert_eq!(
            schemas[&sample.event_type]["x-event-version"],
            json!(sample.event_version),
            "event_version of {} changed: bump its schema",
            sample.event_type
        );
        let message = envelope(sample, index);
        assert_valid(
            &envelope_validator,
            &message,
            &format!("envelope of {}", sample.event_type),
        );
    }
}

#[test]
fn broken_payloads_are_refused() {
    let validators = event_validators();
    let samples = samples();
    let check = |event_type: &str, at: &str, new: Option<Value>, what: &str| {
        let payload = changed(&first_of(&samples, event_type).payload, at, new);
        assert_invalid(&validators[event_type], &payload, what);
    };

    check(
        "bot.trade.executed",
        "/fill/price",
        Some(json!(60625.1)),
        "a price as a JSON number",
    );
    check(
        "trade.executed",
        "/realised_pnl",
        Some(json!(0)),
        "realised P&L as a JSON number",
    );
    check(
        "bot.configured",
        "/strategy/quote_amount",
        Some(json!(25)),
        "a strategy amount as a JSON number",
    );
    check("user.created", "/email", None, "user.created without email");
    check(
        "user.created",
        "/email",
        Some(json!("ada@example.com")),
        "an email in clear (version 1.0's shape)",
    );
    check(
        "user.updated",
        "/display_name",
        Some(json!("Ada")),
        "a display name in clear",
    );
    check(
        "user.updated",
        "/display_name",
        Some(json!({ "sealed": "Ada" })),
        "a sealed value that is not the sealed format",
    );
    check(
        "user.updated",
        "/display_name",
        Some(json!({ "clear": "Ada" })),
        "the upcast shape, which is never on the wire",
    );
    check(
        "user.login_failed",
        "/password",
        Some(json!("correct horse battery")),
        "a failed log-in carrying a password",
    );
    check(
        "user.login_failed",
        "/source",
        None,
        "a failed log-in without its source",
    );
    check(
        "bot.stopped",
        "/reason",
        None,
        "a missing Option field (it serialises as null, never absent)",
    );
    check(
        "support.ticket_opened",
        "/subject",
        Some(json!("My bot stopped")),
        "a ticket's subject in clear",
    );
    check(
        "support.reply_added",
        "/body",
        Some(json!({ "clear": "hello" })),
        "a reply's body in clear",
    );
    check(
        "support.ticket_opened",
        "/owner_id",
        None,
        "a ticket event without its owner (the audit export finds streams by it)",
    );
    check(
        "support.reply_added",
        "/reply_number",
        Some(json!(201)),
        "a reply beyond the 200 a ticket takes",
    );
    check(
        "support.ticket_assigned",
        "/assigned_by",
        None,
        "an assignment without its assigner (null for the service, never absent)",
    );
    check(
        "user.logged_in",
        "/password_hash",
        Some(json!("$argon2id$v=19$...")),
        "an unknown (secret) field",
    );
    check(
        "kraken.key.connected",
        "/api_secret",
        Some(json!("c2VjcmV0")),
        "an API secret",
    );
    check(
        "kraken.key.connected",
        "/permissions",
        Some(json!(["trade", "withdraw"])),
        "a withdrawal permission",
    );
    check(
        "kraken.key.connected",
        "/fingerprint",
        Some(json!("the-api-key-itself")),
        "a fingerprint that is not one",
    );
    check(
        "bot.configured",
        "/strategy/kind",
        Some(json!("grid")),
        "an unknown strategy kind",
    );
    check(
        "bot.configured",
        "/pair",
        Some(json!("xbt-usd")),
        "a malformed pair",
    );
    check(
        "user.role_assigned",
        "/role",
        Some(json!("root")),
        "an unknown role",
    );
    check(
        "bot.trade.executed",
        "/fill/side",
        Some(json!("short")),
        "an unknown side",
    );
    check(
        "bot.started",
        "/at",
        Some(json!("yesterday")),
        "a time that is not RFC 3339",
    );
    check(
        "bot.trade_triggered",
        "/trigger_id",
        Some(json!("not-a-uuid")),
        "an id that is not a UUID",
    );
    check(
        "bot.started",
        "/type",
        Some(json!("bot.stopped")),
        "another event's type",
    );
    // A key update changes something, and permissions come exactly with a
    // new credential.
    let renamed = first_of(&samples, "kraken.key.updated").payload.clone();
    let validator = &validators["kraken.key.updated"];
    assert_invalid(
        validator,
        &changed(&renamed, "/label", Some(Value::Null)),
        "a key update that changes nothing",
    );
    assert_invalid(
        validator,
        &changed(&renamed, "/permissions", Some(json!(["trade"]))),
        "permissions without a new credential",
    );
}

#[test]
fn broken_envelopes_are_refused() {
    let validator = envelope_validator();
    let samples = samples();
    let executed = envelope(first_of(&samples, "bot.trade.executed"), 0);
    assert_valid(&validator, &executed, "the sample envelope");

    let cases = [
        ("/payload/fill/price", Some(json!(1.5)), "a bad payload"),
        (
            "/event_type",
            Some(json!("bot.started")),
            "an event_type other than payload.type",
        ),
        (
            "/event_type",
            Some(json!("bot.exploded")),
            "an unknown type",
        ),
        (
            "/aggregate_type",
            Some(json!("User")),
            "the wrong aggregate type",
        ),
        ("/event_version", Some(json!("3.0")), "an unknown version"),
        ("/sequence", Some(json!(0)), "sequence 0"),
        ("/position", Some(json!("1234")), "a position without a dot"),
        ("/recorded_at", None, "no recorded_at"),
        ("/metadata/command_id", None, "no command id"),
        (
            "/metadata/password",
            Some(json!("hunter2")),
            "a secret in metadata",
        ),
        ("/metadata/role", Some(json!("root")), "an unknown role"),
        ("/partition", Some(json!(1)), "an unknown field"),
    ];
    for (at, new, what) in cases {
        assert_invalid(&validator, &changed(&executed, at, new), what);
    }
}
