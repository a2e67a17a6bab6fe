use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_log::{
    LogReader, RecordedEvent, Subscriber, SubscriberError, SubscriberRunner, SubscriberSettings,
};
use integration_tests::TestApp;
use rand::Rng;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WRITERS: usize = 16;
const EVENTS_PER_WRITER: usize = 1_250;
const STREAMS_PER_WRITER: usize = 5;
const TOTAL: usize = WRITERS * EVENTS_PER_WRITER;

/// Records what it was given, in order; with `only`, asks for those
/// aggregate types alone.
struct Recorder {
    name: &'static str,
    only: Option<&'static [&'static str]>,
    seen: Arc<Mutex<Vec<(String, i64, Uuid)>>>,
}

#[async_trait]
impl Subscriber for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        self.only
    }

    async fn handle(
        &self,
        _: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), SubscriberError> {
        let mut seen = self.seen.lock().unwrap();
        for event in events {
            seen.push((event.aggregate_id.clone(), event.sequence, event.event_id));
        }
        Ok(())
    }
}

async fn append(
    connection: &mut PgConnection,
    stream: &str,
    sequence: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('GapTest', $1, $2, 'gap.appended', '1.0', $3, '{}')",
    )
    .bind(stream)
    .bind(sequence)
    .bind(serde_json::json!({ "n": sequence }))
    .execute(connection)
    .await?;
    Ok(())
}

/// One writer: small transactions over its own streams; about a third of
/// them stay open for a few random milliseconds before committing, so
/// global positions commit out of order.
async fn writer(url: String, writer: usize) {
    let mut connection = PgConnection::connect(&url).await.expect("writer connects");
    let mut next = [1i64; STREAMS_PER_WRITER];
    let mut written = 0;
    while written < EVENTS_PER_WRITER {
        let (batch, hold_ms, stream) = {
            let mut rng = rand::thread_rng();
            let batch = rng.gen_range(1..=4).min(EVENTS_PER_WRITER - written);
            let hold = if rng.gen_bool(0.35) {
                rng.gen_range(1..=12)
            } else {
                0
            };
            (batch, hold, rng.gen_range(0..STREAMS_PER_WRITER))
        };
        let mut transaction = connection.begin().await.expect("begin");
        for _ in 0..batch {
            append(
                &mut transaction,
                &format!("w{writer}-s{stream}"),
                next[stream],
            )
            .await
            .expect("append");
            next[stream] += 1;
        }
        if hold_ms > 0 {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        }
        transaction.commit().await.expect("commit");
        written += batch;
    }
}

/// The naive reader: "everything after the last global position I saw".
async fn naive_reader(pool: PgPool, stop: CancellationToken, seen: Arc<Mutex<HashSet<Uuid>>>) {
    let mut last = 0i64;
    loop {
        let stopping = stop.is_cancelled();
        let rows: Vec<(i64, Uuid)> = sqlx::query_as(
            "SELECT global_position, event_id FROM events WHERE global_position > $1 ORDER BY global_position LIMIT 1000",
        )
        .bind(last)
        .fetch_all(&pool)
        .await
        .expect("naive read");
        if let Some((position, _)) = rows.last() {
            last = *position;
        }
        seen.lock().unwrap().extend(rows.iter().map(|(_, id)| *id));
        if stopping && rows.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_subscriber_sees_every_event_once_in_stream_order_where_global_position_skips() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;

    // First, deterministically: a transaction that takes a position and
    // commits after a later one is skipped by the naive reader.
    let mut early = PgConnection::connect(&app.database_url).await.unwrap();
    let mut late = PgConnection::connect(&app.database_url).await.unwrap();
    let mut slow = early.begin().await.unwrap();
    append(&mut slow, "demo-slow", 1).await.unwrap();
    append(&mut late, "demo-fast", 1).await.unwrap();
    let (naive_last, naive_count): (i64, i64) =
        sqlx::query_as("SELECT max(global_position), count(*) FROM events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(naive_count, 1, "only the committed event is visible");
    let reader = LogReader::new();
    let committed_order = reader
        .read_after(&app.pool, Default::default(), 10)
        .await
        .unwrap();
    assert!(
        committed_order.is_empty(),
        "the commit-order reader waits for the open transaction"
    );
    slow.commit().await.unwrap();
    let after_naive: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > $1")
            .bind(naive_last)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        after_naive, 0,
        "the naive bookmark has passed the late event: it is skipped for good"
    );
    // Once every older transaction in the cluster has finished, the
    // commit-order reader returns both.
    app.eventually(
        30,
        "the commit-order reader to return both demo events",
        || {
            let reader = reader.clone();
            let pool = app.pool.clone();
            async move {
                reader
                    .read_after(&pool, Default::default(), 10)
                    .await
                    .unwrap()
                    .len()
                    == 2
            }
        },
    )
    .await;
    // One event of another aggregate type, which a subscriber that asks
    // for `GapTest` alone must never be handed.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('GapOther', 'other', 1, 'gap.other', '1.0', '{}', '{}')",
    )
    .execute(&mut late)
    .await
    .unwrap();
    drop((early, late));

    // Then at scale, with subscribers running while the writers write, all
    // on one runner (so reading through its one read-ahead of the head):
    // gap_a as two competing instances, as two processes would run it;
    // gap_filtered asking for `GapTest` alone; gap_late started only once
    // half of the events are in, so it begins far behind the others.
    let shutdown = CancellationToken::new();
    let runner = subscriber_runner(&app, 200, Duration::from_millis(50), &shutdown);
    let mut logs = Vec::new();
    let mut tasks = Vec::new();
    let spawn = |name: &'static str,
                 only: Option<&'static [&'static str]>,
                 instances: usize,
                 logs: &mut Vec<_>,
                 tasks: &mut Vec<_>| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        logs.push((name, only, seen.clone()));
        for _ in 0..instances {
            let recorder = Arc::new(Recorder {
                name,
                only,
                seen: seen.clone(),
            });
            tasks.push(tokio::spawn(runner.clone().run(recorder, shutdown.clone())));
        }
    };
    spawn("gap_a", None, 2, &mut logs, &mut tasks);
    spawn("gap_b", None, 1, &mut logs, &mut tasks);
    spawn("gap_c", None, 1, &mut logs, &mut tasks);
    spawn("gap_filtered", Some(&["GapTest"]), 1, &mut logs, &mut tasks);
    let naive_seen = Arc::new(Mutex::new(HashSet::new()));
    let naive_stop = CancellationToken::new();
    let naive = tokio::spawn(naive_reader(
        app.pool.clone(),
        naive_stop.clone(),
        naive_seen.clone(),
    ));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(app.database_url.clone(), w)))
        .collect();
    app.eventually(120, "half of the events to be in", || {
        let pool = app.pool.clone();
        async move {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap();
            stored as usize >= TOTAL / 2
        }
    })
    .await;
    spawn("gap_late", None, 1, &mut logs, &mut tasks);
    for handle in writers {
        handle.await.expect("writer");
    }
    naive_stop.cancel();
    naive.await.unwrap();

    // The two demo events, the writers' and (for those that want it) the
    // other type's.
    let expected_by = |only: &Option<_>| TOTAL + 2 + usize::from(only.is_none());
    for (name, only, seen) in &logs {
        let expected = expected_by(only);
        let seen = seen.clone();
        app.eventually(120, &format!("{name} to see {expected} events"), || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() >= expected }
        })
        .await;
    }
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }

    for (name, _, seen) in &logs {
        let seen = seen.lock().unwrap();
        let mut counts: HashMap<Uuid, usize> = HashMap::new();
        for (_, _, id) in seen.iter() {
            *counts.entry(*id).or_default() += 1;
        }
        let twice: Vec<_> = seen
            .iter()
            .filter(|(_, _, id)| counts[id] > 1)
            .take(6)
            .collect();
        eprintln!(
            "{name}: {} seen, {} distinct, repeated e.g. {twice:?}",
            seen.len(),
            counts.len()
        );
    }
    for (name, only, seen) in &logs {
        let expected = expected_by(only);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), expected, "{name} saw every event exactly once");
        if only.is_some() {
            assert!(
                seen.iter().all(|(stream, _, _)| stream != "other"),
                "{name} was handed only the type it asked for"
            );
        }
        let unique: HashSet<Uuid> = seen.iter().map(|(_, _, id)| *id).collect();
        assert_eq!(unique.len(), expected, "{name} saw no event twice");
        let mut last: HashMap<&str, i64> = HashMap::new();
        for (stream, sequence, _) in seen.iter() {
            let previous = last.insert(stream.as_str(), *sequence).unwrap_or(0);
            assert_eq!(*sequence, previous + 1, "{name}: {stream} out of order");
        }
    }
    let naive_count = naive_seen.lock().unwrap().len();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let expected = expected_by(&None);
    assert_eq!(stored as usize, expected);
    eprintln!(
        "gap test: {expected} events; reading by global_position alone saw {naive_count}, skipped {}",
        expected - naive_count
    );
    assert!(
        naive_count < expected,
        "reading by global_position alone skips events of late commits"
    );
}

/// Subscribers that share a runner (and so its read-ahead of the head of
/// the log) are each woken by every commit's notification and handle it
/// promptly: with a poll interval of ten minutes, a wake-up lost between
/// them (one answered by another's read that began before the commit)
/// would leave a subscriber waiting for minutes, and this test failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runners_subscribers_are_each_woken_by_every_commit_without_polling() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let shutdown = CancellationToken::new();
    let runner = subscriber_runner(&app, 200, Duration::from_secs(600), &shutdown);
    let names: [(&'static str, Option<&'static [&'static str]>); 6] = [
        ("wake_a", None),
        ("wake_b", None),
        ("wake_c", None),
        ("wake_d", None),
        ("wake_e", Some(&["GapTest"])),
        ("wake_f", Some(&["GapTest"])),
    ];
    let mut logs = Vec::new();
    let mut tasks = Vec::new();
    for (name, only) in names {
        let seen = Arc::new(Mutex::new(Vec::new()));
        logs.push((name, seen.clone()));
        let recorder = Arc::new(Recorder { name, only, seen });
        tasks.push(tokio::spawn(runner.clone().run(recorder, shutdown.clone())));
    }
    let mut connection = PgConnection::connect(&app.database_url).await.unwrap();
    for round in 1..=60i64 {
        append(&mut connection, "wake", round).await.unwrap();
        event_log::notify::notify(&app.pool).await.unwrap();
        for (name, seen) in &logs {
            let seen = seen.clone();
            app.eventually(10, &format!("{name} to handle event {round}"), || {
                let seen = seen.clone();
                async move { seen.lock().unwrap().len() as i64 >= round }
            })
            .await;
        }
    }
    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    for (name, seen) in &logs {
        let sequences: Vec<i64> = seen.lock().unwrap().iter().map(|(_, n, _)| *n).collect();
        assert_eq!(
            sequences,
            (1..=60).collect::<Vec<_>>(),
            "{name} saw each event once, in order"
        );
    }
}

/// A subscriber runner on the app's database that stops with `shutdown`.
fn subscriber_runner(
    app: &TestApp,
    batch_size: i64,
    poll_interval: Duration,
    shutdown: &CancellationToken,
) -> SubscriberRunner {
    let settings = SubscriberSettings {
        batch_size,
        poll_interval,
        standby_retry: Duration::from_millis(100),
        ..SubscriberSettings::default()
    };
    SubscriberRunner::new(
        app.pool.clone(),
        LogReader::new(),
        settings,
        shutdown.clone(),
    )
}

/// Transaction ids are numbers: 100000 comes after 99999 even though "1" <
/// "9" as text. A text ordering once made subscribers skip and repeat
/// events when the cluster's xid counter crossed a power of ten.
#[tokio::test]
async fn the_reader_orders_transaction_ids_as_numbers_across_digit_boundaries() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let mut connection = app.pool.acquire().await.unwrap();
    // As a superuser with the chain trigger off, place rows at chosen ids.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_chain")
        .execute(&mut *connection)
        .await
        .unwrap();
    // Ids on both sides of every power of ten below the cluster's current
    // xid, so all of them belong to finished transactions (a fresh cluster
    // is a few hundred xids in; a busy one millions).
    let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    let current: u64 = current.parse().unwrap();
    let mut transactions = Vec::new();
    let mut power = 10u64;
    while power + 1 < current {
        transactions.extend([power - 1, power, power + 1]);
        power *= 10;
    }
    assert!(transactions.len() >= 6, "the cluster is past xid 101");
    for (sequence, transaction) in transactions.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
             metadata, transaction_id, prev_hash, hash) \
             VALUES ('Digits', 'd', $1, 'digits.appended', '1.0', '{}', '{}', $2::text::xid8, '', '')",
        )
        .bind(sequence as i64 + 1)
        .bind(transaction.to_string())
        .execute(&mut *connection)
        .await
        .unwrap();
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_chain")
        .execute(&mut *connection)
        .await
        .unwrap();
    drop(connection);

    let reader = LogReader::new();
    let mut after = event_log::Position::default();
    let mut order = Vec::new();
    loop {
        let batch = reader.read_after(&app.pool, after, 2).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        order.extend(batch.iter().map(|e| e.position.transaction_id));
    }
    assert_eq!(order, transactions);
    assert_eq!(
        reader.head(&app.pool).await.unwrap().transaction_id,
        *transactions.last().unwrap()
    );
}

/// A commit that appends no events (another subscriber's batch, say)
/// sends no notification. A subscriber woken for an event that such a
/// transaction still held back looks again soon instead of waiting for its
/// next poll.
#[tokio::test]
async fn a_subscriber_held_back_by_an_older_transaction_does_not_wait_for_its_poll() {
    let app = TestApp::spawn_with(&[("MUCKARD_ROLES", "api")]).await;
    let shutdown = CancellationToken::new();
    let runner = subscriber_runner(&app, 100, Duration::from_secs(10), &shutdown);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::new(Recorder {
        name: "tail",
        only: None,
        seen: seen.clone(),
    });
    let task = tokio::spawn(runner.run(recorder, shutdown.clone()));
    let count = |expected: usize| {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() >= expected }
        }
    };
    let mut writer = PgConnection::connect(&app.database_url).await.unwrap();
    append(&mut writer, "tail", 1).await.unwrap();
    // This writer stands for the command side, which notifies after it
    // commits. The runner's LISTEN may not be in place yet when a loaded
    // machine runs this line, so notify until the first event is seen: this
    // phase only makes sure the subscriber runs and listens.
    let pool = app.pool.clone();
    let first = count(1);
    app.eventually(10, "the subscriber to be running", move || {
        let (pool, seen) = (pool.clone(), first());
        async move {
            event_log::notify::notify(&pool).await.unwrap();
            seen.await
        }
    })
    .await;

    // An older transaction holds an xid while the event commits.
    let mut blocker = PgConnection::connect(&app.database_url).await.unwrap();
    let mut open = blocker.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    append(&mut writer, "tail", 2).await.unwrap();
    event_log::notify::notify(&app.pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the blocker's work
    open.commit().await.unwrap();
    let released = std::time::Instant::now();
    app.eventually(
        2,
        "the held-back event, well before the 10 s poll",
        count(2),
    )
    .await;
    eprintln!(
        "held-back event handled {} ms after the blocker committed",
        released.elapsed().as_millis()
    );
    shutdown.cancel();
    task.await.unwrap();
}
