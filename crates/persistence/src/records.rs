//! What the operations take and return, in domain types, and the rows they are read from.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::Queryable;
use roomgate_domain::{Capacity, MessageBody, NodeId, PasswordHash, RoomId, Title, UserId};

use crate::error::PersistenceError;

/// A room to create; its creator becomes its first member in the same transaction.
#[derive(Clone, Debug)]
pub struct NewRoom {
    pub id: RoomId,
    pub title: Title,
    pub capacity: Capacity,
    pub password: Option<PasswordHash>,
    pub created_by: UserId,
}

/// A room as stored.
#[derive(Clone, Debug)]
pub struct RoomRecord {
    pub id: RoomId,
    pub title: String,
    pub capacity: u32,
    /// Members right now; never above `capacity` (the database enforces it).
    pub attending: u32,
    pub password_hash: Option<PasswordHash>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// A committed join and what its newcomer is shown.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The room as the join left it.
    pub room: RoomRecord,
    pub arrival: Arrival,
}

/// What a newcomer to a room is shown, read in one statement.
#[derive(Clone, Debug, Default)]
pub struct Arrival {
    /// The room's members in the order they joined (ties broken by user id).
    pub members: Vec<UserId>,
    /// The newest messages, oldest first.
    pub history: Vec<MessageRecord>,
}

impl Arrival {
    /// The view the join's own statement answered with (`members` and `history` as JSON, see
    /// `seat_sql::RecordJoinedArrivingMariadb`), messages put oldest first.
    pub(crate) fn from_json(
        room: &RoomId,
        members: Option<&str>,
        history: Option<&str>,
    ) -> Result<Self, PersistenceError> {
        let unreadable = |what: &str, error: serde_json::Error| {
            PersistenceError::Internal(format!("the {what} of room {room} did not parse: {error}"))
        };
        let members: Vec<String> = match members {
            Some(json) => serde_json::from_str(json).map_err(|e| unreadable("members", e))?,
            None => Vec::new(),
        };
        let mut messages: Vec<(i64, String, String, String)> = match history {
            Some(json) => serde_json::from_str(json).map_err(|e| unreadable("history", e))?,
            None => Vec::new(),
        };
        messages.sort_unstable_by_key(|(id, ..)| *id);
        Ok(Self {
            members: members
                .iter()
                .map(|user| stored_user_id(user))
                .collect::<Result<_, _>>()?,
            history: messages
                .into_iter()
                .map(|(id, user_id, body, sent_at)| {
                    // Both backends render the DATETIME(6)/TIMESTAMP column as "%F %T%.f".
                    let sent_at = NaiveDateTime::parse_from_str(&sent_at, "%F %T%.f")
                        .map_err(|_| corrupt("messages.sent_at", &sent_at))?;
                    MessageRecord::try_from(MessageRow {
                        id,
                        room_id: room.as_str().to_owned(),
                        user_id,
                        body,
                        sent_at,
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A chat message as stored.
#[derive(Clone, Debug)]
pub struct MessageRecord {
    /// Increases with every message posted, across all rooms.
    pub id: u64,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub body: String,
    pub sent_at: DateTime<Utc>,
}

/// A chat message to store, as [`crate::Database::post_messages`] takes it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub room: RoomId,
    pub user: UserId,
    pub body: MessageBody,
}

/// A membership removed because the node that held it is gone (or is shutting down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclaimedMember {
    pub room: RoomId,
    pub user: UserId,
    pub node: NodeId,
}

/// Why a member left a room, as recorded on its `member_left` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepartureReason {
    /// The client said so (a `leave` frame).
    Left,
    /// The connection ended without a `leave`: closed by the client, lost, refused for
    /// misbehaviour or slowness, or a join that could not be completed.
    Disconnected,
    /// The client stopped answering within the session's timeout.
    TimedOut,
    /// Its node died or was restarted, and the seat was reclaimed by a survivor, at boot, or by
    /// the node's own reconciliation (a row no session held).
    Reclaimed,
    /// Its node shut down gracefully.
    Shutdown,
}

impl DepartureReason {
    pub const ALL: [DepartureReason; 5] = [
        Self::Left,
        Self::Disconnected,
        Self::TimedOut,
        Self::Reclaimed,
        Self::Shutdown,
    ];

    /// The name stored in `room_events.reason` and used by the wire contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Disconnected => "disconnected",
            Self::TimedOut => "timed_out",
            Self::Reclaimed => "reclaimed",
            Self::Shutdown => "shutdown",
        }
    }

    fn from_stored(raw: &str) -> Result<Self, PersistenceError> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == raw)
            .ok_or_else(|| corrupt("room_events.reason", raw))
    }
}

impl std::fmt::Display for DepartureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a room event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The room's row was written (its creator confirmed); always `seq` 1, `attending` 0, and
    /// followed in the same transaction by the creator's `MemberJoined`.
    RoomOpened,
    MemberJoined,
    /// Always carries a [`DepartureReason`].
    MemberLeft,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [Self::RoomOpened, Self::MemberJoined, Self::MemberLeft];

    /// The name stored in `room_events.kind` and used by the wire contract (`type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoomOpened => "room_opened",
            Self::MemberJoined => "member_joined",
            Self::MemberLeft => "member_left",
        }
    }

    fn from_stored(raw: &str) -> Result<Self, PersistenceError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| corrupt("room_events.kind", raw))
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to a room's membership, written in the same transaction as the change: it exists
/// exactly when the change committed. A room's events are numbered 1, 2, 3, … without gaps, in
/// the order their changes committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub room: RoomId,
    pub seq: u64,
    pub kind: EventKind,
    /// The member who joined or left; for `RoomOpened`, the creator.
    pub user: UserId,
    /// The room's attendance right after the change.
    pub attending: u32,
    /// `Some` exactly on `MemberLeft`.
    pub reason: Option<DepartureReason>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Queryable)]
pub(crate) struct EventRow {
    pub room_id: String,
    pub seq: i64,
    pub kind: String,
    pub user_id: String,
    pub attending: i32,
    pub reason: Option<String>,
    pub at: NaiveDateTime,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = PersistenceError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        let kind = EventKind::from_stored(&row.kind)?;
        let reason = row
            .reason
            .as_deref()
            .map(DepartureReason::from_stored)
            .transpose()?;
        if (kind == EventKind::MemberLeft) != reason.is_some() {
            return Err(corrupt(
                "room_events (kind, reason)",
                (&row.kind, &row.reason),
            ));
        }
        Ok(EventRecord {
            room: stored_room_id(&row.room_id)?,
            seq: u64::try_from(row.seq)
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| corrupt("room_events.seq", row.seq))?,
            kind,
            user: stored_user_id(&row.user_id)?,
            attending: stored_u32("room_events.attending", row.attending)?,
            reason,
            at: row.at.and_utc(),
        })
    }
}

/// The current time at the precision both backends store (microseconds), so that a record built
/// in memory equals the one read back.
pub(crate) fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[derive(Debug, Queryable)]
pub(crate) struct RoomRow {
    pub id: String,
    pub title: String,
    pub capacity: i32,
    pub attending: i32,
    pub password_hash: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub version: i64,
    /// The `seq` of the room's latest event; the next change's event takes the one after it.
    /// Internal: callers see it only through [`EventRecord`]s.
    pub last_event_seq: i64,
}

impl RoomRow {
    pub(crate) fn has_seat(&self) -> bool {
        self.attending < self.capacity
    }

    pub(crate) fn capacity(&self) -> u32 {
        u32::try_from(self.capacity).unwrap_or(0)
    }
}

impl TryFrom<RoomRow> for RoomRecord {
    type Error = PersistenceError;

    fn try_from(row: RoomRow) -> Result<Self, Self::Error> {
        Ok(RoomRecord {
            id: stored_room_id(&row.id)?,
            title: row.title,
            capacity: stored_u32("rooms.capacity", row.capacity)?,
            attending: stored_u32("rooms.attending", row.attending)?,
            password_hash: row.password_hash.map(PasswordHash::from_stored),
            created_by: stored_user_id(&row.created_by)?,
            created_at: row.created_at.and_utc(),
        })
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct MessageRow {
    pub id: i64,
    pub room_id: String,
    pub user_id: String,
    pub body: String,
    pub sent_at: NaiveDateTime,
}

impl TryFrom<MessageRow> for MessageRecord {
    type Error = PersistenceError;

    fn try_from(row: MessageRow) -> Result<Self, Self::Error> {
        Ok(MessageRecord {
            id: u64::try_from(row.id).map_err(|_| corrupt("messages.id", row.id))?,
            room_id: stored_room_id(&row.room_id)?,
            user_id: stored_user_id(&row.user_id)?,
            body: row.body,
            sent_at: row.sent_at.and_utc(),
        })
    }
}

/// A participant row reduced to what reaping reports.
pub(crate) type MemberRow = (String, String, i64);
/// A participant row as a reconciliation sees it: room, user, node, joined at.
pub(crate) type HeldRow = (String, String, i64, NaiveDateTime);

/// One membership row held through a node, as found by [`crate::Database::seats_of_node`].
/// It names its row exactly (the instant it was taken included), so removing it can never
/// remove a later membership of the same user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSeat {
    pub room: RoomId,
    pub user: UserId,
    pub(crate) row: HeldRow,
}

pub(crate) fn held_seat(row: HeldRow) -> Result<HeldSeat, PersistenceError> {
    Ok(HeldSeat {
        room: stored_room_id(&row.0)?,
        user: stored_user_id(&row.1)?,
        row,
    })
}

pub(crate) fn reclaimed(rows: Vec<MemberRow>) -> Result<Vec<ReclaimedMember>, PersistenceError> {
    rows.into_iter()
        .map(|(room, user, node)| {
            Ok(ReclaimedMember {
                room: stored_room_id(&room)?,
                user: stored_user_id(&user)?,
                node: stored_node_id(node)?,
            })
        })
        .collect()
}

pub(crate) fn new_message(
    id: i64,
    room: &RoomId,
    user: &UserId,
    body: &MessageBody,
    sent_at: NaiveDateTime,
) -> Result<MessageRecord, PersistenceError> {
    Ok(MessageRecord {
        id: u64::try_from(id).map_err(|_| corrupt("messages.id", id))?,
        room_id: room.clone(),
        user_id: user.clone(),
        body: body.as_str().to_owned(),
        sent_at: sent_at.and_utc(),
    })
}

/// The single-event INSERT … SELECT copies from the room row the transaction just updated, so it
/// inserts exactly one row; anything else is a bug, and the transaction must not commit.
pub(crate) fn one_event_written(inserted: usize, room: &RoomId) -> Result<(), PersistenceError> {
    if inserted == 1 {
        Ok(())
    } else {
        Err(events_written(inserted, room))
    }
}

/// The error for an event INSERT that wrote `inserted` rows instead of one.
pub(crate) fn events_written(inserted: usize, room: &RoomId) -> PersistenceError {
    PersistenceError::Internal(format!(
        "the event of a change to room {room} inserted {inserted} rows, not 1"
    ))
}

/// Node ids are 63-bit so that they fit a signed BIGINT; anything larger is a caller's bug.
pub(crate) fn node_column(node: NodeId) -> Result<i64, PersistenceError> {
    i64::try_from(node.0)
        .map_err(|_| PersistenceError::Internal(format!("node id {node} does not fit 63 bits")))
}

pub(crate) fn stored_room_id(raw: &str) -> Result<RoomId, PersistenceError> {
    RoomId::parse(raw).map_err(|_| corrupt("room id", raw))
}

pub(crate) fn stored_user_id(raw: &str) -> Result<UserId, PersistenceError> {
    UserId::parse(raw).map_err(|_| corrupt("user id", raw))
}

fn stored_node_id(raw: i64) -> Result<NodeId, PersistenceError> {
    u64::try_from(raw)
        .map(NodeId)
        .map_err(|_| corrupt("participants.node_id", raw))
}

pub(crate) fn stored_u32(column: &str, raw: i32) -> Result<u32, PersistenceError> {
    u32::try_from(raw).map_err(|_| corrupt(column, raw))
}

/// Every value was validated before it was written, so one that no longer parses means the
/// table was edited by hand or a migration is wrong: a bug to report, not a client error.
fn corrupt(what: &str, value: impl std::fmt::Debug) -> PersistenceError {
    PersistenceError::Internal(format!("stored {what} {value:?} is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, reason: Option<&str>) -> EventRow {
        EventRow {
            room_id: "r".to_owned(),
            seq: 3,
            kind: kind.to_owned(),
            user_id: "alice".to_owned(),
            attending: 2,
            reason: reason.map(str::to_owned),
            at: now(),
        }
    }

    #[test]
    fn stored_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_stored(kind.as_str()).ok(), Some(kind));
        }
        for reason in DepartureReason::ALL {
            assert_eq!(
                DepartureReason::from_stored(reason.as_str()).ok(),
                Some(reason)
            );
        }
        let left = EventRecord::try_from(row("member_left", Some("timed_out"))).ok();
        assert_eq!(
            left.map(|e| (e.kind, e.reason)),
            Some((EventKind::MemberLeft, Some(DepartureReason::TimedOut)))
        );
    }

    #[test]
    fn unknown_or_inconsistent_stored_events_are_internal_errors() {
        for bad in [
            row("member_kicked", None),
            row("member_left", Some("evicted")),
            row("member_left", None),
            row("member_joined", Some("left")),
            row("Member_Joined", None),
            EventRow {
                seq: 0,
                ..row("member_joined", None)
            },
            EventRow {
                attending: -1,
                ..row("member_joined", None)
            },
        ] {
            let outcome = EventRecord::try_from(bad);
            assert!(
                matches!(outcome, Err(PersistenceError::Internal(_))),
                "{outcome:?}"
            );
        }
    }
}
