//! `rooms`: the row that counts a room's members and refuses the (capacity + 1)-th.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::records::{HeldRow, RoomRow};

/// Which membership a leave removes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Departing<'a> {
    /// The user's membership in the room, if held through this node (a session leaving its
    /// own seat).
    Member {
        room: &'a str,
        user: &'a str,
        node: i64,
    },
    /// Exactly this row (a reconciliation removing what no session holds).
    Row(&'a HeldRow),
}

pub(crate) struct NewRoomRow<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub capacity: i32,
    pub password_hash: Option<&'a str>,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
}

/// The events a new room starts with: `room_opened` (seq 1) and its creator's `member_joined`
/// (seq 2).
pub(crate) const OPENING_EVENTS: i64 = 2;

pub(crate) trait RoomRepo {
    /// Inserts a room whose creator is already counted (`attending = 1`), with its first two
    /// events' numbers taken (`last_event_seq = 2`: `room_opened` and the creator's join).
    async fn insert_with_creator(&mut self, room: &NewRoomRow<'_>) -> QueryResult<()>;
    async fn find(&mut self, id: &str) -> QueryResult<Option<RoomRow>>;
    /// Like `find`, but the row stays locked against other writers until the transaction ends.
    async fn find_for_update(&mut self, id: &str) -> QueryResult<Option<RoomRow>>;
    async fn page(&mut self, after: Option<&str>, limit: i64) -> QueryResult<Vec<RoomRow>>;
    /// The conditional guard: takes a seat only if one is free, in one statement.
    /// Returns the number of rooms updated (0: missing or full).
    async fn take_seat_if_free(&mut self, id: &str) -> QueryResult<usize>;
    /// The optimistic guard: takes a seat only if nobody changed the room since `version` was
    /// read. Returns 0 when the version moved on.
    async fn take_seat_at_version(&mut self, id: &str, version: i64) -> QueryResult<usize>;
    /// The pessimistic guard's update, after `find_for_update` checked for a free seat.
    async fn take_seat(&mut self, id: &str) -> QueryResult<usize>;
    /// Gives back `count` seats whose participant rows the caller has just deleted (in the
    /// same transaction, after locking the room with `find_for_update`), and takes `count`
    /// event numbers for their departures.
    async fn free_seats(&mut self, id: &str, count: i32) -> QueryResult<usize>;
    /// A leave's first statement: gives back the seat `departing` names and takes an event
    /// number for its departure, only if that membership row exists. Returns the rooms updated
    /// (0: no such membership, or no such room). The caller then deletes the row.
    async fn free_seat_of(&mut self, departing: &Departing<'_>) -> QueryResult<usize>;
    /// Writes a count the caller computed from an earlier read: the lost-update pattern the
    /// `naive` demonstration guard needs. Nothing else may use it.
    #[cfg(feature = "demo-unsafe")]
    async fn write_attending(&mut self, id: &str, attending: i32) -> QueryResult<usize>;
}

macro_rules! room_repo {
    ($conn:ty, $lock:ident) => {
        impl super::RoomRepo for $conn {
            async fn insert_with_creator(&mut self, room: &NewRoomRow<'_>) -> QueryResult<()> {
                diesel::insert_into(rooms::table)
                    .values((
                        rooms::id.eq(room.id),
                        rooms::title.eq(room.title),
                        rooms::capacity.eq(room.capacity),
                        rooms::attending.eq(1),
                        rooms::password_hash.eq(room.password_hash),
                        rooms::created_by.eq(room.created_by),
                        rooms::created_at.eq(room.created_at),
                        rooms::version.eq(0_i64),
                        rooms::last_event_seq.eq(OPENING_EVENTS),
                    ))
                    .execute(self)
                    .await
                    .map(drop)
            }

            async fn find(&mut self, id: &str) -> QueryResult<Option<RoomRow>> {
                rooms::table
                    .find(id)
                    .select(rooms::all_columns)
                    .first(self)
                    .await
                    .optional()
            }

            async fn find_for_update(&mut self, id: &str) -> QueryResult<Option<RoomRow>> {
                crate::repo::locking!($lock, rooms::table.find(id).select(rooms::all_columns))
                    .first(self)
                    .await
                    .optional()
            }

            async fn page(&mut self, after: Option<&str>, limit: i64) -> QueryResult<Vec<RoomRow>> {
                let mut query = rooms::table
                    .select(rooms::all_columns)
                    .order(rooms::id.asc())
                    .limit(limit)
                    .into_boxed();
                if let Some(after) = after {
                    query = query.filter(rooms::id.gt(after));
                }
                query.load(self).await
            }

            async fn take_seat_if_free(&mut self, id: &str) -> QueryResult<usize> {
                TakeSeatIfFree { room: id }.execute(self).await
            }

            async fn take_seat_at_version(&mut self, id: &str, version: i64) -> QueryResult<usize> {
                TakeSeatAtVersion { room: id, version }.execute(self).await
            }

            async fn take_seat(&mut self, id: &str) -> QueryResult<usize> {
                TakeSeat { room: id }.execute(self).await
            }

            async fn free_seats(&mut self, id: &str, count: i32) -> QueryResult<usize> {
                FreeSeats {
                    count,
                    events: i64::from(count),
                    room: id,
                }
                .execute(self)
                .await
            }

            async fn free_seat_of(&mut self, departing: &Departing<'_>) -> QueryResult<usize> {
                match *departing {
                    Departing::Member { room, user, node } => {
                        FreeSeatOfMember { room, user, node }.execute(self).await
                    }
                    Departing::Row((room, user, node, joined_at)) => {
                        FreeSeatOfRow {
                            room,
                            user,
                            node: *node,
                            joined_at: *joined_at,
                        }
                        .execute(self)
                        .await
                    }
                }
            }

            #[cfg(feature = "demo-unsafe")]
            async fn write_attending(&mut self, id: &str, attending: i32) -> QueryResult<usize> {
                diesel::update(rooms::table.find(id))
                    .set((
                        rooms::attending.eq(attending),
                        rooms::last_event_seq.eq(rooms::last_event_seq + 1_i64),
                    ))
                    .execute(self)
                    .await
            }
        }
    };
}

// Each expansion sees one backend's tables under the same names.
mod mysql {
    use super::{Departing, NewRoomRow, OPENING_EVENTS};
    use crate::records::RoomRow;
    use crate::repo::seat_sql::{
        FreeSeatOfMember, FreeSeatOfRow, FreeSeats, TakeSeat, TakeSeatAtVersion, TakeSeatIfFree,
    };
    use crate::schema::mysql::rooms;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    room_repo!(crate::pool::MysqlConn, row_locks);
}

mod sqlite {
    use super::{Departing, NewRoomRow, OPENING_EVENTS};
    use crate::records::RoomRow;
    use crate::repo::seat_sql::{
        FreeSeatOfMember, FreeSeatOfRow, FreeSeats, TakeSeat, TakeSeatAtVersion, TakeSeatIfFree,
    };
    use crate::schema::sqlite::rooms;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    room_repo!(crate::pool::SqliteConn, database_lock);
}
