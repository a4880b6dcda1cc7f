//! The three join guards. Each runs inside the caller's transaction and either takes a seat,
//! inserts the participant and records the `member_joined` event, or refuses without changing
//! anything (the transaction rolls back, and with it the event number the seat took). A guard
//! that took a seat answers with the room's attendance after it, and the newcomer's view of the
//! room if it was asked for, when the backend could say so in the event's own statement
//! (`RETURNING`); `None` otherwise.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rand::Rng;
use roomgate_domain::{RoomId, UserId};

use crate::error::{PersistenceError, TxError};
use crate::records::RoomRow;
use crate::repo::{EventRepo, ParticipantRepo, RoomRepo};

/// How often the optimistic guard tries before answering `Contended`.
pub(crate) const OPTIMISTIC_ATTEMPTS: u32 = 20;

/// One user asking for a seat in one room, through one node.
pub(crate) struct SeatRequest<'a> {
    pub room: &'a RoomId,
    pub user: &'a UserId,
    pub node: i64,
    pub joined_at: NaiveDateTime,
    /// Whether the backend has `RETURNING` (see `Database::connect`).
    pub returning: bool,
    /// `Some(n)`: the newcomer will be shown the room with its newest `n` messages, so the
    /// event's statement also answers with them (where it can).
    pub arrival: Option<u32>,
}

/// What a guard that took a seat learned from the event's statement.
pub(crate) struct Recorded {
    /// The room's attendance after the join.
    pub attending: i32,
    /// The newcomer's view as JSON (members, history), when it was asked for.
    pub arrival: Option<(Option<String>, Option<String>)>,
}

/// `UPDATE … WHERE attending < capacity`: the check and the increment are one statement, so the
/// row lock is taken only once a seat is known to be free and nothing is decided on a stale read.
pub(crate) async fn conditional<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Option<Recorded>, TxError>
where
    C: RoomRepo + ParticipantRepo + EventRepo,
{
    if RoomRepo::take_seat_if_free(conn, seat.room.as_str()).await? == 0 {
        return Err(refusal(conn, seat).await);
    }
    add_participant(conn, seat).await
}

/// `SELECT … FOR UPDATE`, check, update: simple to reason about, but the room's row stays
/// locked for a whole extra round trip, which serialises joins to a hot room.
pub(crate) async fn pessimistic<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Option<Recorded>, TxError>
where
    C: RoomRepo + ParticipantRepo + EventRepo,
{
    let found = RoomRepo::find_for_update(conn, seat.room.as_str()).await?;
    with_free_seat(conn, seat, found).await?;
    RoomRepo::take_seat(conn, seat.room.as_str()).await?;
    add_participant(conn, seat).await
}

/// One optimistic attempt: read the version without locking, then take the seat only if the
/// version is unchanged. `VersionConflict` asks the caller to retry in a new transaction.
pub(crate) async fn optimistic_attempt<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Option<Recorded>, TxError>
where
    C: RoomRepo + ParticipantRepo + EventRepo,
{
    let found = RoomRepo::find(conn, seat.room.as_str()).await?;
    let room = with_free_seat(conn, seat, found).await?;
    if RoomRepo::take_seat_at_version(conn, seat.room.as_str(), room.version).await? == 0 {
        return Err(TxError::VersionConflict);
    }
    add_participant(conn, seat).await
}

/// Check-then-act with no guard, as the original design did: read the room, decide on what was
/// read, write `attending = read + 1`, insert the member. Two joins that both read before either
/// writes both get in and one increment is lost, so a room of ten ends with eleven members while
/// `attending` still says ten (which is also why the schema's `attending <= capacity` check
/// cannot catch it). Compiled only with the `demo-unsafe` feature, to measure what the guards
/// prevent.
#[cfg(feature = "demo-unsafe")]
pub(crate) async fn naive<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Option<Recorded>, TxError>
where
    C: RoomRepo + ParticipantRepo + EventRepo,
{
    let found = RoomRepo::find(conn, seat.room.as_str()).await?;
    let room = with_free_seat(conn, seat, found).await?;
    RoomRepo::write_attending(conn, seat.room.as_str(), room.attending + 1).await?;
    add_participant(conn, seat).await
}

/// The room as read by a guard, if it exists and has a free seat; otherwise the refusal
/// (`NotFound`, `RoomFull` or `AlreadyJoined`).
async fn with_free_seat<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
    found: Option<RoomRow>,
) -> Result<RoomRow, TxError>
where
    C: RoomRepo + ParticipantRepo,
{
    let Some(room) = found else {
        return Err(not_found(seat));
    };
    if !room.has_seat() {
        return Err(refusal(conn, seat).await);
    }
    Ok(room)
}

/// Full-jitter exponential back-off (1 ms doubling to 64 ms): losers of a race spread out instead
/// of colliding again on the next attempt.
pub(crate) fn optimistic_backoff(attempt: u32) -> Duration {
    let ceiling_ms = 1_u64 << attempt.min(6);
    Duration::from_micros(rand::rng().random_range(0..=ceiling_ms * 1000))
}

/// The participant insert that follows a taken seat, then its event. A duplicate means the user
/// already holds a seat: the error rolls back the seat just taken, so `attending` and
/// `last_event_seq` are unchanged and no event is written.
async fn add_participant<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Option<Recorded>, TxError>
where
    C: ParticipantRepo + EventRepo,
{
    let inserted = ParticipantRepo::insert(
        conn,
        seat.room.as_str(),
        seat.user.as_str(),
        seat.node,
        seat.joined_at,
    )
    .await;
    match inserted {
        Ok(()) => {}
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            return Err(already_joined(seat));
        }
        Err(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => {
            return Err(not_found(seat));
        }
        Err(e) => return Err(e.into()),
    }
    let (room, user) = (seat.room.as_str(), seat.user.as_str());
    if let (true, Some(history)) = (seat.returning, seat.arrival) {
        let joined =
            EventRepo::record_joined_arriving(conn, room, user, seat.joined_at, history.into())
                .await?;
        crate::records::one_event_written(usize::from(joined.is_some()), seat.room)?;
        Ok(joined.map(|(attending, members, history)| Recorded {
            attending,
            arrival: Some((members, history)),
        }))
    } else if seat.returning {
        let attending =
            EventRepo::record_joined_returning(conn, room, user, seat.joined_at).await?;
        crate::records::one_event_written(usize::from(attending.is_some()), seat.room)?;
        Ok(attending.map(|attending| Recorded {
            attending,
            arrival: None,
        }))
    } else {
        let recorded = EventRepo::record_joined(conn, room, user, seat.joined_at).await?;
        crate::records::one_event_written(recorded, seat.room)?;
        Ok(None)
    }
}

/// Why no seat was taken: the room is missing, the user is already in it, or it is full.
/// Only runs on the refusal path, so the extra reads cost nothing to successful joins.
async fn refusal<C>(conn: &mut C, seat: &SeatRequest<'_>) -> TxError
where
    C: RoomRepo + ParticipantRepo,
{
    let room = match RoomRepo::find(conn, seat.room.as_str()).await {
        Ok(Some(room)) => room,
        Ok(None) => return not_found(seat),
        Err(e) => return e.into(),
    };
    match ParticipantRepo::exists(conn, seat.room.as_str(), seat.user.as_str()).await {
        Ok(true) => already_joined(seat),
        Ok(false) => PersistenceError::RoomFull {
            room: seat.room.clone(),
            capacity: room.capacity(),
        }
        .into(),
        Err(e) => e.into(),
    }
}

fn not_found(seat: &SeatRequest<'_>) -> TxError {
    PersistenceError::NotFound {
        room: seat.room.clone(),
    }
    .into()
}

fn already_joined(seat: &SeatRequest<'_>) -> TxError {
    PersistenceError::AlreadyJoined {
        room: seat.room.clone(),
        user: seat.user.clone(),
    }
    .into()
}
