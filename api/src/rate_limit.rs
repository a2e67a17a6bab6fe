//! Per-client rate limiting of the `/api` routes: a token bucket per
//! client, refilled at `RATE_LIMIT_PER_SECOND` up to `RATE_LIMIT_BURST`.
//!
//! The client is the authenticated user when the request carries a valid
//! access token, so users behind one proxy or NAT do not share a budget;
//! otherwise its IP address. The peer address is the client unless it is a
//! trusted proxy (`RATE_LIMIT_TRUSTED_PROXIES`, addresses or ranges such
//! as the gateway's network), in
//! which case the right-most address of `X-Forwarded-For` that is not a
//! trusted proxy is. An IPv4 client's bucket is its address; an IPv6
//! client's is its /64, the smallest network a provider assigns one
//! subscriber (RFC 6177), since anyone holding a /64 can send from 2^64
//! addresses. Over the limit the answer is 429 with `Retry-After`;
//! the request does nothing. Health, readiness, metrics and documentation
//! are never limited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use command_side::redis_link::{LinkState, RedisLink};

use crate::shared_limits::SharedLimits;
use crate::tokens::Authentication;

/// How often the table of buckets is swept of clients that are back to a
/// full bucket (they would behave the same if forgotten).
const SWEEP_EVERY: u64 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    /// Tokens added per second; 0 turns limiting off.
    pub per_second: f64,
    /// The bucket's size: how many requests a quiet client may send at once.
    pub burst: f64,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNetwork>,
}

/// An address range such as `10.0.0.0/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("expected an IP address or range, got {text}"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("expected a prefix length up to {bits}, got {text}"))?,
        };
        Ok(IpNetwork { address, prefix })
    }
}

impl IpNetwork {
    pub fn contains(&self, address: &IpAddr) -> bool {
        let mask = |bits: u32, value: u128| {
            if self.prefix == 0 {
                0
            } else {
                value >> (bits - u32::from(self.prefix))
            }
        };
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                mask(32, u128::from(u32::from(network)))
                    == mask(32, u128::from(u32::from(*address)))
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                mask(128, u128::from(network)) == mask(128, u128::from(*address))
            }
            _ => false,
        }
    }
}

pub struct RateLimiter {
    settings: RateLimitSettings,
    buckets: Mutex<Buckets>,
    shared: Option<SharedLimits>,
}

struct Buckets {
    by_client: HashMap<String, Bucket>,
    decisions: u64,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Where the rate limits are kept (`/ready`'s `rate_limit`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LimitScope {
    /// `shared` (through Redis, across instances), `per_process` (no
    /// Redis configured, or Redis down: never a refused request), `off`.
    /// The log-in back-off of unknown emails is shared through the same
    /// Redis when `redis` is `up`.
    #[schema(example = "shared")]
    pub scope: &'static str,
    /// `up`, `down` or `not_used`.
    pub redis: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of asking for one request's token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allowed { remaining: u64 },
    Limited { retry_after_secs: u64 },
}

impl RateLimiter {
    /// A limiter of these settings, per process.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self::shared_through(settings, None)
    }

    /// The same, shared across instances through `redis` when given (and
    /// per process while it does not answer).
    pub fn shared_through(settings: RateLimitSettings, redis: Option<Arc<RedisLink>>) -> Self {
        let shared = redis.map(SharedLimits::new);
        Self {
            settings,
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                decisions: 0,
            }),
            shared,
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.per_second > 0.0
    }

    /// Where the limits are kept now, for `/ready`.
    pub fn scope(&self) -> LimitScope {
        let (scope, redis, error) = match &self.shared {
            None => ("per_process", "not_used", None),
            Some(shared) => match shared.link().state() {
                LinkState::Connected => ("shared", "up", None),
                LinkState::Degraded(reason) => ("per_process", "down", Some(reason)),
            },
        };
        let scope = if self.enabled() { scope } else { "off" };
        LimitScope {
            scope,
            redis,
            error,
        }
    }

    /// The decision for `client` now: through Redis when the limits are
    /// shared and Redis answers, else per process.
    pub async fn decide_now(&self, client: &str) -> Decision {
        if let Some(shared) = &self.shared {
            if let Some(decision) = shared
                .decide(client, self.settings.per_second, self.settings.burst)
                .await
            {
                return decision;
            }
        }
        self.decide(client, Instant::now())
    }

    /// Takes a token from `client`'s bucket if it has one.
    pub fn decide(&self, client: &str, now: Instant) -> Decision {
        let RateLimitSettings {
            per_second, burst, ..
        } = self.settings;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.decisions += 1;
        if buckets.decisions.is_multiple_of(SWEEP_EVERY) {
            buckets.by_client.retain(|_, bucket| {
                let elapsed = now.saturating_duration_since(bucket.refilled_at);
                bucket.tokens + elapsed.as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets
            .by_client
            .entry(client.to_string())
            .or_insert(Bucket {
                tokens: burst,
                refilled_at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * per_second).min(burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Decision::Allowed {
                remaining: bucket.tokens.floor() as u64,
            }
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Decision::Limited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            }
        }
    }

    /// Who is asking: the user of a valid access token, else the client's
    /// address.
    pub fn client_key(
        &self,
        authentication: &Authentication,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> String {
        if let Some(subject) = authentication.subject() {
            return format!("user:{}", subject.user_id);
        }
        match self.client_address(headers, peer) {
            Some(address) => address_key(address),
            None => "ip:unknown".to_string(),
        }
    }

    fn client_address(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?;
        let trusted = |address: &IpAddr| {
            self.settings
                .trusted_proxies
                .iter()
                .any(|network| network.contains(address))
        };
        if !trusted(&peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|address| !trusted(address))
                .unwrap_or(peer),
        )
    }
}

/// The bucket of an address: an IPv4 address (also written IPv4-mapped
/// as `::ffff:a.b.c.d`) alone, an IPv6 address by its /64.
fn address_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let network = std::net::Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64));
            format!("ip:{network}/64")
        }
    }
}

/// The middleware: limits `/api/` requests, passes everything else.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if !limiter.enabled() || !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let authentication = Authentication::of(request.extensions());
    let client = limiter.client_key(&authentication, request.headers(), peer);
    match limiter.decide_now(&client).await {
        Decision::Allowed { remaining } => {
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from(remaining));
            response
        }
        Decision::Limited { retry_after_secs } => {
            tracing::debug!(client = %client, "rate limited");
            let body = json!({ "error": {
                "code": "rate_limited",
                "message": format!("too many requests; retry after {retry_after_secs} s"),
            }});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
                .headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(RateLimitSettings {
            per_second,
            burst,
            trusted_proxies: vec!["10.0.0.0/24".parse().unwrap()],
        })
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_refill() {
        let limiter = limiter(2.0, 3.0);
        let start = Instant::now();
        for remaining in [2, 1, 0] {
            assert_eq!(limiter.decide("a", start), Decision::Allowed { remaining });
        }
        assert_eq!(
            limiter.decide("a", start),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        // Another client has its own bucket.
        assert!(matches!(
            limiter.decide("b", start),
            Decision::Allowed { .. }
        ));
        // Half a second at 2/s refills one token.
        assert!(matches!(
            limiter.decide("a", start + Duration::from_millis(500)),
            Decision::Allowed { remaining: 0 }
        ));
        assert!(matches!(
            limiter.decide("a", start + Duration::from_millis(500)),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let network: IpNetwork = "172.16.0.0/12".parse().unwrap();
        assert!(network.contains(&"172.31.255.1".parse().unwrap()));
        assert!(!network.contains(&"172.32.0.1".parse().unwrap()));
        assert!(!network.contains(&"::1".parse().unwrap()));
        let single: IpNetwork = "127.0.0.1".parse().unwrap();
        assert!(single.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!single.contains(&"127.0.0.2".parse().unwrap()));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains(&"fd12::3".parse().unwrap()));
        let everything: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(&"8.8.8.8".parse().unwrap()));
        for wrong in ["10.0.0.0/33", "10.0.0", "fd00::/129", "x/8"] {
            assert!(wrong.parse::<IpNetwork>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_ipv4_clients_have_their_own() {
        let limiter = limiter(1.0, 1.0);
        let key = |address: &str| {
            limiter.client_key(
                &Authentication::Anonymous,
                &HeaderMap::new(),
                Some(address.parse().unwrap()),
            )
        };
        assert_eq!(key("2001:db8:1:2::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            key("2001:db8:1:2::1"),
            "one /64, one bucket"
        );
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("198.51.100.7"), "ip:198.51.100.7");
        assert_ne!(key("198.51.100.7"), key("198.51.100.8"));
        assert_eq!(key("::ffff:198.51.100.7"), key("198.51.100.7"));
        // The limit follows: a second address of the /64 finds the
        // bucket the first one emptied.
        let now = Instant::now();
        assert!(matches!(
            limiter.decide(&key("2001:db8:1:2::1"), now),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.decide(&key("2001:db8:1:2::2"), now),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let limiter = limiter(1.0, 1.0);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(
            limiter.client_address(&headers, Some(proxy)),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            limiter.client_address(&headers, Some(stranger)),
            Some(stranger)
        );
        assert_eq!(
            limiter.client_address(&HeaderMap::new(), Some(proxy)),
            Some(proxy)
        );
    }
}
