//! Phase 2 of the join: turning a ticket into a committed membership.
//!
//! The ticket is checked (and consumed) before anything is written. Then either the pending
//! room is materialized with its creator as the first member, or the guarded join runs. If any
//! step fails, the seat guard is dropped on the way out, so the permit goes back at once.

use std::sync::Arc;

use roomgate_admission::{PendingRooms, PermitStore, SeatGuard, StoreError};
use roomgate_domain::{AdmissionError, SessionId, Ticket};
use roomgate_persistence::{NewRoom, PersistenceError, RoomRecord};

use crate::session::frames::close;
use crate::session::membership::Membership;
use crate::state::AppState;

/// Why a WebSocket could not join; each maps to one close code of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidTicket,
    TicketExpired,
    RoomFull,
    Failed(String),
}

impl Refusal {
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidTicket => close::INVALID_TICKET,
            Self::TicketExpired => close::TICKET_EXPIRED,
            Self::RoomFull => close::ROOM_FULL,
            Self::Failed(_) => close::JOIN_FAILED,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidTicket => "invalid_ticket",
            Self::TicketExpired => "ticket_expired",
            Self::RoomFull => "room_full",
            Self::Failed(_) => "join_failed",
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Refused(AdmissionError::InvalidTicket) => Self::InvalidTicket,
            StoreError::Refused(AdmissionError::TicketExpired) => Self::TicketExpired,
            StoreError::Refused(AdmissionError::RoomFull { .. }) => Self::RoomFull,
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<PersistenceError> for Refusal {
    fn from(err: PersistenceError) -> Self {
        match err {
            PersistenceError::RoomFull { .. } => Self::RoomFull,
            // The room was never written: its creation window passed before this ticket came.
            PersistenceError::NotFound { .. } => Self::TicketExpired,
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Confirms `ticket` and commits the membership it stands for.
pub async fn admit(
    state: &Arc<AppState>,
    ticket: Option<&str>,
    session: SessionId,
) -> Result<(Membership, RoomRecord), Refusal> {
    let ticket = ticket
        .and_then(|text| Ticket::parse(text).ok())
        .ok_or(Refusal::InvalidTicket)?;
    let seat = state.permits.confirm(&ticket, session).await?;
    let record = commit_membership(state, &seat).await?;
    Ok((Membership::new(Arc::clone(state), seat), record))
}

async fn commit_membership(state: &AppState, seat: &SeatGuard) -> Result<RoomRecord, Refusal> {
    let key = seat.key();
    let pending = state.pending.get(&key.room).await?;
    match pending {
        Some((room, _)) if room.creator == key.user => {
            // Taking the registration is what makes "only the creator opens it, once" hold.
            let room = state
                .pending
                .materialize(&key.room)
                .await
                .map_err(|err| match err {
                    StoreError::Refused(
                        AdmissionError::RoomNotFound { .. } | AdmissionError::TicketExpired,
                    ) => Refusal::TicketExpired,
                    other => Refusal::from(other),
                })?;
            let new_room = NewRoom {
                id: room.id,
                title: room.title,
                capacity: room.capacity,
                password: room.password,
                created_by: room.creator,
            };
            Ok(state.db.open_room_and_join(&new_room, state.node).await?)
        }
        _ => Ok(state.db.join(&key.room, &key.user, state.node).await?),
    }
}
