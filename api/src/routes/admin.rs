use axum::extract::{Path, State};
use axum::Json;
use domain::Role;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{parse_id, Caller, JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRoleRequest {
    role: Role,
}

/// `POST /api/v1/admin/users/{user_id}/role` `{role}` (admins only).
pub async fn assign_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(user_id): Path<String>,
    JsonBody(request): JsonBody<AssignRoleRequest>,
) -> Result<Json<Value>, ApiError> {
    let user_id = parse_id("user_id", &user_id)?;
    let metadata = context.metadata(Some(caller.actor()), "user.assign_role");
    let position = state
        .commands
        .assign_role(caller.actor(), user_id, request.role, &metadata)
        .await?;
    Ok(Json(json!({
        "user_id": user_id,
        "role": request.role,
        "position": position.to_string(),
    })))
}
