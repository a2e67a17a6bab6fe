//! The one place the API checks permissions: every operation of the
//! OpenAPI document names what it needs in [`OPERATIONS`], and the
//! [`enforce`] layer refuses a caller whose current role
//! (`domain::permissions::ROLE_PERMISSIONS`) lacks it before the handler
//! runs: 401 without a valid token, 403 naming the permission otherwise.
//! The document states each operation's permission (`x-permission`, and a
//! line of its description), and `tests/openapi/permissions.rs` calls every
//! operation as every role against it.
//!
//! Handlers still scope what they read (`trading.read_all` widens a list
//! from the caller's own rows to everyone's) and the aggregates still check
//! ownership.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{Permission, Role};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token.
    Public,
    /// A valid token whose user's current role holds the permission.
    Requires(Permission),
}

use Access::{Public, Requires};
use Permission::*;

/// Every operation of the API by its `operationId`, and what it needs.
/// An operation missing here is refused to everyone (and fails the
/// `openapi` unit test).
pub const OPERATIONS: &[(&str, Access)] = &[
    // The service.
    ("health", Public),
    ("ready", Public),
    ("metrics", Public),
    ("openapi_json", Public),
    ("asyncapi_json", Public),
    ("schema_file", Public),
    ("event_schema_file", Public),
    ("docs", Public),
    ("docs_page", Public),
    ("docs_asset", Public),
    ("console", Public),
    ("console_page", Public),
    ("console_asset", Public),
    ("console_folder_asset", Public),
    // Sessions.
    ("register", Public),
    ("login", Public),
    ("refresh", Public),
    ("logout", Public),
    ("verify_email", Public),
    ("resend_verification", Public),
    ("request_password_reset", Public),
    ("confirm_password_reset", Public),
    // The caller's account.
    ("get_me", Requires(AccountOwn)),
    ("update_me", Requires(AccountOwn)),
    ("complete_onboarding", Requires(AccountOwn)),
    ("change_password", Requires(AccountOwn)),
    ("list_sessions", Requires(AccountOwn)),
    ("revoke_session", Requires(AccountOwn)),
    // The caller's notifications.
    ("list_notifications", Requires(AccountOwn)),
    ("read_notification", Requires(AccountOwn)),
    ("read_all_notifications", Requires(AccountOwn)),
    // Live updates (server-sent events).
    ("stream", Requires(TradingRead)),
    // Trading.
    ("connect_key", Requires(TradingWrite)),
    ("update_key", Requires(TradingWrite)),
    ("disconnect_key", Requires(TradingWrite)),
    ("test_key", Requires(TradingWrite)),
    ("configure_bot", Requires(TradingWrite)),
    ("start_bot", Requires(TradingWrite)),
    ("stop_bot", Requires(TradingWrite)),
    ("trigger_trade", Requires(TradingWrite)),
    ("list_keys", Requires(TradingRead)),
    ("list_bots", Requires(TradingRead)),
    ("bot_status", Requires(TradingRead)),
    ("list_trades", Requires(TradingRead)),
    ("list_positions", Requires(TradingRead)),
    ("balances", Requires(TradingRead)),
    ("ticker", Requires(TradingRead)),
    ("ohlcv", Requires(TradingRead)),
    ("dashboard", Requires(TradingRead)),
    // Support tickets: everyone's own, the staff's all (scoped in the
    // handlers and the aggregate); assigning is the staff's alone.
    ("list_tickets", Requires(TicketsOwn)),
    ("get_ticket", Requires(TicketsOwn)),
    ("open_ticket", Requires(TicketsOwn)),
    ("reply_to_ticket", Requires(TicketsOwn)),
    ("close_ticket", Requires(TicketsOwn)),
    ("reopen_ticket", Requires(TicketsOwn)),
    ("assign_ticket", Requires(TicketsStaff)),
    // Administration.
    ("list_users", Requires(UsersRead)),
    ("get_user", Requires(UsersRead)),
    ("disable_user", Requires(UsersManage)),
    ("enable_user", Requires(UsersManage)),
    ("assign_role", Requires(UsersManage)),
    ("erase_user", Requires(UsersManage)),
    // The audit trail.
    ("audit_events", Requires(AuditRead)),
    ("audit_state", Requires(AuditRead)),
    ("keys", Public),
    ("export", Requires(AuditRead)),
    ("verify_export", Requires(AuditRead)),
    ("verify_log", Requires(AuditRead)),
];

/// What the operation `operation_id` needs; `None` when it is not in
/// [`OPERATIONS`].
pub fn access_of(operation_id: &str) -> Option<Access> {
    OPERATIONS
        .iter()
        .find(|(id, _)| *id == operation_id)
        .map(|(_, access)| *access)
}

/// The roles an access admits, in `Role::ALL`'s order.
pub fn roles_admitted(access: Access) -> Vec<Role> {
    match access {
        Public => Role::ALL.to_vec(),
        Requires(permission) => permission.roles(),
    }
}

/// The operations of the document by method and route template (as
/// axum's `MatchedPath` gives it), each with what it needs.
fn by_route() -> &'static HashMap<(Method, String), Option<Access>> {
    static ROUTES: LazyLock<HashMap<(Method, String), Option<Access>>> = LazyLock::new(|| {
        let mut routes = HashMap::new();
        for (path, item) in &crate::openapi::document().paths.paths {
            for (method, operation) in [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ] {
                if let Some(operation) = operation {
                    let access = operation.operation_id.as_deref().and_then(access_of);
                    routes.insert((method, path.clone()), access);
                }
            }
        }
        routes
    });
    &ROUTES
}

/// The layer: resolves the caller of an operation that needs a
/// permission, refuses it unless its role holds the permission, and hands
/// the resolved [`Caller`] to the handler through the request's
/// extensions. A request no route matched passes (the fallback answers
/// 404); so does `HEAD` and `OPTIONS`, which no operation serves.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return next.run(request).await;
    };
    let key = (request.method().clone(), route.as_str().to_string());
    let access = match by_route().get(&key) {
        Some(Some(access)) => *access,
        Some(None) => {
            return ApiError::Forbidden("this operation declares no permission".to_string())
                .into_response()
        }
        None => return next.run(request).await,
    };
    let Requires(permission) = access else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    if !caller.role.has(permission) {
        return ApiError::Forbidden(format!(
            "this needs the permission {permission}, which the role {} does not hold",
            caller.role.as_str()
        ))
        .into_response();
    }
    if permission == TradingWrite
        && !caller.email_verified
        && state.commands.requires_verified_email()
    {
        return ApiError::Forbidden(
            "trading needs a verified email: verify it with the emailed code \
             (POST /api/v1/auth/verify-email)"
                .to_string(),
        )
        .into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}
