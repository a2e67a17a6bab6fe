//! The Kraken REST adapter: the public Ticker and OHLC, and the private Balance,
//! AddOrder and QueryOrders calls, signed as Kraken documents it:
//!
//! `API-Sign = base64(HMAC-SHA512(key = base64-decoded secret,
//!             message = uri_path + SHA256(nonce + urlencoded POST data)))`
//!
//! with `nonce` an always-increasing integer (milliseconds since the epoch,
//! bumped when two calls share a millisecond) that is also the first field
//! of the POST data. Wrap it in [`crate::resilience::ResilientExchange`]
//! for timeouts, retries and the circuit breaker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::candles::MAX_CANDLES;
use crate::{
    ApiCredentials, Balances, Candle, Candles, Exchange, ExchangeError, Interval, OrderRequest,
    OrderState, OrderStatus, Ticker,
};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::services::{KeyPermission, KeyVerification};
use domain::{Pair, Side};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

/// Kraken's production API.
pub const KRAKEN_API_URL: &str = "https://api.kraken.com";

/// The `API-Sign` header for a private call.
pub fn sign(
    uri_path: &str,
    nonce: u64,
    post_data: &str,
    secret_base64: &str,
) -> Result<String, ExchangeError> {
    let secret = BASE64
        .decode(secret_base64.trim())
        .map_err(|_| ExchangeError::Rejected("EAPI:Invalid key (secret is not base64)".into()))?;
    let digest = Sha256::digest(format!("{nonce}{post_data}").as_bytes());
    let mut mac = Hmac::<Sha512>::new_from_slice(&secret)
        .map_err(|_| ExchangeError::Rejected("EAPI:Invalid key".to_string()))?;
    mac.update(uri_path.as_bytes());
    mac.update(&digest);
    Ok(BASE64.encode(mac.finalize().into_bytes()))
}

/// Kraken's name of a pair: `XBT/USD` → `XBTUSD`.
pub fn kraken_pair(pair: &Pair) -> String {
    pair.as_str().replace('/', "")
}

pub struct KrakenExchange {
    client: reqwest::Client,
    base_url: String,
    last_nonce: AtomicU64,
}

impl KrakenExchange {
    /// A client of the API at `base_url` (e.g. [`KRAKEN_API_URL`]) whose
    /// every request gives up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ExchangeError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent("muckard-ledger")
            .build()
            .map_err(|e| ExchangeError::Unavailable(format!("http client: {e}")))?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            last_nonce: AtomicU64::new(0),
        })
    }

    /// The next nonce: the time in milliseconds, or one more than the last.
    fn nonce(&self) -> u64 {
        let now = Utc::now().timestamp_millis().max(0) as u64;
        let mut last = self.last_nonce.load(Ordering::SeqCst);
        loop {
            let next = now.max(last + 1);
            match self
                .last_nonce
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    async fn public(&self, method: &str, query: &[(&str, String)]) -> Result<Value, ExchangeError> {
        let url = format!("{}/0/public/{method}", self.base_url);
        let response = self.client.get(url).query(query).send().await;
        read_result(response).await
    }

    async fn private(
        &self,
        credentials: &ApiCredentials,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Value, ExchangeError> {
        let uri_path = format!("/0/private/{method}");
        let nonce = self.nonce();
        let mut fields = vec![("nonce", nonce.to_string())];
        fields.extend(params.iter().cloned());
        let post_data = serde_urlencoded::to_string(&fields)
            .map_err(|e| ExchangeError::Rejected(format!("encoding {method}: {e}")))?;
        let signature = sign(
            &uri_path,
            nonce,
            &post_data,
            credentials.api_secret.expose(),
        )?;
        let response = self
            .client
            .post(format!("{}{uri_path}", self.base_url))
            .header("API-Key", credentials.api_key.expose())
            .header("API-Sign", signature)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(post_data)
            .send()
            .await;
        read_result(response).await
    }

    /// Whether a private call is allowed for this key: `Ok(false)` when
    /// Kraken answers `EGeneral:Permission denied`.
    async fn permitted(
        &self,
        credentials: &ApiCredentials,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<bool, ExchangeError> {
        match self.private(credentials, method, params).await {
            Ok(_) => Ok(true),
            Err(ExchangeError::Rejected(reason)) if reason.contains("Permission denied") => {
                Ok(false)
            }
            // Refused for another reason (e.g. an unknown withdrawal key):
            // the permission itself is there.
            Err(ExchangeError::Rejected(_)) => Ok(true),
            Err(other) => Err(other),
        }
    }
}

/// Kraken answers `{"error": [...], "result": {...}}`; a non-empty error
/// list is a refusal, except the codes Kraken documents as transient.
async fn read_result(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, ExchangeError> {
    let response = response.map_err(|e| ExchangeError::Unavailable(format!("kraken: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| ExchangeError::Unavailable(format!("kraken: reading the answer: {e}")))?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(ExchangeError::Unavailable(format!("kraken: http {status}")));
    }
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        ExchangeError::Unavailable(format!("kraken: http {status} with an unreadable body"))
    })?;
    let errors: Vec<&str> = body["error"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !errors.is_empty() {
        let joined = errors.join("; ");
        let transient = errors.iter().any(|e| {
            e.starts_with("EService:")
                || e.starts_with("EAPI:Rate limit")
                || e.starts_with("EAPI:Invalid nonce")
                || e.starts_with("EGeneral:Temporary")
        });
        return Err(if transient {
            ExchangeError::Unavailable(joined)
        } else {
            ExchangeError::Rejected(joined)
        });
    }
    Ok(body["result"].clone())
}

/// A decimal Kraken sent as a string; text beyond what a decimal holds is
/// unreadable (an error for this call), never a panic.
fn decimal(value: &Value, what: &str) -> Result<Decimal, ExchangeError> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ExchangeError::Unavailable(format!("kraken: unreadable {what}: {value}")))
}

/// The candles of a `/0/public/OHLC` result: `{"<Kraken's pair name>":
/// [[time, "open", "high", "low", "close", "vwap", "volume", count], …],
/// "last": id}`, oldest first, the last one the interval in progress.
/// Kraken may repeat the candle `since` falls in; only later ones are kept,
/// and at most the last [`MAX_CANDLES`]. A row that is not exactly that
/// shape makes the whole answer unreadable (never a panic).
pub fn parse_ohlc(
    pair: &Pair,
    interval: Interval,
    since: Option<DateTime<Utc>>,
    result: &Value,
) -> Result<Candles, ExchangeError> {
    let unreadable =
        |what: String| ExchangeError::Unavailable(format!("kraken: unreadable OHLC {what}"));
    let rows = result
        .as_object()
        .and_then(|entries| {
            entries
                .iter()
                .find(|(name, value)| name.as_str() != "last" && value.is_array())
        })
        .and_then(|(_, rows)| rows.as_array())
        .ok_or_else(|| unreadable(format!("result: {result}")))?;
    let mut candles = Vec::with_capacity(rows.len().min(MAX_CANDLES));
    for row in rows {
        let fields = row
            .as_array()
            .filter(|fields| fields.len() == 8)
            .ok_or_else(|| unreadable(format!("row: {row}")))?;
        let time = fields[0]
            .as_i64()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or_else(|| unreadable(format!("time: {}", fields[0])))?;
        let trades = fields[7]
            .as_u64()
            .ok_or_else(|| unreadable(format!("count: {}", fields[7])))?;
        let candle = Candle {
            time,
            open: decimal(&fields[1], "open")?,
            high: decimal(&fields[2], "high")?,
            low: decimal(&fields[3], "low")?,
            close: decimal(&fields[4], "close")?,
            vwap: Some(decimal(&fields[5], "vwap")?),
            volume: decimal(&fields[6], "volume")?,
            trades: Some(trades),
        };
        if since.is_some_and(|since| candle.time <= since) {
            continue;
        }
        candles.push(candle);
    }
    if candles.windows(2).any(|pair| pair[0].time >= pair[1].time) {
        return Err(unreadable("rows: not in time order".to_string()));
    }
    let excess = candles.len().saturating_sub(MAX_CANDLES);
    candles.drain(..excess);
    Ok(Candles {
        pair: pair.clone(),
        interval,
        candles,
    })
}

#[async_trait]
impl Exchange for KrakenExchange {
    fn name(&self) -> &'static str {
        "kraken"
    }

    async fn verify_credentials(
        &self,
        credentials: &ApiCredentials,
    ) -> Result<KeyVerification, ExchangeError> {
        match self.private(credentials, "Balance", &[]).await {
            Ok(_) => {}
            Err(ExchangeError::Rejected(reason)) => {
                return Ok(KeyVerification::Rejected { reason })
            }
            Err(other) => return Err(other),
        }
        let mut permissions = vec![KeyPermission::QueryFunds];
        if self.permitted(credentials, "OpenOrders", &[]).await? {
            permissions.push(KeyPermission::QueryOrders);
        }
        let probe_order = [
            ("ordertype", "market".to_string()),
            ("pair", "XBTUSD".to_string()),
            ("type", "buy".to_string()),
            ("validate", "true".to_string()),
            ("volume", "0.0001".to_string()),
        ];
        if self
            .permitted(credentials, "AddOrder", &probe_order)
            .await?
        {
            permissions.push(KeyPermission::Trade);
        }
        // A key without "Withdraw Funds" is denied WithdrawInfo outright;
        // one with it gets past the permission check to the unknown
        // withdrawal key.
        let probe_withdraw = [
            ("asset", "XBT".to_string()),
            ("key", "muckard-permission-probe".to_string()),
            ("amount", "0.0001".to_string()),
        ];
        if self
            .permitted(credentials, "WithdrawInfo", &probe_withdraw)
            .await?
        {
            permissions.push(KeyPermission::Withdraw);
        }
        Ok(KeyVerification::Accepted { permissions })
    }

    async fn ticker(&self, pair: &Pair) -> Result<Ticker, ExchangeError> {
        let result = self
            .public("Ticker", &[("pair", kraken_pair(pair))])
            .await?;
        // The result is keyed by Kraken's own name for the pair (e.g.
        // XXBTZUSD); a one-pair query has one entry.
        let entry = result
            .as_object()
            .and_then(|pairs| pairs.values().next())
            .ok_or_else(|| ExchangeError::Rejected("EQuery:Unknown asset pair".to_string()))?;
        Ok(Ticker {
            pair: pair.clone(),
            last: decimal(&entry["c"][0], "last trade price")?,
        })
    }

    async fn ohlcv(
        &self,
        pair: &Pair,
        interval: Interval,
        since: Option<DateTime<Utc>>,
    ) -> Result<Candles, ExchangeError> {
        let mut query = vec![
            ("pair", kraken_pair(pair)),
            ("interval", interval.minutes().to_string()),
        ];
        if let Some(since) = since {
            query.push(("since", since.timestamp().to_string()));
        }
        let result = self.public("OHLC", &query).await?;
        parse_ohlc(pair, interval, since, &result)
    }

    async fn balances(&self, credentials: &ApiCredentials) -> Result<Balances, ExchangeError> {
        let result = self.private(credentials, "Balance", &[]).await?;
        let mut balances = Balances::new();
        for (asset, amount) in result.as_object().into_iter().flatten() {
            balances.insert(asset.clone(), decimal(amount, "balance")?);
        }
        Ok(balances)
    }

    async fn place_order(
        &self,
        credentials: &ApiCredentials,
        order: &OrderRequest,
    ) -> Result<String, ExchangeError> {
        let side = match order.side {
            Side::Buy => "buy",
            Side::Sell => "sell",
        };
        let params = [
            ("cl_ord_id", order.client_order_id.to_string()),
            ("ordertype", "market".to_string()),
            ("pair", kraken_pair(&order.pair)),
            ("type", side.to_string()),
            ("volume", order.quantity.to_string()),
        ];
        let result = self.private(credentials, "AddOrder", &params).await?;
        result["txid"][0]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                ExchangeError::Unavailable(format!("kraken: AddOrder gave no txid: {result}"))
            })
    }

    async fn query_order(
        &self,
        credentials: &ApiCredentials,
        order_id: &str,
    ) -> Result<OrderState, ExchangeError> {
        let params = [
            ("txid", order_id.to_string()),
            ("trades", "false".to_string()),
        ];
        let result = self.private(credentials, "QueryOrders", &params).await?;
        let order = result
            .get(order_id)
            .ok_or_else(|| ExchangeError::Rejected("EOrder:Unknown order".to_string()))?;
        let status = match order["status"].as_str() {
            Some("pending") => OrderStatus::Pending,
            Some("open") => OrderStatus::Open,
            Some("closed") => OrderStatus::Closed,
            Some("canceled") => OrderStatus::Canceled,
            Some("expired") => OrderStatus::Expired,
            other => {
                return Err(ExchangeError::Unavailable(format!(
                    "kraken: unknown order status {other:?}"
                )))
            }
        };
        let closed_at = order["closetm"]
            .as_f64()
            .and_then(|seconds| DateTime::<Utc>::from_timestamp_millis((seconds * 1000.0) as i64));
        Ok(OrderState {
            order_id: order_id.to_string(),
            status,
            executed_quantity: decimal(&order["vol_exec"], "vol_exec")?,
            average_price: decimal(&order["price"], "price")?,
            fee: decimal(&order["fee"], "fee")?,
            closed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Kraken's REST authentication documentation
    /// (docs.kraken.com, "Spot REST Authentication").
    #[test]
    fn the_signature_matches_krakens_documented_example() {
        let secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
        let data =
            "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25";
        let signature = sign("/0/private/AddOrder", 1616492376594, data, secret).unwrap();
        assert_eq!(
            signature,
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
    }

    #[test]
    fn nonces_always_increase() {
        let kraken = KrakenExchange::new("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let nonces: Vec<u64> = (0..1000).map(|_| kraken.nonce()).collect();
        assert!(nonces.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn pairs_are_named_the_kraken_way() {
        assert_eq!(kraken_pair(&Pair::parse("XBT/USD").unwrap()), "XBTUSD");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any text Kraken might send for an amount is read exactly or
        /// refused as unreadable.
        #[test]
        fn any_amount_text_is_read_or_refused(
            text in "-?[0-9]{0,40}(\\.[0-9]{0,40})?|.{0,40}",
        ) {
            match decimal(&Value::String(text.clone()), "amount") {
                Ok(value) => proptest::prop_assert_eq!(Some(value), text.parse().ok()),
                Err(error) => proptest::prop_assert!(matches!(error, ExchangeError::Unavailable(_))),
            }
        }
    }
}
