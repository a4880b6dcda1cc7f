//! `SemaphoreRegistry`: the in-memory permit store.
//!
//! Each room has a [`RoomPool`] created on first use. Tickets are indexed separately, each
//! pointing at its pool, so that phase 2 finds its seat from the ticket alone and a joined seat
//! gives itself back without any lookup. Locks are sharded by key and held for a few map
//! operations; no lock is held across an `.await` (there are none here).

use std::sync::Arc;
use std::time::Duration;

use roomgate_domain::{
    AdmissionError, Capacity, RoomId, SessionId, Ticket, Timestamp, UserId, UserRoomKey,
};

use crate::clock::{Clock, ttl_millis};
use crate::pool::{Confirmed, RoomPool};
use crate::seat::{Releaser, SeatGuard};
use crate::shards::ShardedMap;

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

type PoolCell = Arc<RoomPool>;

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

/// What a joined in-memory seat needs to give itself back: its pool, nothing else.
pub(crate) struct MemorySeat {
    pool: PoolCell,
}

impl MemorySeat {
    pub(crate) fn release(&self, key: &UserRoomKey, session: SessionId) {
        self.pool.release(key, session);
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
        let pool = Arc::new(RoomPool::new(capacity.get(), occupied));
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
            let pool = self.pool_for(&key.room, req.capacity, req.occupied);
            let now = self.inner.clock.now();
            let Some(outcome) = pool.reserve(&key, now.plus_millis(ttl), now) else {
                continue; // The pool was evicted between lookup and lock: fetch a fresh one.
            };
            let reserved = outcome?;
            if reserved.fresh {
                if let Some(old) = reserved.replaced {
                    self.remember_expired(old, now);
                }
                let entry = TicketEntry::Live {
                    key: key.clone(),
                    pool,
                };
                self.inner
                    .tickets
                    .shard(&reserved.ticket)
                    .lock()
                    .insert(reserved.ticket.clone(), entry);
            }
            return Ok(Reservation {
                room: key.room,
                user: key.user,
                ticket: reserved.ticket,
                expires_at: reserved.expires_at,
                fresh: reserved.fresh,
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
        let (key, pool) = {
            let mut tickets = self.inner.tickets.shard(ticket).lock();
            match tickets.remove(ticket) {
                None => return Err(AdmissionError::InvalidTicket),
                Some(TicketEntry::Live { key, pool }) => (key, pool),
                Some(expired @ TicketEntry::Expired { .. }) => {
                    tickets.insert(ticket.clone(), expired);
                    return Err(AdmissionError::TicketExpired);
                }
            }
        };
        let now = self.inner.clock.now();
        match pool.confirm(&key, ticket, session, now)? {
            Confirmed::Joined => {
                let seat = MemorySeat { pool };
                Ok(SeatGuard::new(key, session, Releaser::Memory(seat)))
            }
            Confirmed::Expired => {
                self.remember_expired(ticket.clone(), now);
                Err(AdmissionError::TicketExpired)
            }
        }
    }

    /// Gives back `user`'s unconfirmed reservation in `room`.
    pub fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), AdmissionError> {
        let key = UserRoomKey::new(user.clone(), room.clone());
        let pool = self
            .existing_pool(room)
            .ok_or_else(|| AdmissionError::ReservationNotFound {
                room: room.clone(),
                user: user.clone(),
            })?;
        if let Some(ticket) = pool.cancel(&key)? {
            self.inner.tickets.shard(&ticket).lock().remove(&ticket);
        }
        Ok(())
    }

    /// Permits held in `room`; zero for a room without a pool.
    pub fn counts(&self, room: &RoomId) -> RoomCounts {
        self.existing_pool(room)
            .map(|pool| pool.counts())
            .unwrap_or_default()
    }

    /// Permits held across all rooms. Walks every pool: meant for metrics and tests, not for
    /// the admission path (a shared counter there would make every core contend on it).
    pub fn permits_held(&self) -> u64 {
        let pools: Vec<PoolCell> = self
            .inner
            .pools
            .shards()
            .flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>())
            .collect();
        pools
            .iter()
            .map(|pool| {
                let counts = pool.counts();
                u64::from(counts.reserved + counts.joined)
            })
            .sum()
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
            // The shard stays locked while its pools are examined, so that `pool_for` cannot
            // hand out a pool that is being retired.
            shard.lock().retain(|room, pool| {
                let expired = pool.reap_expired(room, now);
                report.reservations += expired.len();
                expired_tickets.extend(expired);
                let retire = pool.retire_if_idle(now, idle_ttl);
                report.pools_evicted += usize::from(retire);
                !retire
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
