//! The HTTP API and the `muckard` binary's building blocks. Only this crate
//! knows HTTP.
//!
//! - [`config`]: settings from the environment, secrets included;
//! - [`telemetry`]: the tracing subscriber (installed by the binary only);
//! - [`state`]: what every handler shares, and how it is built;
//! - [`error`]: `ApiError`, the one mapping of failures to HTTP statuses;
//! - [`extract`]: JSON bodies with field-naming errors, the caller from the
//!   bearer token, the request context that becomes event metadata;
//! - [`auth`]: JWT access tokens and the register/login/refresh handlers;
//! - [`idempotency`]: the `Idempotency-Key` middleware;
//! - [`operator`]: commands for operators (granting the first admin);
//! - [`routes`]: the command endpoints, one module per resource;
//! - [`metrics`], [`ready`]: `/metrics` and `/ready`;
//! - [`rate_limit`]: per-client token buckets on the `/api` routes;
//! - [`trace_context`]: the W3C `traceparent` every request gets.
//!
//! [`app`] builds the router so tests can drive it without a socket.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod operator;
pub mod rate_limit;
pub mod ready;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod trace_context;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use tracing::Instrument;

pub use state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The response header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-muckard-instance";

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    // Routes whose repeated Idempotency-Key replays the first response.
    // Log-in and refresh are left out: their responses hold fresh tokens,
    // which must not be stored.
    let commands = Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/user/me", patch(routes::users::update_me))
        .route(
            "/api/v1/user/onboarding",
            post(routes::users::complete_onboarding),
        )
        .route("/api/v1/kraken/connect", post(routes::kraken::connect))
        .route(
            "/api/v1/kraken/keys/{key_id}",
            patch(routes::kraken::update).delete(routes::kraken::disconnect),
        )
        .route(
            "/api/v1/kraken/keys/{key_id}/test",
            post(routes::kraken::test),
        )
        .route("/api/v1/bot", post(routes::bots::configure))
        .route("/api/v1/bot/{bot_id}/start", post(routes::bots::start))
        .route("/api/v1/bot/{bot_id}/stop", post(routes::bots::stop))
        .route(
            "/api/v1/bot/{bot_id}/trigger-trade",
            post(routes::bots::trigger_trade),
        )
        .route(
            "/api/v1/admin/users/{user_id}/role",
            post(routes::admin::assign_role),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay_or_record,
        ));
    let sessions = Router::new()
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh));
    let queries = Router::new()
        .route("/api/v1/user/me", get(routes::queries::me))
        .route("/api/v1/admin/users", get(routes::queries::admin_users))
        .route("/api/v1/kraken/keys", get(routes::queries::keys))
        .route("/api/v1/bot", get(routes::queries::bots))
        .route(
            "/api/v1/bot/{bot_id}/status",
            get(routes::queries::bot_status),
        )
        .route("/api/v1/trading/trades", get(routes::queries::trades))
        .route("/api/v1/trading/positions", get(routes::queries::positions));
    let audit = Router::new()
        .route(
            "/api/v1/audit/streams/{aggregate_type}/{id}/events",
            get(routes::audit::events),
        )
        .route(
            "/api/v1/audit/streams/{aggregate_type}/{id}/state",
            get(routes::audit::state),
        );
    let api = Router::new()
        .merge(queries)
        .merge(audit)
        .merge(commands)
        .merge(sessions);
    with_common_layers(operations_router().merge(api), state)
}

/// Only the operational endpoints: what a process without the `api` role
/// serves, so every process answers `/health`, `/ready` and `/metrics`.
pub fn operations_app(state: AppState) -> Router {
    with_common_layers(operations_router(), state)
}

fn operations_router() -> Router<AppState> {
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::metrics))
}

/// The fallback and the layers every request goes through, innermost
/// first: the rate limit, CORS (so a preflight never spends a client's
/// budget), then the request context (id, trace, metrics, access log),
/// which sees every answer, 429s and preflights included.
fn with_common_layers(router: Router<AppState>, state: AppState) -> Router {
    let router = router
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    let router = match cors_layer(&state.settings.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// CORS for the configured origins; none configured, no CORS headers.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // The settings checked every origin is visible ASCII.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static(REQUEST_ID_HEADER),
                HeaderName::from_static("x-correlation-id"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                HeaderName::from_static(REQUEST_ID_HEADER),
                HeaderName::from_static(INSTANCE_HEADER),
                header::RETRY_AFTER,
                HeaderName::from_static("x-ratelimit-remaining"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Gives every request an id (the caller's `x-request-id`, or a new one)
/// and a W3C trace context, both of which land in event metadata; records
/// the request in `/metrics`; logs it (target `muckard::access`); and
/// answers with the id and the name of the instance that answered.
async fn request_context(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let _in_flight = metrics::request_started();
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let id = request
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(header.clone(), value.clone());
    let trace = trace_context::TraceContext::for_request(
        request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    if let Ok(traceparent) = HeaderValue::from_str(&trace.header()) {
        request.headers_mut().insert("traceparent", traceparent);
    }
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = %trace.trace_id,
        method = %method,
        route = %route,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::record_request(method.as_str(), &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            target: "muckard::access",
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        )
    });
    response.headers_mut().insert(header, value);
    if let Ok(instance) = HeaderValue::from_str(&state.settings.instance) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(INSTANCE_HEADER), instance);
    }
    response
}
