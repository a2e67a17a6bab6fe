//! `/metrics`: HTTP request counts and latencies by route and status (this
//! module records them), subscriber lag and the connection pool (read when
//! scraped), and whatever else is in the process-wide Prometheus registry:
//! the command side's commands and appended events, the Kafka mirror's
//! and the RabbitMQ publisher's counts and errors (registered by those
//! crates), in the Prometheus text format.

use std::fmt::Write;
use std::sync::LazyLock;
use std::time::Duration;

use command_side::metrics::register;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use crate::state::AppState;

static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new(
            "muckard_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
        ),
        &["method", "route", "status"],
    ))
});

static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(HistogramVec::new(
        HistogramOpts::new(
            "muckard_http_request_duration_seconds",
            "Time to answer an HTTP request (until its headers), by method, route template and status.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["method", "route", "status"],
    ))
});

static HTTP_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new(
        "muckard_http_requests_in_flight",
        "HTTP requests being answered now.",
    ))
});

/// Registers every metric of this process so that `/metrics` shows zeros
/// before the first request or command.
pub fn init() {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
    LazyLock::force(&HTTP_IN_FLIGHT);
    command_side::metrics::init();
}

/// Counts a request as in flight until the returned guard drops.
pub fn request_started() -> InFlight {
    HTTP_IN_FLIGHT.inc();
    InFlight
}

pub struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        HTTP_IN_FLIGHT.dec();
    }
}

/// Records one answered request. `route` is the route template (such as
/// `/api/v1/bot/{bot_id}/start`), never the raw path, so the label set
/// stays bounded; requests no route matched are `unmatched`.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let status = status.to_string();
    let labels = [method, route, status.as_str()];
    HTTP_REQUESTS.with_label_values(&labels).inc();
    HTTP_SECONDS
        .with_label_values(&labels)
        .observe(elapsed.as_secs_f64());
}

/// The whole exposition. Lag needs the database; when it is down the
/// lag series are left out and `muckard_database_up` is 0, so a scrape
/// still shows what the process knows.
pub async fn render(state: &AppState) -> String {
    let mut body = String::new();
    let mut encoded = Vec::new();
    match prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut encoded) {
        Ok(()) => body.push_str(&String::from_utf8_lossy(&encoded)),
        Err(error) => tracing::warn!(error = %error, "metrics: encoding the registry failed"),
    }
    let pool = state.pool();
    render_pool(&mut body, pool);
    render_database_and_lag(&mut body, pool).await;
    body
}

fn render_pool(body: &mut String, pool: &sqlx::PgPool) {
    let idle = pool.num_idle() as u64;
    let open = u64::from(pool.size());
    gauge(
        body,
        "muckard_db_pool_connections",
        "Connections of the PostgreSQL pool, by state.",
        &[
            ("state=\"idle\"", idle as f64),
            ("state=\"in_use\"", open.saturating_sub(idle) as f64),
        ],
    );
    gauge(
        body,
        "muckard_db_pool_max_connections",
        "The PostgreSQL pool's size limit (DATABASE_MAX_CONNECTIONS).",
        &[("", f64::from(pool.options().get_max_connections()))],
    );
}

/// `muckard_database_up`, and the subscribers' lag when the query for it
/// succeeded.
async fn render_database_and_lag(body: &mut String, pool: &sqlx::PgPool) {
    match event_log::lag::all(pool).await {
        Ok(lags) => {
            gauge(
                body,
                "muckard_database_up",
                "1 when the last query to PostgreSQL succeeded.",
                &[("", 1.0)],
            );
            let events: Vec<(String, f64)> = lags
                .iter()
                .map(|lag| {
                    (
                        format!("subscriber=\"{}\"", lag.subscriber),
                        lag.events_behind as f64,
                    )
                })
                .collect();
            let seconds: Vec<(String, f64)> = lags
                .iter()
                .map(|lag| {
                    (
                        format!("subscriber=\"{}\"", lag.subscriber),
                        lag.seconds_behind,
                    )
                })
                .collect();
            gauge(
                body,
                "muckard_subscriber_lag_events",
                "Events committed but not yet handled by the subscriber.",
                &events,
            );
            gauge(
                body,
                "muckard_subscriber_lag_seconds",
                "Age of the oldest event the subscriber has not handled.",
                &seconds,
            );
        }
        Err(error) => {
            tracing::warn!(error = %error, "metrics: subscriber lag unavailable");
            gauge(
                body,
                "muckard_database_up",
                "1 when the last query to PostgreSQL succeeded.",
                &[("", 0.0)],
            );
        }
    }
}

fn gauge(body: &mut String, name: &str, help: &str, series: &[(impl AsRef<str>, f64)]) {
    let _ = writeln!(body, "# HELP {name} {help}");
    let _ = writeln!(body, "# TYPE {name} gauge");
    for (labels, value) in series {
        let labels = labels.as_ref();
        if labels.is_empty() {
            let _ = writeln!(body, "{name} {value}");
        } else {
            let _ = writeln!(body, "{name}{{{labels}}} {value}");
        }
    }
}
