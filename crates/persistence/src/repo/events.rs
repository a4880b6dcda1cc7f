//! `room_events`: the outbox. One row per change to a room's membership, written in the
//! change's transaction, numbered per room by the room row's `last_event_seq`.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::records::EventRow;

/// An event whose `seq` and `attending` the caller computed from the room row it holds locked
/// (room creation and reclaims, which write several events at once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEventRow<'a> {
    pub room: &'a str,
    pub seq: i64,
    pub kind: &'static str,
    pub user: &'a str,
    pub attending: i32,
    pub reason: Option<&'static str>,
    pub at: NaiveDateTime,
}

diesel::define_sql_function! {
    /// SQL's `COALESCE` of two values of one nullable type.
    fn coalesce<T: diesel::sql_types::SingleValue>(
        first: diesel::sql_types::Nullable<T>,
        second: diesel::sql_types::Nullable<T>,
    ) -> diesel::sql_types::Nullable<T>;
}

/// Rows per multi-row INSERT: 7 parameters each stays far below MySQL's 65,535 placeholders
/// and SQLite's 32,766 variables per statement.
const INSERT_CHUNK: usize = 500;

/// What [`EventRepo::record_joined_arriving`] answers: the attendance after the join, the
/// members as a JSON array (never empty: the newcomer is one) and the newest messages as a JSON
/// array of `[id, user_id, body, sent_at]` (`None` on MariaDB when there is none).
pub(crate) type JoinedJson = (i32, Option<String>, Option<String>);

pub(crate) trait EventRepo {
    /// The `member_joined` event of the seat the same transaction just took; returns the rows
    /// inserted (1, or 0 if the room row is missing, which the caller treats as a bug).
    async fn record_joined(
        &mut self,
        room: &str,
        user: &str,
        at: NaiveDateTime,
    ) -> QueryResult<usize>;
    /// The `member_left` event of the one seat the same transaction just gave back; as
    /// `record_joined`.
    async fn record_left(
        &mut self,
        room: &str,
        user: &str,
        reason: &str,
        at: NaiveDateTime,
    ) -> QueryResult<usize>;
    /// [`EventRepo::record_joined`] answering with the room's attendance after the join (`None`
    /// if nothing was inserted). Only on backends with `RETURNING`.
    async fn record_joined_returning(
        &mut self,
        room: &str,
        user: &str,
        at: NaiveDateTime,
    ) -> QueryResult<Option<i32>>;
    /// [`EventRepo::record_joined_returning`] also answering with the newcomer's view of the
    /// room: its members and its newest `history` messages, as JSON (see
    /// `seat_sql::RecordJoinedArrivingMariadb`). Only on backends with `RETURNING`.
    async fn record_joined_arriving(
        &mut self,
        room: &str,
        user: &str,
        at: NaiveDateTime,
        history: i64,
    ) -> QueryResult<Option<JoinedJson>>;
    /// [`EventRepo::record_left`] answering with the room's attendance after the departure; as
    /// `record_joined_returning`.
    async fn record_left_returning(
        &mut self,
        room: &str,
        user: &str,
        reason: &str,
        at: NaiveDateTime,
    ) -> QueryResult<Option<i32>>;
    /// Inserts events whose numbers the caller took, in multi-row statements.
    async fn insert(&mut self, events: &[NewEventRow<'_>]) -> QueryResult<()>;
    /// Up to `limit` of the room's events with `seq > after`, oldest first.
    async fn page(&mut self, room: &str, after: i64, limit: i64) -> QueryResult<Vec<EventRow>>;
    /// Up to `limit` events not yet relayed, in (room, seq) order.
    async fn unrelayed(&mut self, limit: i64) -> QueryResult<Vec<EventRow>>;
    /// Marks `seqs` in `room` as relayed at `at`, keeping an earlier mark; returns how many of
    /// them exist. Only the primary key is constrained, so on InnoDB the statement locks just
    /// those rows: a `relayed_at IS NULL` condition would make MariaDB walk the relay index
    /// instead (it does, per EXPLAIN), next-key locking the unrelayed region where every join
    /// and leave inserts its event.
    async fn mark_relayed(
        &mut self,
        room: &str,
        seqs: &[i64],
        at: NaiveDateTime,
    ) -> QueryResult<usize>;
    /// Up to `limit` keys of events relayed before `cutoff`, oldest relay first. A plain
    /// (non-locking) read.
    async fn relayed_before(
        &mut self,
        cutoff: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<Vec<(String, i64)>>;
    /// Deletes `seqs` in `room`, which `relayed_before` returned: by primary key only, for the
    /// same reason as `mark_relayed`. Safe without re-checking `relayed_at`: a mark is never
    /// undone or moved, so an event relayed before the cutoff stays so.
    async fn delete_relayed(&mut self, room: &str, seqs: &[i64]) -> QueryResult<usize>;
}

/// How several rows go in: MySQL takes one multi-row INSERT (one round trip). diesel's SQLite
/// batch insert is only implemented for the synchronous `SqliteConnection`, not through
/// diesel-async's wrapper, so SQLite inserts row by row (in process: no round trips to save).
macro_rules! insert_rows {
    (multi_row, $conn:expr, $rows:expr) => {
        diesel::insert_into(room_events::table)
            .values($rows)
            .execute($conn)
            .await?;
    };
    (row_by_row, $conn:expr, $rows:expr) => {
        for row in $rows {
            diesel::insert_into(room_events::table)
                .values(row)
                .execute($conn)
                .await?;
        }
    };
}

macro_rules! event_repo {
    ($conn:ty, $insert:ident) => {
        /// What an [`EventRow`] is read from (everything but `relayed_at`).
        const COLUMNS: (
            room_events::room_id,
            room_events::seq,
            room_events::kind,
            room_events::user_id,
            room_events::attending,
            room_events::reason,
            room_events::at,
        ) = (
            room_events::room_id,
            room_events::seq,
            room_events::kind,
            room_events::user_id,
            room_events::attending,
            room_events::reason,
            room_events::at,
        );

        impl super::EventRepo for $conn {
            async fn record_joined(
                &mut self,
                room: &str,
                user: &str,
                at: NaiveDateTime,
            ) -> QueryResult<usize> {
                RecordJoined { user, at, room }.execute(self).await
            }

            async fn record_left(
                &mut self,
                room: &str,
                user: &str,
                reason: &str,
                at: NaiveDateTime,
            ) -> QueryResult<usize> {
                RecordLeft {
                    user,
                    reason,
                    at,
                    room,
                }
                .execute(self)
                .await
            }

            async fn record_joined_returning(
                &mut self,
                room: &str,
                user: &str,
                at: NaiveDateTime,
            ) -> QueryResult<Option<i32>> {
                RecordJoinedReturning { user, at, room }
                    .get_result(self)
                    .await
                    .optional()
            }

            async fn record_joined_arriving(
                &mut self,
                room: &str,
                user: &str,
                at: NaiveDateTime,
                history: i64,
            ) -> QueryResult<Option<super::JoinedJson>> {
                RecordJoinedArriving {
                    user,
                    at,
                    room,
                    members_room: room,
                    history_room: room,
                    limit: history,
                }
                .get_result(self)
                .await
                .optional()
            }

            async fn record_left_returning(
                &mut self,
                room: &str,
                user: &str,
                reason: &str,
                at: NaiveDateTime,
            ) -> QueryResult<Option<i32>> {
                RecordLeftReturning {
                    user,
                    reason,
                    at,
                    room,
                }
                .get_result(self)
                .await
                .optional()
            }

            async fn insert(&mut self, events: &[NewEventRow<'_>]) -> QueryResult<()> {
                for chunk in events.chunks(super::INSERT_CHUNK) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|event| {
                            (
                                room_events::room_id.eq(event.room),
                                room_events::seq.eq(event.seq),
                                room_events::kind.eq(event.kind),
                                room_events::user_id.eq(event.user),
                                room_events::attending.eq(event.attending),
                                room_events::reason.eq(event.reason),
                                room_events::at.eq(event.at),
                            )
                        })
                        .collect();
                    insert_rows!($insert, self, rows);
                }
                Ok(())
            }

            async fn page(
                &mut self,
                room: &str,
                after: i64,
                limit: i64,
            ) -> QueryResult<Vec<EventRow>> {
                room_events::table
                    .filter(room_events::room_id.eq(room))
                    .filter(room_events::seq.gt(after))
                    .order(room_events::seq.asc())
                    .limit(limit)
                    .select(COLUMNS)
                    .load(self)
                    .await
            }

            async fn unrelayed(&mut self, limit: i64) -> QueryResult<Vec<EventRow>> {
                room_events::table
                    .filter(room_events::relayed_at.is_null())
                    .order((room_events::room_id.asc(), room_events::seq.asc()))
                    .limit(limit)
                    .select(COLUMNS)
                    .load(self)
                    .await
            }

            async fn mark_relayed(
                &mut self,
                room: &str,
                seqs: &[i64],
                at: NaiveDateTime,
            ) -> QueryResult<usize> {
                diesel::update(
                    room_events::table
                        .filter(room_events::room_id.eq(room))
                        .filter(room_events::seq.eq_any(seqs)),
                )
                .set(room_events::relayed_at.eq(super::coalesce(room_events::relayed_at, Some(at))))
                .execute(self)
                .await
            }

            async fn relayed_before(
                &mut self,
                cutoff: NaiveDateTime,
                limit: i64,
            ) -> QueryResult<Vec<(String, i64)>> {
                room_events::table
                    .filter(room_events::relayed_at.lt(cutoff))
                    .order(room_events::relayed_at.asc())
                    .limit(limit)
                    .select((room_events::room_id, room_events::seq))
                    .load(self)
                    .await
            }

            async fn delete_relayed(&mut self, room: &str, seqs: &[i64]) -> QueryResult<usize> {
                diesel::delete(
                    room_events::table
                        .filter(room_events::room_id.eq(room))
                        .filter(room_events::seq.eq_any(seqs)),
                )
                .execute(self)
                .await
            }
        }
    };
}

// Each expansion sees one backend's tables under the same names.
mod mysql {
    use super::NewEventRow;
    use crate::records::EventRow;
    use crate::repo::seat_sql::{
        RecordJoined, RecordJoinedArrivingMariadb as RecordJoinedArriving, RecordJoinedReturning,
        RecordLeft, RecordLeftReturning,
    };
    use crate::schema::mysql::room_events;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    event_repo!(crate::pool::MysqlConn, multi_row);
}

mod sqlite {
    use super::NewEventRow;
    use crate::records::EventRow;
    use crate::repo::seat_sql::{
        RecordJoined, RecordJoinedArrivingSqlite as RecordJoinedArriving, RecordJoinedReturning,
        RecordLeft, RecordLeftReturning,
    };
    use crate::schema::sqlite::room_events;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    event_repo!(crate::pool::SqliteConn, row_by_row);
}
