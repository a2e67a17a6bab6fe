//! Accounts against a real SMTP server on loopback (aiosmtpd): the codes
//! the service mails arrive by SMTP, verify an email and reset a password;
//! wrong, expired, reused and too many codes are refused; a password
//! change, a reset and a log-out end sessions; a disabled user cannot log
//! in, their tokens stop and their bots are asked to stop.

use axum::http::StatusCode;
use integration_tests::smtp::SmtpSink;
use integration_tests::{TestApp, TestUser, PASSWORD};
use serde_json::json;
use uuid::Uuid;

async fn spawn(smtp: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut overrides = vec![
        ("SMTP_URL", url.as_str()),
        ("REQUIRE_VERIFIED_EMAIL", "true"),
        ("EMAIL_CODE_RESEND_SECS", "1"),
    ];
    overrides.extend_from_slice(extra);
    TestApp::spawn_with(&overrides).await
}

fn email() -> String {
    format!("mailed-{}@example.com", Uuid::new_v4().simple())
}

async fn register(app: &TestApp, email: &str) {
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
}

async fn verify(app: &TestApp, email: &str, code: &str) -> integration_tests::TestResponse {
    app.post(
        "/api/v1/auth/verify-email",
        None,
        json!({ "email": email, "code": code }),
    )
    .await
}

/// The code's other value, so a "wrong" code is never the right one.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

async fn connect_key(app: &TestApp, user: &TestUser) -> integration_tests::TestResponse {
    app.post(
        "/api/v1/kraken/connect",
        Some(&user.token),
        json!({ "api_key": "key-1", "api_secret": "c2VjcmV0" }),
    )
    .await
}

#[tokio::test]
async fn a_registration_code_arrives_by_smtp_and_verifies_the_email_once() {
    let smtp = SmtpSink::start();
    let app = spawn(&smtp, &[]).await;
    let email = email();
    register(&app, &email).await;
    let code = smtp.nth_code(&email, 1, 30).await;
    let message = &smtp.to(&email)[0];
    assert_eq!(message.subject, "Your Muckard verification code");

    // Trading needs the verified email.
    let user = app.login(&email).await;
    let refused = connect_key(&app, &user).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("verified email"),
        "{}",
        refused.body
    );

    let wrong = verify(&app, &email, &other_than(&code)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_eq!(wrong.body["error"]["field"], "code");
    assert_eq!(wrong.body["error"]["reason"], "does not match");

    let verified = verify(&app, &email, &code).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(
        app.event_types("User", user.id).await.last().unwrap(),
        "user.email_verified"
    );
    let reused = verify(&app, &email, &code).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
    assert_eq!(reused.body["error"]["reason"], "was already used");

    // The same token now trades: the check reads the account as it is.
    let connected = connect_key(&app, &user).await;
    assert_ne!(
        connected.status,
        StatusCode::FORBIDDEN,
        "{}",
        connected.body
    );

    // An unknown email is answered as a wrong code.
    let unknown = verify(&app, "nobody-at-all@example.com", &code).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(unknown.body["error"], wrong.body["error"]);

    // The code's digest is stored, not the code.
    let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM email_codes")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!stored.is_empty());
    assert!(stored
        .iter()
        .all(|digest| !digest.contains(&code) && digest.len() == 64));
}

#[tokio::test]
async fn expired_and_too_many_wrong_codes_are_refused_and_a_resend_gives_a_new_one() {
    let smtp = SmtpSink::start();
    let app = spawn(
        &smtp,
        &[
            ("EMAIL_CODE_TTL_SECS", "2"),
            ("EMAIL_CODE_MAX_ATTEMPTS", "3"),
        ],
    )
    .await;
    let email = email();
    register(&app, &email).await;
    let first = smtp.nth_code(&email, 1, 30).await;

    // Expired: refused with its reason once its two seconds are past.
    app.eventually(20, "the code to expire", || async {
        sqlx::query_scalar::<_, bool>("SELECT bool_and(expires_at < now()) FROM email_codes")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    })
    .await;
    let expired = verify(&app, &email, &first).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST, "{}", expired.body);
    assert!(
        expired.body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        expired.body
    );

    // A resend mails a new code.
    let resent = app
        .post(
            "/api/v1/auth/verify-email/resend",
            None,
            json!({ "email": email }),
        )
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    let second = smtp.nth_code(&email, 2, 30).await;

    // Three wrong guesses, then even the right code is a 429.
    for _ in 0..3 {
        let wrong = verify(&app, &email, &other_than(&second)).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    }
    let locked = verify(&app, &email, &second).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    // An unknown email backs off after as many guesses.
    let unknown = format!("unknown-{}@example.com", Uuid::new_v4().simple());
    for _ in 0..3 {
        assert_eq!(
            verify(&app, &unknown, "123456").await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        verify(&app, &unknown, "123456").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_reset_by_emailed_code_replaces_the_password_and_ends_every_session() {
    let smtp = SmtpSink::start();
    let app = spawn(&smtp, &[]).await;
    let email = email();
    register(&app, &email).await;
    let user = app.login(&email).await;

    let unknown = format!("nobody-{}@example.com", Uuid::new_v4().simple());
    for address in [&email, &unknown] {
        let requested = app
            .post(
                "/api/v1/auth/password-reset/request",
                None,
                json!({ "email": address }),
            )
            .await;
        assert_eq!(requested.status, StatusCode::ACCEPTED, "{}", requested.body);
        assert!(
            requested.body.is_null() || requested.body == json!(""),
            "{}",
            requested.body
        );
    }
    // Mail 1 is the verification code, mail 2 the reset code.
    let code = smtp.nth_code(&email, 2, 30).await;
    assert_eq!(
        smtp.to(&email)[1].subject,
        "Your Muckard password reset code"
    );
    assert!(
        smtp.to(&unknown).is_empty(),
        "nothing is mailed to an unknown email"
    );

    let new_password = "a brand new password";
    let confirmed = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            None,
            json!({ "email": email, "code": code, "new_password": new_password }),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);

    let old = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    let new = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": new_password }),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    // The session from before the reset is over: its access and refresh
    // tokens are refused.
    let me = app.get("/api/v1/user/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
    let renewed = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::UNAUTHORIZED, "{}", renewed.body);
    let events = app.event_types("User", user.id).await;
    assert!(
        events.contains(&"user.password_changed".to_string()),
        "{events:?}"
    );
    let reused = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            None,
            json!({ "email": email, "code": code, "new_password": "yet another password" }),
        )
        .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_a_logout_its_own() {
    let smtp = SmtpSink::start();
    let app = spawn(&smtp, &[]).await;
    let email = email();
    register(&app, &email).await;
    let here = app.login(&email).await;
    let there = app.login(&email).await;
    let listed = app.get("/api/v1/user/me/sessions", Some(&here.token)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let sessions = listed.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", listed.body);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    let changed = app
        .post(
            "/api/v1/user/me/password",
            Some(&here.token),
            json!({ "current_password": PASSWORD, "new_password": "the changed password" }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        app.get("/api/v1/user/me", Some(&here.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/user/me", Some(&there.token)).await.status,
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    let listed = app.get("/api/v1/user/me/sessions", Some(&here.token)).await;
    assert_eq!(
        listed.body["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );

    // Another user cannot end this session: 404.
    let stranger = {
        let other = format!("stranger-{}@example.com", Uuid::new_v4().simple());
        register(&app, &other).await;
        app.login(&other).await
    };
    let session_id = listed.body["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign = app
        .delete(
            &format!("/api/v1/user/me/sessions/{session_id}"),
            Some(&stranger.token),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);

    let logged_out = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": here.refresh_token }),
        )
        .await;
    assert_eq!(logged_out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/user/me", Some(&here.token)).await.status,
        StatusCode::UNAUTHORIZED,
        "a log-out ends the session's access token too"
    );
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_their_tokens_stop_and_their_bots_are_stopped() {
    let smtp = SmtpSink::start();
    // Trading without the verified email, so the bot needs no code here.
    let app = spawn(&smtp, &[("REQUIRE_VERIFIED_EMAIL", "false")]).await;
    let user = app.user().await;
    let bot = app.running_bot(&user).await;
    let admin = app.user_with_role(domain::Role::Admin).await;

    let disabled = app
        .post(
            &format!("/api/v1/admin/users/{}/disable", user.id),
            Some(&admin.token),
            json!({ "reason": "chargebacks" }),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let bot_events = app.event_types("Bot", bot).await;
    assert_eq!(
        bot_events.last().unwrap(),
        "bot.stop_requested",
        "{bot_events:?}"
    );
    let stop = app.stream("Bot", bot).await;
    assert_eq!(
        stop.last().unwrap().metadata_json()["command_type"],
        "bot.request_stop",
        "through the normal stop command"
    );

    let me = app.get("/api/v1/user/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN, "{}", me.body);
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN, "{}", login.body);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": user.email, "password": "not the password at all" }),
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "a wrong password says nothing more"
    );
    let renewed = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": user.refresh_token }),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::UNAUTHORIZED, "{}", renewed.body);
    let started = app
        .post_empty(&format!("/api/v1/bot/{bot}/start"), Some(&user.token))
        .await;
    assert_eq!(started.status, StatusCode::FORBIDDEN, "{}", started.body);

    let enabled = app
        .post_empty(
            &format!("/api/v1/admin/users/{}/enable", user.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    let back = app.login(&user.email).await;
    assert_eq!(
        app.get("/api/v1/user/me", Some(&back.token)).await.status,
        StatusCode::OK
    );
    let events = app.event_types("User", user.id).await;
    let at = |name: &str| events.iter().position(|e| e == name).unwrap();
    assert!(at("user.disabled") < at("user.enabled"), "{events:?}");
    assert_eq!(events.last().unwrap(), "user.logged_in", "{events:?}");
}

/// A bot error or failed key test raised for a user is mailed to them, by
/// the real SMTP server, when their email is verified and they want errors
/// by email; not to an unverified address, not to a user who turned it
/// off, and never a fill.
#[tokio::test]
async fn errors_are_mailed_to_verified_users_who_want_them() {
    use domain::notification::{NotificationKind, NotificationSubject};

    let smtp = SmtpSink::start();
    let app = spawn(&smtp, &[]).await;
    let (wants, unverified, opted_out) = (email(), email(), email());
    for address in [&wants, &unverified, &opted_out] {
        register(&app, address).await;
    }
    for address in [&wants, &opted_out] {
        let code = smtp.nth_code(address, 1, 30).await;
        let verified = verify(&app, address, &code).await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    }
    let off = app.login(&opted_out).await;
    let changed = app
        .patch(
            "/api/v1/user/me",
            Some(&off.token),
            json!({ "notifications": {
                "trade_fills": true, "bot_errors": false, "security": true
            } }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    // In log order: the ones nobody is mailed for first, the one that is
    // mailed last, so once it arrives the others were decided.
    let raise = |user_id: Uuid, kind: NotificationKind, message: &'static str| {
        let subject = NotificationSubject {
            key_id: Some(Uuid::new_v4()),
            ..NotificationSubject::default()
        };
        app.raise_notification(user_id, kind, subject, message)
    };
    let wanting = app.login(&wants).await;
    let unverified_user = app.login(&unverified).await;
    raise(
        unverified_user.id,
        NotificationKind::KeyTestFailed,
        "exchange key test failed: EAPI:Invalid key",
    )
    .await;
    raise(
        off.id,
        NotificationKind::BotError,
        "bot error: exchange refused: EOrder:Insufficient funds",
    )
    .await;
    raise(
        wanting.id,
        NotificationKind::TradeExecuted,
        "bought 0.001 XBT/USD at 60000 (fee 0.156)",
    )
    .await;
    raise(
        wanting.id,
        NotificationKind::KeyTestFailed,
        "exchange key test failed: EAPI:Invalid key",
    )
    .await;

    // The verification code, then the failed key test: nothing for the fill.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while smtp.to(&wants).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no notification mail: {:?}",
            smtp.to(&wants)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mails = smtp.to(&wants);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].subject, "Muckard: an exchange key failed its test");
    assert!(
        mails[1]
            .text
            .contains("exchange key test failed: EAPI:Invalid key"),
        "{}",
        mails[1].text
    );
    assert_eq!(smtp.to(&unverified).len(), 1, "only its code");
    assert_eq!(smtp.to(&opted_out).len(), 1, "only its code");
}
