//! One room's permit pool: a counting semaphore plus the seat of every user holding a permit.
//!
//! The free-permit count is an atomic taken by compare-and-swap, like an async semaphore's, so a
//! full room refuses without taking any lock. The seats sit behind one short mutex. Everything a
//! cycle touches (the reference count of the pool's `Arc`, the permit count, the lock and the
//! seat map's header) is kept small and together, so that two cores working on one hot room pass
//! as few cache lines back and forth as possible. (Splitting the seats over several locks by
//! user was measured: it made every cycle slower, on one room and on many; see
//! docs/BENCHMARKS.md.)
//!
//! Invariant: every seat holds exactly one permit, taken before the seat is inserted and given
//! back after it is removed, so `reserved + joined <= capacity` at every instant.
//!
//! The waiting line lives here too, under the same lock as the seats: a freed seat is handed to
//! the head of the line (its permit moves from the old seat to the head's, never through the
//! free count) before the lock is let go, so while anyone waits the free count stays at zero and
//! no newcomer can take that seat first. Permits are returned to the free count only with the
//! seats locked, for the same reason.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use parking_lot::{Mutex, MutexGuard};
use roomgate_domain::{
    AdmissionError, Effect, RoomId, SeatEvent, SeatState, SessionId, Ticket, Timestamp, UserId,
    UserRoomKey, Wait, seat_step,
};

use crate::clock::Clock;
use crate::line::{Departures, LineSignal, LineWatch};
use crate::registry::RoomCounts;
use crate::shards::FastMap;

#[derive(Debug)]
struct Seats {
    /// Only reserved, joined and waiting seats are kept; a seat that is gone is removed.
    by_user: FastMap<UserId, SeatState>,
    reserved: u32,
    joined: u32,
    /// Places in line, first come first; each user here is `SeatState::Waiting` in `by_user`.
    line: VecDeque<LinePlace>,
    departures: Departures,
}

/// One place in line: who, when it was taken, and how long a seat handed to it is held for its
/// socket to confirm.
#[derive(Debug)]
struct LinePlace {
    user: UserId,
    taken_at: Timestamp,
    hold_ms: u64,
}

/// A place that was just created or found, as the registry reports it.
pub(crate) struct Queued {
    pub(crate) ticket: Ticket,
    pub(crate) expires_at: Timestamp,
    pub(crate) position: u32,
    pub(crate) fresh: bool,
    /// The ticket this place replaced (an expired, unreaped one), to remember as expired.
    pub(crate) replaced: Option<Ticket>,
}

/// What phase 1 got from the pool.
pub(crate) enum Taken {
    Seat(Reserved),
    Place(Queued),
}

/// What a ticket presented on a WebSocket did.
pub(crate) enum AttachedTo {
    /// A reservation, now joined.
    Seat,
    /// A place in line, now tied to the socket; when it was taken.
    Place(Timestamp),
    /// The reservation or place had expired; its permit or place went at once.
    Expired,
    /// A place's ticket shown where only a reservation's is accepted; nothing changed.
    NotASeat,
}

/// Where an attached place stands, as the pool sees it.
pub(crate) enum PlaceNow {
    Waiting {
        position: u32,
        eta_ms: Option<u64>,
    },
    /// A seat was handed to the place and is now joined by its session.
    Seated,
    Gone,
}

/// The tickets of what one reaper pass took from a pool.
pub(crate) struct Expired {
    /// Reservations past their TTL. A seat handed to an attached place is a reservation on a
    /// ticket its waiting socket already used.
    pub(crate) reservations: Vec<Ticket>,
    /// Places whose socket never opened, past their TTL.
    pub(crate) places: Vec<Ticket>,
}

/// The outcome of a reservation attempt that was not refused.
pub(crate) struct Reserved {
    pub(crate) ticket: Ticket,
    pub(crate) expires_at: Timestamp,
    pub(crate) fresh: bool,
    /// The ticket this reservation replaced (an expired, unreaped one), to remember as expired.
    pub(crate) replaced: Option<Ticket>,
}

#[derive(Debug)]
pub(crate) struct RoomPool {
    available: AtomicU32,
    capacity: u32,
    room: RoomId,
    clock: Arc<dyn Clock>,
    /// Set, with the seats locked, when the pool is evicted; whoever then locks the seats and
    /// sees it goes back to the registry for a fresh pool.
    retired: AtomicBool,
    seats: Mutex<Seats>,
    /// Owned by the reaper: when it first found the pool empty.
    idle_since: Mutex<Option<Timestamp>>,
    /// Wakes the room's waiting sockets when the line moves.
    line_signal: LineSignal,
    /// Tickets of unopened places given up when a seat was handed past them (expired heads),
    /// until the reaper tells the registry to remember them as expired. Rarely touched, so kept
    /// out of the seats a cycle works on; locked only after them.
    given_up: Mutex<Vec<Ticket>>,
}

impl RoomPool {
    /// A pool for `capacity` seats of which `occupied` are already taken elsewhere.
    pub(crate) fn new(room: RoomId, capacity: u32, occupied: u32, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            clock,
            available: AtomicU32::new(capacity.saturating_sub(occupied)),
            capacity,
            room,
            retired: AtomicBool::new(false),
            seats: Mutex::new(Seats {
                by_user: FastMap::default(),
                reserved: 0,
                joined: 0,
                line: VecDeque::new(),
                departures: Departures::new(now),
            }),
            idle_since: Mutex::new(None),
            line_signal: LineSignal::default(),
            given_up: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn watch_line(&self) -> LineWatch {
        self.line_signal.watch()
    }

    fn seats(&self) -> MutexGuard<'_, Seats> {
        self.seats.lock()
    }

    fn try_take_permit(&self) -> bool {
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                free.checked_sub(1)
            })
            .is_ok()
    }

    /// Call with the seats locked (see the module's note on the line).
    fn return_permits(&self, count: u32) {
        if count > 0 {
            self.available.fetch_add(count, Ordering::AcqRel);
        }
    }

    /// A seat's permit was let go (the seat is already out of `by_user` and its count). With
    /// the seats locked: hands the permit to the head of the line, or returns it to the pool.
    ///
    /// The clock is read only when someone waits, so a release in a room without a line costs
    /// what it did before there were lines. For the same reason departures are timed only
    /// while someone waits: those are the gaps a waiter's estimate is about.
    fn seat_freed(&self, seats: &mut Seats, now: impl FnOnce() -> Timestamp) {
        if seats.line.is_empty() {
            self.return_permits(1);
            return;
        }
        let now = now();
        seats.departures.record(now);
        while let Some(head) = seats.line.pop_front() {
            let key = UserRoomKey::new(head.user, self.room.clone());
            let Some(state) = seats.by_user.get_mut(&key.user) else {
                continue;
            };
            // A place whose socket never opened in time is not handed a seat: it is given up
            // here, as the reaper would, and the next in line is looked at.
            if seat_step(&key, state, SeatEvent::Expire { now }).is_ok() {
                if let Some(SeatState::Waiting { ticket, .. }) = seats.by_user.remove(&key.user) {
                    self.given_up.lock().push(ticket);
                }
                continue;
            }
            let attached = matches!(
                state,
                SeatState::Waiting {
                    attached: Some(_),
                    ..
                }
            );
            let expires_at = match state {
                // The socket is there to confirm at once; the hold only bounds a stuck one.
                SeatState::Waiting { .. } if attached => now.plus_millis(head.hold_ms),
                // Not opened yet: the seat is held for as long as the place would have been.
                SeatState::Waiting { expires_at, .. } => *expires_at,
                _ => continue,
            };
            if let Ok(step) = seat_step(&key, state, SeatEvent::Promote { expires_at }) {
                *state = step.next;
                seats.reserved += 1;
                self.line_signal.notify();
                return;
            }
        }
        self.return_permits(1);
    }

    fn position_of(seats: &Seats, user: &UserId) -> Option<u32> {
        seats
            .line
            .iter()
            .position(|place| &place.user == user)
            .map(|index| u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    fn leave_line_at(&self, seats: &mut Seats, user: &UserId) {
        if let Some(index) = seats.line.iter().position(|place| &place.user == user) {
            seats.line.remove(index);
            self.line_signal.notify();
        }
    }

    /// Phase 1 for `key`; `None` means the pool was retired under us and the caller must retry.
    /// With `wait`, a user who finds no free seat takes a place in line (`hold_ms` is how long a
    /// seat handed to it is then held for its socket).
    pub(crate) fn reserve(
        &self,
        key: &UserRoomKey,
        expires_at: Timestamp,
        now: Timestamp,
        wait: Option<(u32, u64)>,
    ) -> Option<Result<Taken, AdmissionError>> {
        let mut guard = self.seats();
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let seats = &mut *guard;
        let line_len = seats.line.len();
        let seat = seats.by_user.entry(key.user.clone());
        let current = match &seat {
            Entry::Occupied(held) => held.get().clone(),
            Entry::Vacant(_) => SeatState::None,
        };
        // Only a user without a seat needs a permit; take it first so that the state machine
        // decides on a permit that is really ours. While anyone waits there is none to take for
        // a newcomer (the free count is zero then anyway; the check says why).
        let took = matches!(current, SeatState::None | SeatState::Gone)
            && line_len == 0
            && self.try_take_permit();
        let event = SeatEvent::Reserve {
            ticket: Ticket::generate(),
            expires_at,
            now,
            free_permits: u32::from(took),
            capacity: self.capacity,
            wait: match wait {
                None => Wait::No,
                Some((max_waiting, _)) => Wait::Yes {
                    line_full: line_len >= max_waiting as usize,
                    max_waiting,
                },
            },
        };
        let step = match seat_step(key, &current, event) {
            Ok(step) => step,
            Err(refusal) => {
                self.return_permits(u32::from(took));
                return Some(Err(refusal));
            }
        };
        if took && !step.effects.contains(&Effect::TakePermit) {
            self.return_permits(1);
        }
        let fresh = step.next != current;
        let replaced = match &current {
            SeatState::Reserved { ticket: old, .. } | SeatState::Waiting { ticket: old, .. }
                if fresh =>
            {
                Some(old.clone())
            }
            _ => None,
        };
        let taken = match &step.next {
            SeatState::Reserved {
                ticket,
                expires_at: until,
            } => Taken::Seat(Reserved {
                ticket: ticket.clone(),
                expires_at: *until,
                fresh,
                replaced,
            }),
            SeatState::Waiting {
                ticket,
                expires_at: until,
                ..
            } => Taken::Place(Queued {
                ticket: ticket.clone(),
                expires_at: *until,
                position: 0, // filled in below, once the place is in line
                fresh,
                replaced,
            }),
            _ => {
                return Some(Err(AdmissionError::IllegalTransition {
                    state: "reserved",
                    event: "reserve",
                }));
            }
        };
        let joins_line = step.effects.contains(&Effect::JoinLine);
        match seat {
            Entry::Occupied(mut held) => *held.get_mut() = step.next,
            Entry::Vacant(slot) => {
                let waiting = step.next.is_waiting();
                slot.insert(step.next);
                if !waiting {
                    seats.reserved += 1;
                }
            }
        }
        if joins_line {
            if seats.line.is_empty() {
                seats.departures.line_formed(now);
            }
            seats.line.push_back(LinePlace {
                user: key.user.clone(),
                taken_at: now,
                hold_ms: wait.map_or(0, |(_, hold)| hold),
            });
            // No wake-up: a place joining at the back moves no one's position.
        }
        Some(Ok(match taken {
            Taken::Place(mut place) => {
                place.position = Self::position_of(seats, &key.user).unwrap_or(0);
                Taken::Place(place)
            }
            seat => seat,
        }))
    }

    /// Phase 2 for the seat or place of `key`, presenting `ticket`: a reservation is joined, a
    /// place in line is tied to the socket's `session`.
    /// Without `places`, a place's ticket is refused (`NotASeat`) and nothing changes.
    pub(crate) fn attach(
        &self,
        key: &UserRoomKey,
        ticket: &Ticket,
        session: SessionId,
        now: Timestamp,
        places: bool,
    ) -> Result<AttachedTo, AdmissionError> {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let Some(state) = seats.by_user.get_mut(&key.user) else {
            return self.given_up_or_invalid(ticket);
        };
        if !places && matches!(state, SeatState::Waiting { ticket: held, .. } if held == ticket) {
            return Ok(AttachedTo::NotASeat);
        }
        let event = if state.is_waiting() {
            SeatEvent::Attach {
                ticket,
                session,
                now,
            }
        } else {
            SeatEvent::Confirm {
                ticket,
                session,
                now,
            }
        };
        match seat_step(key, state, event) {
            Ok(step) if step.next.is_waiting() => {
                *state = step.next;
                let taken_at = seats
                    .line
                    .iter()
                    .find(|place| place.user == key.user)
                    .map_or(now, |place| place.taken_at);
                Ok(AttachedTo::Place(taken_at))
            }
            Ok(step) => {
                *state = step.next;
                seats.reserved -= 1;
                seats.joined += 1;
                Ok(AttachedTo::Seat)
            }
            Err(AdmissionError::TicketExpired) => {
                if seat_step(key, state, SeatEvent::Expire { now }).is_ok() {
                    let was_waiting = state.is_waiting();
                    seats.by_user.remove(&key.user);
                    if was_waiting {
                        self.leave_line_at(seats, &key.user);
                    } else {
                        seats.reserved -= 1;
                        self.seat_freed(seats, || now);
                    }
                }
                Ok(AttachedTo::Expired)
            }
            // Not the ticket of the user's seat or place now: perhaps that of an older place.
            Err(AdmissionError::InvalidTicket) => self.given_up_or_invalid(ticket),
            Err(other) => Err(other),
        }
    }

    /// A place given up as expired when a seat was handed past it: say so, as the reaper's
    /// expiry would, whatever its user holds now.
    fn given_up_or_invalid(&self, ticket: &Ticket) -> Result<AttachedTo, AdmissionError> {
        let mut given_up = self.given_up.lock();
        if let Some(index) = given_up.iter().position(|old| old == ticket) {
            given_up.swap_remove(index);
            return Ok(AttachedTo::Expired);
        }
        Err(AdmissionError::InvalidTicket)
    }

    /// Where the place of `key`, attached to `session`, stands; a seat handed to it is joined
    /// by `session` on the spot.
    pub(crate) fn place_now(
        &self,
        key: &UserRoomKey,
        ticket: &Ticket,
        session: SessionId,
        now: Timestamp,
    ) -> PlaceNow {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let Some(state) = seats.by_user.get_mut(&key.user) else {
            return PlaceNow::Gone;
        };
        match state {
            SeatState::Waiting {
                attached: Some(held),
                ..
            } if *held == session => {
                let position = Self::position_of(seats, &key.user).unwrap_or(1);
                PlaceNow::Waiting {
                    position,
                    eta_ms: seats.departures.eta_ms(position),
                }
            }
            SeatState::Reserved { .. } => {
                let confirm = SeatEvent::Confirm {
                    ticket,
                    session,
                    now,
                };
                match seat_step(key, state, confirm) {
                    Ok(step) => {
                        *state = step.next;
                        seats.reserved -= 1;
                        seats.joined += 1;
                        PlaceNow::Seated
                    }
                    // Not this place's seat (another ticket), or held past its time by a socket
                    // that did not look: the reaper gives such a seat on.
                    Err(_) => PlaceNow::Gone,
                }
            }
            _ => PlaceNow::Gone,
        }
    }

    /// The waiting socket of `key`'s place (attached to `session`) ended: the place is given up.
    pub(crate) fn leave_line(&self, key: &UserRoomKey, session: SessionId) {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let Entry::Occupied(seat) = seats.by_user.entry(key.user.clone()) else {
            return;
        };
        if seat_step(key, seat.get(), SeatEvent::LeaveLine { session }).is_ok() {
            seat.remove();
            self.leave_line_at(seats, &key.user);
        }
    }

    /// Gives back the unconfirmed reservation or the place in line of `key`; returns its ticket.
    pub(crate) fn cancel(
        &self,
        key: &UserRoomKey,
        now: Timestamp,
    ) -> Result<Option<Ticket>, AdmissionError> {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let current = seats
            .by_user
            .get(&key.user)
            .cloned()
            .unwrap_or(SeatState::None);
        seat_step(key, &current, SeatEvent::Cancel)?;
        seats.by_user.remove(&key.user);
        match current {
            SeatState::Reserved { ticket, .. } => {
                seats.reserved -= 1;
                self.seat_freed(seats, || now);
                Ok(Some(ticket))
            }
            SeatState::Waiting { ticket, .. } => {
                self.leave_line_at(seats, &key.user);
                Ok(Some(ticket))
            }
            _ => Ok(None),
        }
    }

    /// Ends the joined seat of `key` if `session` still holds it.
    pub(crate) fn release(&self, key: &UserRoomKey, session: SessionId) {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let Entry::Occupied(seat) = seats.by_user.entry(key.user.clone()) else {
            return;
        };
        if seat_step(key, seat.get(), SeatEvent::Disconnect { session }).is_ok() {
            seat.remove();
            seats.joined -= 1;
            self.seat_freed(seats, || self.clock.now());
        }
    }

    pub(crate) fn counts(&self) -> RoomCounts {
        let seats = self.seats();
        RoomCounts {
            reserved: seats.reserved,
            joined: seats.joined,
            waiting: u32::try_from(seats.line.len()).unwrap_or(u32::MAX),
        }
    }

    /// Removes reservations and unopened places past their TTL, returning their tickets. Each
    /// seat freed so goes to the head of the line, if anyone waits.
    pub(crate) fn reap_expired(&self, now: Timestamp) -> Expired {
        let mut expired = Vec::new();
        let mut guard = self.seats();
        let seats = &mut *guard;
        let mut gone_places = Vec::new();
        let mut expired_places = Vec::new();
        let room = &self.room;
        seats.by_user.retain(|user, state| {
            let key = UserRoomKey::new(user.clone(), room.clone());
            match (seat_step(&key, state, SeatEvent::Expire { now }), &*state) {
                (Ok(_), SeatState::Reserved { ticket, .. }) => {
                    expired.push(ticket.clone());
                    false
                }
                (Ok(_), SeatState::Waiting { ticket, .. }) => {
                    expired_places.push(ticket.clone());
                    gone_places.push(user.clone());
                    false
                }
                _ => true,
            }
        });
        for user in &gone_places {
            self.leave_line_at(seats, user);
        }
        for _ in 0..expired.len() {
            seats.reserved -= 1;
            self.seat_freed(seats, || now);
        }
        Expired {
            reservations: expired,
            places: expired_places,
        }
    }

    /// The tickets of places given up since the last call when a seat was handed past them.
    pub(crate) fn take_given_up(&self) -> Vec<Ticket> {
        std::mem::take(&mut *self.given_up.lock())
    }

    /// Retires the pool once the reaper has found it empty on passes at least `idle_ttl_ms`
    /// apart (a seat taken and given back between two passes is not noticed, which only means
    /// an empty pool is evicted a little early). The caller then drops it from the registry;
    /// it holds the registry shard's lock, so no new caller can fetch the pool meanwhile.
    pub(crate) fn retire_if_idle(&self, now: Timestamp, idle_ttl_ms: u64) -> bool {
        let mut idle_since = self.idle_since.lock();
        let seats = self.seats();
        if !seats.by_user.is_empty() {
            *idle_since = None;
            return false;
        }
        match *idle_since {
            None => {
                *idle_since = Some(now);
                false
            }
            Some(since) if now.millis().saturating_sub(since.millis()) < idle_ttl_ms => false,
            Some(_) => {
                // The seats are locked: anyone who fetched this pool sees the flag and retries.
                self.retired.store(true, Ordering::Release);
                true
            }
        }
    }
}
