use axum::extract::State;
use axum::Json;
use domain::user::{Experience, RiskProfile};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, RequestContext};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// 1 to 100 characters once trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 100)]
    display_name: String,
}

/// A change to the caller's user and where its event stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserChanged {
    pub user_id: Uuid,
    #[schema(value_type = crate::openapi::schemas::Position)]
    pub position: String,
}

/// `PATCH /api/v1/user/me` `{display_name}`.
#[utoipa::path(
    patch,
    path = "/api/v1/user/me",
    operation_id = "update_me",
    tag = "users",
    summary = "Change the caller's display name",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "Changed", body = UserChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<UpdateProfileRequest>,
) -> Result<Json<UserChanged>, ApiError> {
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
    Ok(Json(UserChanged {
        user_id: caller.user_id,
        position: position.to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardingRequest {
    #[schema(value_type = crate::openapi::schemas::RiskProfile)]
    risk_profile: RiskProfile,
    #[schema(value_type = crate::openapi::schemas::Experience)]
    experience: Experience,
    /// The version of the terms the user accepted: 1 to 32 characters once
    /// trimmed.
    #[schema(pattern = "{NON_BLANK_LINE}", min_length = 1, max_length = 32)]
    terms_version: String,
}

/// `POST /api/v1/user/onboarding` `{risk_profile, experience, terms_version}`.
#[utoipa::path(
    post,
    path = "/api/v1/user/onboarding",
    tag = "users",
    summary = "Complete the caller's onboarding",
    security(("bearer" = [])),
    request_body = OnboardingRequest,
    responses(
        (status = 200, description = "Onboarded", body = UserChanged),
        (status = 400, description = "Unreadable JSON", body = ErrorResponse),
        (status = 409, description = "Already onboarded", body = ErrorResponse),
        (status = 422, description = "A field is invalid", body = ErrorResponse),
    ),
)]
pub async fn complete_onboarding(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<OnboardingRequest>,
) -> Result<Json<UserChanged>, ApiError> {
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
    Ok(Json(UserChanged {
        user_id: caller.user_id,
        position: position.to_string(),
    }))
}
