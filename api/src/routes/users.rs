use axum::extract::State;
use axum::Json;
use domain::user::{Experience, RiskProfile};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    display_name: String,
}

/// `PATCH /api/v1/user/me` `{display_name}`.
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<UpdateProfileRequest>,
) -> Result<Json<Value>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "user.update_profile");
    let position = state
        .commands
        .update_profile(
            caller.actor(),
            caller.user_id,
            request.display_name,
            &metadata,
        )
        .await?;
    Ok(Json(
        json!({ "user_id": caller.user_id, "position": position.to_string() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnboardingRequest {
    risk_profile: RiskProfile,
    experience: Experience,
    terms_version: String,
}

/// `POST /api/v1/user/onboarding` `{risk_profile, experience, terms_version}`.
pub async fn complete_onboarding(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<OnboardingRequest>,
) -> Result<Json<Value>, ApiError> {
    let metadata = context.metadata(Some(caller.actor()), "user.complete_onboarding");
    let position = state
        .commands
        .complete_onboarding(
            caller.actor(),
            caller.user_id,
            request.risk_profile,
            request.experience,
            request.terms_version,
            &metadata,
        )
        .await?;
    Ok(Json(
        json!({ "user_id": caller.user_id, "position": position.to_string() }),
    ))
}
