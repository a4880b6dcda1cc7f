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
use crate::line::{Admission, Attached, Leaver, LineWatch, Place, PlaceStatus, WaitGuard};
use crate::pool::{AttachedTo, PlaceNow, RoomPool, Taken};
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
    /// Places in the room's waiting line.
    pub waiting: u32,
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

/// What an attached in-memory place needs to give itself up: its pool.
pub(crate) struct MemoryPlace {
    pool: PoolCell,
}

impl MemoryPlace {
    pub(crate) fn leave(&self, key: &UserRoomKey, session: SessionId) {
        self.pool.leave_line(key, session);
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
        let pool = Arc::new(RoomPool::new(
            room.clone(),
            capacity.get(),
            occupied,
            Arc::clone(&self.inner.clock),
        ));
        shard.insert(room.clone(), Arc::clone(&pool));
        pool
    }

    fn existing_pool(&self, room: &RoomId) -> Option<PoolCell> {
        self.inner.pools.shard(room).lock().get(room).cloned()
    }

    /// Phase 1: takes a permit for `req.user`, or hands back the user's live reservation. While
    /// anyone waits in the room's line there is no seat for a newcomer (`RoomFull`).
    pub fn reserve(&self, req: ReserveRequest) -> Result<Reservation, AdmissionError> {
        match self.take(req, None)? {
            Admission::Seat(reservation) => Ok(reservation),
            // Without `wait` the pool never hands out a place.
            Admission::InLine(_) => Err(AdmissionError::IllegalTransition {
                state: "none",
                event: "reserve",
            }),
        }
    }

    /// Phase 1 that may wait: a seat if one is free for this user, else a place at the back of
    /// the room's line (`QueueFull` once it holds `max_waiting` people), or the user's own
    /// reservation or place unchanged.
    pub fn reserve_or_wait(
        &self,
        req: ReserveRequest,
        max_waiting: u32,
    ) -> Result<Admission, AdmissionError> {
        self.take(req, Some(max_waiting))
    }

    // Inlined into `reserve` and `reserve_or_wait`, so that the plain reservation, the hot
    // path, is compiled without the line's branches (measured: ~10 % of a cycle otherwise).
    #[inline(always)]
    fn take(
        &self,
        req: ReserveRequest,
        max_waiting: Option<u32>,
    ) -> Result<Admission, AdmissionError> {
        let key = UserRoomKey::new(req.user, req.room);
        let ttl = ttl_millis(req.ttl);
        let wait = max_waiting.map(|max| (max, ttl));
        loop {
            let pool = self.pool_for(&key.room, req.capacity, req.occupied);
            let now = self.inner.clock.now();
            let Some(outcome) = pool.reserve(&key, now.plus_millis(ttl), now, wait) else {
                continue; // The pool was evicted between lookup and lock: fetch a fresh one.
            };
            return Ok(match outcome? {
                Taken::Seat(reserved) => {
                    if reserved.fresh {
                        // The replaced ticket may have been used already, by the waiting socket
                        // of a place whose handed-over seat then expired.
                        if let Some(old) = reserved.replaced {
                            self.expire_if_live(old, now);
                        }
                        self.index_ticket(&reserved.ticket, None, &key, pool, now);
                    }
                    Admission::Seat(Reservation {
                        room: key.room,
                        user: key.user,
                        ticket: reserved.ticket,
                        expires_at: reserved.expires_at,
                        fresh: reserved.fresh,
                    })
                }
                Taken::Place(queued) => {
                    if queued.fresh {
                        self.index_ticket(&queued.ticket, queued.replaced, &key, pool, now);
                    }
                    Admission::InLine(Place {
                        room: key.room,
                        user: key.user,
                        ticket: queued.ticket,
                        expires_at: queued.expires_at,
                        position: queued.position,
                        fresh: queued.fresh,
                    })
                }
            });
        }
    }

    fn index_ticket(
        &self,
        ticket: &Ticket,
        replaced: Option<Ticket>,
        key: &UserRoomKey,
        pool: PoolCell,
        now: Timestamp,
    ) {
        if let Some(old) = replaced {
            self.remember_expired(old, now);
        }
        let entry = TicketEntry::Live {
            key: key.clone(),
            pool,
        };
        self.inner
            .tickets
            .shard(ticket)
            .lock()
            .insert(ticket.clone(), entry);
    }

    /// Phase 2: consumes `ticket` and turns its reservation into a joined seat. A place's
    /// ticket is refused here as unknown: places are opened with [`Self::attach`].
    ///
    /// An expired ticket gives its permit back at once and is remembered as expired for a while,
    /// so that a late client learns why it was refused.
    pub fn confirm(
        &self,
        ticket: &Ticket,
        session: SessionId,
    ) -> Result<SeatGuard, AdmissionError> {
        match self.present(ticket, session, false)? {
            Attached::Seat(seat) => Ok(seat),
            Attached::Waiting(_) => Err(AdmissionError::InvalidTicket),
        }
    }

    /// Phase 2 for any ticket: a reservation becomes a joined seat, a place in line is tied to
    /// the socket of `session` (from then on the place lasts as long as that socket).
    pub fn attach(&self, ticket: &Ticket, session: SessionId) -> Result<Attached, AdmissionError> {
        self.present(ticket, session, true)
    }

    // Inlined for the same reason as `take`: `confirm` compiles without the place's branches.
    #[inline(always)]
    fn present(
        &self,
        ticket: &Ticket,
        session: SessionId,
        places: bool,
    ) -> Result<Attached, AdmissionError> {
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
        match pool.attach(&key, ticket, session, now, places) {
            Ok(AttachedTo::Seat) => {
                let seat = MemorySeat { pool };
                Ok(Attached::Seat(SeatGuard::new(
                    key,
                    session,
                    Releaser::Memory(seat),
                )))
            }
            Ok(AttachedTo::Place(taken_at)) => {
                let place = MemoryPlace { pool };
                Ok(Attached::Waiting(WaitGuard::new(
                    key,
                    session,
                    ticket.clone(),
                    taken_at,
                    Leaver::Memory(place),
                )))
            }
            Ok(AttachedTo::Expired) => {
                self.remember_expired(ticket.clone(), now);
                Err(AdmissionError::TicketExpired)
            }
            Ok(AttachedTo::NotASeat) => {
                // A place's ticket shown to `confirm` stays usable for `attach`. (Only then: a
                // ticket refused for any other reason is used up, and putting it back would
                // keep it, and its pool, forever. Nor does it replace the expiry a reaper pass
                // recorded meanwhile.)
                let entry = TicketEntry::Live { key, pool };
                self.inner
                    .tickets
                    .shard(ticket)
                    .lock()
                    .entry(ticket.clone())
                    .or_insert(entry);
                Err(AdmissionError::InvalidTicket)
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// Where an attached place stands; a seat handed to it is joined by its session here.
    pub fn check_place(&self, place: &WaitGuard) -> PlaceStatus {
        let Some(pool) = self.existing_pool(&place.key().room) else {
            return PlaceStatus::Gone;
        };
        let now = self.inner.clock.now();
        match pool.place_now(place.key(), place.ticket(), place.session(), now) {
            PlaceNow::Waiting { position, eta_ms } => PlaceStatus::Waiting { position, eta_ms },
            PlaceNow::Seated => PlaceStatus::Seat(SeatGuard::new(
                place.key().clone(),
                place.session(),
                Releaser::Memory(MemorySeat { pool }),
            )),
            PlaceNow::Gone => PlaceStatus::Gone,
        }
    }

    /// Wakes when `room`'s line moves.
    pub fn watch_line(&self, room: &RoomId) -> LineWatch {
        match self.existing_pool(room) {
            Some(pool) => pool.watch_line(),
            // No pool, so no line: a watch that never fires (the waiter rechecks on its timer).
            None => LineWatch::new(tokio::sync::watch::Sender::new(0).subscribe()),
        }
    }

    /// People waiting across all rooms; for metrics.
    pub fn waiting_total(&self) -> u64 {
        self.all_pools()
            .iter()
            .map(|pool| u64::from(pool.counts().waiting))
            .sum()
    }

    /// Gives back `user`'s unconfirmed reservation, or place in line, in `room`.
    pub fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), AdmissionError> {
        let key = UserRoomKey::new(user.clone(), room.clone());
        let pool = self
            .existing_pool(room)
            .ok_or_else(|| AdmissionError::ReservationNotFound {
                room: room.clone(),
                user: user.clone(),
            })?;
        if let Some(ticket) = pool.cancel(&key, self.inner.clock.now())? {
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
        self.all_pools()
            .iter()
            .map(|pool| {
                let counts = pool.counts();
                u64::from(counts.reserved + counts.joined)
            })
            .sum()
    }

    fn all_pools(&self) -> Vec<PoolCell> {
        self.inner
            .pools
            .shards()
            .flat_map(|shard| shard.lock().values().cloned().collect::<Vec<_>>())
            .collect()
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
        let mut expired_reservations = Vec::new();

        for shard in self.inner.pools.shards() {
            // The shard stays locked while its pools are examined, so that `pool_for` cannot
            // hand out a pool that is being retired.
            shard.lock().retain(|_, pool| {
                let expired = pool.reap_expired(now);
                report.reservations += expired.reservations.len() + expired.places.len();
                expired_reservations.extend(expired.reservations);
                expired_tickets.extend(expired.places);
                expired_tickets.extend(pool.take_given_up());
                let retire = pool.retire_if_idle(now, idle_ttl);
                report.pools_evicted += usize::from(retire);
                !retire
            });
        }
        for ticket in expired_tickets {
            self.remember_expired(ticket, now);
        }
        for ticket in expired_reservations {
            self.expire_if_live(ticket, now);
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

    /// Remembers a reservation's ticket as expired unless it was used: a seat handed to an
    /// attached place holds a ticket its waiting socket used, and a used ticket stays unknown.
    /// (A reservation's ticket is only ever out of the index while presented, and then
    /// `present` itself records the outcome.)
    fn expire_if_live(&self, ticket: Ticket, now: Timestamp) {
        let forget_at = now.plus_millis(ttl_millis(self.inner.settings.expired_ticket_memory));
        if let Some(entry) = self.inner.tickets.shard(&ticket).lock().get_mut(&ticket) {
            *entry = TicketEntry::Expired { forget_at };
        }
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
