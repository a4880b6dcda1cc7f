//! The trait boundary between callers and admission backends.
//!
//! Callers (the server, other services) program against [`PermitStore`] and [`PendingRooms`];
//! the in-memory types implement them inline and a shared backend implements them over the
//! network. Methods are `async` because a shared backend must be; the in-memory ones never wait.

use std::future::Future;
use std::time::Duration;

use roomgate_domain::{RoomId, SessionId, Ticket, Timestamp, UserId};

use crate::error::StoreError;
use crate::line::{Admission, Attached, LineWatch, PlaceStatus, WaitGuard};
use crate::queue::{PendingRoom, RoomQueueTracker};
use crate::registry::{Reservation, ReserveRequest, RoomCounts, SemaphoreRegistry};
use crate::seat::SeatGuard;

/// Per-room permit pools: reservations (phase 1) and joined seats (phase 2).
pub trait PermitStore: Send + Sync + 'static {
    /// Takes a permit, or returns the user's live reservation (`fresh: false`).
    /// Refusals: `RoomFull`, `AlreadyJoined`.
    fn reserve(
        &self,
        req: ReserveRequest,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// Phase 1 that may wait: a seat if one is free for this user, else a place at the back of
    /// the room's line. Refusals: `QueueFull` (the line holds `max_waiting`), `AlreadyJoined`.
    fn reserve_or_wait(
        &self,
        req: ReserveRequest,
        max_waiting: u32,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send;

    /// Consumes a ticket and turns its reservation into a joined seat.
    /// Refusals: `InvalidTicket` (a place's ticket too), `TicketExpired` (the permit is then
    /// returned at once).
    fn confirm(
        &self,
        ticket: &Ticket,
        session: SessionId,
    ) -> impl Future<Output = Result<SeatGuard, StoreError>> + Send;

    /// Consumes any ticket: a reservation becomes a joined seat, a place in line is tied to the
    /// socket of `session`. Refusals as for `confirm`.
    fn attach(
        &self,
        ticket: &Ticket,
        session: SessionId,
    ) -> impl Future<Output = Result<Attached, StoreError>> + Send;

    /// Where an attached place stands; a seat handed to it is joined by its session here, and
    /// comes back as a `SeatGuard`.
    fn check_place(
        &self,
        place: &WaitGuard,
    ) -> impl Future<Output = Result<PlaceStatus, StoreError>> + Send;

    /// Wakes when `room`'s line may have moved.
    fn watch_line(&self, room: &RoomId) -> LineWatch;

    /// People waiting in every room's line this store can see.
    fn waiting_total(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Gives back an unconfirmed reservation or a place in line. Refusal: `ReservationNotFound`.
    fn cancel(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn counts(&self, room: &RoomId) -> impl Future<Output = Result<RoomCounts, StoreError>> + Send;

    /// Permits held across all rooms this store can see.
    fn permits_held(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Reclaims reservations past their TTL; returns how many.
    fn reap_expired(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Room creations waiting for their creator's WebSocket.
pub trait PendingRooms: Send + Sync + 'static {
    /// Registers a creation; refusal: `RoomPending` while another registration lives.
    fn register(
        &self,
        room: PendingRoom,
        ttl: Duration,
    ) -> impl Future<Output = Result<Timestamp, StoreError>> + Send;

    /// The live registration of `room`, if any, with its expiry.
    fn get(
        &self,
        room: &RoomId,
    ) -> impl Future<Output = Result<Option<(PendingRoom, Timestamp)>, StoreError>> + Send;

    /// Hands the registration over exactly once. Refusals: `RoomNotFound`, `TicketExpired`.
    fn materialize(
        &self,
        room: &RoomId,
    ) -> impl Future<Output = Result<PendingRoom, StoreError>> + Send;

    /// Forgets a registration (after its room is written, or to undo a creation).
    fn remove(
        &self,
        room: &RoomId,
    ) -> impl Future<Output = Result<Option<PendingRoom>, StoreError>> + Send;

    /// Drops registrations past their TTL; returns how many.
    fn reap_expired(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

impl PermitStore for SemaphoreRegistry {
    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, StoreError> {
        Ok(SemaphoreRegistry::reserve(self, req)?)
    }

    async fn reserve_or_wait(
        &self,
        req: ReserveRequest,
        max_waiting: u32,
    ) -> Result<Admission, StoreError> {
        Ok(SemaphoreRegistry::reserve_or_wait(self, req, max_waiting)?)
    }

    async fn confirm(&self, ticket: &Ticket, session: SessionId) -> Result<SeatGuard, StoreError> {
        Ok(SemaphoreRegistry::confirm(self, ticket, session)?)
    }

    async fn attach(&self, ticket: &Ticket, session: SessionId) -> Result<Attached, StoreError> {
        Ok(SemaphoreRegistry::attach(self, ticket, session)?)
    }

    async fn check_place(&self, place: &WaitGuard) -> Result<PlaceStatus, StoreError> {
        Ok(SemaphoreRegistry::check_place(self, place))
    }

    fn watch_line(&self, room: &RoomId) -> LineWatch {
        SemaphoreRegistry::watch_line(self, room)
    }

    async fn waiting_total(&self) -> Result<u64, StoreError> {
        Ok(SemaphoreRegistry::waiting_total(self))
    }

    async fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), StoreError> {
        Ok(SemaphoreRegistry::cancel(self, room, user)?)
    }

    async fn counts(&self, room: &RoomId) -> Result<RoomCounts, StoreError> {
        Ok(SemaphoreRegistry::counts(self, room))
    }

    async fn permits_held(&self) -> Result<u64, StoreError> {
        Ok(SemaphoreRegistry::permits_held(self))
    }

    async fn reap_expired(&self) -> Result<usize, StoreError> {
        Ok(SemaphoreRegistry::reap_expired(self).reservations)
    }
}

impl PendingRooms for RoomQueueTracker {
    async fn register(&self, room: PendingRoom, ttl: Duration) -> Result<Timestamp, StoreError> {
        Ok(RoomQueueTracker::register(self, room, ttl)?)
    }

    async fn get(&self, room: &RoomId) -> Result<Option<(PendingRoom, Timestamp)>, StoreError> {
        Ok(RoomQueueTracker::get(self, room))
    }

    async fn materialize(&self, room: &RoomId) -> Result<PendingRoom, StoreError> {
        Ok(RoomQueueTracker::materialize(self, room)?)
    }

    async fn remove(&self, room: &RoomId) -> Result<Option<PendingRoom>, StoreError> {
        Ok(RoomQueueTracker::remove(self, room))
    }

    async fn reap_expired(&self) -> Result<usize, StoreError> {
        Ok(RoomQueueTracker::reap_expired(self))
    }
}

/// The permit backend chosen by configuration, so that callers need no generics.
#[derive(Clone, Debug)]
pub enum AnyPermitStore {
    Memory(SemaphoreRegistry),
    #[cfg(feature = "redis")]
    Redis(crate::redis_store::RedisPermitStore),
}

/// Forwards one `PermitStore`/`PendingRooms` call to whichever backend is configured.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Self::Memory($store) => $call.await,
            #[cfg(feature = "redis")]
            Self::Redis($store) => $call.await,
        }
    };
}

impl PermitStore for AnyPermitStore {
    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, StoreError> {
        dispatch!(self, store => PermitStore::reserve(store, req))
    }

    async fn reserve_or_wait(
        &self,
        req: ReserveRequest,
        max_waiting: u32,
    ) -> Result<Admission, StoreError> {
        dispatch!(self, store => PermitStore::reserve_or_wait(store, req, max_waiting))
    }

    async fn confirm(&self, ticket: &Ticket, session: SessionId) -> Result<SeatGuard, StoreError> {
        dispatch!(self, store => PermitStore::confirm(store, ticket, session))
    }

    async fn attach(&self, ticket: &Ticket, session: SessionId) -> Result<Attached, StoreError> {
        dispatch!(self, store => PermitStore::attach(store, ticket, session))
    }

    async fn check_place(&self, place: &WaitGuard) -> Result<PlaceStatus, StoreError> {
        dispatch!(self, store => PermitStore::check_place(store, place))
    }

    fn watch_line(&self, room: &RoomId) -> LineWatch {
        match self {
            Self::Memory(store) => PermitStore::watch_line(store, room),
            #[cfg(feature = "redis")]
            Self::Redis(store) => PermitStore::watch_line(store, room),
        }
    }

    async fn waiting_total(&self) -> Result<u64, StoreError> {
        dispatch!(self, store => PermitStore::waiting_total(store))
    }

    async fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), StoreError> {
        dispatch!(self, store => PermitStore::cancel(store, room, user))
    }

    async fn counts(&self, room: &RoomId) -> Result<RoomCounts, StoreError> {
        dispatch!(self, store => PermitStore::counts(store, room))
    }

    async fn permits_held(&self) -> Result<u64, StoreError> {
        dispatch!(self, store => PermitStore::permits_held(store))
    }

    async fn reap_expired(&self) -> Result<usize, StoreError> {
        dispatch!(self, store => PermitStore::reap_expired(store))
    }
}

/// The pending-room backend chosen by configuration.
#[derive(Clone, Debug)]
pub enum AnyPendingRooms {
    Memory(RoomQueueTracker),
    #[cfg(feature = "redis")]
    Redis(crate::redis_store::RedisPendingRooms),
}

impl PendingRooms for AnyPendingRooms {
    async fn register(&self, room: PendingRoom, ttl: Duration) -> Result<Timestamp, StoreError> {
        dispatch!(self, store => PendingRooms::register(store, room, ttl))
    }

    async fn get(&self, room: &RoomId) -> Result<Option<(PendingRoom, Timestamp)>, StoreError> {
        dispatch!(self, store => PendingRooms::get(store, room))
    }

    async fn materialize(&self, room: &RoomId) -> Result<PendingRoom, StoreError> {
        dispatch!(self, store => PendingRooms::materialize(store, room))
    }

    async fn remove(&self, room: &RoomId) -> Result<Option<PendingRoom>, StoreError> {
        dispatch!(self, store => PendingRooms::remove(store, room))
    }

    async fn reap_expired(&self) -> Result<usize, StoreError> {
        dispatch!(self, store => PendingRooms::reap_expired(store))
    }
}

impl AnyPermitStore {
    /// Renews this node's lease on its joined seats (shared stores only). `true` means the
    /// store did not know the node: it is new, or it was declared dead and its seats were
    /// reclaimed, so its sessions must end.
    pub async fn heartbeat(&self) -> Result<bool, StoreError> {
        match self {
            Self::Memory(_) => Ok(false),
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.heartbeat().await,
        }
    }

    /// Waits until every dropped seat has reached the store (shared stores queue releases).
    pub async fn flush_releases(&self) {
        match self {
            Self::Memory(_) => {}
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.flush_releases().await,
        }
    }

    /// Whether the store can be reached (always, in memory).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(_) => Ok(()),
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.ping().await,
        }
    }

    /// Whether several nodes share this store.
    pub fn is_shared(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }
}
