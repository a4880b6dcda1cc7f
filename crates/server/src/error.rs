//! The one place that chooses HTTP status codes: every refusal becomes an [`ApiError`], and its
//! `ResponseError` impl renders `{"error": {"code", "message", "details"}}`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use roomgate_admission::StoreError;
use roomgate_api::{ErrorBody, ErrorCode};
use roomgate_domain::{AdmissionError, ValidationError};
use roomgate_persistence::PersistenceError;
use serde_json::{Value, json};

/// Everything a REST handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    #[error("missing, malformed, expired or forged bearer token")]
    Unauthenticated,
    #[error("the room's password does not match")]
    WrongPassword,
    #[error("no room {room}")]
    RoomNotFound { room: String },
    #[error("no reservation in room {room}")]
    ReservationNotFound { room: String },
    #[error("room {room} already exists")]
    RoomExists { room: String },
    #[error("room {room} is being created and is not open yet")]
    RoomPending { room: String, retry_after: Duration },
    #[error("room {room} is full ({capacity} seats)")]
    RoomFull { room: String, capacity: u32 },
    #[error("you already have a live session in room {room}")]
    AlreadyJoined { room: String },
    #[error("the waiting line of room {room} is full ({max_waiting} people)")]
    QueueFull { room: String, max_waiting: u32 },
    #[error("not found")]
    NotFound,
    /// A known path asked with a method it does not serve; `allow` lists those it does.
    #[error("this path does not serve the method; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("too many requests; retry later")]
    RateLimited { retry_after: Duration },
    #[error("a backing service cannot be reached; nothing was changed")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::WrongPassword => ErrorCode::WrongPassword,
            Self::RoomNotFound { .. } => ErrorCode::RoomNotFound,
            Self::ReservationNotFound { .. } => ErrorCode::ReservationNotFound,
            Self::RoomExists { .. } => ErrorCode::RoomExists,
            Self::RoomPending { .. } => ErrorCode::RoomPending,
            Self::RoomFull { .. } => ErrorCode::RoomFull,
            Self::AlreadyJoined { .. } => ErrorCode::AlreadyJoined,
            Self::QueueFull { .. } => ErrorCode::QueueFull,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            Self::InvalidRequest {
                field: Some(field), ..
            } => Some(json!({ "field": field })),
            Self::RoomNotFound { room }
            | Self::ReservationNotFound { room }
            | Self::RoomExists { room }
            | Self::AlreadyJoined { room } => Some(json!({ "room_id": room })),
            Self::RoomPending { room, retry_after } => Some(json!({
                "room_id": room,
                "retry_after_secs": retry_after_secs(*retry_after),
            })),
            Self::RoomFull { room, capacity } => {
                Some(json!({ "room_id": room, "capacity": capacity }))
            }
            Self::QueueFull { room, max_waiting } => {
                Some(json!({ "room_id": room, "max_waiting": max_waiting }))
            }
            Self::PayloadTooLarge { limit } => Some(json!({ "limit_bytes": limit })),
            Self::RateLimited { retry_after } => {
                Some(json!({ "retry_after_secs": retry_after_secs(*retry_after) }))
            }
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RoomPending { retry_after, .. } | Self::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string(), self.details())
    }
}

/// `Retry-After` is in whole seconds; round up so that a client never retries too early.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        // Each code has one status, which the contract crate states.
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            Self::Internal(cause) => tracing::error!(%cause, "answering 500"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(wait) = self.retry_after() {
            response.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            ));
        }
        if let Self::MethodNotAllowed { allow } = self {
            if let Ok(allow) = HeaderValue::from_str(allow) {
                response.insert_header((header::ALLOW, allow));
            }
        }
        if matches!(self, Self::Unauthenticated) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(self.body())
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        Self::invalid(err.field, err.message)
    }
}

impl From<AdmissionError> for ApiError {
    fn from(err: AdmissionError) -> Self {
        match err {
            AdmissionError::RoomFull { room, capacity } => Self::RoomFull {
                room: room.to_string(),
                capacity,
            },
            AdmissionError::QueueFull { room, max_waiting } => Self::QueueFull {
                room: room.to_string(),
                max_waiting,
            },
            AdmissionError::RoomPending { room } => Self::RoomPending {
                room: room.to_string(),
                retry_after: Duration::from_secs(1),
            },
            AdmissionError::AlreadyJoined { room, .. } => Self::AlreadyJoined {
                room: room.to_string(),
            },
            AdmissionError::RoomExists { room } => Self::RoomExists {
                room: room.to_string(),
            },
            AdmissionError::RoomNotFound { room } => Self::RoomNotFound {
                room: room.to_string(),
            },
            AdmissionError::ReservationNotFound { room, .. } => Self::ReservationNotFound {
                room: room.to_string(),
            },
            // Tickets are only presented on the WebSocket; reaching here is a server bug.
            other @ (AdmissionError::TicketExpired
            | AdmissionError::InvalidTicket
            | AdmissionError::IllegalTransition { .. }) => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Refused(refusal) => refusal.into(),
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl From<PersistenceError> for ApiError {
    fn from(err: PersistenceError) -> Self {
        match err {
            PersistenceError::NotFound { room } => Self::RoomNotFound {
                room: room.to_string(),
            },
            PersistenceError::RoomFull { room, capacity } => Self::RoomFull {
                room: room.to_string(),
                capacity,
            },
            PersistenceError::AlreadyJoined { room, .. } => Self::AlreadyJoined {
                room: room.to_string(),
            },
            PersistenceError::RoomExists { room } => Self::RoomExists {
                room: room.to_string(),
            },
            PersistenceError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Answers requests that match no route with the contract's error body: 405 with `Allow` for a
/// path served with other methods, 404 for any other.
pub async fn unmatched(
    req: HttpRequest,
    state: actix_web::web::Data<crate::state::AppState>,
) -> ApiError {
    match crate::openapi::allowed_methods(req.path(), state.settings.auth.dev_tokens) {
        Some(allow) => ApiError::MethodNotAllowed { allow },
        None => ApiError::NotFound,
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<Self::Body> {
        self.error_response()
    }
}

pub mod extractors {
    //! Turns actix's own extractor failures into the contract's error bodies.

    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
    use actix_web::{HttpRequest, web};

    use super::ApiError;

    /// A JSON request body that must be an object. serde's derived reading of a struct would
    /// also take a JSON array and fill the fields by position (`["alice"]` as a dev-token
    /// request); the contract's bodies are objects with named fields, so anything else is 400.
    #[derive(Debug)]
    pub struct JsonObject<T>(pub T);

    impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonObject<T> {
        type Error = actix_web::Error;
        type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

        fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
            let object =
                web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, payload);
            Box::pin(async move {
                let web::Json(object) = object.await?;
                from_object(object).map(JsonObject).map_err(Into::into)
            })
        }
    }

    fn from_object<T: serde::de::DeserializeOwned>(
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<T, ApiError> {
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| serde_error(&e.to_string()))
    }

    pub fn json_config(limit: usize) -> web::JsonConfig {
        web::JsonConfig::default()
            .limit(limit)
            .error_handler(move |err, _req: &HttpRequest| json_error(err, limit).into())
    }

    pub fn path_config() -> web::PathConfig {
        web::PathConfig::default().error_handler(|err, _req| path_error(err).into())
    }

    pub fn query_config() -> web::QueryConfig {
        web::QueryConfig::default().error_handler(|err, _req| query_error(err).into())
    }

    /// Reads a body that may be absent (no bytes at all: `None`), holding it to `limit` bytes
    /// and the same error rules as JSON bodies.
    pub async fn read_optional_json<T: serde::de::DeserializeOwned>(
        mut payload: web::Payload,
        limit: usize,
    ) -> Result<Option<T>, ApiError> {
        use futures_util::StreamExt as _;

        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::InvalidRequest {
                field: None,
                message: format!("the body could not be read: {e}"),
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        // `null` reads as no body, as the document's optional body says; anything else must be
        // an object, as for every other body.
        let object =
            serde_json::from_slice::<Option<serde_json::Map<String, serde_json::Value>>>(&body)
                .map_err(|e| serde_error(&e.to_string()))?;
        object.map(from_object).transpose()
    }

    fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
        match err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::PayloadTooLarge { limit }
            }
            JsonPayloadError::ContentType => ApiError::InvalidRequest {
                field: None,
                message: "the body must be JSON (Content-Type: application/json)".into(),
            },
            JsonPayloadError::Deserialize(err) => serde_error(&err.to_string()),
            other => ApiError::InvalidRequest {
                field: None,
                message: format!("the body could not be read: {other}"),
            },
        }
    }

    fn path_error(err: PathError) -> ApiError {
        let PathError::Deserialize(err) = err else {
            return ApiError::InvalidRequest {
                field: None,
                message: err.to_string(),
            };
        };
        serde_error(&err.to_string())
    }

    fn query_error(err: QueryPayloadError) -> ApiError {
        match err {
            QueryPayloadError::Deserialize(err) => serde_error(&err.to_string()),
            other => ApiError::InvalidRequest {
                field: None,
                message: other.to_string(),
            },
        }
    }

    /// Finds the field a serde message is about. Our own parsers say `field: message`
    /// (`ValidationError`'s display); serde's derive says "missing field `x`" or
    /// "unknown field `x`"; type errors only carry a position.
    fn serde_error(message: &str) -> ApiError {
        let field = backticked_field(message).or_else(|| validation_field(message));
        ApiError::InvalidRequest {
            field,
            message: message.to_owned(),
        }
    }

    fn backticked_field(message: &str) -> Option<String> {
        for marker in ["missing field `", "unknown field `", "duplicate field `"] {
            if let Some(start) = message.find(marker) {
                let rest = &message[start + marker.len()..];
                // A field's name may itself hold a backtick: end at what serde writes after it.
                let end = ["`, expected", "` at line"]
                    .iter()
                    .find_map(|after| rest.find(after))
                    .or_else(|| rest.rfind('`'));
                return end.map(|end| rest[..end].to_owned());
            }
        }
        None
    }

    fn validation_field(message: &str) -> Option<String> {
        let (field, _) = message.split_once(": ")?;
        let simple =
            !field.is_empty() && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        simple.then(|| field.to_owned())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_field_serde_complains_about() {
            assert_eq!(
                backticked_field("missing field `title` at line 1 column 2").as_deref(),
                Some("title")
            );
            assert_eq!(
                backticked_field("unknown field `colour`, expected one of `id`").as_deref(),
                Some("colour")
            );
            assert_eq!(
                validation_field("capacity: capacity must be between 1 and 10").as_deref(),
                Some("capacity")
            );
            assert_eq!(validation_field("expected a string at line 1"), None);
            assert_eq!(
                backticked_field("unknown field `a`b`, expected `user_id` at line 1").as_deref(),
                Some("a`b")
            );
        }
    }
}
