//! As-of correctness: a history whose states at each moment are known,
//! reconstructed through the library, the REST endpoint, the binary, and a
//! rebuild stopped at a time or a position.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::AggregateType;
use domain::Side;
use integration_tests::{TestApp, TestUser};
use projections::audit::stream::{state_as_of, Until};
use projections::audit::NoProgress;
use projections::rebuild::{self, RebuildPlan, Stop};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{caught_up, database_now, describe, replay, stdout};

/// A trader with a running bot, a few fills and a profile change, every
/// subscriber caught up.
pub async fn some_history(app: &TestApp) -> (TestUser, Uuid) {
    let trader = app.user().await;
    let bot_id = app.running_bot(&trader).await;
    for (order, side, quantity, price) in [
        ("O-1", Side::Buy, "1", "100"),
        ("O-2", Side::Buy, "1", "200"),
        ("O-3", Side::Sell, "1", "300"),
    ] {
        app.fill(bot_id, order, side, quantity, price, Utc::now())
            .await;
    }
    app.patch(
        "/api/v1/user/me",
        Some(&trader.token),
        json!({ "display_name": "Chain" }),
    )
    .await;
    caught_up(app).await;
    (trader, bot_id)
}

/// The moments of the history, each taken from the database's clock after
/// the step and its consequences committed.
struct Moments {
    before: DateTime<Utc>,
    registered: DateTime<Utc>,
    named_ada: DateTime<Utc>,
    named_grace: DateTime<Utc>,
    bot_running: DateTime<Utc>,
    first_fill: DateTime<Utc>,
    second_fill: DateTime<Utc>,
}

async fn known_history(app: &TestApp) -> (TestUser, Uuid, Moments) {
    let before = database_now(app).await;
    let trader = app.user().await;
    let registered = database_now(app).await;
    let rename = |name: &'static str| {
        app.patch(
            "/api/v1/user/me",
            Some(&trader.token),
            json!({ "display_name": name }),
        )
    };
    assert_eq!(rename("Ada").await.status, StatusCode::OK);
    let named_ada = database_now(app).await;
    assert_eq!(rename("Grace").await.status, StatusCode::OK);
    let named_grace = database_now(app).await;
    let bot_id = app.running_bot(&trader).await;
    let bot_running = database_now(app).await;
    app.fill(bot_id, "O-1", Side::Buy, "1", "100", Utc::now())
        .await;
    caught_up(app).await;
    let first_fill = database_now(app).await;
    app.fill(bot_id, "O-2", Side::Buy, "2", "130", Utc::now())
        .await;
    caught_up(app).await;
    let second_fill = database_now(app).await;
    (
        trader,
        bot_id,
        Moments {
            before,
            registered,
            named_ada,
            named_grace,
            bot_running,
            first_fill,
            second_fill,
        },
    )
}

async fn state(app: &TestApp, kind: AggregateType, id: Uuid, as_of: DateTime<Utc>) -> (i64, Value) {
    let found = state_as_of(&app.pool, kind, &id.to_string(), Until::AsOf { as_of })
        .await
        .unwrap()
        .expect("the stream exists");
    (found.sequence, found.state)
}

fn quantity(portfolio: &Value) -> Decimal {
    portfolio["positions"]["XBT/USD"]["quantity"]
        .as_str()
        .expect("a quantity")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn states_as_of_each_moment_are_the_known_ones() {
    let app = TestApp::spawn().await;
    let (trader, bot_id, at) = known_history(&app).await;
    let user = trader.id;

    let (sequence, before) = state(&app, AggregateType::User, user, at.before).await;
    assert_eq!(
        (sequence, before),
        (0, Value::Null),
        "nothing before registering"
    );
    let (_, registered) = state(&app, AggregateType::User, user, at.registered).await;
    assert_eq!(registered["user_id"], json!(user));
    assert_eq!(registered["display_name"], Value::Null);
    let (_, ada) = state(&app, AggregateType::User, user, at.named_ada).await;
    // The state holds personal data as the log does: sealed.
    let name = |state: &Value| state["display_name"].clone();
    assert_eq!(
        app.open_personal(user, "display_name", &name(&ada))
            .await
            .as_deref(),
        Some("Ada")
    );
    let (_, grace) = state(&app, AggregateType::User, user, at.named_grace).await;
    assert_eq!(
        app.open_personal(user, "display_name", &name(&grace))
            .await
            .as_deref(),
        Some("Grace")
    );

    let (sequence, bot_before) = state(&app, AggregateType::Bot, bot_id, at.named_grace).await;
    assert_eq!((sequence, bot_before), (0, Value::Null), "no bot yet");
    let (_, running) = state(&app, AggregateType::Bot, bot_id, at.bot_running).await;
    assert_eq!(running["state"], "running", "{running}");
    assert_eq!(running["trades_executed"], 0);
    let (_, one) = state(&app, AggregateType::Bot, bot_id, at.first_fill).await;
    assert_eq!(one["trades_executed"], 1);
    let (_, two) = state(&app, AggregateType::Bot, bot_id, at.second_fill).await;
    assert_eq!(two["trades_executed"], 2);

    let (_, portfolio) = state(&app, AggregateType::Portfolio, user, at.first_fill).await;
    assert_eq!(quantity(&portfolio), Decimal::from(1));
    let (_, portfolio) = state(&app, AggregateType::Portfolio, user, at.second_fill).await;
    assert_eq!(quantity(&portfolio), Decimal::from(3));

    // A sequence gives the same state as the time its event was recorded.
    let all = state_as_of(
        &app.pool,
        AggregateType::User,
        &user.to_string(),
        Until::End,
    )
    .await
    .unwrap()
    .unwrap();
    let ada_event = all
        .events
        .iter()
        .find(|e| e.fields.event_type == "user.updated")
        .expect("the rename to Ada");
    let by_sequence = state_as_of(
        &app.pool,
        AggregateType::User,
        &user.to_string(),
        Until::Sequence {
            sequence: ada_event.fields.sequence,
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(by_sequence.state, ada);
    assert_eq!(by_sequence.events.len() as i64, ada_event.fields.sequence);

    // The same over REST, for an auditor.
    let auditor = app.user_with_role(domain::Role::Auditor).await;
    let as_of = at
        .named_ada
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let response = app
        .get(
            &format!(
                "/api/v1/audit/streams/User/{user}/state?as_of={}",
                as_of.replace('+', "%2B")
            ),
            Some(&auditor.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["state"], ada);
    assert_eq!(response.body["sequence"], ada_event.fields.sequence);
    let response = app
        .get(
            &format!("/api/v1/audit/streams/bot/{bot_id}/state?at_sequence=3"),
            Some(&auditor.token),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["state"]["state"], "running");
    assert_eq!(response.body["events"].as_array().unwrap().len(), 3);

    // And from the binary.
    let output = replay(
        &app,
        &[
            "state",
            "portfolio",
            &user.to_string(),
            "--as-of",
            &at.first_fill.to_rfc3339(),
            "--json",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(quantity(&printed["state"]), Decimal::from(1));
    assert_eq!(printed["events"].as_array().unwrap().len(), 1);
}

async fn shadow_rows(app: &TestApp, sql: &str) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as(sql).fetch_all(&app.pool).await.unwrap();
    rows.into_iter().map(|(row,)| row).collect()
}

#[tokio::test]
async fn a_rebuild_as_of_a_time_or_position_holds_the_read_models_of_then() {
    let app = TestApp::spawn().await;
    let (trader, bot_id, at) = known_history(&app).await;
    let plan = |name: &str, stop: Stop| RebuildPlan {
        name: name.to_string(),
        projections: projections::read_models::all(),
        stop,
        batch_size: 3,
    };

    rebuild::rebuild(
        &app.pool,
        &plan(
            "ada",
            Stop::AsOf {
                as_of: at.named_ada,
            },
        ),
        &NoProgress,
    )
    .await
    .unwrap();
    let users = shadow_rows(&app, "SELECT to_jsonb(u) FROM replay_ada.users u").await;
    let ours: Vec<&Value> = users
        .iter()
        .filter(|u| u["user_id"] == json!(trader.id))
        .collect();
    assert_eq!(ours.len(), 1, "{users:?}");
    assert_eq!(ours[0]["display_name"], "Ada");
    let bots = shadow_rows(&app, "SELECT to_jsonb(b) FROM replay_ada.bot_status b").await;
    assert!(bots.is_empty(), "no bot existed yet: {bots:?}");

    rebuild::rebuild(
        &app.pool,
        &plan(
            "one",
            Stop::AsOf {
                as_of: at.first_fill,
            },
        ),
        &NoProgress,
    )
    .await
    .unwrap();
    let bots = shadow_rows(&app, "SELECT to_jsonb(b) FROM replay_one.bot_status b").await;
    assert_eq!(bots.len(), 1);
    assert_eq!(bots[0]["bot_id"], json!(bot_id));
    assert_eq!(bots[0]["trades_executed"], 1);
    let trades = shadow_rows(&app, "SELECT to_jsonb(t) FROM replay_one.trades t").await;
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["order_id"], "O-1");
    let positions = shadow_rows(&app, "SELECT to_jsonb(p) FROM replay_one.positions p").await;
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0]["quantity"], json!(1));

    // Stopping at the position of the first fill's portfolio event is the
    // same as stopping at the time after it.
    let position: (String,) = sqlx::query_as(
        "SELECT transaction_id::text || '.' || global_position FROM events \
         WHERE aggregate_type = 'Portfolio' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(trader.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let output = replay(
        &app,
        &[
            "rebuild",
            "--name",
            "at_position",
            "--to-position",
            &position.0,
            "--json",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    for table in [
        "users",
        "exchange_keys",
        "bot_status",
        "trades",
        "positions",
    ] {
        let digest = |schema: &str| {
            let pool = app.pool.clone();
            let schema = schema.to_string();
            async move {
                let mut connection = pool.acquire().await.unwrap();
                rebuild::table_digest(&mut connection, &schema, table)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            digest("replay_one").await,
            digest("replay_at_position").await,
            "{table}"
        );
    }
}
