//! A committed membership: a participant row in the database plus the seat's permit.
//!
//! Leaving is structural. [`Membership::leave`] is the one exit every session takes; if a
//! session is torn down without reaching it (its task cancelled or panicking), `Drop` runs the
//! same cleanup on the runtime. Either way the row is removed and the permit returned exactly
//! once, because both paths take the seat out of the `Option` first.

use std::sync::Arc;
use std::time::Duration;

use roomgate_admission::SeatGuard;
use roomgate_domain::{RoomId, UserId};

use crate::hub::Frame;
use crate::session::frames::{PresenceEvent, ServerFrame};
use crate::state::AppState;

/// How often removing the row is tried before giving up; a row left behind by a database
/// outage is reclaimed when the node is reaped.
const LEAVE_ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub struct Membership {
    state: Arc<AppState>,
    room: RoomId,
    user: UserId,
    seat: Option<SeatGuard>,
}

impl Membership {
    pub fn new(state: Arc<AppState>, seat: SeatGuard) -> Self {
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

    /// Removes the membership and tells the room. Call once the session has stopped reading.
    pub async fn leave(mut self) {
        if let Some(seat) = self.seat.take() {
            leave_room(
                Arc::clone(&self.state),
                self.room.clone(),
                self.user.clone(),
                seat,
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
        let cleanup = leave_room(
            Arc::clone(&self.state),
            self.room.clone(),
            self.user.clone(),
            seat,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(cleanup);
            }
            Err(_) => {
                // No runtime left (the process is ending): the permit goes back as the future
                // holding the seat is dropped, and the row is reclaimed with this node.
                tracing::warn!(room = %self.room, user = %self.user, "membership dropped without a runtime");
            }
        }
    }
}

async fn leave_room(state: Arc<AppState>, room: RoomId, user: UserId, seat: SeatGuard) {
    let mut delay = Duration::from_millis(50);
    // Whether the room still has to hear of this departure: not when the row was already gone,
    // because whoever removed it (the reaper of a node whose lease ran out) has announced it.
    let mut announce = true;
    for attempt in 1..=LEAVE_ATTEMPTS {
        match state.db.leave(&room, &user).await {
            Ok(removed) => {
                announce = removed;
                break;
            }
            Err(error) if attempt < LEAVE_ATTEMPTS => {
                tracing::warn!(%room, %user, %error, attempt, "leaving the room failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(error) => {
                tracing::error!(%room, %user, %error, "leaving the room failed; the row stays until this node is reaped");
            }
        }
    }
    // The permit goes back only after the row is gone, so that a new joiner can never find a
    // free permit while the database still counts this member.
    drop(seat);
    state.metrics.ws_sessions.dec();
    if !announce {
        return;
    }
    let attending = match state.db.get_room(&room).await {
        Ok(Some(record)) => record.attending,
        Ok(None) => 0,
        Err(error) => {
            tracing::warn!(%room, %error, "could not read attendance for the presence frame");
            return;
        }
    };
    let frame = ServerFrame::Presence {
        event: PresenceEvent::Left,
        user_id: user.as_str(),
        attending,
    };
    state.hub.publish(&room, Frame::from(frame.to_text()));
}
