//! `RedisPermitStore`: the `PermitStore` shared by every node.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use roomgate_domain::{
    AdmissionError, NodeId, RoomId, SessionId, Ticket, Timestamp, UserId, UserRoomKey,
};
use tokio::sync::{mpsc, oneshot};

use super::wakeups::{self, LineWakeups, Subscriber};
use super::{RedisSettings, Shared, open, scripts, unavailable};
use crate::clock::ttl_millis;
use crate::error::StoreError;
use crate::line::{
    Admission, Attached, LineLeave, LineWatch, Place, PlaceStatus, WaitGuard, eta_from_mean_gap,
};
use crate::registry::{Reservation, ReserveRequest, RoomCounts};
use crate::seat::{SeatGuard, SeatRelease};
use crate::store::PermitStore;

use super::pending::RedisPendingRooms;

/// Permits in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisPermitStore {
    shared: Arc<Shared>,
    releaser: Arc<QueuedRelease>,
    wakeups: Arc<LineWakeups>,
    /// The line subscriber task, stopped with the last clone of the store.
    _subscriber: Arc<Subscriber>,
}

impl std::fmt::Debug for RedisPermitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPermitStore")
            .field("prefix", &self.shared.keys.prefix())
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

/// Seat releases and places given up are queued to a task that retries until Redis takes them:
/// a guard is dropped synchronously, and a release lost to a passing outage would leak a seat (or
/// stall a line) until the node dies.
struct QueuedRelease {
    queue: mpsc::UnboundedSender<ReleaseJob>,
}

enum ReleaseJob {
    Release(UserRoomKey, SessionId),
    /// A waiting socket ended: its place goes if it is still attached to that session.
    LeaveLine(UserRoomKey, SessionId),
    /// Answered once every job queued before it has reached Redis.
    Flush(oneshot::Sender<()>),
}

impl SeatRelease for QueuedRelease {
    fn release(&self, key: &UserRoomKey, session: SessionId) {
        // Fails only once the store and its task are gone; the node's lease then expires and
        // the survivors reclaim the seat.
        let _ = self.queue.send(ReleaseJob::Release(key.clone(), session));
    }
}

impl LineLeave for QueuedRelease {
    fn leave_line(&self, key: &UserRoomKey, session: SessionId) {
        // As for releases: once the store is gone, the node's lease takes its places with it.
        let _ = self.queue.send(ReleaseJob::LeaveLine(key.clone(), session));
    }
}

fn parse_millis(text: Option<&String>) -> Result<Timestamp, StoreError> {
    text.and_then(|t| t.parse().ok())
        .map(Timestamp)
        .ok_or_else(|| StoreError::Unavailable("malformed reply from redis".into()))
}

impl RedisPermitStore {
    /// Prepares the store; the connection opens on first use, so this works while Redis is down.
    /// Needs a running tokio runtime (the release task is spawned here).
    pub fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let shared = open(settings)?;
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(release_worker(Arc::clone(&shared), pending));
        let wakeups = Arc::new(LineWakeups::default());
        let subscriber = wakeups::spawn(Arc::clone(&shared), Arc::clone(&wakeups));
        Ok(Self {
            shared,
            releaser: Arc::new(QueuedRelease { queue }),
            wakeups,
            _subscriber: Arc::new(subscriber),
        })
    }

    /// The pending-room store on the same connection.
    pub fn pending_rooms(&self) -> RedisPendingRooms {
        RedisPendingRooms::new(Arc::clone(&self.shared))
    }

    pub fn node(&self) -> NodeId {
        self.shared.node
    }

    /// Renews this node's lease on all of its joined seats. Returns `true` when Redis did not
    /// know the node: either it is new, or its lease had run out and its seats were reclaimed,
    /// in which case its sessions must end.
    pub async fn heartbeat(&self) -> Result<bool, StoreError> {
        let mut connection = self.shared.connection();
        let added: i64 = scripts::HEARTBEAT
            .key(self.shared.keys.nodes())
            .arg(self.shared.node.0.to_string())
            .arg(self.shared.offset())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    /// Waits until every seat released so far has been given back in Redis (releases are queued
    /// because guards drop synchronously). For graceful shutdown and for tests.
    pub async fn flush_releases(&self) {
        let (done, flushed) = oneshot::channel();
        if self.releaser.queue.send(ReleaseJob::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    /// Answers whether Redis can be reached.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.shared.connection();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Moves this store's view of Redis's clock forward, so that tests exercise expiry without
    /// sleeping. Only in builds with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn advance_clock(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.shared
            .clock_offset_ms
            .fetch_add(millis, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every key this store's prefix owns; for tests that check nothing was left behind. Runs
    /// `KEYS`, which blocks Redis, so only in builds with the `testing` feature.
    #[cfg(feature = "testing")]
    pub async fn keys_in_use(&self) -> Result<Vec<String>, StoreError> {
        let mut connection = self.shared.connection();
        let pattern = format!("{}*", self.shared.keys.prefix());
        let mut keys: Vec<String> = connection.keys(pattern).await.map_err(unavailable)?;
        keys.sort();
        Ok(keys)
    }

    /// Resolves once this store's line subscription is in place, so that a test can count on
    /// being woken by a message rather than by the recheck timer.
    #[cfg(feature = "testing")]
    pub async fn line_subscribed(&self) {
        self.wakeups.subscribed().await;
    }

    /// Phase 1; with `max_waiting`, a user who finds no seat takes a place in line.
    async fn take(
        &self,
        req: ReserveRequest,
        max_waiting: Option<u32>,
    ) -> Result<Admission, StoreError> {
        let keys = &self.shared.keys;
        let mut connection = self.shared.connection();
        let ticket = Ticket::generate();
        let ticket_key = keys.ticket(&ticket);
        let keep_ticket_for = ttl_millis(req.ttl) + ttl_millis(self.shared.expired_ticket_memory);
        // One round trip: index the room (before its seat exists, so the reaper can never miss
        // a seat), point the ticket at its seat, then run the script. The ticket index is
        // written before the script knows whether the ticket will be handed out; a ticket that
        // is not is never seen by anyone and its key expires by itself.
        let mut pipe = redis::pipe();
        pipe.sadd(keys.rooms(), req.room.as_str())
            .ignore()
            .pset_ex(
                &ticket_key,
                format!("{}\t{}", req.room, req.user),
                keep_ticket_for,
            )
            .ignore();
        let mut reserve = scripts::evalsha(
            &scripts::RESERVE,
            &[&keys.seats(&req.room), &keys.line(&req.room)],
        );
        reserve
            .arg(req.user.as_str())
            .arg(req.capacity.get())
            .arg(req.occupied)
            .arg(ttl_millis(req.ttl))
            .arg(ticket.to_text())
            .arg(self.shared.offset())
            .arg(max_waiting.map_or_else(|| "-".to_owned(), |max| max.to_string()));
        pipe.add_command(reserve);
        let (reply,): (Vec<String>,) =
            scripts::query_loading(&mut connection, &pipe, &scripts::RESERVE).await?;
        let status = reply.first().map(String::as_str).unwrap_or_default();
        let place = |ticket: Ticket, fresh: bool| -> Result<Admission, StoreError> {
            Ok(Admission::InLine(Place {
                room: req.room.clone(),
                user: req.user.clone(),
                ticket,
                expires_at: parse_millis(reply.get(2))?,
                position: reply
                    .get(3)
                    .and_then(|position| position.parse().ok())
                    .ok_or_else(|| StoreError::Unavailable("malformed reply from redis".into()))?,
                fresh,
            }))
        };
        let (ticket, expires_at, fresh) = match status {
            "ok" | "replaced" => (ticket, parse_millis(reply.get(2))?, true),
            "queued" | "queued_replaced" => return place(ticket, true),
            refused => {
                // This ticket will never be handed out; its index goes now rather than at its
                // expiry, without making the caller wait for it.
                let mut cleanup = connection.clone();
                tokio::spawn(async move {
                    let _: Result<i64, _> = cleanup.del(ticket_key).await;
                });
                let held = || {
                    reply
                        .get(1)
                        .and_then(|t| Ticket::parse(t).ok())
                        .ok_or_else(|| StoreError::Unavailable("malformed ticket in redis".into()))
                };
                match refused {
                    "existing" => (held()?, parse_millis(reply.get(2))?, false),
                    "queued_existing" => return place(held()?, false),
                    "queue_full" => {
                        return Err(AdmissionError::QueueFull {
                            room: req.room,
                            max_waiting: max_waiting.unwrap_or(0),
                        }
                        .into());
                    }
                    "already_joined" => {
                        return Err(AdmissionError::AlreadyJoined {
                            room: req.room,
                            user: req.user,
                        }
                        .into());
                    }
                    "full" => {
                        return Err(AdmissionError::RoomFull {
                            room: req.room,
                            capacity: req.capacity.get(),
                        }
                        .into());
                    }
                    other => {
                        return Err(StoreError::Unavailable(format!(
                            "unexpected reply from the reserve script: {other}"
                        )));
                    }
                }
            }
        };
        Ok(Admission::Seat(Reservation {
            room: req.room,
            user: req.user,
            ticket,
            expires_at,
            fresh,
        }))
    }

    /// Phase 2 for `ticket`: a reservation becomes a joined seat; with `places`, a place in
    /// line is tied to the socket of `session` (without, a place's ticket is refused as unknown
    /// and stays usable).
    async fn present(
        &self,
        ticket: &Ticket,
        session: SessionId,
        places: bool,
    ) -> Result<Attached, StoreError> {
        let keys = &self.shared.keys;
        let mut connection = self.shared.connection();
        let index: Option<String> = connection
            .get(keys.ticket(ticket))
            .await
            .map_err(unavailable)?;
        let Some(index) = index else {
            return Err(AdmissionError::InvalidTicket.into());
        };
        let Some((Ok(room), Ok(user))) = index
            .split_once('\t')
            .map(|(room, user)| (RoomId::parse(room), UserId::parse(user)))
        else {
            return Err(AdmissionError::InvalidTicket.into());
        };
        let reply: Vec<String> = scripts::CONFIRM
            .key(keys.seats(&room))
            .key(keys.line(&room))
            .arg(user.as_str())
            .arg(ticket.to_text())
            .arg(session.0.to_string())
            .arg(self.shared.node.0.to_string())
            .arg(self.shared.offset())
            .arg(if places { "1" } else { "0" })
            .arg(keys.line_channel(&room))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                // The seat's state already makes the ticket single-use; dropping the index makes
                // a second presentation "unknown" rather than "expired".
                let _: Result<i64, _> = connection.del(keys.ticket(ticket)).await;
                let key = UserRoomKey::new(user, room);
                Ok(Attached::Seat(self.seat_guard(key, session)))
            }
            Some("attached") => {
                let _: Result<i64, _> = connection.del(keys.ticket(ticket)).await;
                let taken_at = parse_millis(reply.get(2))?;
                let key = UserRoomKey::new(user, room);
                let leaver: Arc<dyn LineLeave> = self.releaser.clone();
                Ok(Attached::Waiting(WaitGuard::shared(
                    key,
                    session,
                    ticket.clone(),
                    taken_at,
                    leaver,
                )))
            }
            Some("used" | "place") => Err(AdmissionError::InvalidTicket.into()),
            // Otherwise the index outlives the seat only when the seat expired: a used ticket's
            // index is deleted on confirm, a cancelled one's on cancel, and a ticket is replaced
            // only after it expired.
            _ => Err(AdmissionError::TicketExpired.into()),
        }
    }

    fn seat_guard(&self, key: UserRoomKey, session: SessionId) -> SeatGuard {
        let releaser: Arc<dyn SeatRelease> = self.releaser.clone();
        SeatGuard::shared(key, session, releaser)
    }

    /// Where the attached place of `place` stands; a seat handed to it is joined here, in the
    /// same script that finds it.
    async fn check_place_inner(&self, place: &WaitGuard) -> Result<PlaceStatus, StoreError> {
        let keys = &self.shared.keys;
        let room = &place.key().room;
        let mut connection = self.shared.connection();
        let reply: Vec<String> = scripts::CHECK_PLACE
            .key(keys.seats(room))
            .key(keys.line(room))
            .arg(place.key().user.as_str())
            .arg(place.ticket().to_text())
            .arg(place.session().0.to_string())
            .arg(self.shared.node.0.to_string())
            .arg(self.shared.offset())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(match reply.first().map(String::as_str) {
            Some("waiting") => {
                let position = reply
                    .get(1)
                    .and_then(|position| position.parse().ok())
                    .ok_or_else(|| StoreError::Unavailable("malformed reply from redis".into()))?;
                let mean_gap = reply.get(2).and_then(|gap| gap.parse::<f64>().ok());
                PlaceStatus::Waiting {
                    position,
                    eta_ms: eta_from_mean_gap(mean_gap, position),
                }
            }
            Some("seat") => {
                PlaceStatus::Seat(self.seat_guard(place.key().clone(), place.session()))
            }
            _ => PlaceStatus::Gone,
        })
    }

    /// People in every room's line, read in pipelined batches.
    async fn waiting_total_inner(&self) -> Result<u64, StoreError> {
        const BATCH: usize = 500;
        let mut connection = self.shared.connection();
        let mut waiting = 0u64;
        for rooms in self.rooms().await?.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for room in rooms {
                pipe.zcard(self.shared.keys.line(room));
            }
            let lines: Vec<u64> = pipe
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            waiting += lines.into_iter().sum::<u64>();
        }
        Ok(waiting)
    }

    async fn cancel_inner(&self, room: &RoomId, user: &UserId) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let mut connection = self.shared.connection();
        let reply: Vec<String> = scripts::CANCEL
            .key(keys.seats(room))
            .key(keys.line(room))
            .arg(user.as_str())
            .arg(self.shared.offset())
            .arg(keys.line_channel(room))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("ok"), Some(ticket)) => {
                if let Ok(ticket) = Ticket::parse(ticket) {
                    let _: Result<i64, _> = connection.del(keys.ticket(&ticket)).await;
                }
                Ok(())
            }
            _ => Err(AdmissionError::ReservationNotFound {
                room: room.clone(),
                user: user.clone(),
            }
            .into()),
        }
    }

    async fn counts_inner(&self, room: &RoomId) -> Result<RoomCounts, StoreError> {
        let mut connection = self.shared.connection();
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(self.shared.keys.seats(room))
            .arg("!r")
            .arg("!j")
            .zcard(self.shared.keys.line(room));
        // One round trip, and a consistent pair: MULTI/EXEC keeps a script from running between
        // the two reads.
        pipe.atomic();
        let ((reserved, joined), waiting): ((Option<u32>, Option<u32>), u32) = pipe
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(RoomCounts {
            reserved: reserved.unwrap_or(0),
            joined: joined.unwrap_or(0),
            waiting,
        })
    }

    async fn rooms(&self) -> Result<Vec<RoomId>, StoreError> {
        let mut connection = self.shared.connection();
        let names: Vec<String> = connection
            .smembers(self.shared.keys.rooms())
            .await
            .map_err(unavailable)?;
        Ok(names
            .iter()
            .filter_map(|name| RoomId::parse(name).ok())
            .collect())
    }

    /// For the metrics gauge: every room's counts, read in pipelined batches rather than one
    /// round trip per room.
    async fn permits_held_inner(&self) -> Result<u64, StoreError> {
        const BATCH: usize = 500;
        let mut connection = self.shared.connection();
        let mut held = 0u64;
        for rooms in self.rooms().await?.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for room in rooms {
                pipe.cmd("HMGET")
                    .arg(self.shared.keys.seats(room))
                    .arg("!r")
                    .arg("!j");
            }
            let counts: Vec<(Option<u64>, Option<u64>)> = pipe
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            held += counts
                .into_iter()
                .map(|(reserved, joined)| reserved.unwrap_or(0) + joined.unwrap_or(0))
                .sum::<u64>();
        }
        Ok(held)
    }

    /// The joined seats Redis says this node holds, with the session each was confirmed for:
    /// every room's seats read in pipelined batches.
    pub async fn seats_of_this_node(&self) -> Result<Vec<(UserRoomKey, SessionId)>, StoreError> {
        const BATCH: usize = 200;
        let node = self.shared.node.0.to_string();
        let mut connection = self.shared.connection();
        let mut held = Vec::new();
        for rooms in self.rooms().await?.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for room in rooms {
                pipe.cmd("HGETALL").arg(self.shared.keys.seats(room));
            }
            let seats: Vec<Vec<(String, String)>> = pipe
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            for (room, seats) in rooms.iter().zip(seats) {
                for (user, holder) in seats {
                    // "J\t<session>\t<node>\t<ticket>"; bookkeeping fields start with '!'.
                    let mut parts = holder.split('\t');
                    let (Some("J"), Some(session), Some(holder_node)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if holder_node != node {
                        continue;
                    }
                    let (Ok(user), Ok(session)) = (UserId::parse(&user), session.parse()) else {
                        continue;
                    };
                    held.push((UserRoomKey::new(user, room.clone()), SessionId(session)));
                }
            }
        }
        Ok(held)
    }

    /// Gives back `key`'s joined seat if `session` still holds it; `false` when it did not (a
    /// later session's seat is never touched).
    pub async fn release_if_held(
        &self,
        key: &UserRoomKey,
        session: SessionId,
    ) -> Result<bool, StoreError> {
        let mut connection = self.shared.connection();
        let outcome: Vec<String> = scripts::RELEASE
            .key(self.shared.keys.seats(&key.room))
            .key(self.shared.keys.line(&key.room))
            .arg(key.user.as_str())
            .arg(session.0.to_string())
            .arg(self.shared.offset())
            .arg(self.shared.keys.line_channel(&key.room))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(outcome.first().is_some_and(|reply| reply == "ok"))
    }

    /// Reclaims expired reservations and the seats of nodes whose lease ran out, in every room.
    async fn reap_inner(&self) -> Result<usize, StoreError> {
        let keys = &self.shared.keys;
        let mut connection = self.shared.connection();
        let dead: Vec<String> = scripts::DEAD_NODES
            .key(keys.nodes())
            .arg(ttl_millis(self.shared.node_lease))
            .arg(self.shared.offset())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let mut reclaimed = 0usize;
        for room in self.rooms().await? {
            let mut reap = scripts::REAP.key(keys.seats(&room));
            reap.key(keys.line(&room))
                .arg(self.shared.offset())
                .arg(keys.line_channel(&room));
            for node in &dead {
                reap.arg(node);
            }
            let (reservations, joined, exists): (usize, usize, i64) = reap
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            reclaimed += reservations + joined;
            if exists == 0 {
                // A reservation may land between the script and this removal; looking again
                // afterwards puts such a room back, so the index never loses a live room.
                let _: i64 = connection
                    .srem(keys.rooms(), room.as_str())
                    .await
                    .map_err(unavailable)?;
                let again: bool = connection
                    .exists(keys.seats(&room))
                    .await
                    .map_err(unavailable)?;
                if again {
                    let _: i64 = connection
                        .sadd(keys.rooms(), room.as_str())
                        .await
                        .map_err(unavailable)?;
                }
            }
        }
        if !dead.is_empty() {
            // Only now that every room was swept: a sweep cut short is retried on the next pass.
            let _: i64 = connection
                .zrem(keys.nodes(), &dead)
                .await
                .map_err(unavailable)?;
        }
        Ok(reclaimed)
    }
}

async fn release_worker(shared: Arc<Shared>, mut pending: mpsc::UnboundedReceiver<ReleaseJob>) {
    while let Some(job) = pending.recv().await {
        let (script, what, key, session) = match job {
            ReleaseJob::Release(key, session) => (&*scripts::RELEASE, "seat release", key, session),
            ReleaseJob::LeaveLine(key, session) => {
                (&*scripts::LEAVE_LINE, "leaving the line", key, session)
            }
            ReleaseJob::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut connection = shared.connection();
            // Both scripts take the same keys and arguments; each touches only what `session`
            // holds (a joined seat, or a place attached to it), so a retry is harmless.
            let outcome: Result<Vec<String>, _> = script
                .key(shared.keys.seats(&key.room))
                .key(shared.keys.line(&key.room))
                .arg(key.user.as_str())
                .arg(session.0.to_string())
                .arg(shared.offset())
                .arg(shared.keys.line_channel(&key.room))
                .invoke_async(&mut connection)
                .await;
            match outcome {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, room = %key.room, user = %key.user, "{what} failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

impl PermitStore for RedisPermitStore {
    async fn reserve(&self, req: ReserveRequest) -> Result<Reservation, StoreError> {
        match self.take(req, None).await? {
            Admission::Seat(reservation) => Ok(reservation),
            // Without a `max_waiting` the script never hands out a place.
            Admission::InLine(_) => Err(StoreError::Unavailable(
                "the reserve script handed out a place without wait".into(),
            )),
        }
    }

    async fn reserve_or_wait(
        &self,
        req: ReserveRequest,
        max_waiting: u32,
    ) -> Result<Admission, StoreError> {
        self.take(req, Some(max_waiting)).await
    }

    async fn confirm(&self, ticket: &Ticket, session: SessionId) -> Result<SeatGuard, StoreError> {
        match self.present(ticket, session, false).await? {
            Attached::Seat(seat) => Ok(seat),
            // Without `places` the script never attaches a place.
            Attached::Waiting(_) => Err(AdmissionError::InvalidTicket.into()),
        }
    }

    async fn attach(&self, ticket: &Ticket, session: SessionId) -> Result<Attached, StoreError> {
        self.present(ticket, session, true).await
    }

    async fn check_place(&self, place: &WaitGuard) -> Result<PlaceStatus, StoreError> {
        self.check_place_inner(place).await
    }

    fn watch_line(&self, room: &RoomId) -> LineWatch {
        self.wakeups.watch(room)
    }

    async fn waiting_total(&self) -> Result<u64, StoreError> {
        self.waiting_total_inner().await
    }

    async fn cancel(&self, room: &RoomId, user: &UserId) -> Result<(), StoreError> {
        self.cancel_inner(room, user).await
    }

    async fn counts(&self, room: &RoomId) -> Result<RoomCounts, StoreError> {
        self.counts_inner(room).await
    }

    async fn permits_held(&self) -> Result<u64, StoreError> {
        self.permits_held_inner().await
    }

    async fn reap_expired(&self) -> Result<usize, StoreError> {
        self.reap_inner().await
    }
}
