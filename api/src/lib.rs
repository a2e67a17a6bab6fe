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
//! - [`routes`]: the command endpoints, one module per resource.
//!
//! [`app`] builds the router so tests can drive it without a socket.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod operator;
pub mod routes;
pub mod state;
pub mod telemetry;

use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;

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
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/metrics", get(routes::metrics::metrics))
        .merge(queries)
        .merge(audit)
        .merge(commands)
        .merge(sessions)
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Gives every request an id (the caller's `x-request-id`, or a new one),
/// which lands in event metadata and is echoed on the response beside the
/// name of the instance that answered.
async fn request_id(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request<axum::body::Body>,
    next: Next,
) -> Response {
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
    let mut response = next.run(request).await;
    response.headers_mut().insert(header, value);
    if let Ok(instance) = HeaderValue::from_str(&state.settings.instance) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(INSTANCE_HEADER), instance);
    }
    response
}
