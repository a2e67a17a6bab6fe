//! The API gateway: the real nginx with the committed
//! `deploy/nginx/nginx.conf`, in front of `muckard serve --roles api`
//! processes named `users-*` (the user-facing upstream) and `trading-*`
//! (the trading upstream), on one fresh database. Every response of an
//! instance carries `x-muckard-instance`; one without it came from nginx.

mod harness;

use std::time::{Duration, Instant};

use harness::{Gateway, ALLOWED_ORIGIN, OTHER_ORIGIN};
use integration_tests::{GOOD_SECRET, PASSWORD};
use serde_json::json;

const USERS: &str = "users-1";
const TRADING: &str = "trading-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_reaches_its_instance_and_a_real_flow_crosses_both() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;

    // Register and log in through the user-facing route, with a request id
    // the instance must receive from nginx.
    let email = format!("gw-{}@example.com", uuid::Uuid::new_v4().simple());
    let request_id = format!("gateway-test-{}", uuid::Uuid::new_v4().simple());
    let registered = gateway
        .send(
            "POST",
            "/api/v1/auth/register",
            &[
                ("content-type", "application/json"),
                ("x-request-id", &request_id),
            ],
            Some(
                json!({ "email": email, "password": PASSWORD })
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.instance(), Some(USERS));
    assert_eq!(registered.header("x-request-id"), Some(request_id.as_str()));
    let user_id: uuid::Uuid = registered.json()["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let created = gateway.app.stream("User", user_id).await;
    assert_eq!(
        created[0].metadata_json()["request_id"],
        request_id.as_str(),
        "the instance recorded the request id nginx passed on"
    );

    let login = gateway
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.instance(), Some(USERS));
    let made_up_id = login.header("x-request-id").expect("a request id");
    assert_eq!(made_up_id.len(), 32, "nginx's $request_id: {made_up_id}");
    let token = login.json()["access_token"].as_str().unwrap().to_string();

    // The other user-facing routes, answered (whatever the answer) by
    // the user-facing instance.
    for path in [
        "/api/v1/user/me".to_string(),
        "/api/v1/admin/users".to_string(),
        format!("/api/v1/audit/streams/User/{user_id}/events"),
        "/api/v1/support/tickets".to_string(),
        format!("/api/v1/support/tickets/{user_id}"),
        "/api/v1/notifications".to_string(),
        "/openapi.json".to_string(),
        "/docs".to_string(),
        "/asyncapi.json".to_string(),
        "/schemas/kafka/envelope.schema.json".to_string(),
    ] {
        let response = gateway.get(&path, Some(&token)).await;
        assert_eq!(response.instance(), Some(USERS), "{path}: {response:?}");
    }

    // A support ticket through the user-facing route: opened, its
    // multi-line body intact, read back by its owner.
    let body = "Hello,\n\tthe gateway works?";
    let opened = gateway
        .post(
            "/api/v1/support/tickets",
            Some(&token),
            &json!({ "subject": "Through the gateway", "body": body }),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    assert_eq!(opened.instance(), Some(USERS));
    let ticket_id = opened.json()["ticket_id"].as_str().unwrap().to_string();
    let position = opened.json()["position"].as_str().unwrap().to_string();
    let read = gateway
        .get(
            &format!("/api/v1/support/tickets/{ticket_id}?min_position={position}"),
            Some(&token),
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.instance(), Some(USERS));
    assert_eq!(read.json()["messages"][0]["body"], body);

    // A bot, from key to start, through the trading route, with the
    // token the user-facing instance issued.
    let connected = gateway
        .post(
            "/api/v1/kraken/connect",
            Some(&token),
            &json!({ "api_key": "paper-key-gateway", "api_secret": GOOD_SECRET }),
        )
        .await;
    assert_eq!(connected.status, 201, "{}", connected.body);
    assert_eq!(connected.instance(), Some(TRADING));
    let key_id = connected.json()["key_id"].as_str().unwrap().to_string();
    let tested = gateway
        .post(
            &format!("/api/v1/kraken/keys/{key_id}/test"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(tested.json()["status"], "tested", "{}", tested.body);
    assert_eq!(tested.instance(), Some(TRADING));
    let configured = gateway
        .post(
            "/api/v1/bot",
            Some(&token),
            &json!({
                "key_id": key_id,
                "pair": "XBT/USD",
                "strategy": { "kind": "dca", "quote_amount": "25.00", "interval_secs": 60 }
            }),
        )
        .await;
    assert_eq!(configured.status, 201, "{}", configured.body);
    assert_eq!(configured.instance(), Some(TRADING));
    let bot_id: uuid::Uuid = configured.json()["bot_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let started = gateway
        .post(
            &format!("/api/v1/bot/{bot_id}/start"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(started.instance(), Some(TRADING));
    let stream = gateway.app.stream("Bot", bot_id).await;
    assert_eq!(
        stream
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["bot.configured", "bot.start_requested"]
    );
    for path in [
        "/api/v1/bot".to_string(),
        format!("/api/v1/bot/{bot_id}/status"),
        "/api/v1/kraken/keys".to_string(),
        "/api/v1/trading/trades".to_string(),
        "/api/v1/trading/positions".to_string(),
        "/api/v1/trading/balances".to_string(),
        "/api/v1/market/ticker?pair=XBT/USD".to_string(),
        "/api/v1/market/ohlcv?pair=XBT/USD&interval=1h".to_string(),
        "/api/v1/dashboard".to_string(),
    ] {
        let response = gateway.get(&path, Some(&token)).await;
        assert_eq!(response.instance(), Some(TRADING), "{path}: {response:?}");
        assert!(response.status < 500, "{path}: {response:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_outside_the_gateway_are_refused_by_nginx() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;
    // The instances do serve these; the gateway must not.
    for path in ["/metrics", "/health"] {
        let direct = gateway.users[0].send_direct("GET", path).await;
        assert_eq!(direct.status, 200, "{path} on the instance itself");
    }
    for path in [
        "/metrics",
        "/health",
        "/ready",
        "/internal",
        "/api/v1/nothing",
        "/api/v1/botnet",
        "/api/v1/supportive/tickets",
        "/api/v2/auth/login",
        "/",
        "/api/v1/auth/../../../metrics",
        "/api/v1/user/%2e%2e/%2e%2e/%2e%2e/metrics",
    ] {
        let response = gateway.get(path, None).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
        assert_eq!(response.instance(), None, "{path} reached an instance");
        assert_eq!(response.json()["error"]["code"], "not_found", "{path}");
    }
    let health = gateway.get("/gateway/health", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.instance(), None);
    assert_eq!(health.json()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_answered_once_by_the_gateway_and_security_headers_are_set() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;

    let preflight = gateway
        .send(
            "OPTIONS",
            "/api/v1/bot",
            &[
                ("origin", ALLOWED_ORIGIN),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
        .await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(preflight.instance(), None, "answered by nginx");
    assert_eq!(
        preflight.all("access-control-allow-origin"),
        [ALLOWED_ORIGIN]
    );
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let allowed_headers = preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("authorization"));
    assert!(allowed_headers.contains("idempotency-key"));

    let refused = gateway
        .send(
            "OPTIONS",
            "/api/v1/bot",
            &[
                ("origin", OTHER_ORIGIN),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.instance(), None);
    assert!(refused.all("access-control-allow-origin").is_empty());

    // An actual request: one Access-Control-Allow-Origin, though the
    // instance was told to allow the same origin.
    let user = gateway.app.user().await;
    let bearer = format!("Bearer {}", user.token);
    let allowed = gateway
        .send(
            "GET",
            "/api/v1/bot",
            &[("origin", ALLOWED_ORIGIN), ("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.instance(), Some(TRADING));
    assert_eq!(allowed.all("access-control-allow-origin"), [ALLOWED_ORIGIN]);
    assert!(allowed
        .header("access-control-expose-headers")
        .unwrap()
        .contains("X-Request-Id"));
    let other = gateway
        .send(
            "GET",
            "/api/v1/bot",
            &[("origin", OTHER_ORIGIN), ("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(other.status, 200);
    assert!(other.all("access-control-allow-origin").is_empty());

    // The documentation page is HTML with scripts: a policy of its own.
    let docs = gateway.get("/docs", None).await;
    assert_eq!(docs.instance(), Some(USERS));
    let docs_csp = docs.all("content-security-policy");
    assert_eq!(docs_csp.len(), 1, "{docs:?}");
    assert!(docs_csp[0].contains("script-src 'self'"), "{docs_csp:?}");
    // The console: its own files and its own origin's API, nothing else.
    for path in ["/app", "/app/", "/app/app.js"] {
        let console = gateway.get(path, None).await;
        assert_eq!(console.status, 200, "{path}: {console:?}");
        assert_eq!(console.instance(), Some(USERS), "{path}");
        let csp = console.all("content-security-policy");
        assert_eq!(csp, [api::console::CONTENT_SECURITY_POLICY], "{path}");
    }

    // Security headers on an instance's answer and on nginx's own.
    for response in [&allowed, &gateway.get("/metrics", None).await] {
        assert_eq!(response.all("x-content-type-options"), ["nosniff"]);
        assert_eq!(response.all("x-frame-options"), ["DENY"]);
        assert_eq!(response.all("referrer-policy"), ["no-referrer"]);
        let csp = response.all("content-security-policy");
        assert_eq!(csp.len(), 1);
        assert!(csp[0].contains("default-src 'none'"), "{csp:?}");
        assert!(csp[0].contains("frame-ancestors 'none'"), "{csp:?}");
        let server = response.header("server").unwrap_or_default();
        assert!(!server.contains('/'), "no version: {server}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413_before_any_instance() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;
    let padded = |size: usize| {
        let padding = "x".repeat(size);
        json!({ "email": "big@example.com", "password": PASSWORD, "display_name": padding })
            .to_string()
            .into_bytes()
    };
    let headers = [("content-type", "application/json")];

    // Just under 64 KiB reaches the instance, which refuses the name.
    let under = padded(60 * 1024);
    assert!(under.len() < 64 * 1024);
    let reached = gateway
        .send("POST", "/api/v1/auth/register", &headers, Some(under))
        .await;
    assert_eq!(reached.status, 422, "{reached:?}");
    assert_eq!(reached.instance(), Some(USERS));
    assert_eq!(reached.json()["error"]["field"], "display_name");

    let over = padded(1024 * 1024);
    let refused = gateway
        .send("POST", "/api/v1/auth/register", &headers, Some(over))
        .await;
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(refused.instance(), None);
    assert_eq!(refused.json()["error"]["code"], "payload_too_large");
    assert_eq!(gateway.app.event_count().await, 0, "nothing was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_log_in_rate_limit_gets_429_from_nginx() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;
    // An incomplete log-in (422 at once, no password hashing), so 40
    // attempts take well under the two seconds in which one more would
    // be allowed: muckard_auth allows bursts of 20 at 30 a minute.
    let incomplete = json!({ "email": "nobody@example.com" });
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..40 {
        let response = gateway.post("/api/v1/auth/login", None, &incomplete).await;
        statuses.push(response.status);
        if response.status == 429 {
            limited.get_or_insert(response);
        } else {
            assert_eq!(response.status, 422, "{response:?}");
            assert_eq!(response.instance(), Some(USERS));
        }
    }
    assert!(
        statuses[..20].iter().all(|s| *s == 422),
        "the burst passes: {statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 10, "{refused} refused: {statuses:?}");
    let limited = limited.unwrap();
    assert_eq!(limited.instance(), None, "refused by nginx");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.json()["error"]["code"], "too_many_requests");

    // The same client is not limited on the other routes.
    let user = gateway.app.user().await;
    let bots = gateway.get("/api/v1/bot", Some(&user.token)).await;
    assert_eq!(bots.status, 200, "{bots:?}");
    assert_eq!(bots.instance(), Some(TRADING));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instance_is_passed_over_and_a_dead_group_gets_a_quick_502() {
    let mut gateway = Gateway::start(&[USERS, "users-2"], &[TRADING]).await;
    let user = gateway.app.user().await;
    // Both user-facing instances answer in turn.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let response = gateway.get("/api/v1/user/me", Some(&user.token)).await;
        seen.insert(response.instance().unwrap_or("nginx").to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [USERS, "users-2"],
        "round robin over the group"
    );

    // One user-facing instance dies: every request is served by the
    // other, reads and then even a POST (a refused connection sent
    // nothing, so nginx tries the next server).
    gateway.users[1].kill();
    for _ in 0..4 {
        let response = gateway.get("/api/v1/user/me", Some(&user.token)).await;
        assert_eq!(response.instance(), Some(USERS), "{response:?}");
    }
    for n in 0..6 {
        let email = format!("after-{n}-{}@example.com", uuid::Uuid::new_v4().simple());
        let registered = gateway
            .post(
                "/api/v1/auth/register",
                None,
                &json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(registered.status, 201, "{registered:?}");
        assert_eq!(registered.instance(), Some(USERS));
    }

    // The whole trading group dies: a quick 502 from nginx, not a hang,
    // while the user-facing routes go on.
    gateway.trading[0].kill();
    for _ in 0..3 {
        let started = Instant::now();
        let response = gateway.get("/api/v1/bot", Some(&user.token)).await;
        let took = started.elapsed();
        assert_eq!(response.status, 502, "{response:?}");
        assert_eq!(response.instance(), None);
        assert_eq!(response.json()["error"]["code"], "unavailable");
        assert!(took < Duration::from_secs(3), "answered in {took:?}");
    }
    let me = gateway.get("/api/v1/user/me", Some(&user.token)).await;
    assert_eq!(me.instance(), Some(USERS), "{me:?}");
    assert!(
        gateway.nginx.stderr().contains("connect() failed"),
        "nginx logged the refused connections"
    );
}

/// The live stream through nginx, read by a real SSE client
/// (scripts/sse_client.py): each event arrives as it is committed (nginx
/// buffers nothing), and a client that reconnects through the gateway with
/// `Last-Event-ID` gets exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_passes_through_the_gateway_unbuffered_and_resumes() {
    use integration_tests::sse::SseClient;

    let gateway = Gateway::start(&[USERS], &[TRADING]).await;
    let app = &gateway.app;
    let user = app.user().await;
    let bot_id = app.bot(&user).await;
    let url = format!("http://127.0.0.1:{}/api/v1/stream", gateway.nginx.port);
    let mut client = SseClient::open(&url, &user.token, None).await;
    assert_eq!(client.opened["open"], 200, "{}", client.opened);

    let within = |sent: Instant, what: &str| {
        let took = sent.elapsed();
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    };
    let sent = Instant::now();
    let started = gateway
        .post(
            &format!("/api/v1/bot/{bot_id}/start"),
            Some(&user.token),
            &json!({}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let starting = client
        .next(Duration::from_secs(5))
        .await
        .expect("starting on the stream");
    within(sent, "starting");
    assert_eq!(starting.event, "bot_status");
    assert_eq!(starting.data["data"]["state"], "starting");

    let sent = Instant::now();
    app.runner_command(
        bot_id,
        domain::bot::BotCommand::MarkStarted {
            actor: domain::Actor::System,
            at: chrono::Utc::now(),
        },
    )
    .await;
    let running = client
        .next(Duration::from_secs(5))
        .await
        .expect("running on the stream");
    within(sent, "running");
    assert_eq!(running.data["data"]["state"], "running");

    let sent = Instant::now();
    app.fill(
        bot_id,
        "gateway-fill-1",
        domain::Side::Buy,
        "0.001",
        "60000",
        chrono::Utc::now(),
    )
    .await;
    let trade = client
        .next(Duration::from_secs(5))
        .await
        .expect("the fill on the stream");
    within(sent, "the fill");
    assert_eq!(trade.event, "trade");

    // Gone; the bot is stopped meanwhile; back through the gateway.
    let last = trade.id.clone();
    drop(client);
    let stopped = gateway
        .post(
            &format!("/api/v1/bot/{bot_id}/stop"),
            Some(&user.token),
            &json!({ "reason": "through nginx" }),
        )
        .await;
    assert_eq!(stopped.status, 202, "{}", stopped.body);
    let status = format!("/api/v1/bot/{bot_id}/status");
    app.eventually(10, "the bot stopping", || async {
        app.get(&status, Some(&user.token)).await.body["state"] == "stopping"
    })
    .await;
    let mut back = SseClient::open(&url, &user.token, Some(&last)).await;
    assert_eq!(back.opened["open"], 200, "{}", back.opened);
    let resumed = back.until_quiet(Duration::from_secs(2)).await;
    let ids: Vec<String> = resumed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, app.live_ids_after(user.id, &last).await, "{resumed:?}");
    assert!(
        resumed
            .iter()
            .any(|e| e.data["data"]["state"] == "stopping"),
        "{resumed:?}"
    );
}

/// The web console through nginx, in the real browser: its page and
/// files come from the user-facing group under the console's policy, and
/// its calls reach both groups on the one origin (log-in, the dashboard,
/// a running bot's page and its live stream, the keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_through_the_gateway() {
    let gateway = Gateway::start(&[USERS], &[TRADING]).await;
    let app = &gateway.app;
    let user = app.user().await;
    let bot_id = app.running_bot(&user).await;
    let base = format!("http://127.0.0.1:{}", gateway.nginx.port);
    let bot = bot_id.to_string();
    let loaded = integration_tests::browser::scenario(
        "smoke",
        &base,
        &[
            ("EMAIL", &user.email),
            ("PASSWORD", PASSWORD),
            ("BOT_ID", &bot),
        ],
    )
    .await;
    assert_eq!(loaded["ok"], true, "{loaded}");
}
