//! The waiting line's public face: what a reservation that may wait gets back, the place a
//! waiting socket holds, and how that socket learns that its place moved.
//!
//! A place in line is a seat state (`SeatState::Waiting`) of the room's store, so one user has
//! one of a seat or a place, never both. Every seat freed while someone waits (a member leaving,
//! a reservation cancelled or expired, a join refused after a hand-over) is handed to the head of
//! the line in the same atomic step that frees it: the permit never returns to the pool, so no
//! newcomer can take it first. The head's seat is an ordinary reservation on the place's own
//! ticket; its waiting socket, woken through [`LineWatch`], confirms it and becomes a member's
//! session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use roomgate_domain::{RoomId, SessionId, Ticket, Timestamp, UserId, UserRoomKey};
use tokio::sync::watch;

use crate::registry::{MemoryPlace, Reservation};
use crate::seat::SeatGuard;

/// The answer to a reservation that may wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A seat was free for this user (or the user's live reservation, unchanged).
    Seat(Reservation),
    /// No seat was free: a place at the back of the line (or the user's place, unchanged).
    InLine(Place),
}

/// A place in a room's waiting line, as phase 1 hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub room: RoomId,
    pub user: UserId,
    /// Opens the waiting socket; single use.
    pub ticket: Ticket,
    /// By when the socket must be open; once it is, the place lives as long as the socket.
    pub expires_at: Timestamp,
    /// 1 for the head of the line.
    pub position: u32,
    /// False when the user's existing place was handed back unchanged.
    pub fresh: bool,
}

/// What a WebSocket's ticket turned out to be.
#[derive(Debug)]
pub enum Attached {
    /// A reservation (possibly a seat already handed over from the line): now a joined seat.
    Seat(SeatGuard),
    /// A place in line, now tied to this socket.
    Waiting(WaitGuard),
}

/// Where a waiting socket's place stands.
#[derive(Debug)]
pub enum PlaceStatus {
    /// Still waiting. `eta_ms` is `None` until the room has seen a departure.
    Waiting { position: u32, eta_ms: Option<u64> },
    /// A seat was handed to this place and is now joined by the waiting socket's session.
    Seat(SeatGuard),
    /// The place is gone (given up with `DELETE …/reservations/me`, or reclaimed).
    Gone,
}

/// Gives a place in line back to the store that issued it. Implemented by shared stores whose
/// removal is asynchronous: they must not block in `leave_line` (spawn, or queue the work).
pub trait LineLeave: Send + Sync + 'static {
    fn leave_line(&self, key: &UserRoomKey, session: SessionId);
}

pub(crate) enum Leaver {
    Memory(MemoryPlace),
    Shared(Arc<dyn LineLeave>),
}

/// Proof that `key` holds an attached place in line for `session`.
///
/// Dropping the guard gives the place up (everyone behind moves up), whatever way the waiting
/// socket ended, exactly once. [`WaitGuard::seated`] defuses it once the place became a seat.
#[must_use = "dropping the guard gives the place up at once"]
pub struct WaitGuard {
    key: UserRoomKey,
    session: SessionId,
    ticket: Ticket,
    taken_at: Timestamp,
    leaver: Option<Leaver>,
}

impl WaitGuard {
    pub(crate) fn new(
        key: UserRoomKey,
        session: SessionId,
        ticket: Ticket,
        taken_at: Timestamp,
        leaver: Leaver,
    ) -> Self {
        Self {
            key,
            session,
            ticket,
            taken_at,
            leaver: Some(leaver),
        }
    }

    /// A guard for a place held by a store outside this crate.
    pub fn shared(
        key: UserRoomKey,
        session: SessionId,
        ticket: Ticket,
        taken_at: Timestamp,
        leaver: Arc<dyn LineLeave>,
    ) -> Self {
        Self::new(key, session, ticket, taken_at, Leaver::Shared(leaver))
    }

    pub fn key(&self) -> &UserRoomKey {
        &self.key
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// When the place was taken (the store's clock), for the time spent waiting.
    pub fn taken_at(&self) -> Timestamp {
        self.taken_at
    }

    /// The place became the seat `_seat` holds: nothing is left to give up.
    pub fn seated(mut self, _seat: &SeatGuard) {
        self.leaver = None;
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        match self.leaver.take() {
            Some(Leaver::Memory(place)) => place.leave(&self.key, self.session),
            Some(Leaver::Shared(store)) => store.leave_line(&self.key, self.session),
            None => {}
        }
    }
}

impl fmt::Debug for WaitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGuard")
            .field("key", &self.key)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Wakes a waiting socket when its room's line may have moved (someone joined or left it, a seat
/// was handed over). A wake-up is a hint to look again, never the news itself, so a lost one
/// only delays: waiters also look again every [`LINE_RECHECK`].
#[derive(Debug)]
pub struct LineWatch {
    changes: watch::Receiver<u64>,
}

/// How often a waiting socket looks at its place without being woken; bounds the delay of a
/// hand-over whose wake-up was lost (a Redis subscription reconnecting, say).
pub const LINE_RECHECK: Duration = Duration::from_millis(250);

impl LineWatch {
    pub(crate) fn new(changes: watch::Receiver<u64>) -> Self {
        Self { changes }
    }

    /// Resolves at the next change of the line, or after [`LINE_RECHECK`].
    pub async fn changed(&mut self) {
        let _ = tokio::time::timeout(LINE_RECHECK, self.changes.changed()).await;
    }
}

/// The senders behind [`LineWatch`]es, one per room that has a watcher.
#[derive(Debug, Default)]
pub(crate) struct LineSignal {
    sender: std::sync::OnceLock<watch::Sender<u64>>,
}

impl LineSignal {
    pub(crate) fn watch(&self) -> LineWatch {
        LineWatch::new(
            self.sender
                .get_or_init(|| watch::Sender::new(0))
                .subscribe(),
        )
    }

    /// Wakes every watcher; free when no one ever watched.
    pub(crate) fn notify(&self) {
        if let Some(sender) = self.sender.get() {
            sender.send_modify(|version| *version = version.wrapping_add(1));
        }
    }
}

/// The room's recent rate of departures, for the waiting frames' estimate: an exponentially
/// weighted mean of the gaps between seats being freed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Departures {
    last: Timestamp,
    mean_gap_ms: Option<f64>,
}

/// The weight of the newest gap in the mean.
const GAP_WEIGHT: f64 = 0.2;

impl Departures {
    /// Gaps are measured from `since` (the pool's creation) until a line forms.
    pub(crate) fn new(since: Timestamp) -> Self {
        Self {
            last: since,
            mean_gap_ms: None,
        }
    }

    /// A line formed in a room where none was: the next gap is measured from now, since
    /// departures are only timed while someone waits. The mean learned from earlier lines stays.
    pub(crate) fn line_formed(&mut self, now: Timestamp) {
        self.last = now;
    }

    pub(crate) fn record(&mut self, now: Timestamp) {
        #[allow(clippy::cast_precision_loss)] // gaps are far below 2^52 ms
        let gap = now.millis().saturating_sub(self.last.millis()) as f64;
        self.mean_gap_ms = Some(match self.mean_gap_ms {
            None => gap,
            Some(mean) => mean + GAP_WEIGHT * (gap - mean),
        });
        self.last = self.last.max(now);
    }

    /// The expected wait of the place at `position`.
    pub(crate) fn eta_ms(&self, position: u32) -> Option<u64> {
        eta_from_mean_gap(self.mean_gap_ms, position)
    }
}

/// The expected wait of the place at `position` given the mean gap between departures (`None`
/// until one was seen); shared stores keep the mean themselves and estimate with this too.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn eta_from_mean_gap(mean_gap_ms: Option<f64>, position: u32) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // non-negative, small
    mean_gap_ms
        .filter(|gap| gap.is_finite() && *gap >= 0.0)
        .map(|gap| (gap * f64::from(position)).round() as u64)
}
