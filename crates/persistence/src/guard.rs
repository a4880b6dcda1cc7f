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
use crate::records::{Arrival, MessageRecord, MessageRow, RoomRow};
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

/// What a guard that took a seat learned inside its transaction.
pub(crate) struct Recorded {
    /// The room's attendance after the join, when the event's statement could say it
    /// (`RETURNING`); `None` otherwise.
    pub attending: Option<i32>,
    /// The newcomer's view, when it was asked for.
    pub arrival: Option<Arrival>,
}

/// `UPDATE … WHERE attending < capacity`: the check and the increment are one statement, so the
/// row lock is taken only once a seat is known to be free and nothing is decided on a stale read.
pub(crate) async fn conditional<C>(
    conn: &mut C,
    seat: &SeatRequest<'_>,
) -> Result<Recorded, TxError>
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
) -> Result<Recorded, TxError>
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
) -> Result<Recorded, TxError>
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
pub(crate) async fn naive<C>(conn: &mut C, seat: &SeatRequest<'_>) -> Result<Recorded, TxError>
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
async fn add_participant<C>(conn: &mut C, seat: &SeatRequest<'_>) -> Result<Recorded, TxError>
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
    // The newcomer's view is taken here, inside the transaction and under the room row's lock,
    // so that it is exactly the room as this join left it, and so that a view that cannot be
    // had (or read) rolls the join back instead of leaving a committed seat without a session.
    match (seat.returning, seat.arrival) {
        (true, Some(history)) => {
            let joined =
                EventRepo::record_joined_arriving(conn, room, user, seat.joined_at, history.into())
                    .await?;
            let Some((attending, members, history)) = joined else {
                return Err(crate::records::events_written(0, seat.room).into());
            };
            let arrival = Arrival::from_json(seat.room, members.as_deref(), history.as_deref())?;
            Ok(Recorded {
                attending: Some(attending),
                arrival: Some(arrival),
            })
        }
        (true, None) => {
            let attending =
                EventRepo::record_joined_returning(conn, room, user, seat.joined_at).await?;
            crate::records::one_event_written(usize::from(attending.is_some()), seat.room)?;
            Ok(Recorded {
                attending,
                arrival: None,
            })
        }
        (false, arrival) => {
            let recorded = EventRepo::record_joined(conn, room, user, seat.joined_at).await?;
            crate::records::one_event_written(recorded, seat.room)?;
            let arrival = match arrival {
                Some(history) => Some(read_arrival(conn, seat.room, history).await?),
                None => None,
            };
            Ok(Recorded {
                attending: None,
                arrival,
            })
        }
    }
}

/// What a newcomer to `room` is shown, in one read: its members in the order they joined and
/// its newest `history` messages, oldest first. Database errors stay `TxError::Db`, so a
/// connection that died here is recognised as such.
pub(crate) async fn read_arrival<C: ParticipantRepo>(
    conn: &mut C,
    room: &RoomId,
    history: u32,
) -> Result<Arrival, TxError> {
    let rows = ParticipantRepo::arrival(conn, room.as_str(), i64::from(history)).await?;
    let mut arrival = Arrival::default();
    for (part, user, id, body, at) in rows {
        match (part, id, body) {
            (0, _, _) => arrival.members.push(crate::records::stored_user_id(&user)?),
            (_, Some(id), Some(body)) => {
                arrival.history.push(MessageRecord::try_from(MessageRow {
                    id,
                    room_id: room.as_str().to_owned(),
                    user_id: user,
                    body,
                    sent_at: at,
                })?);
            }
            _ => {
                return Err(PersistenceError::Internal(format!(
                    "the arrival read of room {room} returned a message without id or body"
                ))
                .into());
            }
        }
    }
    Ok(arrival)
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
