//! Trading data as documented: the paper exchange's ticker and candles
//! (the same for the same seed), a key's balances, the dashboard after a
//! bot's fills.

use domain::Side;

use crate::conformance::Conformance;

#[tokio::test]
async fn trading_data_answers_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let other = c.app.user().await;
    let token = Some(user.token.as_str());

    let ticker = c.get("/api/v1/market/ticker?pair=XBT/USD", token).await;
    assert_eq!(ticker.status, 200, "{}", ticker.body);
    c.get("/api/v1/market/ticker", token).await;
    c.get("/api/v1/market/ticker?pair=xbt-usd", token).await;

    let ohlcv = "/api/v1/market/ohlcv?pair=XBT/USD&interval=15m";
    let candles = c.get(ohlcv, token).await;
    assert_eq!(candles.status, 200, "{}", candles.body);
    assert_eq!(candles.body["candles"].as_array().unwrap().len(), 720);
    // Cached, and the paper exchange's history is its seed's anyway.
    let again = c.get(ohlcv, token).await;
    assert_eq!(again.body["candles"], candles.body["candles"]);
    let since = candles.body["candles"][700]["time"]
        .as_str()
        .unwrap()
        .to_string();
    let later = c
        .get(
            &format!("/api/v1/market/ohlcv?pair=XBT/USD&interval=15m&since={since}"),
            token,
        )
        .await;
    assert_eq!(
        later.body["candles"].as_array().unwrap().len(),
        19,
        "{}",
        later.body
    );
    c.get("/api/v1/market/ohlcv?pair=XBT/USD&interval=7m", token)
        .await;
    c.get("/api/v1/market/ohlcv?pair=XBT/USD", token).await;
    c.get(
        "/api/v1/market/ohlcv?pair=XBT/USD&interval=1h&since=yesterday",
        token,
    )
    .await;

    // Balances: none before a key, the paper account's after.
    let none = c.get("/api/v1/trading/balances", token).await;
    assert_eq!(none.status, 404, "{}", none.body);
    let bot_id = c.app.running_bot(&user).await;
    let balances = c.get("/api/v1/trading/balances", token).await;
    assert_eq!(balances.status, 200, "{}", balances.body);
    assert_eq!(balances.body["exchange"], "kraken");
    assert_eq!(balances.body["read_from"], "paper");
    let key_id = balances.body["key_id"].as_str().unwrap().to_string();
    let theirs = c
        .get(
            &format!("/api/v1/trading/balances?key_id={key_id}"),
            Some(other.token.as_str()),
        )
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    c.get("/api/v1/trading/balances?key_id=nope", token).await;

    // A buy and a sell at a profit: realised today and in total.
    let now = chrono::Utc::now();
    c.app
        .fill(bot_id, "dash-1", Side::Buy, "0.01", "60000", now)
        .await;
    let position = c
        .app
        .fill(bot_id, "dash-2", Side::Sell, "0.01", "61000", now)
        .await;
    // The portfolio's record of each fill follows the bot's (the trade
    // recorder makes it): poll, with a deadline, until both are in.
    let path = format!("/api/v1/dashboard?min_position={position}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut dashboard = c.get(&path, token).await;
    while dashboard.body["realised_total"][0]["trades"] != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both fills in daily_pnl: {}",
            dashboard.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        dashboard = c.app.get(&path, token).await;
    }
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert_eq!(dashboard.body["bots"]["total"], 1, "{}", dashboard.body);
    assert_eq!(dashboard.body["bots"]["by_state"]["running"], 1);
    assert_eq!(dashboard.body["last_trades"].as_array().unwrap().len(), 2);
    assert_eq!(dashboard.body["realised_today"][0]["quote"], "USD");
    assert_eq!(
        dashboard.body["realised_today"], dashboard.body["realised_total"],
        "{}",
        dashboard.body
    );
    assert_eq!(dashboard.body["realised_total"][0]["trades"], 2);
    c.get("/api/v1/dashboard?limit=1", token).await;
    c.finish("market");
}
