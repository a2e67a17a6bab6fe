//! Erasure by crypto-shredding, end to end against the real services: a
//! user with an email, two display names, a failed log-in and a support
//! ticket (with a staff member's reply) trades a day through the service
//! (the Kafka mirror, the RabbitMQ publisher and the projectors all
//! running), then an admin erases them. Afterwards no clear email, name or
//! ticket text of theirs is anywhere in PostgreSQL (every table of every
//! schema), in any Kafka message of the service's topics, or in any
//! RabbitMQ message of its queues; the chain verifies and a rebuild of the
//! read models equals the live ones.

use std::process::Command;

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;
use integration_tests::{workspace_binary, TestApp, TestUser, PASSWORD};
use messaging::Queue;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{
    bootstrap, consume_until, delete_topics, settings, trading_day, unique_prefix,
};

/// The texts that must not survive the erasure, each unique to this test.
struct Needles {
    email: String,
    first_name: String,
    second_name: String,
    subject: String,
    body: String,
    staff_reply: String,
}

impl Needles {
    fn new() -> Needles {
        let marker = || Uuid::new_v4().simple().to_string();
        Needles {
            email: format!("erase-{}@example.com", marker()),
            first_name: format!("Erasable {}", marker()),
            second_name: format!("Renamed {}", marker()),
            subject: format!("Ticket {}", marker()),
            body: format!("Dear support,\n\t{}", marker()),
            staff_reply: format!("Staff reply {}", marker()),
        }
    }

    /// The needles `text` contains.
    fn found_in(&self, text: &str) -> Vec<&str> {
        // JSON escapes nothing in these but the body's line feed and tab,
        // so its marker line is searched alone.
        let body_marker = self.body.rsplit('\t').next().unwrap_or(&self.body);
        [
            self.email.as_str(),
            &self.first_name,
            &self.second_name,
            &self.subject,
            body_marker,
            &self.staff_reply,
        ]
        .into_iter()
        .filter(|needle| text.contains(*needle))
        .collect()
    }
}

/// Every row of every table of every schema but the catalogs, as text,
/// that holds a needle: `schema.table: row`.
async fn postgres_rows_holding(app: &TestApp, needles: &Needles) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' \
           AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "the schema's tables: {tables:?}");
    let mut found = Vec::new();
    for (schema, table) in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" AS t"
        ))
        .fetch_all(&app.pool)
        .await
        .unwrap_or_else(|error| panic!("reading {schema}.{table}: {error}"));
        for row in rows {
            if !needles.found_in(&row).is_empty() {
                found.push(format!("{schema}.{table}: {row}"));
            }
        }
    }
    found
}

/// Every message now on the test's queues and their dead-letter queues
/// (no runner consumes them in this test), as body and header text.
async fn rabbitmq_messages(rabbit: &RabbitTest) -> Vec<String> {
    let mut messages = Vec::new();
    for queue in Queue::ALL {
        for name in [
            rabbit.topology.name(queue),
            rabbit.topology.dead_letter_name(queue),
        ] {
            for message in rabbit.drain(&name).await {
                messages.push(format!(
                    "{name}: {} {:?}",
                    String::from_utf8_lossy(&message.body),
                    message.properties.headers()
                ));
            }
        }
    }
    messages
}

async fn register(app: &TestApp, needles: &Needles) -> TestUser {
    let registered = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": needles.email, "password": PASSWORD, "display_name": needles.first_name }),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    app.login(&needles.email).await
}

#[tokio::test]
async fn an_erased_user_leaves_no_clear_personal_data_in_postgres_kafka_or_rabbitmq() {
    let rabbit = RabbitTest::new().await;
    let prefix = unique_prefix();
    let app = TestApp::spawn_with(&[
        ("KAFKA_TOPIC_PREFIX", &prefix),
        // Everything but the runner: the command messages stay on their
        // queues, where the test reads them.
        ("MUCKARD_ROLES", "api,projector,kafka-mirror,publisher"),
        ("RABBITMQ_URL", &integration_tests::rabbit::rabbit_url()),
        ("RABBITMQ_QUEUE_PREFIX", &rabbit.prefix),
        ("ANCHOR_INTERVAL_SECS", "0"),
        ("PROJECTOR_POLL_MS", "50"),
    ])
    .await;
    let needles = Needles::new();
    let user = register(&app, &needles).await;
    let renamed = app
        .patch(
            "/api/v1/user/me",
            Some(&user.token),
            json!({ "display_name": needles.second_name }),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": needles.email, "password": "not the password at all" }),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    trading_day(&app, &user, 3).await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    let agent = app.user_with_role(domain::Role::Support).await;
    let (ticket_id, _) = app.ticket(&user, &needles.subject, &needles.body).await;
    let replied = app
        .post(
            &format!("/api/v1/support/tickets/{ticket_id}/replies"),
            Some(&agent.token),
            json!({ "body": needles.staff_reply }),
        )
        .await;
    assert_eq!(replied.status, StatusCode::CREATED, "{}", replied.body);
    let position = replied.body["position"].as_str().unwrap().to_string();
    let ticket = app
        .get(
            &format!("/api/v1/support/tickets/{ticket_id}?min_position={position}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(
        ticket.body["subject"],
        json!(needles.subject),
        "{}",
        ticket.body
    );

    // Before the erasure: the read model shows the user's data, opened
    // with their key; the log and Kafka carry only ciphertext.
    app.eventually(30, "the users row to show the new name", || async {
        let me = app.get("/api/v1/user/me", Some(&user.token)).await;
        me.body["display_name"] == json!(needles.second_name)
            && me.body["email"] == json!(needles.email)
    })
    .await;
    // The search finds what is there: the read model and the credentials
    // hold the clear text until the erasure, and nothing else does.
    let before = postgres_rows_holding(&app, &needles).await;
    let tables: std::collections::BTreeSet<&str> = before
        .iter()
        .map(|row| row.split(':').next().unwrap())
        .collect();
    assert_eq!(
        tables,
        [
            "public.support_messages",
            "public.support_tickets",
            "public.user_credentials",
            "public.users"
        ]
        .into(),
        "{before:#?}"
    );
    let events: Vec<String> = sqlx::query_scalar("SELECT row_to_json(e)::text FROM events AS e")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let in_clear: Vec<_> = events
        .iter()
        .filter(|e| !needles.found_in(e).is_empty())
        .collect();
    assert!(in_clear.is_empty(), "events in clear: {in_clear:?}");
    let sealed = app.stream("User", user.id).await;
    let created = sealed[0].payload_json();
    assert!(
        created["email"]["sealed"]
            .as_str()
            .is_some_and(|s| s.starts_with("1:")),
        "{created}"
    );
    assert_eq!(sealed[0].event_version, "2.0");

    let erased = app
        .post_empty(
            &format!("/api/v1/admin/users/{}/erase", user.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    let position = erased.body["position"].as_str().unwrap().to_string();
    let listed = app
        .get(
            &format!("/api/v1/admin/users?min_position={position}&limit=100"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let row = listed.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == json!(user.id))
        .cloned()
        .expect("the erased user is still listed");
    assert_eq!(
        (row["email"].clone(), row["display_name"].clone()),
        (Value::Null, Value::Null)
    );
    assert!(row["erased_at"].is_string(), "{row}");
    assert_eq!(row["role"], "user");
    crate::support::mirror_reached_the_head(&app).await;

    // PostgreSQL: every table of every schema.
    let rows = postgres_rows_holding(&app, &needles).await;
    assert!(
        rows.is_empty(),
        "clear personal data left in PostgreSQL: {rows:#?}"
    );

    // Kafka: every message of every topic the service writes to, values and
    // headers, read from the beginning.
    let topics: Vec<String> = app
        .settings
        .kafka
        .layout
        .specs()
        .into_iter()
        .map(|spec| spec.name)
        .collect();
    let event_count = app.event_count().await as usize;
    let consumed = consume_until(&bootstrap(), &topics, 60, |read| read.len() >= event_count);
    assert_eq!(consumed.len(), event_count, "one message per event");
    assert!(consumed
        .iter()
        .any(|m| m.value["event_type"] == "user.erased"));
    let in_kafka: Vec<_> = consumed
        .iter()
        .filter(|m| {
            !needles
                .found_in(&format!("{} {:?}", m.text, m.headers))
                .is_empty()
        })
        .map(|m| format!("{}@{}: {}", m.topic, m.offset, m.text))
        .collect();
    assert!(
        in_kafka.is_empty(),
        "clear personal data on Kafka: {in_kafka:#?}"
    );

    // RabbitMQ: every message on the service's queues.
    let messages = rabbitmq_messages(&rabbit).await;
    assert!(
        messages.iter().any(|m| m.contains("bot.start")),
        "the publisher sent the day's commands: {messages:?}"
    );
    let in_rabbit: Vec<_> = messages
        .iter()
        .filter(|m| !needles.found_in(m).is_empty())
        .collect();
    assert!(
        in_rabbit.is_empty(),
        "clear personal data on RabbitMQ: {in_rabbit:#?}"
    );

    // The user is gone for log-ins and sessions.
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": needles.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.body);

    // Erasing again changes nothing.
    let count = app.event_count().await;
    let again = app
        .post_empty(
            &format!("/api/v1/admin/users/{}/erase", user.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(app.event_count().await, count);

    // The chain verifies, and a rebuild equals the live read models.
    let replay = |args: &[&str]| {
        let mut command = Command::new(workspace_binary("muckard-replay"));
        command
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("RUST_LOG", "warn");
        command
    };
    let run = |mut command: Command| async move {
        tokio::task::spawn_blocking(move || command.output().expect("run muckard-replay"))
            .await
            .unwrap()
    };
    let verified = run(replay(&["verify"])).await;
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    crate::support::caught_up(&app).await;
    let rebuilt = run(replay(&[
        "rebuild",
        "--name",
        "erasure",
        "--compare",
        "--json",
    ]))
    .await;
    let printed: Value = serde_json::from_slice(&rebuilt.stdout).unwrap_or_else(|_| {
        panic!(
            "rebuild output: {}{}",
            String::from_utf8_lossy(&rebuilt.stdout),
            String::from_utf8_lossy(&rebuilt.stderr)
        )
    });
    assert_eq!(rebuilt.status.code(), Some(0), "{printed}");
    for diff in printed["compare"].as_array().unwrap() {
        assert_eq!(diff["differing"], 0, "{diff}");
        assert_eq!(diff["shadow_digest"], diff["live_digest"], "{diff}");
    }
    // The rebuild's shadow copy holds no clear text either.
    let rows = postgres_rows_holding(&app, &needles).await;
    assert!(
        rows.is_empty(),
        "clear personal data after the rebuild: {rows:#?}"
    );

    delete_topics(
        &settings(&bootstrap(), &prefix),
        &app.settings.kafka.layout.specs(),
    )
    .await;
}
