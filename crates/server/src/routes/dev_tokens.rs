//! `POST /api/v1/dev/tokens`: a token for any user id, for development and tests only.

use actix_web::{post, web};
use roomgate_domain::UserId;

use roomgate_api::{DevTokenRequest, DevTokenResponse, ErrorBody};

use crate::error::ApiError;
use crate::error::extractors::JsonObject;
use crate::state::AppState;
use crate::views::rfc3339;

/// Issues a bearer token for `user_id`. Exists only while `auth.dev_tokens` is on.
#[utoipa::path(post, path = "/api/v1/dev/tokens", tag = "auth",
    request_body = DevTokenRequest,
    responses((status = 200, body = DevTokenResponse), (status = 400, body = ErrorBody),
              (status = 404, description = "dev tokens are off", body = ErrorBody)))]
#[post("/api/v1/dev/tokens")]
pub async fn issue(
    state: web::Data<AppState>,
    JsonObject(body): JsonObject<DevTokenRequest>,
) -> Result<web::Json<DevTokenResponse>, ApiError> {
    let user = UserId::parse(&body.user_id)?;
    let (token, expires_at) = state.tokens.issue(&user)?;
    Ok(web::Json(DevTokenResponse {
        token,
        user_id: user.to_string(),
        expires_at: rfc3339(expires_at),
    }))
}
