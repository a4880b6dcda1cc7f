//! Phase 2 of the join: turning a ticket into a committed membership.
//!
//! The ticket is checked (and consumed) before anything is written. A place in the waiting
//! line's ticket yields the place, tied to this socket (the session waits for its seat and then
//! joins it here, through [`join_seat`]). A reservation's ticket yields its seat: then either the
//! pending room is materialized with its creator as the first member, or the guarded join runs.
//! If any step fails, the seat guard is dropped on the way out, so the permit goes back at once
//! (to the head of the line, if anyone waits).

use std::sync::Arc;

use roomgate_admission::{Attached, PendingRooms, PermitStore, SeatGuard, StoreError, WaitGuard};
use roomgate_domain::{AdmissionError, SessionId, Ticket, UserRoomKey};
use roomgate_persistence::{Arrival, Joined, NewRoom, PersistenceError};

use crate::hub::Subscription;
use crate::session::frames::CloseCode;
use crate::session::membership::{self, ClaimedSeat, Membership};
use crate::state::AppState;

/// Why a WebSocket could not join; each maps to one close code of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidTicket,
    TicketExpired,
    RoomFull,
    /// The database answered with an error: nothing was committed.
    Failed(String),
    /// The database stopped answering during the join, so whether it committed is unknown.
    Interrupted(String),
}

impl Refusal {
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidTicket => CloseCode::InvalidTicket,
            Self::TicketExpired => CloseCode::TicketExpired,
            Self::RoomFull => CloseCode::RoomFull,
            Self::Failed(_) | Self::Interrupted(_) => CloseCode::JoinFailed,
        }
    }

    pub fn reason(&self) -> &'static str {
        self.close_code().reason()
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
            PersistenceError::Unavailable(cause) => Self::Interrupted(cause),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// A committed membership, what its newcomer is shown, and its subscription to the room.
#[derive(Debug)]
pub struct Seated {
    pub membership: Membership,
    /// The room as the join left it, and its members and history at that moment.
    pub joined: Joined,
    /// Taken before the join was committed (see [`join_seat`]).
    pub subscription: Subscription,
}

/// What a WebSocket's ticket admitted it to.
#[derive(Debug)]
pub enum Admitted {
    /// A seat, joined (boxed: it is the larger by far, and short-lived).
    Member(Box<Seated>),
    /// A place in the room's waiting line, now held by this socket.
    Waiting(WaitGuard),
}

/// Presents `ticket`: a reservation's seat is joined and committed; a place in line is tied to
/// the socket.
pub async fn admit(
    state: &Arc<AppState>,
    ticket: Option<&str>,
    session: SessionId,
) -> Result<Admitted, Refusal> {
    let ticket = ticket
        .and_then(|text| Ticket::parse(text).ok())
        .ok_or(Refusal::InvalidTicket)?;
    match state.permits.attach(&ticket, session).await? {
        Attached::Seat(guard) => Ok(Admitted::Member(Box::new(join_seat(state, guard).await?))),
        Attached::Waiting(place) => Ok(Admitted::Waiting(place)),
    }
}

/// Commits the membership a confirmed seat stands for.
///
/// The session subscribes to the room first. The newcomer's view (members, history) is taken
/// inside the join's transaction, so every frame the room publishes after it is then either
/// queued for this session already or was published before the view was taken and is in it:
/// nothing falls between the two. (A frame published between the subscription and the view can
/// come twice, once in the view and once live; chat messages carry their id for that.)
pub async fn join_seat(state: &Arc<AppState>, guard: SeatGuard) -> Result<Seated, Refusal> {
    let subscription = state.hub.subscribe(
        guard.key().room.clone(),
        guard.session(),
        state.settings.ws.outbound_queue_frames,
    );
    let seat = ClaimedSeat::claim(state, guard);
    match commit_membership(state, seat.key()).await {
        Ok(joined) => {
            state.catalog.remember(&joined.room);
            Ok(Seated {
                membership: Membership::new(Arc::clone(state), seat),
                joined,
                subscription,
            })
        }
        Err(refusal @ Refusal::Interrupted(_)) => {
            // The commit may have reached the database even though its answer did not reach
            // us; the seat stays claimed until any row it wrote is gone. The client is told at
            // once; the undo goes on without it.
            tokio::spawn(membership::undo_join(Arc::clone(state), seat));
            Err(refusal)
        }
        // Anything else rolled everything back (a refusal, or an error the database answered
        // with): the permit goes back at once. Should a row have been written after all (the
        // room read after the commit failing), the reconciliation removes it.
        Err(refusal) => Err(refusal),
    }
}

async fn commit_membership(state: &AppState, key: &UserRoomKey) -> Result<Joined, Refusal> {
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
            let room = state.db.open_room_and_join(&new_room, state.node).await?;
            // A room written just now holds its creator and nothing else.
            let arrival = Arrival {
                members: vec![key.user.clone()],
                history: Vec::new(),
            };
            Ok(Joined { room, arrival })
        }
        _ => {
            let history = state.settings.chat.history_on_join;
            Ok(state
                .db
                .join_arriving(&key.room, &key.user, state.node, history)
                .await?)
        }
    }
}
