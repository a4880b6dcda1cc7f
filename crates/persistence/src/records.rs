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
    /// Incremented by every seat taken (not by seats given back); the optimistic join guard
    /// updates a room only at the version it read.
    pub version: u64,
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

/// A membership removed because the node that held it is gone (or is shutting down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclaimedMember {
    pub room: RoomId,
    pub user: UserId,
    pub node: NodeId,
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
            version: u64::try_from(row.version)
                .map_err(|_| corrupt("rooms.version", row.version))?,
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
