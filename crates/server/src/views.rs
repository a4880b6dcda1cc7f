//! The JSON shapes of the contract: what REST answers and WebSocket frames carry.

use chrono::{DateTime, SecondsFormat, Utc};
use roomgate_admission::{PendingRoom, Reservation};
use roomgate_domain::Timestamp;
use roomgate_persistence::{MessageRecord, RoomRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Times go out as RFC 3339 UTC with millisecond precision, e.g. `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn timestamp_to_datetime(at: Timestamp) -> DateTime<Utc> {
    i64::try_from(at.millis())
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomState {
    Open,
    Pending,
}

/// A room as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomView {
    #[schema(example = "rust-study")]
    pub id: String,
    pub title: String,
    pub capacity: u32,
    /// Members with a live WebSocket session.
    pub attending: u32,
    /// Permits held by reservations not yet confirmed.
    pub reserved: u32,
    pub has_password: bool,
    pub state: RoomState,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl RoomView {
    /// `attending` comes from the database and `reserved` from the permit store, read one after
    /// the other. At every instant `attending + reserved <= capacity` holds (a member's row is
    /// written only after its permit is held, and removed before the permit is returned), but two
    /// reads a moment apart can count one moving seat twice: once as the member who was leaving
    /// when the row was read, once as the reservation that took the freed permit since. Such a
    /// seat is counted once, as attending, so a read never shows more than the room holds.
    pub fn open(room: &RoomRecord, reserved: u32) -> Self {
        Self {
            id: room.id.to_string(),
            title: room.title.clone(),
            capacity: room.capacity,
            attending: room.attending,
            reserved: reserved.min(room.capacity.saturating_sub(room.attending)),
            has_password: room.password_hash.is_some(),
            state: RoomState::Open,
            created_at: rfc3339(room.created_at),
        }
    }

    /// A registered creation: no member yet, its creator's permit among `reserved`.
    pub fn pending(room: &PendingRoom, registered_at: DateTime<Utc>, reserved: u32) -> Self {
        Self {
            id: room.id.to_string(),
            title: room.title.as_str().to_owned(),
            capacity: room.capacity.get(),
            attending: 0,
            reserved,
            has_password: room.password.is_some(),
            state: RoomState::Pending,
            created_at: rfc3339(registered_at),
        }
    }
}

/// A held seat and the ticket that confirms it on the WebSocket.
#[derive(Debug, Clone, Serialize, ToSchema)]
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

impl From<&Reservation> for ReservationView {
    fn from(reservation: &Reservation) -> Self {
        let ticket = reservation.ticket.to_text();
        Self {
            room_id: reservation.room.to_string(),
            user_id: reservation.user.to_string(),
            ws_url: format!("/api/v1/ws?ticket={ticket}"),
            ticket,
            expires_at: rfc3339(timestamp_to_datetime(reservation.expires_at)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedRoom {
    pub room: RoomView,
    pub reservation: ReservationView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomPage {
    pub rooms: Vec<RoomView>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomRequest {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`
    pub id: String,
    /// 1-100 characters.
    pub title: String,
    /// 1..=`rooms.max_capacity`.
    pub capacity: u32,
    /// At most 128 bytes; omit for an open room.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequestBody {
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    pub user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevTokenResponse {
    pub token: String,
    pub user_id: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    pub status: &'static str,
}

/// A chat message as stored and fanned out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u64,
    pub room_id: String,
    pub user_id: String,
    pub body: String,
    #[schema(format = DateTime)]
    pub sent_at: String,
}

impl From<&MessageRecord> for MessageView {
    fn from(message: &MessageRecord) -> Self {
        Self {
            kind: "message",
            id: message.id,
            room_id: message.room_id.to_string(),
            user_id: message.user_id.to_string(),
            body: message.body.clone(),
            sent_at: rfc3339(message.sent_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use roomgate_domain::{RoomId, UserId};

    use super::*;

    fn record(capacity: u32, attending: u32) -> RoomRecord {
        RoomRecord {
            id: RoomId::parse("r").unwrap(),
            title: "R".into(),
            capacity,
            attending,
            password_hash: None,
            created_by: UserId::parse("alice").unwrap(),
            created_at: Utc::now(),
            version: 0,
        }
    }

    #[test]
    fn a_seat_counted_by_both_reads_is_shown_once() {
        // 15 members when the row was read; since then one left and a reservation took the seat.
        let view = RoomView::open(&record(16, 15), 2);
        assert_eq!((view.attending, view.reserved), (15, 1));
    }

    #[test]
    fn consistent_reads_are_shown_as_they_are() {
        let view = RoomView::open(&record(16, 10), 6);
        assert_eq!((view.attending, view.reserved), (10, 6));
    }
}
