//! The Kraken adapter: its signature against Kraken's documented example,
//! and every call against a local mock of Kraken's REST API that checks
//! each signature and nonce itself; retries and the circuit breaker; and a
//! bot trading on "Kraken" end to end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use domain::services::{KeyPermission, KeyVerification};
use domain::SecretString;
use domain::{Pair, Side};
use exchange::kraken::{sign, KrakenExchange};
use exchange::resilience::{CallPolicy, ResilientExchange};
use exchange::{ApiCredentials, Exchange, ExchangeError, Interval, OrderRequest, OrderStatus};
use hmac::{Hmac, Mac};
use integration_tests::rabbit::RabbitTest;
use integration_tests::GOOD_SECRET;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;

use crate::flow::{bot_events, wait_for_events, wait_for_state};

/// What the mock knows and saw.
#[derive(Default)]
struct MockKraken {
    /// API key → base64 secret.
    keys: HashMap<String, String>,
    last_nonce: Mutex<HashMap<String, u64>>,
    orders: Mutex<HashMap<String, Value>>,
    /// Answer this many next calls with HTTP 503.
    fail_next: AtomicU32,
    calls: AtomicU32,
    valid_signatures: AtomicU32,
}

fn kraken_error(error: &str) -> Response {
    Json(json!({ "error": [error] })).into_response()
}

fn kraken_result(result: Value) -> Response {
    Json(json!({ "error": [], "result": result })).into_response()
}

/// The signature, computed here independently of the adapter.
fn expected_signature(secret: &str, path: &str, nonce: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(&BASE64.decode(secret).unwrap()).unwrap();
    let mut message = path.as_bytes().to_vec();
    message.extend_from_slice(&Sha256::digest(format!("{nonce}{body}").as_bytes()));
    mac.update(&message);
    BASE64.encode(mac.finalize().into_bytes())
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect()
}

impl MockKraken {
    fn counted(&self) -> Option<Response> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self.fail_next.load(Ordering::SeqCst);
        if failing > 0 {
            self.fail_next.store(failing - 1, Ordering::SeqCst);
            return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        None
    }
}

async fn ticker(
    State(mock): State<Arc<MockKraken>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(failure) = mock.counted() {
        return failure;
    }
    match query.get("pair").map(String::as_str) {
        Some("XBTUSD") => kraken_result(json!({ "XXBTZUSD": { "c": ["50000.10000", "0.01"] } })),
        _ => kraken_error("EQuery:Unknown asset pair"),
    }
}

async fn private(
    State(mock): State<Arc<MockKraken>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(failure) = mock.counted() {
        return failure;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let api_key = header("API-Key").to_string();
    let Some(secret) = mock.keys.get(&api_key) else {
        return kraken_error("EAPI:Invalid key");
    };
    let fields = form(&body);
    let nonce = fields.get("nonce").cloned().unwrap_or_default();
    let path = format!("/0/private/{method}");
    if header("API-Sign") != expected_signature(secret, &path, &nonce, &body) {
        return kraken_error("EAPI:Invalid signature");
    }
    let nonce_value: u64 = nonce.parse().unwrap_or(0);
    {
        let mut last = mock.last_nonce.lock().unwrap();
        let previous = last.entry(api_key.clone()).or_insert(0);
        if nonce_value <= *previous {
            return kraken_error("EAPI:Invalid nonce");
        }
        *previous = nonce_value;
    }
    mock.valid_signatures.fetch_add(1, Ordering::SeqCst);
    match method.as_str() {
        "Balance" => kraken_result(json!({ "ZUSD": "1000.0000", "XXBT": "0.5000000000" })),
        "OpenOrders" => kraken_result(json!({ "open": {} })),
        "AddOrder" if fields.get("validate").map(String::as_str) == Some("true") => {
            kraken_result(json!({ "descr": { "order": "buy 0.0001 XBTUSD @ market" } }))
        }
        "AddOrder" => {
            let volume: Decimal = fields["volume"].parse().unwrap();
            let price = Decimal::new(500001, 1);
            let fee = (volume * price * Decimal::new(26, 4)).round_dp(8);
            let txid = format!(
                "O{}-MOCK",
                &Uuid::new_v4().simple().to_string()[..10].to_uppercase()
            );
            mock.orders.lock().unwrap().insert(
                txid.clone(),
                json!({
                    "status": "closed", "vol_exec": volume.to_string(), "price": price.to_string(),
                    "fee": fee.to_string(), "closetm": 1_700_000_000.25,
                    "cl_ord_id": fields.get("cl_ord_id"), "type": fields.get("type"),
                }),
            );
            kraken_result(json!({ "txid": [txid] }))
        }
        "QueryOrders" => {
            let txid = fields.get("txid").cloned().unwrap_or_default();
            match mock.orders.lock().unwrap().get(&txid) {
                Some(order) => kraken_result(json!({ txid: order })),
                None => kraken_error("EOrder:Unknown order"),
            }
        }
        "WithdrawInfo" if api_key.contains("withdraw") => {
            kraken_error("EFunding:Unknown withdraw key")
        }
        "WithdrawInfo" => kraken_error("EGeneral:Permission denied"),
        _ => kraken_error("EGeneral:Unknown method"),
    }
}

/// The recorded OHLC answers (fixtures/README.md says what they are).
const OHLC: &str = include_str!("fixtures/kraken-ohlc-XBTUSD-60.json");
const OHLC_MALFORMED: &str = include_str!("fixtures/kraken-ohlc-malformed.json");

/// `/0/public/OHLC`: the recorded answer for XBTUSD at 60 minutes, its
/// rows from the one `since` falls in on (as Kraken answers); the malformed
/// one for ETHUSD.
async fn ohlc(
    State(mock): State<Arc<MockKraken>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(failure) = mock.counted() {
        return failure;
    }
    let recorded = match (
        query.get("pair").map(String::as_str),
        query.get("interval").map(String::as_str),
    ) {
        (Some("XBTUSD"), Some("60")) => OHLC,
        (Some("ETHUSD"), Some("60")) => OHLC_MALFORMED,
        (Some("XBTUSD" | "ETHUSD"), _) => return kraken_error("EGeneral:Invalid arguments"),
        _ => return kraken_error("EQuery:Unknown asset pair"),
    };
    let mut answer: Value = serde_json::from_str(recorded).unwrap();
    if let Some(since) = query.get("since").and_then(|s| s.parse::<i64>().ok()) {
        let rows = answer["result"]["XXBTZUSD"].as_array_mut().unwrap();
        rows.retain(|row| row[0].as_i64().unwrap() + 3600 > since);
    }
    Json(answer).into_response()
}

/// The mock on a port of its own; returns its base URL.
async fn spawn_mock(mock: Arc<MockKraken>) -> String {
    let app = Router::new()
        .route("/0/public/Ticker", get(ticker))
        .route("/0/public/OHLC", get(ohlc))
        .route("/0/private/{method}", post(private))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn mock_with_keys() -> Arc<MockKraken> {
    Arc::new(MockKraken {
        keys: HashMap::from([
            ("kraken-trading-key".to_string(), GOOD_SECRET.to_string()),
            ("kraken-withdraw-key".to_string(), GOOD_SECRET.to_string()),
        ]),
        ..MockKraken::default()
    })
}

fn credentials(api_key: &str, secret: &str) -> ApiCredentials {
    ApiCredentials {
        api_key: SecretString::new(api_key),
        api_secret: SecretString::new(secret),
    }
}

#[test]
fn the_signature_equals_krakens_documented_example_byte_for_byte() {
    let signature = sign(
        "/0/private/AddOrder",
        1616492376594,
        "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
    )
    .unwrap();
    assert_eq!(
        signature.as_bytes(),
        b"4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );
}

#[tokio::test]
async fn the_adapter_passes_the_mocks_signature_and_nonce_checks() {
    let mock = mock_with_keys();
    let url = spawn_mock(mock.clone()).await;
    let kraken = KrakenExchange::new(&url, Duration::from_secs(5)).unwrap();
    let trading = credentials("kraken-trading-key", GOOD_SECRET);
    let pair = Pair::parse("XBT/USD").unwrap();

    let ticker = kraken.ticker(&pair).await.unwrap();
    assert_eq!(ticker.last, "50000.10000".parse().unwrap());
    let balances = kraken.balances(&trading).await.unwrap();
    assert_eq!(balances["ZUSD"], Decimal::from(1000));

    let verified = kraken.verify_credentials(&trading).await.unwrap();
    assert_eq!(
        verified,
        KeyVerification::Accepted {
            permissions: vec![
                KeyPermission::QueryFunds,
                KeyPermission::QueryOrders,
                KeyPermission::Trade
            ]
        }
    );
    let withdraw = credentials("kraken-withdraw-key", GOOD_SECRET);
    let KeyVerification::Accepted { permissions } =
        kraken.verify_credentials(&withdraw).await.unwrap()
    else {
        panic!("the withdraw key is a valid key");
    };
    assert!(permissions.contains(&KeyPermission::Withdraw));

    let order = OrderRequest {
        pair: pair.clone(),
        side: Side::Buy,
        quantity: "0.002".parse().unwrap(),
        client_order_id: Uuid::new_v4(),
    };
    let txid = kraken.place_order(&trading, &order).await.unwrap();
    let state = kraken.query_order(&trading, &txid).await.unwrap();
    assert_eq!(state.status, OrderStatus::Closed);
    assert_eq!(state.executed_quantity, "0.002".parse().unwrap());
    assert_eq!(state.average_price, Decimal::new(500001, 1));
    assert_eq!(state.fee, "0.26000052".parse().unwrap());
    let stored = mock.orders.lock().unwrap()[&txid].clone();
    assert_eq!(stored["cl_ord_id"], order.client_order_id.to_string());

    // Every private call so far passed the mock's own signature check.
    let signed = mock.valid_signatures.load(Ordering::SeqCst);
    assert_eq!(signed, 1 + 4 + 4 + 2);

    // A wrong secret is caught by the mock, and reported as Kraken's words.
    let wrong = credentials(
        "kraken-trading-key",
        "c2Vjb25kIHNlY3JldCwgbm90IHRoZSBvbmUgdGhlIG1vY2sga25vd3MgYWJvdXQ=",
    );
    assert_eq!(
        kraken.verify_credentials(&wrong).await.unwrap(),
        KeyVerification::Rejected {
            reason: "EAPI:Invalid signature".to_string()
        }
    );
    assert_eq!(mock.valid_signatures.load(Ordering::SeqCst), signed);
}

#[tokio::test]
async fn unavailable_calls_are_retried_and_then_break_the_circuit() {
    let mock = mock_with_keys();
    let url = spawn_mock(mock.clone()).await;
    let policy = CallPolicy {
        timeout: Duration::from_secs(5),
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(60),
    };
    let kraken = ResilientExchange::new(
        KrakenExchange::new(&url, Duration::from_secs(5)).unwrap(),
        policy,
    );
    let pair = Pair::parse("XBT/USD").unwrap();

    // Two 503s, then an answer: one call to the caller.
    mock.fail_next.store(2, Ordering::SeqCst);
    assert!(kraken.ticker(&pair).await.is_ok());
    assert_eq!(mock.calls.load(Ordering::SeqCst), 3);

    // Kraken down: three attempts, then the breaker is open and calls fail
    // without reaching Kraken.
    mock.fail_next.store(1000, Ordering::SeqCst);
    let down = kraken.ticker(&pair).await;
    assert!(
        matches!(down, Err(ExchangeError::Unavailable(_))),
        "{down:?}"
    );
    assert!(kraken.breaker().is_open());
    let calls = mock.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 6);
    let refused = kraken.ticker(&pair).await;
    assert!(
        matches!(refused, Err(ExchangeError::Unavailable(ref reason)) if reason.contains("circuit open"))
    );
    assert_eq!(mock.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn a_bot_trades_on_kraken_through_the_adapter() {
    let mock = mock_with_keys();
    let url = spawn_mock(mock.clone()).await;
    let exchange: Arc<dyn Exchange> = Arc::new(ResilientExchange::new(
        KrakenExchange::new(&url, Duration::from_secs(5)).unwrap(),
        CallPolicy::default(),
    ));
    let rabbit = RabbitTest::new().await;
    let env = rabbit.service_env();
    let mut overrides: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    overrides.push(("RUNNER_TICK_MS", "100"));
    let app = integration_tests::TestApp::spawn_with_exchange(&overrides, exchange).await;
    let user = app.user().await;

    // Connecting verifies the key with "Kraken": a key with withdrawal
    // rights and a key Kraken does not know are both refused.
    for (api_key, reason) in [
        ("kraken-withdraw-key", "withdrawal permission"),
        ("paper-key-trading", "EAPI:Invalid key"),
    ] {
        let refused = app
            .post(
                "/api/v1/kraken/connect",
                Some(&user.token),
                json!({ "api_key": api_key, "api_secret": GOOD_SECRET }),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
    }

    let key_id = app.connected_key(&user, "kraken-trading-key").await;
    let tested = app
        .post_empty(
            &format!("/api/v1/kraken/keys/{key_id}/test"),
            Some(&user.token),
        )
        .await;
    assert_eq!(tested.body["status"], "tested", "{}", tested.body);
    let configured = app
        .post(
            "/api/v1/bot",
            Some(&user.token),
            json!({ "key_id": key_id, "pair": "XBT/USD", "strategy": crate::flow::hourly_dca() }),
        )
        .await;
    let bot_id: Uuid = configured.body["bot_id"].as_str().unwrap().parse().unwrap();
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(&app, &user, bot_id, "running").await;
    wait_for_events(&app, bot_id, "bot.trade.executed", 1).await;
    let (_, fill, _) = bot_events(&app, bot_id, "bot.trade.executed").await[0].clone();
    let order_id = fill["fill"]["order_id"].as_str().unwrap();
    assert!(order_id.ends_with("-MOCK"), "{order_id}");
    assert_eq!(fill["fill"]["price"], "50000.1");
    // 25.00 at 50000.1, rounded down to 8 decimals.
    assert_eq!(fill["fill"]["quantity"], "0.00049999");
    assert!(mock.orders.lock().unwrap().contains_key(order_id));
}

#[tokio::test]
async fn candles_from_krakens_recorded_answers_parse_exactly() {
    let mock = mock_with_keys();
    let url = spawn_mock(mock.clone()).await;
    let kraken = KrakenExchange::new(&url, Duration::from_secs(5)).unwrap();
    let xbt = Pair::parse("XBT/USD").unwrap();

    let candles = kraken.ohlcv(&xbt, Interval::H1, None).await.unwrap();
    assert_eq!(candles.pair, xbt);
    assert_eq!(candles.interval, Interval::H1);
    let expected: Value = serde_json::from_str(OHLC).unwrap();
    let rows = expected["result"]["XXBTZUSD"].as_array().unwrap();
    assert_eq!(candles.candles.len(), rows.len());
    let decimal = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    for (candle, row) in candles.candles.iter().zip(rows) {
        assert_eq!(candle.time.timestamp(), row[0].as_i64().unwrap());
        assert_eq!(candle.open, decimal(&row[1]));
        assert_eq!(candle.high, decimal(&row[2]));
        assert_eq!(candle.low, decimal(&row[3]));
        assert_eq!(candle.close, decimal(&row[4]));
        assert_eq!(candle.vwap, Some(decimal(&row[5])));
        assert_eq!(candle.volume, decimal(&row[6]));
        assert_eq!(candle.trades, row[7].as_u64());
    }
    // Exactly as written, digits and all.
    assert_eq!(candles.candles[1].volume.to_string(), "18.50033512");
    assert_eq!(candles.candles[0].open.to_string(), "91842.1");

    // `since` in the second candle: Kraken repeats that one; only later
    // candles are kept.
    let since = chrono::DateTime::from_timestamp(1_764_752_400 + 60, 0).unwrap();
    let later = kraken.ohlcv(&xbt, Interval::H1, Some(since)).await.unwrap();
    let times: Vec<i64> = later.candles.iter().map(|c| c.time.timestamp()).collect();
    assert_eq!(times, [1_764_756_000, 1_764_759_600]);

    // A malformed answer is an error naming what, never a panic.
    let eth = Pair::parse("ETH/USD").unwrap();
    match kraken.ohlcv(&eth, Interval::H1, None).await {
        Err(ExchangeError::Unavailable(reason)) => {
            assert!(reason.contains("unreadable OHLC"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Kraken's own refusal stays a refusal.
    let unknown = Pair::parse("ABC/XYZ").unwrap();
    assert!(matches!(
        kraken.ohlcv(&unknown, Interval::H1, None).await,
        Err(ExchangeError::Rejected(reason)) if reason == "EQuery:Unknown asset pair"
    ));
}

#[tokio::test]
async fn the_trading_data_routes_read_kraken_through_the_adapter() {
    let mock = mock_with_keys();
    let url = spawn_mock(mock.clone()).await;
    let exchange: Arc<dyn Exchange> = Arc::new(ResilientExchange::new(
        KrakenExchange::new(&url, Duration::from_secs(5)).unwrap(),
        CallPolicy::default(),
    ));
    let app = integration_tests::TestApp::spawn_with_exchange(
        &[("MUCKARD_ROLES", "api,projector")],
        exchange,
    )
    .await;
    let user = app.user().await;

    let candles = app
        .get(
            "/api/v1/market/ohlcv?pair=XBT/USD&interval=1h",
            Some(&user.token),
        )
        .await;
    assert_eq!(candles.status, StatusCode::OK, "{}", candles.body);
    assert_eq!(candles.body["interval"], "1h");
    assert_eq!(candles.body["candles"].as_array().unwrap().len(), 4);
    assert_eq!(candles.body["candles"][1]["high"], "92422.9");
    assert_eq!(candles.body["candles"][1]["time"], "2025-12-03T09:00:00Z");
    assert_eq!(candles.body["candles"][3]["trades"], 402);
    let bad = app
        .get(
            "/api/v1/market/ohlcv?pair=XBT/USD&interval=2h",
            Some(&user.token),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.field(), Some("interval"));
    let unknown = app
        .get(
            "/api/v1/market/ohlcv?pair=ABC/XYZ&interval=1h",
            Some(&user.token),
        )
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );

    let ticker = app
        .get("/api/v1/market/ticker?pair=XBT/USD", Some(&user.token))
        .await;
    assert_eq!(ticker.status, StatusCode::OK, "{}", ticker.body);
    assert_eq!(ticker.body["last"], "50000.10000");

    // Balances, with the user's key, signed as Kraken checks; a second
    // read within 10 s is the cached one.
    let none = app.get("/api/v1/trading/balances", Some(&user.token)).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    let key_id = app.connected_key(&user, "kraken-trading-key").await;
    let signed_before = mock.valid_signatures.load(Ordering::SeqCst);
    let path = format!("/api/v1/trading/balances?key_id={key_id}");
    // 404 until the exchange_keys read model has the key.
    app.eventually(10, "the key's balances", || async {
        app.get(&path, Some(&user.token)).await.status != StatusCode::NOT_FOUND
    })
    .await;
    let balances = app.get(&path, Some(&user.token)).await;
    assert_eq!(balances.status, StatusCode::OK, "{}", balances.body);
    assert_eq!(balances.body["exchange"], "kraken");
    assert_eq!(balances.body["read_from"], "kraken");
    let listed: Vec<(String, String)> = balances.body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["asset"].as_str().unwrap().to_string(),
                b["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("XXBT".to_string(), "0.5000000000".to_string()),
            ("ZUSD".to_string(), "1000.0000".to_string())
        ]
    );
    assert_eq!(
        mock.valid_signatures.load(Ordering::SeqCst),
        signed_before + 1
    );
    let again = app.get("/api/v1/trading/balances", Some(&user.token)).await;
    assert_eq!(again.body["read_at"], balances.body["read_at"]);
    assert_eq!(
        mock.valid_signatures.load(Ordering::SeqCst),
        signed_before + 1
    );
    // Another user's key is not theirs to read.
    let other = app.user().await;
    let theirs = app
        .get(
            &format!("/api/v1/trading/balances?key_id={key_id}"),
            Some(&other.token),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
}
