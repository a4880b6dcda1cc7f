//! A seat this node holds: its permit, its claim in [`LiveSeats`](crate::live_seats), and once
//! committed, the participant row.
//!
//! Leaving is structural. [`Membership::leave`] is the one exit every session takes; if a
//! session is torn down without reaching it (its task cancelled or panicking), `Drop` runs the
//! same cleanup on the runtime. Either way the row is removed and the permit returned exactly
//! once, because both paths take the seat out of the `Option` first.
//!
//! Leaving always completes: a row that cannot be removed because the database is away is
//! retried until it is, and the permit and the claim are held until then, so the seat is
//! neither given to someone else while the database still counts it nor forgotten.

use std::sync::Arc;
use std::time::Duration;

use roomgate_admission::SeatGuard;
use roomgate_domain::{RoomId, UserId, UserRoomKey};
use roomgate_persistence::DepartureReason;
use tracing::Instrument as _;

use crate::hub::Frame;
use crate::live_seats::SeatClaim;
use crate::session::frames::{PresenceEvent, presence_text};
use crate::state::AppState;

/// The first wait before removing a row is tried again; it doubles up to the next constant.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The longest wait between two tries: once the database answers again, every departure it
/// missed is written within about this long (plus the pool's reconnection).
const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);

/// A confirmed seat: the permit and this node's claim on it, from the ticket's confirmation until
/// the membership row is known to be gone.
#[derive(Debug)]
pub struct ClaimedSeat {
    guard: SeatGuard,
    _claim: SeatClaim,
}

impl ClaimedSeat {
    /// Claims `guard`'s seat for this node. Call before anything is written for it.
    pub fn claim(state: &AppState, guard: SeatGuard) -> Self {
        let claim = state.live_seats.claim(guard.key().clone());
        Self {
            guard,
            _claim: claim,
        }
    }

    pub fn key(&self) -> &UserRoomKey {
        self.guard.key()
    }
}

/// Undoes a join whose outcome is unknown (the connection broke around its commit, say): the
/// row it may have written is removed, retrying until the database answers, and only then are
/// the permit and the claim given back. No one was told of this member, so no one is told it
/// left.
pub async fn undo_join(state: Arc<AppState>, seat: ClaimedSeat) {
    let key = seat.key().clone();
    let span = span(&key.room, &key.user);
    async move {
        if remove_row(&state, &key.room, &key.user, DepartureReason::Disconnected)
            .await
            .is_some()
        {
            tracing::info!("removed the row of a join that failed");
        }
        drop(seat);
    }
    .instrument(span)
    .await;
}

/// The span of one session, carrying its room and user so that log lines inside need not.
/// A root span: a session's work, and any cleanup spawned for it, belongs to no request.
pub(crate) fn span(room: &RoomId, user: &UserId) -> tracing::Span {
    tracing::info_span!(parent: None, "session", room = %room, user = %user)
}

#[derive(Debug)]
pub struct Membership {
    state: Arc<AppState>,
    room: RoomId,
    user: UserId,
    seat: Option<ClaimedSeat>,
}

impl Membership {
    pub fn new(state: Arc<AppState>, seat: ClaimedSeat) -> Self {
        state.metrics.ws_sessions.inc();
        Self {
            room: seat.key().room.clone(),
            user: seat.key().user.clone(),
            state,
            seat: Some(seat),
        }
    }

    pub fn room(&self) -> &RoomId {
        &self.room
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Removes the membership, recording why, and tells the room. Call once the session has
    /// stopped reading.
    pub async fn leave(mut self, reason: DepartureReason) {
        if let Some(seat) = self.seat.take() {
            leave_room(
                Arc::clone(&self.state),
                self.room.clone(),
                self.user.clone(),
                seat,
                reason,
            )
            .await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let Some(seat) = self.seat.take() else {
            return;
        };
        // A session torn down without reaching `leave` lost its connection along the way.
        let cleanup = leave_room(
            Arc::clone(&self.state),
            self.room.clone(),
            self.user.clone(),
            seat,
            DepartureReason::Disconnected,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(cleanup.instrument(span(&self.room, &self.user)));
            }
            Err(_) => {
                // No runtime left (the process is ending): the permit goes back as the future
                // holding the seat is dropped, and the row is reclaimed with this node.
                tracing::warn!(room = %self.room, user = %self.user, "membership dropped without a runtime");
            }
        }
    }
}

async fn leave_room(
    state: Arc<AppState>,
    room: RoomId,
    user: UserId,
    seat: ClaimedSeat,
    reason: DepartureReason,
) {
    let removed = remove_row(&state, &room, &user, reason).await;
    // The permit goes back only after the row is gone, so that a new joiner can never find a
    // free permit while the database still counts this member.
    drop(seat);
    state.metrics.ws_sessions.dec();
    // Nothing to announce when the row was already gone: whoever removed it (the reaper of a
    // node whose lease ran out, or this node's reconciliation) has announced it.
    if let Some(attending) = removed {
        announce_departure(&state, &room, &user, attending);
    }
}

/// Tells `room` that `user` left and how many remain.
pub fn announce_departure(state: &AppState, room: &RoomId, user: &UserId, attending: u32) {
    let frame = presence_text(PresenceEvent::Left, user.as_str(), attending);
    state.hub.publish(room, Frame::from(frame));
}

/// Removes `user`'s row in `room`, trying until the database takes it. The attendance after it
/// when a row was removed, `None` when there was none.
async fn remove_row(
    state: &AppState,
    room: &RoomId,
    user: &UserId,
    reason: DepartureReason,
) -> Option<u32> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut failures: u32 = 0;
    loop {
        match state.db.leave(room, user, state.node, reason).await {
            Ok(removed) => {
                if failures > 0 {
                    tracing::info!(failures, "left the room once the database answered again");
                }
                return removed;
            }
            Err(error) => {
                failures += 1;
                // One line when it starts and then every few seconds, not one per try.
                if failures == 1 || failures % 20 == 0 {
                    tracing::warn!(%error, failures, "leaving the room failed; retrying until the database answers");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}
