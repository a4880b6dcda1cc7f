//! REST request and response bodies. Times are RFC 3339 UTC strings with millisecond precision.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::codes::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomState {
    Open,
    /// Registered; its row is written when the creator's WebSocket confirms.
    Pending,
}

/// A room as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomView {
    #[schema(example = "rust-study", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    pub title: String,
    pub capacity: u32,
    /// Members with a live WebSocket session.
    pub attending: u32,
    /// Permits held by reservations not yet confirmed (a seat being handed to the head of the
    /// waiting line counts here).
    pub reserved: u32,
    /// People in the room's waiting line.
    pub waiting: u32,
    pub has_password: bool,
    pub state: RoomState,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A held seat and the ticket that confirms it on the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    pub room_id: String,
    pub user_id: String,
    /// Single use, bound to this user and room.
    pub ticket: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Path to open the WebSocket with, ticket included.
    #[schema(example = "/api/v1/ws?ticket=…")]
    pub ws_url: String,
}

/// A place in a full room's waiting line. Open `ws_url` before `expires_at`; the socket then
/// tells the position as it changes and becomes the member's session when a seat frees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub room_id: String,
    pub user_id: String,
    /// 1 for the next person to get a seat.
    #[schema(minimum = 1)]
    pub position: u32,
    /// Single use, bound to this user and room; says that it is a place in line.
    pub ticket: String,
    /// By when the WebSocket must be open; once it is, the place lasts as long as the socket.
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(example = "/api/v1/ws?ticket=…")]
    pub ws_url: String,
}

/// The answer to a room creation: the pending room and its creator's reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedRoom {
    pub room: RoomView,
    pub reservation: ReservationView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomPage {
    pub rooms: Vec<RoomView>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next: Option<String>,
}

/// `POST /api/v1/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "rust-study")]
    pub id: String,
    /// 1-100 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub title: String,
    /// 1..=`rooms.max_capacity`. JSON has one kind of number, so `19.0` is the integer 19.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "integral_u32")]
    pub capacity: u32,
    /// 1-128 bytes of UTF-8; omit (or null) for an open room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 128)]
    pub password: Option<String>,
}

/// `POST /api/v1/rooms/{room_id}/reservations`; the body may be omitted or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// The room's password, for a room that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub password: Option<String>,
    /// With no free seat, take a place in the room's waiting line (202) instead of `room_full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

impl ReserveRequest {
    /// Whether the client asked for a place in line when the room is full.
    pub fn wants_to_wait(&self) -> bool {
        self.wait.unwrap_or(false)
    }
}

/// `POST /api/v1/dev/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$", example = "alice")]
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DevTokenResponse {
    pub token: String,
    pub user_id: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusBody {
    #[schema(example = "ok")]
    pub status: String,
}

/// The body of every non-2xx REST answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// Extra facts, e.g. `{"field": "capacity"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, details: Option<Value>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                details,
            },
        }
    }
}

/// Reads a `u32` from any JSON number with no fractional part (`19` or `19.0`), as JSON Schema's
/// `integer` type does; anything else is an error.
fn integral_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::Error as _;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_u64() {
        return u32::try_from(whole).map_err(|_| D::Error::custom("expected a u32"));
    }
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&float) => {
            // Integral and within range, so the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(float as u32)
        }
        _ => Err(D::Error::custom(format!(
            "invalid value: {number}, expected a whole number of seats"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn capacity(json: &str) -> Result<u32, serde_json::Error> {
        serde_json::from_str::<CreateRoomRequest>(&format!(
            r#"{{"id":"r","title":"t","capacity":{json}}}"#
        ))
        .map(|request| request.capacity)
    }

    #[test]
    fn capacity_is_any_whole_json_number() {
        assert_eq!(capacity("19").unwrap(), 19);
        assert_eq!(capacity("19.0").unwrap(), 19);
        assert_eq!(capacity("1e1").unwrap(), 10);
        for refused in ["19.5", "-1", "4294967296", "\"19\"", "null"] {
            assert!(capacity(refused).is_err(), "{refused}");
        }
    }
}
