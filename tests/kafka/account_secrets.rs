//! No one-time code, password or password hash leaves the places that
//! must hold them (the mail, the credentials table, the codes table): a
//! user registers, verifies their email by the mailed code, fails a log-in,
//! changes their password, resets it by a mailed code, trades and is
//! disabled and re-enabled, with the Kafka mirror, the RabbitMQ publisher
//! and the projectors running and every log line of the process captured
//! (the service's crates at debug, the libraries at info). Then every event, every Kafka message of the service's
//! topics, every RabbitMQ message on its queues and every log line is
//! searched for each password, each hash, each code's digest and each code.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use integration_tests::rabbit::RabbitTest;
use integration_tests::smtp::SmtpSink;
use integration_tests::{TestApp, PASSWORD};
use messaging::Queue;
use serde_json::json;
use uuid::Uuid;

use crate::support::{bootstrap, consume_until, trading_day, unique_prefix};

/// Every log line of this test process until [`Captured::stop`]; the
/// subscriber stays installed for the other tests of the binary, which
/// then write nowhere.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>, Arc<std::sync::atomic::AtomicBool>);

impl Captured {
    fn stop(&self) -> String {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let captured = Captured::default();
    let writer = captured.clone();
    let stopped = captured.1.clone();
    // The service's own crates at debug, the libraries at info (their
    // debug lines are the wire protocol); once the test has read the lines,
    // nothing is even formatted, so the other tests of the binary are not
    // slowed by it.
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_filter(tracing_subscriber::EnvFilter::new(
            "info,muckard=debug,api=debug,command_side=debug,domain=debug,event_log=debug,\
             projections=debug,kafka_mirror=debug,messaging=debug,bot_runner=debug,exchange=debug",
        ))
        .with_filter(tracing_subscriber::filter::filter_fn(move |_| {
            !stopped.load(std::sync::atomic::Ordering::SeqCst)
        }));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("this test binary installs no other log subscriber (unset TEST_LOG)");
    captured
}

/// Where `needle` occurs in `text` as a whole token: not inside a longer
/// run of letters, digits, dots or dashes (so a code is not "found" in the
/// digits of a time stamp or a hash).
fn holds_token(text: &str, needle: &str) -> bool {
    let joined =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    text.match_indices(needle).any(|(at, _)| {
        !joined(text[..at].chars().next_back()) && !joined(text[at + needle.len()..].chars().next())
    })
}

#[tokio::test]
async fn no_code_password_or_hash_is_in_any_event_message_or_log_line() {
    let logs = capture_logs();
    let smtp = SmtpSink::start();
    let rabbit = RabbitTest::new().await;
    let prefix = unique_prefix();
    let smtp_url = smtp.url();
    let app = TestApp::spawn_with(&[
        ("KAFKA_TOPIC_PREFIX", &prefix),
        ("MUCKARD_ROLES", "api,projector,kafka-mirror,publisher"),
        ("RABBITMQ_URL", &integration_tests::rabbit::rabbit_url()),
        ("RABBITMQ_QUEUE_PREFIX", &rabbit.prefix),
        ("ANCHOR_INTERVAL_SECS", "0"),
        ("SMTP_URL", &smtp_url),
        ("EMAIL_CODE_RESEND_SECS", "1"),
    ])
    .await;
    let marker = Uuid::new_v4().simple().to_string();
    let email = format!("secrets-{marker}@example.com");
    let (changed, reset) = (format!("changed {marker}"), format!("reset {marker}"));
    let mut needles = vec![PASSWORD.to_string(), changed.clone(), reset.clone()];
    let hash = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT password_hash FROM user_credentials WHERE email = $1",
        )
        .bind(&email)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };

    let registered = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    needles.push(hash().await);
    let verification = smtp.nth_code(&email, 1, 30).await;
    let wrong = format!(
        "{:06}",
        (verification.parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let refused = app
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({ "email": email, "code": wrong }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let verified = app
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({ "email": email, "code": verification }),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);

    let failed = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": changed }),
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let user = app.login(&email).await;
    let change = json!({ "current_password": PASSWORD, "new_password": changed });
    let answer = app
        .post("/api/v1/user/me/password", Some(&user.token), change)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    needles.push(hash().await);

    let requested = app
        .post(
            "/api/v1/auth/password-reset/request",
            None,
            json!({ "email": email }),
        )
        .await;
    assert_eq!(requested.status, StatusCode::ACCEPTED);
    let reset_code = smtp.nth_code(&email, 2, 30).await;
    let digests: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM email_codes")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(digests.len(), 2, "one digest per purpose");
    needles.extend(digests);
    let confirm = json!({ "email": email, "code": reset_code, "new_password": reset });
    let answer = app
        .post("/api/v1/auth/password-reset/confirm", None, confirm)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    needles.push(hash().await);
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": reset }),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let user = integration_tests::TestUser {
        id: user.id,
        email: email.clone(),
        token: login.body["access_token"].as_str().unwrap().to_string(),
        refresh_token: login.body["refresh_token"].as_str().unwrap().to_string(),
    };
    trading_day(&app, &user, 2).await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    for action in ["disable", "enable"] {
        let answer = app
            .post(
                &format!("/api/v1/admin/users/{}/{action}", user.id),
                Some(&admin.token),
                json!({}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.body);
    }
    let events = app.event_types("User", user.id).await;
    for kind in [
        "user.email_verified",
        "user.password_changed",
        "user.login_failed",
        "user.disabled",
    ] {
        assert!(events.contains(&kind.to_string()), "{kind} in {events:?}");
    }
    crate::support::mirror_reached_the_head(&app).await;

    let codes = [verification, reset_code];
    let leaks = |place: &str, text: &str| -> Vec<String> {
        let mut found: Vec<String> = needles
            .iter()
            .filter(|needle| text.contains(needle.as_str()))
            .map(|needle| format!("{place}: {needle}"))
            .collect();
        found.extend(
            codes
                .iter()
                .filter(|code| holds_token(text, code))
                .map(|code| format!("{place}: the code {code}")),
        );
        found
    };
    let mut found = Vec::new();

    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(e)::text FROM events AS e")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for row in &rows {
        found.extend(leaks("events", row));
    }

    let topics: Vec<String> = app
        .settings
        .kafka
        .layout
        .specs()
        .into_iter()
        .map(|spec| spec.name)
        .collect();
    let count = app.event_count().await as usize;
    let consumed = consume_until(&bootstrap(), &topics, 60, |read| read.len() >= count);
    assert_eq!(consumed.len(), count, "one message per event");
    for message in &consumed {
        found.extend(leaks(
            "kafka",
            &format!("{} {:?}", message.text, message.headers),
        ));
    }

    let mut amqp = 0;
    for queue in Queue::ALL {
        for name in [
            rabbit.topology.name(queue),
            rabbit.topology.dead_letter_name(queue),
        ] {
            for message in rabbit.drain(&name).await {
                amqp += 1;
                let text = format!(
                    "{} {:?}",
                    String::from_utf8_lossy(&message.body),
                    message.properties.headers()
                );
                found.extend(leaks("rabbitmq", &text));
            }
        }
    }
    assert!(amqp > 0, "the publisher sent the day's commands");

    let log = logs.stop();
    assert!(
        log.contains("code mailed"),
        "the capture holds the service's log lines"
    );
    for line in log.lines() {
        found.extend(leaks("log", line));
    }
    assert!(found.is_empty(), "secrets found: {found:#?}");

    // The search finds what it looks for: the mail holds the codes.
    let mail: Vec<String> = smtp.to(&email).into_iter().map(|m| m.text).collect();
    assert!(codes
        .iter()
        .all(|code| mail.iter().any(|text| holds_token(text, code))));
}
