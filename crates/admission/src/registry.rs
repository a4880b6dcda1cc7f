//! `SemaphoreRegistry`: the in-memory permit store.
//!
//! Each room has a pool (a counting semaphore with a seat per user) created on first use. Tickets
//! are indexed separately so that phase 2 finds its seat from the ticket alone. Locks are sharded
//! by key and held only for a few map operations; no lock is held across an `.await` (there are
//! none here) and no two pool locks are ever held at once.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roomgate_domain::{
    AdmissionError, Capacity, Effect, RoomId, SeatEvent, SeatState, SessionId, Ticket, Timestamp,
    UserId, UserRoomKey, seat_step,
};

use crate::clock::{Clock, ttl_millis};
use crate::seat::{Releaser, SeatGuard};
use crate::shards::{FastMap, ShardedMap};

/// Tunables of the in-memory registry.
#[derive(Clone, Copy, Debug)]
pub struct RegistrySettings {
    /// How long a pool with no permit held is kept before it is evicted.
    pub idle_pool_ttl: Duration,
    /// How long an expired ticket is remembered, so that presenting it says "expired" rather
    /// than "unknown".
    pub expired_ticket_memory: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            idle_pool_ttl: Duration::from_secs(60),
            expired_ticket_memory: Duration::from_secs(300),
        }
    }
}

/// Phase 1's request: hold a seat for `user` in `room`.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    pub room: RoomId,
    pub user: UserId,
    pub capacity: Capacity,
    /// Seats already taken outside this store (for example the database's `attending`); only
    /// read when the room's pool is created, and subtracted for that pool's lifetime.
    pub occupied: u32,
    pub ttl: Duration,
}

/// A held seat waiting for its WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub room: RoomId,
    pub user: UserId,
    pub ticket: Ticket,
    pub expires_at: Timestamp,
    /// False when the user's existing live reservation was handed back unchanged.
    pub fresh: bool,
}

/// Permits held in one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomCounts {
    pub reserved: u32,
    pub joined: u32,
}

/// What one reaper pass over the registry reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryReap {
    pub reservations: usize,
    pub tickets_forgotten: usize,
    pub pools_evicted: usize,
}

#[derive(Debug)]
struct Pool {
    capacity: u32,
    occupied_elsewhere: u32,
    /// Only reserved and joined seats are kept; a gone seat is removed.
    seats: FastMap<UserId, SeatState>,
    reserved: u32,
    joined: u32,
    /// Set by the reaper when it first finds the pool empty; cleared by any reservation.
    idle_since: Option<Timestamp>,
    /// Set when the pool is evicted from the map; a caller that fetched it just before retries.
    retired: bool,
}

impl Pool {
    fn free_permits(&self) -> u32 {
        self.capacity
            .saturating_sub(self.occupied_elsewhere)
            .saturating_sub(self.reserved + self.joined)
    }

    fn counts(&self) -> RoomCounts {
        RoomCounts {
            reserved: self.reserved,
            joined: self.joined,
        }
    }
}

type PoolCell = Arc<Mutex<Pool>>;

#[derive(Debug)]
enum TicketEntry {
    Live { key: UserRoomKey, pool: PoolCell },
    Expired { forget_at: Timestamp },
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    settings: RegistrySettings,
    pools: ShardedMap<RoomId, PoolCell>,
    tickets: ShardedMap<Ticket, TicketEntry>,
}

/// The in-memory permit store. Cheap to clone; clones share the same pools.
#[derive(Clone, Debug)]
pub struct SemaphoreRegistry {
    inner: Arc<Inner>,
}

/// What a joined in-memory seat needs to give itself back.
pub(crate) struct MemorySeat {
    pool: PoolCell,
}

impl MemorySeat {
    pub(crate) fn release(&self, key: &UserRoomKey, session: SessionId) {
        let mut guard = self.pool.lock();
        let pool = &mut *guard;
        // One hash of the user for the lookup and the removal.
        let Entry::Occupied(seat) = pool.seats.entry(key.user.clone()) else {
            return;
        };
        if seat_step(key, seat.get(), SeatEvent::Disconnect { session }).is_ok() {
            seat.remove();
            pool.joined -= 1;
        }
    }
}

impl SemaphoreRegistry {
    pub fn new(clock: Arc<dyn Clock>, settings: RegistrySettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                settings,
                pools: ShardedMap::new(),
                tickets: ShardedMap::new(),
            }),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn pool_for(&self, room: &RoomId, capacity: Capacity, occupied: u32) -> PoolCell {
        let mut shard = self.inner.pools.shard(room).lock();
        if let Some(pool) = shard.get(room) {
            return Arc::clone(pool);
        }
        let pool = Arc::new(Mutex::new(Pool {
            capacity: capacity.get(),
            occupied_elsewhere: occupied,
            seats: FastMap::default(),
            reserved: 0,
            joined: 0,
            idle_since: None,
            retired: false,
        }));
        shard.insert(room.clone(), Arc::clone(&pool));
        pool
    }

    fn existing_pool(&self, room: &RoomId) -> Option<PoolCell> {
        self.inner.pools.shard(room).lock().get(room).cloned()
    }

    /// Phase 1: takes a permit for `req.user`, or hands back the user's live reservation.
    pub fn reserve(&self, req: ReserveRequest) -> Result<Reservation, AdmissionError> {
        let key = UserRoomKey::new(req.user, req.room);
        let ttl = ttl_millis(req.ttl);
        loop {
            let cell = self.pool_for(&key.room, req.capacity, req.occupied);
            let mut pool = cell.lock();
            if pool.retired {
                continue;
            }
            let now = self.inner.clock.now();
            let event = SeatEvent::Reserve {
                ticket: Ticket::generate(),
                expires_at: now.plus_millis(ttl),
                now,
                free_permits: pool.free_permits(),
                capacity: pool.capacity,
            };
            pool.idle_since = None;
            // One hash of the user serves both the lookup and the write.
            let Pool {
                seats, reserved, ..
            } = &mut *pool;
            let seat = seats.entry(key.user.clone());
            let current = match &seat {
                Entry::Occupied(held) => held.get().clone(),
                Entry::Vacant(_) => SeatState::None,
            };
            let step = seat_step(&key, &current, event)?;
            let SeatState::Reserved { ticket, expires_at } = &step.next else {
                return Err(AdmissionError::IllegalTransition {
                    state: "reserved",
                    event: "reserve",
                });
            };
            let (ticket, expires_at) = (ticket.clone(), *expires_at);
            let fresh = step.next != current;
            let replaced_ticket = match &current {
                SeatState::Reserved { ticket: old, .. } if fresh => Some(old.clone()),
                _ => None,
            };
            if step.effects.contains(&Effect::TakePermit) {
                *reserved += 1;
            }
            match seat {
                Entry::Occupied(mut held) => *held.get_mut() = step.next,
                Entry::Vacant(slot) => {
                    slot.insert(step.next);
                }
            }
            drop(pool);

            if fresh {
                if let Some(old) = replaced_ticket {
                    self.remember_expired(old, now);
                }
                let entry = TicketEntry::Live {
                    key: key.clone(),
                    pool: cell,
                };
                self.inner
                    .tickets
                    .shard(&ticket)
                    .lock()
                    .insert(ticket.clone(), entry);
            }
            return Ok(Reservation {
                room: key.room,
                user: key.user,
                ticket,
                expires_at,
                fresh,
            });
        }
    }

    /// Phase 2: consumes `ticket` and turns its reservation into a joined seat.
    ///
    /// An expired ticket gives its permit back at once and is remembered as expired for a while,
    /// so that a late client learns why it was refused.
    pub fn confirm(
        &self,
        ticket: &Ticket,
        session: SessionId,
    ) -> Result<SeatGuard, AdmissionError> {
        let entry = self.inner.tickets.shard(ticket).lock().remove(ticket);
        let (key, cell) = match entry {
            None => return Err(AdmissionError::InvalidTicket),
            Some(TicketEntry::Expired { forget_at }) => {
                self.inner
                    .tickets
                    .shard(ticket)
                    .lock()
                    .insert(ticket.clone(), TicketEntry::Expired { forget_at });
                return Err(AdmissionError::TicketExpired);
            }
            Some(TicketEntry::Live { key, pool }) => (key, pool),
        };
        let now = self.inner.clock.now();
        let mut guard = cell.lock();
        let pool = &mut *guard;
        let Some(state) = pool.seats.get_mut(&key.user) else {
            return Err(AdmissionError::InvalidTicket);
        };
        let confirm = SeatEvent::Confirm {
            ticket,
            session,
            now,
        };
        match seat_step(&key, state, confirm) {
            Ok(step) => {
                *state = step.next;
                pool.reserved -= 1;
                pool.joined += 1;
                drop(guard);
                let seat = MemorySeat { pool: cell };
                Ok(SeatGuard::new(key, session, Releaser::Memory(seat)))
            }
            Err(AdmissionError::TicketExpired) => {
                if seat_step(&key, state, SeatEvent::Expire { now }).is_ok() {
                    pool.seats.remove(&key.user);
                    pool.reserved -= 1;
                }
                drop(guard);
                self.remember_expired(ticket.clone(), now);
                Err(AdmissionError::TicketExpired)
            }
            Err(other) => Err(other),
        }
    }

    /// Gives back `user`'s unconfirmed reservation in `room`.
    pub fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), AdmissionError> {
        let key = UserRoomKey::new(user.clone(), room.clone());
        let not_found = || AdmissionError::ReservationNotFound {
            room: room.clone(),
            user: user.clone(),
        };
        let cell = self.existing_pool(room).ok_or_else(not_found)?;
        let mut pool = cell.lock();
        let current = pool.seats.get(user).cloned().unwrap_or(SeatState::None);
        seat_step(&key, &current, SeatEvent::Cancel)?;
        pool.seats.remove(user);
        pool.reserved -= 1;
        drop(pool);
        if let SeatState::Reserved { ticket, .. } = current {
            self.inner.tickets.shard(&ticket).lock().remove(&ticket);
        }
        Ok(())
    }

    /// Permits held in `room`; zero for a room without a pool.
    pub fn counts(&self, room: &RoomId) -> RoomCounts {
        self.existing_pool(room)
            .map(|cell| cell.lock().counts())
            .unwrap_or_default()
    }

    /// Permits held across all rooms. Walks every pool: meant for metrics and tests, not for
    /// the admission path (a shared counter there would make every core contend on it).
    pub fn permits_held(&self) -> u64 {
        let mut held = 0;
        for shard in self.inner.pools.shards() {
            for cell in shard.lock().values() {
                let pool = cell.lock();
                held += u64::from(pool.reserved + pool.joined);
            }
        }
        held
    }

    /// Number of room pools currently in memory.
    pub fn pool_count(&self) -> usize {
        self.inner.pools.len()
    }

    /// Number of tickets remembered (live or recently expired).
    pub fn ticket_count(&self) -> usize {
        self.inner.tickets.len()
    }

    /// One reaper pass: reclaims reservations past their TTL, forgets old expired tickets and
    /// evicts pools that have been idle for `idle_pool_ttl`.
    pub fn reap_expired(&self) -> RegistryReap {
        let now = self.inner.clock.now();
        let idle_ttl = ttl_millis(self.inner.settings.idle_pool_ttl);
        let mut report = RegistryReap::default();
        let mut expired_tickets = Vec::new();

        for shard in self.inner.pools.shards() {
            // Holding the shard lock while locking each pool (shard → pool order) keeps a
            // concurrent `pool_for` from handing out a pool that is being retired.
            shard.lock().retain(|room, cell| {
                let mut pool = cell.lock();
                let mut reclaimed = 0;
                pool.seats.retain(|user, state| {
                    let key = UserRoomKey::new(user.clone(), room.clone());
                    match (seat_step(&key, state, SeatEvent::Expire { now }), state) {
                        (Ok(_), SeatState::Reserved { ticket, .. }) => {
                            expired_tickets.push(ticket.clone());
                            reclaimed += 1;
                            false
                        }
                        _ => true,
                    }
                });
                pool.reserved -= reclaimed;
                report.reservations += reclaimed as usize;
                if pool.reserved + pool.joined > 0 {
                    pool.idle_since = None;
                    return true;
                }
                match pool.idle_since {
                    None => {
                        pool.idle_since = Some(now);
                        true
                    }
                    Some(since) if now.millis().saturating_sub(since.millis()) < idle_ttl => true,
                    Some(_) => {
                        pool.retired = true;
                        report.pools_evicted += 1;
                        false
                    }
                }
            });
        }

        for ticket in expired_tickets {
            self.remember_expired(ticket, now);
        }
        for shard in self.inner.tickets.shards() {
            shard.lock().retain(|_, entry| match entry {
                TicketEntry::Expired { forget_at } if *forget_at <= now => {
                    report.tickets_forgotten += 1;
                    false
                }
                _ => true,
            });
        }
        report
    }

    fn remember_expired(&self, ticket: Ticket, now: Timestamp) {
        let forget_at = now.plus_millis(ttl_millis(self.inner.settings.expired_ticket_memory));
        self.inner
            .tickets
            .shard(&ticket)
            .lock()
            .insert(ticket, TicketEntry::Expired { forget_at });
    }
}
