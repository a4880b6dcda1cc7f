//! Errors in the caller's terms. The server maps each to one HTTP status or close code.

use thiserror::Error;

use crate::ids::{RoomId, UserId};

/// A value from outside that does not fit its type; `field` names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why an admission step was refused. Each variant is something a client did or ran into;
/// infrastructure failures live in the stores' own error types.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdmissionError {
    #[error("room {room} is full ({capacity} seats)")]
    RoomFull { room: RoomId, capacity: u32 },
    #[error("room {room} is being created and is not open yet")]
    RoomPending { room: RoomId },
    #[error("user {user} already has a live session in room {room}")]
    AlreadyJoined { room: RoomId, user: UserId },
    #[error("the waiting line of room {room} is full ({max_waiting} people)")]
    QueueFull { room: RoomId, max_waiting: u32 },
    #[error("the ticket has expired")]
    TicketExpired,
    #[error("the ticket is unknown, forged or already used")]
    InvalidTicket,
    #[error("room {room} already exists")]
    RoomExists { room: RoomId },
    #[error("room {room} does not exist")]
    RoomNotFound { room: RoomId },
    #[error("user {user} holds no reservation in room {room}")]
    ReservationNotFound { room: RoomId, user: UserId },
    #[error("the transition {event} is not allowed from {state}")]
    IllegalTransition {
        state: &'static str,
        event: &'static str,
    },
}
