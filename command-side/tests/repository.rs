//! The one-statement append (`repository::LedgerEventRepository`) against
//! the real PostgreSQL, in a database of its own that is dropped at the
//! end: the position a command answers with is its last event's, the
//! snapshot is written with the events that complete it, and an aggregate
//! loaded through its snapshot equals the one folded from every event, and
//! listeners are woken after a command commits.
//!
//! `TEST_DATABASE_URL` names the server's admin database (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::str::FromStr;
use std::sync::Arc;

use chrono::Utc;
use command_side::crypto::SecretBox;
use command_side::{CommandMetadata, CommandSide, CommandSideSettings};
use cqrs_es::Aggregate;
use domain::portfolio::{Portfolio, PortfolioCommand, PortfolioEvent, TradeFill};
use domain::{Actor, Pair, Side};
use event_log::Position;
use exchange::PaperExchange;
use rust_decimal::Decimal;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

const SNAPSHOT_EVERY: usize = 5;

struct Database {
    name: String,
    admin: String,
}

impl Database {
    async fn create() -> (Database, PgPool) {
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let name = format!("muckard_cs_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let url = PgConnectOptions::from_str(&admin)
            .unwrap()
            .database(&name)
            .to_url_lossy()
            .to_string();
        command_side::database::ensure_database_exists(&url)
            .await
            .expect("create the test database");
        let pool = command_side::database::connect(&url, 4).await.unwrap();
        command_side::database::migrate(&pool).await.unwrap();
        (Database { name, admin }, pool)
    }

    async fn drop(self, pool: PgPool) {
        pool.close().await;
        let mut admin = PgConnectOptions::from_str(&self.admin)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        admin.close().await.ok();
    }
}

fn command_side(pool: PgPool) -> CommandSide {
    CommandSide::new(
        pool,
        CommandSideSettings {
            snapshot_every: SNAPSHOT_EVERY,
            max_attempts: 8,
            aggregate_cache_size: 1000,
            append_batch_max: 64,
            password_hashing: Default::default(),
            login_backoff: Default::default(),
            secrets: Arc::new(SecretBox::new(&[7u8; 32]).unwrap()),
            exchange: Arc::new(PaperExchange::new()),
            strategy_limits: domain::StrategyLimits::default(),
            trigger_quotas: domain::TriggerQuotas::default(),
            max_bots_per_user: 20,
            accounts: command_side::accounts::AccountSettings::development(
                std::env::temp_dir().join("muckard-outbox"),
            ),
            shared_state: None,
        },
    )
}

fn fill(user_id: Uuid, n: u32) -> TradeFill {
    TradeFill {
        user_id,
        bot_id: Uuid::new_v4(),
        order_id: format!("O{n}-TEST"),
        pair: Pair::parse("XBT/USD").unwrap(),
        side: Side::Buy,
        quantity: Decimal::new(1, 3),
        price: Decimal::from(60_000 + n),
        fee: Decimal::new(15, 2),
        executed_at: Utc::now(),
    }
}

async fn last_event(pool: &PgPool, user_id: Uuid) -> (i64, Position) {
    let (sequence, transaction, global_position): (i64, String, i64) = sqlx::query_as(
        "SELECT sequence, transaction_id::text, global_position FROM events \
          WHERE aggregate_type = 'Portfolio' AND aggregate_id = $1 \
          ORDER BY sequence DESC LIMIT 1",
    )
    .bind(user_id.to_string())
    .fetch_one(pool)
    .await
    .unwrap();
    (
        sequence,
        Position {
            transaction_id: transaction.parse().unwrap(),
            global_position,
        },
    )
}

#[tokio::test]
async fn appends_answer_their_position_and_snapshots_fold_to_the_same_state() {
    let (database, pool) = Database::create().await;
    let commands = command_side(pool.clone());
    let user_id = Uuid::new_v4();
    let metadata = CommandMetadata::new("test", Some(Actor::System))
        .with_command_type("portfolio.record_trade");
    let mut positions = Vec::new();
    for n in 1..=12 {
        let command = PortfolioCommand::RecordTrade {
            actor: Actor::System,
            trade: fill(user_id, n),
        };
        let position = commands
            .execute_portfolio(&user_id.to_string(), command, &metadata)
            .await
            .unwrap();
        let (sequence, stored) = last_event(&pool, user_id).await;
        assert_eq!(sequence, i64::from(n));
        assert_eq!(position, stored, "command {n} answered another position");
        positions.push(position);
    }
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));

    // Snapshots every 5 events: the second one covers sequences 1..=10.
    let (last_sequence, current_snapshot): (i64, i64) = sqlx::query_as(
        "SELECT last_sequence, current_snapshot FROM snapshots \
          WHERE aggregate_type = 'Portfolio' AND aggregate_id = $1",
    )
    .bind(user_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((last_sequence, current_snapshot), (10, 2));

    // Loaded through the snapshot (10) plus events 11 and 12, the state is
    // the fold of all twelve events from the empty portfolio.
    let (loaded, sequence) = commands
        .load::<Portfolio>(&user_id.to_string())
        .await
        .unwrap();
    assert_eq!(sequence, 12);
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events \
          WHERE aggregate_type = 'Portfolio' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(user_id.to_string())
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut folded = Portfolio::default();
    for payload in &payloads {
        let event: PortfolioEvent = serde_json::from_str(payload).unwrap();
        folded.apply(event);
    }
    assert_eq!(loaded, folded);
    assert_eq!(loaded.order_ids.len(), 12);

    // A repeated order changes nothing and answers the stream's last
    // position, as before.
    let again = PortfolioCommand::RecordTrade {
        actor: Actor::System,
        trade: fill(user_id, 12),
    };
    let position = commands
        .execute_portfolio(&user_id.to_string(), again, &metadata)
        .await
        .unwrap();
    assert_eq!(position, *positions.last().unwrap());
    assert_eq!(last_event(&pool, user_id).await.0, 12);

    database.drop(pool).await;
}

#[tokio::test]
async fn racing_appends_of_one_sequence_conflict_and_are_retried_into_a_contiguous_stream() {
    let (database, pool) = Database::create().await;
    let commands = Arc::new(command_side(pool.clone()));
    let user_id = Uuid::new_v4();
    let tasks: Vec<_> = (1..=16)
        .map(|n| {
            let commands = commands.clone();
            tokio::spawn(async move {
                let metadata = CommandMetadata::new("test", Some(Actor::System))
                    .with_command_type("portfolio.record_trade");
                let command = PortfolioCommand::RecordTrade {
                    actor: Actor::System,
                    trade: fill(user_id, n),
                };
                commands
                    .execute_portfolio(&user_id.to_string(), command, &metadata)
                    .await
            })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.unwrap().expect("retried until it appended"));
    }
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events \
          WHERE aggregate_type = 'Portfolio' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(user_id.to_string())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sequences, (1..=16).collect::<Vec<i64>>());
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 16, "each command answered its own event");
    let (loaded, _) = commands
        .load::<Portfolio>(&user_id.to_string())
        .await
        .unwrap();
    assert_eq!(loaded.order_ids.len(), 16);
    database.drop(pool).await;
}

#[tokio::test]
async fn a_committed_command_wakes_the_listeners_after_its_commit() {
    let (database, pool) = Database::create().await;
    let commands = command_side(pool.clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener
        .listen(event_log::notify::EVENTS_CHANNEL)
        .await
        .unwrap();
    let user_id = Uuid::new_v4();
    let metadata = CommandMetadata::new("test", Some(Actor::System))
        .with_command_type("portfolio.record_trade");
    let command = PortfolioCommand::RecordTrade {
        actor: Actor::System,
        trade: fill(user_id, 1),
    };
    commands
        .execute_portfolio(&user_id.to_string(), command, &metadata)
        .await
        .unwrap();
    let notification = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s of the commit")
        .unwrap();
    assert_eq!(notification.channel(), event_log::notify::EVENTS_CHANNEL);
    // Sent after the commit: the event is there for whoever wakes.
    assert_eq!(last_event(&pool, user_id).await.0, 1);
    drop(listener);
    database.drop(pool).await;
}

#[tokio::test]
async fn concurrent_commands_share_append_transactions_and_each_answers_its_own_event() {
    let (database, pool) = Database::create().await;
    let commands = Arc::new(command_side(pool.clone()));
    let users: Vec<Uuid> = (0..64).map(|_| Uuid::new_v4()).collect();
    // Each stream gets a first event alone, so that the racing commands
    // below find their aggregates cached and reach the append together.
    let metadata = CommandMetadata::new("test", Some(Actor::System))
        .with_command_type("portfolio.record_trade");
    for &user_id in &users {
        let command = PortfolioCommand::RecordTrade {
            actor: Actor::System,
            trade: fill(user_id, 1),
        };
        commands
            .execute_portfolio(&user_id.to_string(), command, &metadata)
            .await
            .unwrap();
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|&user_id| {
            let (commands, metadata) = (commands.clone(), metadata.clone());
            tokio::spawn(async move {
                let command = PortfolioCommand::RecordTrade {
                    actor: Actor::System,
                    trade: fill(user_id, 2),
                };
                let position = commands
                    .execute_portfolio(&user_id.to_string(), command, &metadata)
                    .await
                    .expect("appended");
                (user_id, position)
            })
        })
        .collect();
    let mut transactions = std::collections::BTreeSet::new();
    for task in tasks {
        let (user_id, position) = task.await.unwrap();
        let (sequence, stored) = last_event(&pool, user_id).await;
        assert_eq!(sequence, 2);
        assert_eq!(position, stored, "each command answers its own event");
        transactions.insert(position.transaction_id);
    }
    assert!(
        transactions.len() < users.len(),
        "64 commands at once committed in 64 transactions: nothing was batched"
    );
    database.drop(pool).await;
}

/// A first event of stream `aggregate_id` carrying `note` in its metadata.
fn first_event(aggregate_id: &str, note: &str) -> cqrs_es::persist::SerializedEvent {
    cqrs_es::persist::SerializedEvent::new(
        aggregate_id.to_string(),
        1,
        "Portfolio".to_string(),
        "trade.executed".to_string(),
        "1.0".to_string(),
        serde_json::json!({ "type": "trade.executed" }),
        serde_json::json!({ "command_id": Uuid::new_v4().to_string(), "note": note }),
    )
}

/// Sends one append per note to `batcher` at once (on this test's one
/// thread, all are queued before the batching task runs, so they share a
/// statement) and answers each one's outcome, in order.
async fn append_together(
    batcher: &command_side::batch::AppendBatcher,
    notes: &[String],
) -> Vec<Result<Option<Position>, cqrs_es::persist::PersistenceError>> {
    let appends = notes.iter().map(|note| {
        let batcher = batcher.clone();
        let event = first_event(&Uuid::new_v4().to_string(), note);
        async move { batcher.append("Portfolio", vec![event]).await }
    });
    let tasks: Vec<_> = appends.map(tokio::spawn).collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn one_poisoned_append_fails_alone_and_the_rest_of_its_batch_commits() {
    let (database, pool) = Database::create().await;
    let batcher = command_side::batch::AppendBatcher::spawn(pool.clone(), 64);

    // Thirty-two good appends sent together share statements: fewer
    // transactions than appends (so the poisoned run below is a batch).
    let good: Vec<String> = (0..32).map(|n| format!("good {n}")).collect();
    let outcomes = append_together(&batcher, &good).await;
    let transactions: std::collections::BTreeSet<u64> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().unwrap().unwrap().transaction_id)
        .collect();
    assert!(transactions.len() < good.len(), "nothing was batched");

    // The same with one NUL, which PostgreSQL refuses in a jsonb string:
    // only that append fails, with its own error.
    let mut notes = good.clone();
    notes[16] = "poisoned \u{0}".to_string();
    let outcomes = append_together(&batcher, &notes).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == 16 {
            let error = outcome.as_ref().expect_err("the NUL is refused");
            assert!(
                error.to_string().contains("Unicode escape"),
                "its own error, not the batch's: {error}"
            );
        } else {
            assert!(
                matches!(outcome, Ok(Some(_))),
                "append {n} failed for another's input: {outcome:?}"
            );
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 63, "32 + 31 good events, not the poisoned one");
    database.drop(pool).await;
}
