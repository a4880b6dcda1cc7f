//! Every error code a REST answer or an error frame can carry, and every close code a session
//! can end with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `error.code` of a non-2xx REST answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthenticated,
    WrongPassword,
    RoomNotFound,
    ReservationNotFound,
    /// A path the server does not serve.
    NotFound,
    MethodNotAllowed,
    RoomExists,
    RoomPending,
    RoomFull,
    AlreadyJoined,
    /// The room's waiting line holds `rooms.max_waiting` people already.
    QueueFull,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [Self; 16] = [
        Self::InvalidRequest,
        Self::Unauthenticated,
        Self::WrongPassword,
        Self::RoomNotFound,
        Self::ReservationNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RoomExists,
        Self::RoomPending,
        Self::RoomFull,
        Self::AlreadyJoined,
        Self::QueueFull,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::WrongPassword => "wrong_password",
            Self::RoomNotFound => "room_not_found",
            Self::ReservationNotFound => "reservation_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RoomExists => "room_exists",
            Self::RoomPending => "room_pending",
            Self::RoomFull => "room_full",
            Self::AlreadyJoined => "already_joined",
            Self::QueueFull => "queue_full",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status this code always comes with.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthenticated => 401,
            Self::WrongPassword => 403,
            Self::RoomNotFound | Self::ReservationNotFound | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RoomExists
            | Self::RoomPending
            | Self::RoomFull
            | Self::AlreadyJoined
            | Self::QueueFull => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a WebSocket session ends, as its close frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseCode {
    /// After the client's `leave`.
    Left,
    /// The server is shutting down, or the client answered no ping in time.
    GoingAway,
    /// A frame that is not WebSocket.
    ProtocolError,
    /// The client sent frames faster than its limit.
    RateLimited,
    /// A frame over `ws.max_frame_bytes`.
    FrameTooLarge,
    /// The client fell so far behind its room that its outbound queue overflowed.
    TooSlow,
    /// The ticket is unknown, already used or forged.
    InvalidTicket,
    /// The ticket's reservation expired before it was confirmed.
    TicketExpired,
    /// The room turned out full at the database guard.
    RoomFull,
    /// The join could not be committed; the permit is returned.
    JoinFailed,
}

impl CloseCode {
    pub const ALL: [Self; 10] = [
        Self::Left,
        Self::GoingAway,
        Self::ProtocolError,
        Self::RateLimited,
        Self::FrameTooLarge,
        Self::TooSlow,
        Self::InvalidTicket,
        Self::TicketExpired,
        Self::RoomFull,
        Self::JoinFailed,
    ];

    pub fn code(self) -> u16 {
        match self {
            Self::Left => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::RateLimited => 1008,
            Self::FrameTooLarge => 1009,
            Self::TooSlow => 1013,
            Self::InvalidTicket => 4001,
            Self::TicketExpired => 4002,
            Self::RoomFull => 4009,
            Self::JoinFailed => 4500,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|close| close.code() == code)
    }

    /// The close frame's reason text for the usual cause of this code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::GoingAway => "server_shutting_down",
            Self::ProtocolError => "protocol_error",
            Self::RateLimited => "rate_limited",
            Self::FrameTooLarge => "frame_too_large",
            Self::TooSlow => "too_slow",
            Self::InvalidTicket => "invalid_ticket",
            Self::TicketExpired => "ticket_expired",
            Self::RoomFull => "room_full",
            Self::JoinFailed => "join_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn close_codes_are_distinct_and_round_trip() {
        for close in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(close.code()), Some(close));
        }
        assert_eq!(CloseCode::from_code(1011), None);
    }
}
