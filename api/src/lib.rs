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
//! - [`routes`]: the endpoints, one module per resource;
//! - [`openapi`]: the OpenAPI document, made from the handlers' annotations,
//!   and the interactive page at `/docs`.
//!
//! [`app`] builds the router so tests can drive it without a socket, from
//! the same annotations as the document.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod operator;
pub mod routes;
pub mod state;
pub mod telemetry;

use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::AppState;

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
    router
        .fallback(routes::health::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Every route, in the groups that differ in middleware. Each is
/// registered from its handler's `#[utoipa::path]` annotation, which is
/// also what [`openapi::document`] is made of: there is no other way to add
/// a route (the `openapi` test checks). A new route is a handler with a
/// `#[utoipa::path(get, path = "/…", responses(…))]` annotation, added here
/// with `.routes(routes!(module::handler))`.
pub(crate) struct RouteGroups {
    /// Health, metrics and the documentation.
    pub service: OpenApiRouter<AppState>,
    pub queries: OpenApiRouter<AppState>,
    pub audit: OpenApiRouter<AppState>,
    /// Routes whose repeated Idempotency-Key replays the first response.
    pub commands: OpenApiRouter<AppState>,
    /// Log-in and refresh are not idempotent by key: their responses hold
    /// fresh tokens, which must not be stored.
    pub sessions: OpenApiRouter<AppState>,
}

pub(crate) fn route_groups() -> RouteGroups {
    let service = OpenApiRouter::default()
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::metrics::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(openapi::docs_asset));
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
        .routes(routes!(routes::admin::assign_role));
    let sessions = OpenApiRouter::default()
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh));
    let queries = OpenApiRouter::default()
        .routes(routes!(routes::queries::me))
        .routes(routes!(routes::queries::admin_users))
        .routes(routes!(routes::queries::keys))
        .routes(routes!(routes::queries::bots))
        .routes(routes!(routes::queries::bot_status))
        .routes(routes!(routes::queries::trades))
        .routes(routes!(routes::queries::positions));
    let audit = OpenApiRouter::default()
        .routes(routes!(routes::audit::events))
        .routes(routes!(routes::audit::state));
    RouteGroups {
        service,
        queries,
        audit,
        commands,
        sessions,
    }
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
