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

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use parking_lot::{Mutex, MutexGuard};
use roomgate_domain::{
    AdmissionError, Effect, SeatEvent, SeatState, SessionId, Ticket, Timestamp, UserRoomKey,
    seat_step,
};

use crate::registry::RoomCounts;
use crate::shards::FastMap;

#[derive(Debug, Default)]
struct Seats {
    /// Only reserved and joined seats are kept; a seat that is gone is removed.
    by_user: FastMap<roomgate_domain::UserId, SeatState>,
    reserved: u32,
    joined: u32,
}

/// The outcome of a reservation attempt that was not refused.
pub(crate) struct Reserved {
    pub(crate) ticket: Ticket,
    pub(crate) expires_at: Timestamp,
    pub(crate) fresh: bool,
    /// The ticket this reservation replaced (an expired, unreaped one), to remember as expired.
    pub(crate) replaced: Option<Ticket>,
}

/// What confirming a ticket did to its seat.
pub(crate) enum Confirmed {
    Joined,
    /// The reservation had expired; its permit went back at once.
    Expired,
}

#[derive(Debug)]
pub(crate) struct RoomPool {
    available: AtomicU32,
    capacity: u32,
    /// Set, with the seats locked, when the pool is evicted; whoever then locks the seats and
    /// sees it goes back to the registry for a fresh pool.
    retired: AtomicBool,
    seats: Mutex<Seats>,
    /// Owned by the reaper: when it first found the pool empty.
    idle_since: Mutex<Option<Timestamp>>,
}

impl RoomPool {
    /// A pool for `capacity` seats of which `occupied` are already taken elsewhere.
    pub(crate) fn new(capacity: u32, occupied: u32) -> Self {
        Self {
            available: AtomicU32::new(capacity.saturating_sub(occupied)),
            capacity,
            retired: AtomicBool::new(false),
            seats: Mutex::new(Seats::default()),
            idle_since: Mutex::new(None),
        }
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

    fn return_permits(&self, count: u32) {
        if count > 0 {
            self.available.fetch_add(count, Ordering::AcqRel);
        }
    }

    /// Phase 1 for `key`; `None` means the pool was retired under us and the caller must retry.
    pub(crate) fn reserve(
        &self,
        key: &UserRoomKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Option<Result<Reserved, AdmissionError>> {
        let mut guard = self.seats();
        if self.retired.load(Ordering::Acquire) {
            return None;
        }
        let seats = &mut *guard;
        let seat = seats.by_user.entry(key.user.clone());
        let current = match &seat {
            Entry::Occupied(held) => held.get().clone(),
            Entry::Vacant(_) => SeatState::None,
        };
        // Only a user without a seat needs a permit; take it first so that the state machine
        // decides on a permit that is really ours.
        let took = matches!(current, SeatState::None | SeatState::Gone) && self.try_take_permit();
        let event = SeatEvent::Reserve {
            ticket: Ticket::generate(),
            expires_at,
            now,
            free_permits: u32::from(took),
            capacity: self.capacity,
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
        let SeatState::Reserved {
            ticket,
            expires_at: until,
        } = &step.next
        else {
            return Some(Err(AdmissionError::IllegalTransition {
                state: "reserved",
                event: "reserve",
            }));
        };
        let fresh = step.next != current;
        let reserved = Reserved {
            ticket: ticket.clone(),
            expires_at: *until,
            fresh,
            replaced: match current {
                SeatState::Reserved { ticket: old, .. } if fresh => Some(old),
                _ => None,
            },
        };
        match seat {
            Entry::Occupied(mut held) => *held.get_mut() = step.next,
            Entry::Vacant(slot) => {
                slot.insert(step.next);
                seats.reserved += 1;
            }
        }
        Some(Ok(reserved))
    }

    /// Phase 2 for the seat of `key`, presenting `ticket`.
    pub(crate) fn confirm(
        &self,
        key: &UserRoomKey,
        ticket: &Ticket,
        session: SessionId,
        now: Timestamp,
    ) -> Result<Confirmed, AdmissionError> {
        let mut guard = self.seats();
        let seats = &mut *guard;
        let Some(state) = seats.by_user.get_mut(&key.user) else {
            return Err(AdmissionError::InvalidTicket);
        };
        let event = SeatEvent::Confirm {
            ticket,
            session,
            now,
        };
        match seat_step(key, state, event) {
            Ok(step) => {
                *state = step.next;
                seats.reserved -= 1;
                seats.joined += 1;
                Ok(Confirmed::Joined)
            }
            Err(AdmissionError::TicketExpired) => {
                if seat_step(key, state, SeatEvent::Expire { now }).is_ok() {
                    seats.by_user.remove(&key.user);
                    seats.reserved -= 1;
                    drop(guard);
                    self.return_permits(1);
                }
                Ok(Confirmed::Expired)
            }
            Err(other) => Err(other),
        }
    }

    /// Gives back the unconfirmed reservation of `key`; returns its ticket.
    pub(crate) fn cancel(&self, key: &UserRoomKey) -> Result<Option<Ticket>, AdmissionError> {
        let mut seats = self.seats();
        let current = seats
            .by_user
            .get(&key.user)
            .cloned()
            .unwrap_or(SeatState::None);
        seat_step(key, &current, SeatEvent::Cancel)?;
        seats.by_user.remove(&key.user);
        seats.reserved -= 1;
        drop(seats);
        self.return_permits(1);
        Ok(match current {
            SeatState::Reserved { ticket, .. } => Some(ticket),
            _ => None,
        })
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
            drop(guard);
            self.return_permits(1);
        }
    }

    pub(crate) fn counts(&self) -> RoomCounts {
        let seats = self.seats();
        RoomCounts {
            reserved: seats.reserved,
            joined: seats.joined,
        }
    }

    /// Removes reservations past their TTL, returning their tickets.
    pub(crate) fn reap_expired(
        &self,
        room: &roomgate_domain::RoomId,
        now: Timestamp,
    ) -> Vec<Ticket> {
        let mut expired = Vec::new();
        let mut guard = self.seats();
        let seats = &mut *guard;
        seats.by_user.retain(|user, state| {
            let key = UserRoomKey::new(user.clone(), room.clone());
            match (seat_step(&key, state, SeatEvent::Expire { now }), state) {
                (Ok(_), SeatState::Reserved { ticket, .. }) => {
                    expired.push(ticket.clone());
                    false
                }
                _ => true,
            }
        });
        let reclaimed = expired.len() as u32;
        seats.reserved -= reclaimed;
        drop(guard);
        self.return_permits(reclaimed);
        expired
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
