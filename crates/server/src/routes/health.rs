//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, get, web};
use roomgate_admission::PermitStore;

use roomgate_api::{ErrorBody, StatusBody};

use crate::error::ApiError;
use crate::state::AppState;

/// The process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = StatusBody)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<StatusBody> {
    web::Json(StatusBody {
        status: "ok".to_owned(),
    })
}

/// The database (and Redis, when configured) answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = StatusBody), (status = 503, body = ErrorBody)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<StatusBody>, ApiError> {
    state
        .db
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    state
        .permits
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(web::Json(StatusBody {
        status: "ready".to_owned(),
    }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.permits.permits_held().await {
        Ok(held) => state
            .metrics
            .permits_held
            .set(i64::try_from(held).unwrap_or(i64::MAX)),
        Err(error) => tracing::warn!(%error, "permits_held could not be read"),
    }
    match state.permits.waiting_total().await {
        Ok(waiting) => state
            .metrics
            .waiting
            .set(i64::try_from(waiting).unwrap_or(i64::MAX)),
        Err(error) => tracing::warn!(%error, "the waiting lines could not be read"),
    }
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
