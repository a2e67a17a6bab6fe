//! The web console at `/app` in a real browser: Debian's Chromium, headless,
//! driven by playwright-core (`scripts/node/console.mjs`, installed with
//! the Node tools by `ensure_node_tools`; the browser by `ensure_chromium`).
//! Each scenario checks every view it visits with axe-core (no serious or
//! critical violation), fails on any console error, CSP violation or
//! request to another origin, and keeps a screenshot of each main view in
//! `tests/var/console/` (`CONSOLE_ARTEFACTS` to put them elsewhere).
//!
//! - a trader signs up (an API error shown next to the field it names),
//!   enters the code mailed by the real SMTP server, connects a key, starts
//!   a bot that the real bot runner runs through the real RabbitMQ, and
//!   sees it turn `running` and a trade appear without a reload, and the
//!   notifier's notifications counted on the unread badge;
//! - an auditor sees the row an owner tampered with by SQL named by the
//!   verification, and a downloaded signed export verified, then refused
//!   once altered;
//! - an admin finds a user, changes its role, disables and enables it, and
//!   answers a support ticket.
//!
//! The gateway test loads the console through nginx.

// The messaging target's steps; this target uses some of them.
#[path = "../messaging/flow.rs"]
#[allow(dead_code)]
mod flow;

use integration_tests::browser::scenario;
use integration_tests::rabbit::RabbitTest;
use integration_tests::smtp::SmtpSink;
use integration_tests::{TestApp, GOOD_SECRET, PASSWORD};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trader_signs_up_and_watches_a_bot_run_and_trade_without_reloading() {
    let rabbit = RabbitTest::new().await;
    let smtp = SmtpSink::start();
    let smtp_url = smtp.url();
    let app = flow::notifying_service(&rabbit, &[("SMTP_URL", smtp_url.as_str())]).await;
    let base = app.listen().await;
    let email = format!("console-{}@example.com", Uuid::new_v4().simple());

    scenario(
        "signup",
        &base,
        &[
            ("EMAIL", &email),
            ("PASSWORD", PASSWORD),
            ("DISPLAY_NAME", "Console Trader"),
        ],
    )
    .await;
    let code = smtp.nth_code(&email, 1, 20).await;
    let traded = scenario(
        "trader",
        &base,
        &[
            ("EMAIL", &email),
            ("PASSWORD", PASSWORD),
            ("CODE", &code),
            ("KRAKEN_KEY", "paper-key-console"),
            ("KRAKEN_SECRET", GOOD_SECRET),
            ("PAIR", "XBT/USD"),
        ],
    )
    .await;

    // The notifier told of the start and the fills: the badge had them.
    assert!(
        traded["unread_notifications"].as_u64().unwrap_or(0) > 0,
        "{traded}"
    );
    // What the browser showed is what the log holds.
    let bot_id: Uuid = traded["bot_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a bot id: {traded}"));
    let types = app.event_types("Bot", bot_id).await;
    for expected in ["bot.configured", "bot.started", "bot.trade.executed"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
    let trader = app.login(&email).await;
    let user_types = app.event_types("User", trader.id).await;
    assert!(
        user_types.iter().any(|t| t == "user.email_verified"),
        "the code entered in the console verified the email: {user_types:?}"
    );
    // The secret typed once went into the vault, never into the log.
    let in_log: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
            .bind(GOOD_SECRET)
            .fetch_one(&app.pool)
            .await
            .expect("search the log");
    assert_eq!(in_log, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_sees_a_tampered_row_named_and_a_signed_export_verified() {
    let app = TestApp::spawn().await;
    let base = app.listen().await;
    let trader = app.user().await;
    let bot_id = app.running_bot(&trader).await;
    let bystander = app.user().await;
    let auditor = app.user_with_role(domain::Role::Auditor).await;

    // The database's owner, triggers off, rewrites the bot's second row.
    let mut owner = app.tamperer().await;
    let changed = sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{tampered}', 'true')::json \
         WHERE aggregate_type = 'Bot' AND aggregate_id = $1 AND sequence = 2",
    )
    .bind(bot_id.to_string())
    .execute(&mut owner)
    .await
    .expect("tamper");
    assert_eq!(changed.rows_affected(), 1);

    let bot = bot_id.to_string();
    let user = bystander.id.to_string();
    scenario(
        "auditor",
        &base,
        &[
            ("EMAIL", &auditor.email),
            ("PASSWORD", PASSWORD),
            ("AGGREGATE_TYPE", "Bot"),
            ("AGGREGATE_ID", &bot),
            ("SEQUENCE", "2"),
            ("USER_ID", &user),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_a_user_and_answers_a_ticket() {
    let app = TestApp::spawn().await;
    let base = app.listen().await;
    let admin = app.user_with_role(domain::Role::Admin).await;
    let member = app.user().await;
    let subject = format!("Console help {}", &Uuid::new_v4().simple().to_string()[..8]);
    app.ticket(&member, &subject, "My bot does not start.")
        .await;

    scenario(
        "admin",
        &base,
        &[
            ("EMAIL", &admin.email),
            ("PASSWORD", PASSWORD),
            ("SEARCH", &member.email),
            ("TICKET_SUBJECT", &subject),
        ],
    )
    .await;

    // Every change the admin made in the browser is in the log.
    let types = app.event_types("User", member.id).await;
    for expected in ["user.role_assigned", "user.disabled", "user.enabled"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}
