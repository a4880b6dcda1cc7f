//! [`Database`]: the operations the server calls, each one transaction where it writes.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use roomgate_domain::{MessageBody, NodeId, RoomId, UserId};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{PersistenceError, TxError};
use crate::guard::{self, OPTIMISTIC_ATTEMPTS, Recorded, SeatRequest};
use crate::pool::{self, MysqlConn, Pools, SqliteConn, checkout};
use crate::records::{
    Arrival, DepartureReason, EventKind, EventRecord, HeldSeat, Joined, MemberRow, MessageRecord,
    NewMessage, NewRoom, ReclaimedMember, RoomRecord, new_message, node_column, now,
    one_event_written, reclaimed,
};
use crate::repo::events::NewEventRow;
use crate::repo::rooms::{Departing, NewRoomRow};
use crate::repo::{EventRepo, MessageRepo, NewMessageRow, NodeRepo, ParticipantRepo, RoomRepo};
use crate::settings::{Backend, DatabaseSettings, JoinGuard};

/// How often a transaction that InnoDB rolled back as a deadlock victim is run again.
const DEADLOCK_RETRIES: u32 = 3;

/// Events deleted per transaction by [`Database::prune_relayed`].
const PRUNE_BATCH: i64 = 500;

/// Rows in one multi-row message INSERT at most (4 binds each: far below SQLite's 32,766 and
/// MySQL's 65,535 placeholders).
const MAX_MESSAGE_ROWS: usize = 256;

/// Rooms whose fixed columns [`Database`] remembers at most; a full memory starts over (a miss
/// only costs the read it saves).
const MAX_KNOWN_ROOMS: usize = 100_000;

/// A pool of connections to one database, MySQL/MariaDB or SQLite. Cheap to clone: clones
/// share the pool.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    guard: JoinGuard,
    acquire_timeout: Duration,
    /// Whether the last use of a MySQL connection found the server answering (an error it
    /// answered with counts as answering); see [`Database::answering`].
    answering: AtomicBool,
    /// Whether the backend has `RETURNING` (MariaDB 10.5+ and SQLite do, MySQL does not), so
    /// that a join's or a leave's event INSERT can say the attendance it recorded, in place of
    /// a read.
    returning: bool,
    /// Rooms this process has seen, for their columns that never change once written (id,
    /// title, capacity, password hash, creator, creation time; `attending` here is stale and
    /// never used). No operation alters or deletes a room, so an entry cannot go stale: a join
    /// of a known room builds its record from here and the attendance its event INSERT
    /// returned, without reading the room back.
    known: RwLock<HashMap<RoomId, RoomRecord>>,
}

impl Inner {
    fn answered(&self, answering: bool) {
        self.answering.store(answering, Ordering::Relaxed);
    }

    /// Remembers the fixed columns of a room just written or read.
    fn remember(&self, record: &RoomRecord) {
        // Every entry is a whole record, inserted in one step, so a lock poisoned by a panic
        // elsewhere guards nothing half-written and is used as is.
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_KNOWN_ROOMS && !known.contains_key(&record.id) {
            known.clear();
        }
        known.insert(record.id.clone(), record.clone());
    }

    /// The room's record with `attending` as given, if this process has seen the room.
    fn known_with(&self, room: &RoomId, attending: u32) -> Option<RoomRecord> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.get(room).map(|record| RoomRecord {
            attending,
            ..record.clone()
        })
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("join_guard", &self.inner.guard)
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of this database's backend. The body
/// is expanded once per backend, so it is type-checked against each connection type.
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let timeout = $db.inner.acquire_timeout;
        match &$db.inner.pools {
            Pools::Mysql(pool) => {
                let mut pooled = checkout(pool, timeout)
                    .await
                    .inspect_err(|_| $db.inner.answered(false))?;
                let outcome = async {
                    let $conn: &mut MysqlConn = &mut pooled;
                    $body
                }
                .await
                .map_err(PersistenceError::from);
                $db.inner
                    .answered(!matches!(outcome, Err(PersistenceError::Unavailable(_))));
                discard_if_unavailable(pooled, &outcome);
                outcome
            }
            Pools::Sqlite { pool, .. } => {
                let mut pooled = checkout(pool, timeout).await?;
                let $conn: &mut SqliteConn = &mut pooled;
                ($body).map_err(PersistenceError::from)
            }
        }
    }};
}

/// Runs `$body` in a write transaction and, once it committed, `$after` on the same connection
/// (for reads that need not hold the transaction's locks). A transaction InnoDB rolled back
/// as a deadlock victim runs again. On SQLite the transaction starts with `BEGIN IMMEDIATE`
/// (a deferred one that reads and then writes fails with "database is locked" under
/// concurrency) and waits for this process's writer turn first.
macro_rules! transaction {
    ($db:expr, |$conn:ident| $body:expr) => {
        transaction!($db, |$conn| $body, then | _conn, done | Ok(done))
    };
    ($db:expr, |$conn:ident| $body:expr, then |$after_conn:ident, $done:ident| $after:expr) => {{
        let timeout = $db.inner.acquire_timeout;
        match &$db.inner.pools {
            Pools::Mysql(pool) => {
                let mut pooled = checkout(pool, timeout)
                    .await
                    .inspect_err(|_| $db.inner.answered(false))?;
                let connection: &mut MysqlConn = &mut pooled;
                let mut attempt = 0;
                let outcome = loop {
                    let outcome = connection
                        .transaction(async |$conn: &mut MysqlConn| -> Result<_, TxError> { $body })
                        .await;
                    match outcome {
                        Err(e) if e.is_transient() && attempt < DEADLOCK_RETRIES => {
                            attempt += 1;
                            tracing::debug!(
                                attempt,
                                "transaction rolled back by the database, retrying"
                            );
                        }
                        outcome => break outcome,
                    }
                };
                $db.inner.answered(!matches!(&outcome, Err(e) if e.spoils_connection()));
                match outcome {
                    Err(e) if e.spoils_connection() => {
                        // A dead connection must not go back to the pool (see `Recycler`).
                        let _ = deadpool::managed::Object::take(pooled);
                        Err(e)
                    }
                    Ok($done) => {
                        let $after_conn: &mut MysqlConn = connection;
                        let after: Result<_, TxError> = $after;
                        // The read after the commit can find the database gone too.
                        if matches!(&after, Err(e) if e.spoils_connection()) {
                            $db.inner.answered(false);
                        }
                        after
                    }
                    Err(e) => Err(e),
                }
            }
            Pools::Sqlite { pool, writer } => {
                let turn = writer_turn(writer, timeout).await?;
                let mut pooled = checkout(pool, timeout).await?;
                let connection: &mut SqliteConn = &mut pooled;
                let outcome = connection
                    .immediate_transaction(async |$conn: &mut SqliteConn| -> Result<_, TxError> {
                        $body
                    })
                    .await;
                drop(turn);
                match outcome {
                    Ok($done) => {
                        let $after_conn: &mut SqliteConn = connection;
                        $after
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }};
}

/// Takes a MySQL connection out of the pool when using it failed for want of a database, so
/// that the next checkout opens a fresh one instead of reusing a dead one (see `Recycler`).
fn discard_if_unavailable<M: deadpool::managed::Manager, T>(
    pooled: deadpool::managed::Object<M>,
    outcome: &Result<T, PersistenceError>,
) {
    if matches!(outcome, Err(PersistenceError::Unavailable(_))) {
        let _ = deadpool::managed::Object::take(pooled);
    }
}

/// Waits for this process's turn to write to SQLite, at most `timeout`. The permit is given back
/// when dropped, so a cancelled or failed operation cannot keep the turn.
async fn writer_turn(
    writer: &Semaphore,
    timeout: Duration,
) -> Result<SemaphorePermit<'_>, PersistenceError> {
    match tokio::time::timeout(timeout, writer.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_closed)) => Err(PersistenceError::Internal(
            "the SQLite writer queue was closed".to_owned(),
        )),
        Err(_) => Err(PersistenceError::Unavailable(format!(
            "no turn to write to SQLite within {timeout:?}"
        ))),
    }
}

/// Which nodes' memberships a reap reclaims.
#[derive(Clone, Copy)]
enum Doomed {
    /// Nodes whose last heartbeat is older than the cutoff, and node ids that hold seats but have
    /// no row at all.
    SilentSince(chrono::NaiveDateTime),
    /// Every node except this one (a single node booting: whatever it finds is left over).
    AllExcept(i64),
    /// This node alone (its own graceful shutdown).
    Only(i64),
}

impl Doomed {
    /// What the departures of the members it removes are recorded as.
    fn reason(self) -> DepartureReason {
        match self {
            Doomed::SilentSince(_) | Doomed::AllExcept(_) => DepartureReason::Reclaimed,
            Doomed::Only(_) => DepartureReason::Shutdown,
        }
    }
}

impl Database {
    /// Connects, checks the database answers (within `acquire_timeout`) and runs the embedded
    /// migrations. The backend is chosen by the URL's scheme.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, PersistenceError> {
        let (backend, _) = pool::parse_url(&settings.url)?;
        if backend == Backend::Sqlite && settings.join_guard == JoinGuard::Pessimistic {
            return Err(PersistenceError::Config(
                "join_guard = \"pessimistic\" needs row locks (SELECT … FOR UPDATE), which \
                 SQLite does not have; use \"conditional\" or \"optimistic\", or MySQL/MariaDB"
                    .to_owned(),
            ));
        }
        let pools = pool::open(settings).await?;
        let returning = pool::has_returning(&pools, settings.acquire_timeout).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pools,
                guard: settings.join_guard,
                acquire_timeout: settings.acquire_timeout,
                answering: AtomicBool::new(true),
                returning,
                known: RwLock::new(HashMap::new()),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.pools.backend()
    }

    pub fn join_guard(&self) -> JoinGuard {
        self.inner.guard
    }

    /// Whether the database answered the last time this process used it: false from the first
    /// operation that could not reach it until the next one that did. A caller about to promise
    /// something the database must honour later (a seat) without asking it now checks this
    /// first. Always true on SQLite, which lives in this process.
    pub fn answering(&self) -> bool {
        AtomicBool::load(&self.inner.answering, Ordering::Relaxed)
    }

    /// Succeeds when a connection can be had and answers a query (readiness probes).
    pub async fn ping(&self) -> Result<(), PersistenceError> {
        with_conn!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok::<(), PersistenceError>(())
        })
    }

    /// Creates the room with its creator as first member, in one transaction, which also
    /// records the room's first two events: `room_opened` (seq 1, attending 0) and the
    /// creator's `member_joined` (seq 2, attending 1).
    pub async fn open_room_and_join(
        &self,
        room: &NewRoom,
        node: NodeId,
    ) -> Result<RoomRecord, PersistenceError> {
        let node_id = node_column(node)?;
        let capacity = i32::try_from(room.capacity.get())
            .map_err(|_| PersistenceError::Internal("capacity does not fit INTEGER".to_owned()))?;
        let created_at = now();
        let row = NewRoomRow {
            id: room.id.as_str(),
            title: room.title.as_str(),
            capacity,
            password_hash: room.password.as_ref().map(|p| p.as_str()),
            created_by: room.created_by.as_str(),
            created_at,
        };
        let row = &row;
        transaction!(self, |conn| {
            match RoomRepo::insert_with_creator(conn, row).await {
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(PersistenceError::RoomExists {
                        room: room.id.clone(),
                    }
                    .into());
                }
                inserted => inserted?,
            }
            ParticipantRepo::insert(conn, row.id, row.created_by, node_id, created_at).await?;
            let opened = NewEventRow {
                room: row.id,
                seq: 1,
                kind: EventKind::RoomOpened.as_str(),
                user: row.created_by,
                attending: 0,
                reason: None,
                at: created_at,
            };
            let joined = NewEventRow {
                seq: 2,
                kind: EventKind::MemberJoined.as_str(),
                attending: 1,
                ..opened
            };
            EventRepo::insert(conn, &[opened, joined]).await?;
            Ok(())
        })
        .map_err(TxError::into_persistence)?;
        let record = RoomRecord {
            id: room.id.clone(),
            title: room.title.as_str().to_owned(),
            capacity: room.capacity.get(),
            attending: 1,
            password_hash: room.password.clone(),
            created_by: room.created_by.clone(),
            created_at: created_at.and_utc(),
        };
        self.inner.remember(&record);
        Ok(record)
    }

    /// Takes a seat for `user` through `node`, guarded by the configured [`JoinGuard`]. The
    /// returned room's `attending` includes this join: on a backend with `RETURNING`, for a room
    /// this process has seen, it is the count the join's event recorded (exact, under the room's
    /// lock) and nothing is read; otherwise the room is read just after the commit (so it also
    /// counts any join or leave that committed in between).
    pub async fn join(
        &self,
        room: &RoomId,
        user: &UserId,
        node: NodeId,
    ) -> Result<RoomRecord, PersistenceError> {
        let (record, _) = self.take_seat(room, user, node, None).await?;
        Ok(record)
    }

    /// [`Database::join`], also answering with what the newcomer is shown: the members (the
    /// newcomer included) and the newest `history` messages, taken inside the join's
    /// transaction, so exactly the room as this join left it. On a backend with `RETURNING` the
    /// join's own event INSERT answers with them, so they cost no statement; elsewhere (MySQL)
    /// they are one read before the commit.
    pub async fn join_arriving(
        &self,
        room: &RoomId,
        user: &UserId,
        node: NodeId,
        history: u32,
    ) -> Result<Joined, PersistenceError> {
        let (room, arrival) = self.take_seat(room, user, node, Some(history)).await?;
        let arrival = arrival.ok_or_else(|| {
            PersistenceError::Internal("a join asked for its arrival came back without".into())
        })?;
        Ok(Joined { room, arrival })
    }

    async fn take_seat(
        &self,
        room: &RoomId,
        user: &UserId,
        node: NodeId,
        arrival: Option<u32>,
    ) -> Result<(RoomRecord, Option<Arrival>), PersistenceError> {
        let seat = SeatRequest {
            room,
            user,
            node: node_column(node)?,
            joined_at: now(),
            returning: self.inner.returning,
            arrival,
        };
        let seat = &seat;
        match self.inner.guard {
            JoinGuard::Conditional => {
                transaction!(
                    self,
                    |conn| guard::conditional(conn, seat).await,
                    then | conn,
                    recorded | self.room_after_join(conn, seat, recorded).await
                )
            }
            JoinGuard::Pessimistic => {
                transaction!(
                    self,
                    |conn| guard::pessimistic(conn, seat).await,
                    then | conn,
                    recorded | self.room_after_join(conn, seat, recorded).await
                )
            }
            JoinGuard::Optimistic => return self.join_optimistic(seat).await,
            #[cfg(feature = "demo-unsafe")]
            JoinGuard::Naive => {
                transaction!(
                    self,
                    |conn| guard::naive(conn, seat).await,
                    then | conn,
                    recorded | self.room_after_join(conn, seat, recorded).await
                )
            }
        }
        .map_err(TxError::into_persistence)
    }

    /// Retries the optimistic guard in fresh transactions, with jittered back-off between
    /// attempts (the connection goes back to the pool while waiting), then gives up.
    async fn join_optimistic(
        &self,
        seat: &SeatRequest<'_>,
    ) -> Result<(RoomRecord, Option<Arrival>), PersistenceError> {
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let outcome = transaction!(
                self,
                |conn| guard::optimistic_attempt(conn, seat).await,
                then | conn,
                recorded | self.room_after_join(conn, seat, recorded).await
            );
            match outcome {
                Err(TxError::VersionConflict) => {
                    tokio::time::sleep(guard::optimistic_backoff(attempt)).await;
                }
                outcome => return outcome.map_err(TxError::into_persistence),
            }
        }
        tracing::warn!(room = %seat.room, attempts = OPTIMISTIC_ATTEMPTS, "optimistic join gave up");
        Err(PersistenceError::Contended)
    }

    /// Gives back `user`'s seat held through `node`, recording its `member_left` event with `reason` in the same
    /// transaction. When a membership was removed, the room's attendance after it (as of the
    /// departure, under the room's lock, so it is exact); `None` when there was none to remove, so leaving twice
    /// is a no-op (and records nothing).
    pub async fn leave(
        &self,
        room: &RoomId,
        user: &UserId,
        node: NodeId,
        reason: DepartureReason,
    ) -> Result<Option<u32>, PersistenceError> {
        let departing = Departing::Member {
            room: room.as_str(),
            user: user.as_str(),
            node: node_column(node)?,
        };
        self.leave_row(room, departing, reason).await
    }

    /// The membership rows held through `node`, for comparing with its live sessions.
    pub async fn seats_of_node(&self, node: NodeId) -> Result<Vec<HeldSeat>, PersistenceError> {
        let node = node_column(node)?;
        let rows = with_conn!(self, |conn| ParticipantRepo::held_by_node(conn, node).await)?;
        rows.into_iter().map(crate::records::held_seat).collect()
    }

    /// Removes exactly the row `seat` names, if it is still there; as [`Database::leave`].
    pub async fn remove_seat(
        &self,
        seat: &HeldSeat,
        reason: DepartureReason,
    ) -> Result<Option<u32>, PersistenceError> {
        self.leave_row(&seat.room, Departing::Row(&seat.row), reason)
            .await
    }

    async fn leave_row(
        &self,
        room: &RoomId,
        departing: Departing<'_>,
        reason: DepartureReason,
    ) -> Result<Option<u32>, PersistenceError> {
        let at = now();
        let returning = self.inner.returning;
        let (room_id, user) = match departing {
            Departing::Member { room, user, .. } => (room, user),
            Departing::Row((room, user, _, _)) => (room.as_str(), user.as_str()),
        };
        // Three writes and no read on a backend with `RETURNING`: the room row first (locking
        // it, in the same order as every join, so that a join and a leave of the same user
        // cannot deadlock each other), changed only if the membership is there; then the row;
        // then the event, which answers with the attendance it copied from the locked room.
        let attending = transaction!(self, |conn| {
            if RoomRepo::free_seat_of(conn, &departing).await? == 0 {
                return Ok(None);
            }
            let removed = match departing {
                Departing::Member { room, user, node } => {
                    ParticipantRepo::delete(conn, room, user, node).await?
                }
                Departing::Row(row) => ParticipantRepo::delete_exact(conn, row).await?,
            };
            if removed != 1 {
                // The statement before found the row and holds the room; nothing may remove
                // the row in between. Rolling back keeps the count right should it happen.
                return Err(PersistenceError::Internal(format!(
                    "the membership of {user} in room {room_id} changed while it was removed"
                ))
                .into());
            }
            let reason = reason.as_str();
            let attending = if returning {
                let attending =
                    EventRepo::record_left_returning(conn, room_id, user, reason, at).await?;
                one_event_written(usize::from(attending.is_some()), room)?;
                attending
            } else {
                let recorded = EventRepo::record_left(conn, room_id, user, reason, at).await?;
                one_event_written(recorded, room)?;
                RoomRepo::find(conn, room_id)
                    .await?
                    .map(|row| row.attending)
            };
            match attending {
                Some(attending) => Ok(Some(attending)),
                None => Err(PersistenceError::Internal(format!(
                    "room {room_id} vanished while a member left it"
                ))
                .into()),
            }
        })
        .map_err(TxError::into_persistence)?;
        attending
            .map(|count| crate::records::stored_u32("rooms.attending", count))
            .transpose()
    }

    /// Appends a message to the room's history.
    pub async fn post_message(
        &self,
        room: &RoomId,
        user: &UserId,
        body: &MessageBody,
    ) -> Result<MessageRecord, PersistenceError> {
        let sent_at = now();
        let id = transaction!(self, |conn| {
            let inserted =
                MessageRepo::insert(conn, room.as_str(), user.as_str(), body.as_str(), sent_at)
                    .await;
            match inserted {
                Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
                    Err(PersistenceError::NotFound { room: room.clone() }.into())
                }
                inserted => Ok(inserted?),
            }
        })
        .map_err(TxError::into_persistence)?;
        new_message(id, room, user, body, sent_at)
    }

    /// Appends several messages, possibly of different rooms, in one transaction (one commit,
    /// so one wait for the log's flush, whatever their number), and returns their records in
    /// the order given, with ids increasing in that order. All are stored or none is.
    ///
    /// With `RETURNING` the rows go in multi-row INSERTs that answer with their ids. Without it
    /// (MySQL) each row is inserted on its own and its id read with `LAST_INSERT_ID()`: a
    /// multi-row INSERT's ids are consecutive only under `innodb_autoinc_lock_mode` 0 or 1, and
    /// MySQL 8 defaults to 2 ("interleaved"), where they need not be.
    pub async fn post_messages(
        &self,
        messages: &[NewMessage],
    ) -> Result<Vec<MessageRecord>, PersistenceError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let sent_at = now();
        let rows: Vec<NewMessageRow<'_>> = messages
            .iter()
            .map(|message| NewMessageRow {
                room: message.room.as_str(),
                user: message.user.as_str(),
                body: message.body.as_str(),
                sent_at,
            })
            .collect();
        let rows = &rows[..];
        let returning = self.inner.returning;
        let one_room = messages
            .iter()
            .all(|message| message.room == messages[0].room)
            .then(|| messages[0].room.clone());
        let one_room = &one_room;
        let ids = transaction!(self, |conn| {
            let mut ids = Vec::with_capacity(rows.len());
            let mut rest = rows;
            while !rest.is_empty() {
                let inserted = if returning {
                    // Row counts are powers of two only, so that a connection prepares at most
                    // a handful of these statements (the server caps prepared statements
                    // across all connections) at the price of a few more round trips inside
                    // the same commit.
                    let take = 1 << rest.len().min(MAX_MESSAGE_ROWS).ilog2();
                    let (chunk, tail) = rest.split_at(take);
                    rest = tail;
                    MessageRepo::insert_returning(conn, chunk)
                        .await
                        .map(|mut chunk_ids| {
                            // One statement's auto-increment values grow in the order of its
                            // rows, so sorted ids line up with the rows.
                            chunk_ids.sort_unstable();
                            (chunk.len(), chunk_ids)
                        })
                } else {
                    let (row, tail) = rest.split_at(1);
                    rest = tail;
                    let row = &row[0];
                    MessageRepo::insert(conn, row.room, row.user, row.body, row.sent_at)
                        .await
                        .map(|id| (1, vec![id]))
                };
                match inserted {
                    Ok((expected, chunk_ids)) if chunk_ids.len() == expected => {
                        ids.extend(chunk_ids);
                    }
                    Ok((expected, chunk_ids)) => {
                        return Err(PersistenceError::Internal(format!(
                            "inserting {expected} messages returned {} ids",
                            chunk_ids.len()
                        ))
                        .into());
                    }
                    Err(DieselError::DatabaseError(
                        DatabaseErrorKind::ForeignKeyViolation,
                        info,
                    )) => {
                        // A room that does not exist is named when the batch had only one.
                        return Err(match one_room {
                            Some(room) => PersistenceError::NotFound { room: room.clone() }.into(),
                            None => DieselError::DatabaseError(
                                DatabaseErrorKind::ForeignKeyViolation,
                                info,
                            )
                            .into(),
                        });
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(ids)
        })
        .map_err(TxError::into_persistence)?;
        ids.into_iter()
            .zip(messages)
            .map(|(id, message)| {
                new_message(id, &message.room, &message.user, &message.body, sent_at)
            })
            .collect()
    }

    /// The last `limit` messages of the room, oldest first.
    pub async fn history(
        &self,
        room: &RoomId,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, PersistenceError> {
        let mut rows = with_conn!(self, |conn| {
            MessageRepo::newest(conn, room.as_str(), i64::from(limit)).await
        })?;
        rows.reverse();
        rows.into_iter().map(MessageRecord::try_from).collect()
    }

    pub async fn get_room(&self, room: &RoomId) -> Result<Option<RoomRecord>, PersistenceError> {
        let row = with_conn!(self, |conn| RoomRepo::find(conn, room.as_str()).await)?;
        let record = row.map(RoomRecord::try_from).transpose()?;
        if let Some(record) = &record {
            self.inner.remember(record);
        }
        Ok(record)
    }

    /// Up to `limit` rooms ordered by id, starting after `after` (keyset paging).
    pub async fn list_rooms(
        &self,
        after: Option<&RoomId>,
        limit: u32,
    ) -> Result<Vec<RoomRecord>, PersistenceError> {
        let after = after.map(RoomId::as_str);
        let rows = with_conn!(self, |conn| {
            RoomRepo::page(conn, after, i64::from(limit)).await
        })?;
        let records: Vec<RoomRecord> = rows
            .into_iter()
            .map(RoomRecord::try_from)
            .collect::<Result<_, _>>()?;
        for record in &records {
            self.inner.remember(record);
        }
        Ok(records)
    }

    /// What a newcomer to the room is shown: its members and its newest `history` messages,
    /// in one read (the same as [`Database::members`] and [`Database::history`], one round
    /// trip instead of two).
    pub async fn arrival(&self, room: &RoomId, history: u32) -> Result<Arrival, PersistenceError> {
        with_conn!(self, |conn| guard::read_arrival(conn, room, history)
            .await
            .map_err(TxError::into_persistence))
    }

    /// The room's members in the order they joined (ties broken by user id).
    pub async fn members(&self, room: &RoomId) -> Result<Vec<UserId>, PersistenceError> {
        let users = with_conn!(self, |conn| {
            ParticipantRepo::of_room(conn, room.as_str()).await
        })?;
        users
            .iter()
            .map(|user| crate::records::stored_user_id(user))
            .collect()
    }

    /// Up to `limit` of the room's events with `seq` greater than `after`, oldest first (keyset
    /// paging: pass the last `seq` seen). Empty for a room that does not exist.
    pub async fn events(
        &self,
        room: &RoomId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, PersistenceError> {
        // No stored seq exceeds i64::MAX, so nothing comes after such an `after`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let rows = with_conn!(self, |conn| {
            EventRepo::page(conn, room.as_str(), after, i64::from(limit)).await
        })?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }

    /// Up to `limit` events not yet relayed, ordered by room and then `seq`, so each room's
    /// events come as a run without gaps starting at its oldest unrelayed one. Events commit in
    /// `seq` order within a room, so one visible here has every earlier event of its room
    /// visible too.
    pub async fn unrelayed_events(&self, limit: u32) -> Result<Vec<EventRecord>, PersistenceError> {
        let rows = with_conn!(self, |conn| {
            EventRepo::unrelayed(conn, i64::from(limit)).await
        })?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }

    /// Marks events as relayed, as of now, in one transaction. Events already marked (by
    /// another relay) keep their first mark; unknown (or pruned) ones are ignored. Returns how
    /// many of the given events exist, all of them now marked.
    pub async fn mark_relayed(&self, events: &[(RoomId, u64)]) -> Result<usize, PersistenceError> {
        let mut by_room: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (room, seq) in events {
            // A seq beyond i64 cannot be stored, so there is nothing to mark.
            if let Ok(seq) = i64::try_from(*seq) {
                by_room.entry(room.as_str()).or_default().push(seq);
            }
        }
        if by_room.is_empty() {
            return Ok(0);
        }
        // Rows are locked in (room, seq) order, so relays marking overlapping sets at the same
        // time wait for each other instead of deadlocking. Only those rows are locked (see
        // `EventRepo::mark_relayed`), so marking does not hold up the joins and leaves writing
        // new events (unless asked to mark an event that does not exist: InnoDB then locks the
        // gap where it would be, until the commit).
        for seqs in by_room.values_mut() {
            seqs.sort_unstable();
            seqs.dedup();
        }
        let by_room = &by_room;
        let at = now();
        transaction!(self, |conn| {
            let mut marked = 0;
            for (room, seqs) in by_room {
                marked += EventRepo::mark_relayed(conn, room, seqs, at).await?;
            }
            Ok(marked)
        })
        .map_err(TxError::into_persistence)
    }

    /// Deletes the events relayed more than `older_than` ago; returns how many. Works in
    /// batches of a few hundred: each reads the keys of the oldest relayed events without
    /// locking, then deletes them by primary key in a short transaction, so on InnoDB it never
    /// range-locks the relay index (a range delete there would block the joins and leaves
    /// inserting unrelayed events next to the locked range until it committed).
    pub async fn prune_relayed(&self, older_than: Duration) -> Result<usize, PersistenceError> {
        let older_than = chrono::Duration::from_std(older_than)
            .map_err(|_| PersistenceError::Config("older_than is too large".to_owned()))?;
        let cutoff = now()
            .checked_sub_signed(older_than)
            .ok_or_else(|| PersistenceError::Config("older_than is too large".to_owned()))?;
        let mut pruned = 0;
        loop {
            let keys = with_conn!(self, |conn| {
                EventRepo::relayed_before(conn, cutoff, PRUNE_BATCH).await
            })?;
            let found = keys.len();
            if found == 0 {
                break;
            }
            let mut by_room: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (room, seq) in keys {
                by_room.entry(room).or_default().push(seq);
            }
            for seqs in by_room.values_mut() {
                seqs.sort_unstable();
            }
            let by_room = &by_room;
            let deleted = transaction!(self, |conn| {
                let mut deleted = 0;
                for (room, seqs) in by_room {
                    deleted += EventRepo::delete_relayed(conn, room, seqs).await?;
                }
                Ok(deleted)
            })
            .map_err(TxError::into_persistence)?;
            pruned += deleted;
            // A short batch was the last one; a batch another pruner deleted first means it is
            // working through the same rows, so leave the rest to it.
            if i64::try_from(found).unwrap_or(i64::MAX) < PRUNE_BATCH || deleted == 0 {
                break;
            }
        }
        if pruned > 0 {
            tracing::debug!(pruned, "pruned relayed room events");
        }
        Ok(pruned)
    }

    /// Records that `node` is alive, as of now.
    pub async fn register_node(&self, node: NodeId) -> Result<(), PersistenceError> {
        let id = node_column(node)?;
        let at = now();
        transaction!(self, |conn| Ok(NodeRepo::upsert(conn, id, at).await?))
            .map_err(TxError::into_persistence)
    }

    /// Moves `node`'s heartbeat to now. If another node already reaped this one as dead, its row
    /// is inserted again (and a warning logged): its old memberships are gone, and the caller
    /// should treat sessions older than the reap as no longer holding seats.
    pub async fn heartbeat(&self, node: NodeId) -> Result<(), PersistenceError> {
        let id = node_column(node)?;
        let at = now();
        transaction!(self, |conn| {
            if NodeRepo::touch(conn, id, at).await? == 0 {
                tracing::warn!(%node, "heartbeat found no row for this node: it was reaped as dead; registering again");
                NodeRepo::upsert(conn, id, at).await?;
            }
            Ok(())
        })
        .map_err(TxError::into_persistence)
    }

    /// Reclaims the seats of nodes whose heartbeat is older than `stale_after`, and of node ids
    /// that hold seats without any node row; deletes those nodes' rows. One transaction.
    pub async fn reap_dead_nodes(
        &self,
        stale_after: Duration,
    ) -> Result<Vec<ReclaimedMember>, PersistenceError> {
        let stale_after = chrono::Duration::from_std(stale_after)
            .map_err(|_| PersistenceError::Config("stale_after is too large".to_owned()))?;
        let cutoff = now()
            .checked_sub_signed(stale_after)
            .ok_or_else(|| PersistenceError::Config("stale_after is too large".to_owned()))?;
        self.reclaim(Doomed::SilentSince(cutoff)).await
    }

    /// For a single node booting: reclaims every seat not held by `node` and deletes every other
    /// node's row, whatever their heartbeats say.
    pub async fn reap_all_nodes_except(
        &self,
        node: NodeId,
    ) -> Result<Vec<ReclaimedMember>, PersistenceError> {
        self.reclaim(Doomed::AllExcept(node_column(node)?)).await
    }

    /// Graceful shutdown: gives back every seat `node` holds and deletes its row.
    pub async fn remove_node(
        &self,
        node: NodeId,
    ) -> Result<Vec<ReclaimedMember>, PersistenceError> {
        self.reclaim(Doomed::Only(node_column(node)?)).await
    }

    async fn reclaim(&self, doomed: Doomed) -> Result<Vec<ReclaimedMember>, PersistenceError> {
        let reason = doomed.reason().as_str();
        let at = now();
        let rows = transaction!(self, |conn| {
            let nodes = match doomed {
                Doomed::SilentSince(cutoff) => {
                    let registered: BTreeSet<i64> =
                        NodeRepo::all_ids(conn).await?.into_iter().collect();
                    let mut nodes: BTreeSet<i64> = NodeRepo::silent_since(conn, cutoff)
                        .await?
                        .into_iter()
                        .collect();
                    let holders = ParticipantRepo::node_ids(conn).await?;
                    nodes.extend(holders.into_iter().filter(|id| !registered.contains(id)));
                    nodes
                }
                Doomed::AllExcept(keep) => {
                    let mut nodes: BTreeSet<i64> =
                        NodeRepo::all_ids(conn).await?.into_iter().collect();
                    nodes.extend(ParticipantRepo::node_ids(conn).await?);
                    nodes.remove(&keep);
                    nodes
                }
                Doomed::Only(node) => BTreeSet::from([node]),
            };
            if nodes.is_empty() {
                return Ok(Vec::new());
            }
            let nodes: Vec<i64> = nodes.into_iter().collect();
            let members: Vec<MemberRow> = ParticipantRepo::held_by_for_update(conn, &nodes).await?;
            ParticipantRepo::delete_held_by(conn, &nodes).await?;
            let mut freed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (room, user, _) in &members {
                freed.entry(room.as_str()).or_default().push(user.as_str());
            }
            // Per room: one UPDATE gives back its seats and takes as many event numbers, a read
            // of the (now locked) row says where they end, and the departures are numbered in
            // (user) order up to there. Two statements per room however many members, then the
            // events of every room in multi-row INSERTs (MySQL; row by row on SQLite).
            let mut events = Vec::with_capacity(members.len());
            for (room, users) in freed {
                let count = i32::try_from(users.len()).map_err(|_| {
                    PersistenceError::Internal("too many members to reclaim".to_owned())
                })?;
                RoomRepo::free_seats(conn, room, count).await?;
                let Some(after) = RoomRepo::find_for_update(conn, room).await? else {
                    return Err(PersistenceError::Internal(format!(
                        "room {room} vanished while its seats were reclaimed"
                    ))
                    .into());
                };
                for (before_end, user) in (0..count).rev().zip(users) {
                    events.push(NewEventRow {
                        room,
                        seq: after.last_event_seq - i64::from(before_end),
                        kind: EventKind::MemberLeft.as_str(),
                        user,
                        attending: after.attending + before_end,
                        reason: Some(reason),
                        at,
                    });
                }
            }
            EventRepo::insert(conn, &events).await?;
            NodeRepo::delete(conn, &nodes).await?;
            Ok(members)
        })
        .map_err(TxError::into_persistence)?;
        if !rows.is_empty() {
            tracing::info!(count = rows.len(), "reclaimed seats of departed nodes");
        }
        reclaimed(rows)
    }
}

impl Database {
    /// The room after `seat`'s join committed: from memory and the attendance the join
    /// recorded, when there are both; read otherwise (and remembered).
    async fn room_after_join<C: RoomRepo>(
        &self,
        conn: &mut C,
        seat: &SeatRequest<'_>,
        recorded: Recorded,
    ) -> Result<(RoomRecord, Option<Arrival>), TxError> {
        let Recorded { attending, arrival } = recorded;
        if let Some(attending) = attending {
            let attending = crate::records::stored_u32("rooms.attending", attending)?;
            if let Some(record) = self.inner.known_with(seat.room, attending) {
                return Ok((record, arrival));
            }
        }
        let record = read_room_after_join(conn, seat).await?;
        self.inner.remember(&record);
        Ok((record, arrival))
    }
}

/// The room as it is right after a join committed.
async fn read_room_after_join<C: RoomRepo>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<RoomRecord, TxError> {
    match RoomRepo::find(conn, seat.room.as_str()).await? {
        Some(row) => Ok(RoomRecord::try_from(row)?),
        None => Err(PersistenceError::NotFound {
            room: seat.room.clone(),
        }
        .into()),
    }
}
