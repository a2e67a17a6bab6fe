//! The HTTP API. Only this crate knows HTTP, and it knows nothing else: no
//! broker, no worker. The `muckard` binary crate builds its [`AppState`]
//! and hands in the readiness probes of the brokers its roles use.
//!
//! - [`state`]: [`AppState`], what every handler shares, and
//!   [`HttpSettings`];
//! - [`error`]: `ApiError`, the one mapping of failures to HTTP statuses;
//! - [`tokens`]: access tokens (JWT), verified once per request by the
//!   [`tokens::authenticate`] layer into the request's extensions;
//! - [`caller`]: the [`caller::Caller`] extractor, the token's user with the
//!   role the log says it holds now, and the one role check;
//! - [`extract`]: JSON bodies with field-naming errors, the refusal of
//!   control characters in any text a client sends, the request context
//!   that becomes event metadata;
//! - [`auth`]: the register/login/refresh/logout handlers;
//! - [`idempotency`]: the `Idempotency-Key` middleware;
//! - [`routes`]: the endpoints, one module per resource;
//! - [`openapi`]: the OpenAPI document, made from the handlers' annotations,
//!   and the interactive page at `/docs`;
//! - [`console`]: the web console at `/app`, its files built into the
//!   binary;
//! - [`metrics`], [`ready`]: `/metrics` and `/ready`;
//! - [`live`]: the hub `GET /api/v1/stream` reads the `live_updates` read
//!   model through, once per process;
//! - [`permissions`]: each operation's permission, checked in one layer;
//! - [`rate_limit`]: per-client token buckets on the `/api` routes;
//! - [`trace_context`]: the request id and W3C `traceparent` every request
//!   gets, in its extensions.
//!
//! [`app`] builds the router so tests can drive it without a socket, from
//! the same annotations as the document.

pub mod auth;
pub mod caller;
pub mod console;
pub mod contracts;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod market;
pub mod metrics;
pub mod openapi;
pub mod permissions;
pub mod rate_limit;
pub mod ready;
pub mod routes;
pub mod shared_limits;
pub mod state;
pub mod tokens;
pub mod trace_context;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{AppState, HttpSettings};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The response header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-muckard-instance";

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let RouteGroups {
        service,
        queries,
        audit,
        commands,
        sessions,
    } = route_groups();
    let commands = commands.route_layer(middleware::from_fn_with_state(
        state.clone(),
        idempotency::replay_or_record,
    ));
    let (router, _document) = service
        .merge(queries)
        .merge(audit)
        .merge(commands)
        .merge(sessions)
        .split_for_parts();
    with_common_layers(router, state)
}

/// Only the operational endpoints: what a process without the `api` role
/// serves, so every process answers `/health`, `/ready` and `/metrics`.
pub fn operations_app(state: AppState) -> Router {
    let (router, _document) = operations_routes().split_for_parts();
    with_common_layers(router, state)
}

/// Every route, in the groups that differ in middleware. Each is
/// registered from its handler's `#[utoipa::path]` annotation, which is
/// also what [`openapi::document`] is made of: there is no other way to add
/// a route (the `openapi` test checks). A new route is a handler with a
/// `#[utoipa::path(get, path = "/…", responses(…))]` annotation, added here
/// with `.routes(routes!(module::handler))`.
pub(crate) struct RouteGroups {
    /// Health, readiness, metrics and the documentation.
    pub service: OpenApiRouter<AppState>,
    pub queries: OpenApiRouter<AppState>,
    pub audit: OpenApiRouter<AppState>,
    /// Routes whose repeated Idempotency-Key replays the first response.
    pub commands: OpenApiRouter<AppState>,
    /// Log-in and refresh are not idempotent by key: their responses hold
    /// fresh tokens, which must not be stored. Log-out is idempotent by
    /// nature (a second one revokes nothing more).
    pub sessions: OpenApiRouter<AppState>,
}

pub(crate) fn route_groups() -> RouteGroups {
    let service = operations_routes()
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(contracts::asyncapi_json))
        .routes(routes!(contracts::schema_file))
        .routes(routes!(contracts::event_schema_file))
        .routes(routes!(openapi::docs))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(openapi::docs_asset))
        .routes(routes!(console::console))
        .routes(routes!(console::console_page))
        .routes(routes!(console::console_asset))
        .routes(routes!(console::console_folder_asset));
    let commands = OpenApiRouter::default()
        .routes(routes!(auth::register))
        .routes(routes!(routes::users::update_me))
        .routes(routes!(routes::users::complete_onboarding))
        .routes(routes!(routes::kraken::connect))
        .routes(routes!(routes::kraken::update, routes::kraken::disconnect))
        .routes(routes!(routes::kraken::test))
        .routes(routes!(routes::bots::configure))
        .routes(routes!(routes::bots::start))
        .routes(routes!(routes::bots::stop))
        .routes(routes!(routes::bots::trigger_trade))
        .routes(routes!(routes::admin::assign_role))
        .routes(routes!(routes::admin::erase_user))
        .routes(routes!(routes::admin::disable_user))
        .routes(routes!(routes::admin::enable_user))
        .routes(routes!(routes::users::change_password))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::confirm_password_reset))
        .routes(routes!(routes::support::open_ticket))
        .routes(routes!(routes::support::reply_to_ticket))
        .routes(routes!(routes::support::assign_ticket))
        .routes(routes!(routes::support::close_ticket))
        .routes(routes!(routes::support::reopen_ticket))
        .routes(routes!(routes::notifications::read))
        .routes(routes!(routes::notifications::read_all));
    let sessions = OpenApiRouter::default()
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::resend_verification))
        .routes(routes!(auth::request_password_reset))
        .routes(routes!(routes::users::sessions))
        .routes(routes!(routes::users::revoke_session));
    let queries = OpenApiRouter::default()
        .routes(routes!(routes::queries::me))
        .routes(routes!(routes::queries::admin_users))
        .routes(routes!(routes::queries::admin_user))
        .routes(routes!(routes::queries::keys))
        .routes(routes!(routes::queries::bots))
        .routes(routes!(routes::queries::bot_status))
        .routes(routes!(routes::queries::trades))
        .routes(routes!(routes::queries::positions))
        .routes(routes!(routes::support::list_tickets))
        .routes(routes!(routes::support::get_ticket))
        .routes(routes!(routes::notifications::list))
        .routes(routes!(routes::stream::stream))
        .routes(routes!(routes::market::ticker))
        .routes(routes!(routes::market::ohlcv))
        .routes(routes!(routes::market::balances))
        .routes(routes!(routes::dashboard::dashboard));
    let audit = OpenApiRouter::default()
        .routes(routes!(routes::audit::events))
        .routes(routes!(routes::audit::state))
        .routes(routes!(routes::audit_reports::keys))
        .routes(routes!(routes::audit_reports::export))
        .routes(routes!(routes::audit_reports::verify_export))
        .routes(routes!(routes::audit_reports::verify_log));
    RouteGroups {
        service,
        queries,
        audit,
        commands,
        sessions,
    }
}

/// `/health`, `/ready` and `/metrics`: served by every process.
fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::health::ready))
        .routes(routes!(routes::metrics::metrics))
}

/// The fallback and the layers every request goes through, innermost
/// first: the permission check (`permissions`), the rate limit, authentication (the bearer token verified once,
/// the outcome in the request's extensions for the rate limit, the
/// idempotency ledger and the handlers), CORS (so a preflight never spends
/// a client's budget), then the request context (id and trace in the
/// extensions, metrics, access log), which sees every answer, 429s and
/// preflights included.
fn with_common_layers(router: Router<AppState>, state: AppState) -> Router {
    let router = router
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            permissions::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            state.rate_limiter.clone(),
            rate_limit::limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.jwt.clone(),
            tokens::authenticate,
        ));
    let router = match cors_layer(&state.http.cors_allowed_origins) {
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

/// The request headers that reach event metadata (and the logs).
const METADATA_HEADERS: [&str; 4] = [
    REQUEST_ID_HEADER,
    "x-correlation-id",
    "idempotency-key",
    "traceparent",
];

/// A 400 naming the first of [`METADATA_HEADERS`] that holds a control
/// character (a tab, the only one HTTP lets through, or anything a client
/// in the same process puts there).
fn refused_header(headers: &axum::http::HeaderMap) -> Option<error::ApiError> {
    METADATA_HEADERS.iter().find_map(|&name| {
        headers
            .get_all(name)
            .iter()
            .any(|value| value.as_bytes().iter().any(|b| *b < 0x20 || *b == 0x7f))
            .then(|| error::ApiError::BadRequest {
                field: Some(name.to_string()),
                reason: "must not contain control characters".to_string(),
            })
    })
}

/// Gives every request an id (the caller's `x-request-id`, or a new one)
/// and a W3C trace context, both of which land in event metadata; refuses
/// an `/api` request whose metadata headers hold a control character
/// (elsewhere such an `x-request-id` is replaced by a new one); records
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
    let refused = request
        .uri()
        .path()
        .starts_with("/api/")
        .then(|| refused_header(request.headers()))
        .flatten();
    let id = request
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && !extract::has_control_character(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        request_id = %id,
        trace_id = tracing::field::Empty,
        method = %method,
        route = %route,
    );
    // The request's span continues the caller's trace; its context is what
    // the events' metadata and the messages' headers carry on.
    let trace = trace_context::TraceContext::of_span(
        &span,
        request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    span.record("trace_id", trace.trace_id.as_str());
    request
        .extensions_mut()
        .insert(trace_context::RequestId(id.clone()));
    request.extensions_mut().insert(trace);
    let mut response = match refused {
        Some(refusal) => span.in_scope(|| refusal.into_response()),
        None => next.run(request).instrument(span.clone()).await,
    };
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
    if let Ok(instance) = HeaderValue::from_str(&state.http.instance) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(INSTANCE_HEADER), instance);
    }
    response
}
