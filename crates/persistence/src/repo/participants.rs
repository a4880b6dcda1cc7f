//! `participants`: who holds a seat in which room, and through which node.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::records::{HeldRow, MemberRow};

/// One row of an arrival read: (kind, user, message id, body, joined or sent at), where kind 0
/// is a member and 1 a message.
pub(crate) type ArrivalRow = (i64, String, Option<i64>, Option<String>, NaiveDateTime);

pub(crate) trait ParticipantRepo {
    /// Fails with a unique violation when `user` is already a member.
    async fn insert(
        &mut self,
        room: &str,
        user: &str,
        node: i64,
        joined_at: NaiveDateTime,
    ) -> QueryResult<()>;
    /// Deletes `user`'s seat in `room` if it is held through `node`: a node never removes a seat
    /// another node holds (a node that wakes from a pause past its lease must not remove the
    /// membership its user has since taken through another node).
    async fn delete(&mut self, room: &str, user: &str, node: i64) -> QueryResult<usize>;
    /// Deletes the one row a reconciliation saw: `user`'s seat in `room` through `node`, taken
    /// at `joined_at`. A newer membership of the same user is a different row and stays.
    async fn delete_exact(&mut self, row: &HeldRow) -> QueryResult<usize>;
    /// The seats held through `node`, with the instant each was taken.
    async fn held_by_node(&mut self, node: i64) -> QueryResult<Vec<HeldRow>>;
    async fn exists(&mut self, room: &str, user: &str) -> QueryResult<bool>;
    /// Members in the order they joined; ties (same microsecond) broken by user id.
    async fn of_room(&mut self, room: &str) -> QueryResult<Vec<String>>;
    /// The room's members and its newest `limit` messages, in one read (see
    /// [`Arrival`](super::seat_sql::Arrival)).
    async fn arrival(&mut self, room: &str, limit: i64) -> QueryResult<Vec<ArrivalRow>>;
    /// Every node id that holds at least one seat, registered or not.
    async fn node_ids(&mut self) -> QueryResult<Vec<i64>>;
    /// The seats held by `nodes`, locked until the transaction ends so that the caller deletes
    /// exactly the rows it reports.
    async fn held_by_for_update(&mut self, nodes: &[i64]) -> QueryResult<Vec<MemberRow>>;
    async fn delete_held_by(&mut self, nodes: &[i64]) -> QueryResult<usize>;
}

macro_rules! participant_repo {
    ($conn:ty, $lock:ident) => {
        impl super::ParticipantRepo for $conn {
            async fn insert(
                &mut self,
                room: &str,
                user: &str,
                node: i64,
                joined_at: NaiveDateTime,
            ) -> QueryResult<()> {
                diesel::insert_into(participants::table)
                    .values((
                        participants::room_id.eq(room),
                        participants::user_id.eq(user),
                        participants::node_id.eq(node),
                        participants::joined_at.eq(joined_at),
                    ))
                    .execute(self)
                    .await
                    .map(drop)
            }

            async fn delete(&mut self, room: &str, user: &str, node: i64) -> QueryResult<usize> {
                diesel::delete(
                    participants::table
                        .find((room, user))
                        .filter(participants::node_id.eq(node)),
                )
                .execute(self)
                .await
            }

            async fn delete_exact(&mut self, row: &HeldRow) -> QueryResult<usize> {
                let (room, user, node, joined_at) = row;
                diesel::delete(
                    participants::table
                        .filter(participants::room_id.eq(room))
                        .filter(participants::user_id.eq(user))
                        .filter(participants::node_id.eq(node))
                        .filter(participants::joined_at.eq(joined_at)),
                )
                .execute(self)
                .await
            }

            async fn held_by_node(&mut self, node: i64) -> QueryResult<Vec<HeldRow>> {
                participants::table
                    .filter(participants::node_id.eq(node))
                    .select((
                        participants::room_id,
                        participants::user_id,
                        participants::node_id,
                        participants::joined_at,
                    ))
                    .load(self)
                    .await
            }

            async fn exists(&mut self, room: &str, user: &str) -> QueryResult<bool> {
                diesel::select(diesel::dsl::exists(participants::table.find((room, user))))
                    .get_result(self)
                    .await
            }

            async fn of_room(&mut self, room: &str) -> QueryResult<Vec<String>> {
                participants::table
                    .filter(participants::room_id.eq(room))
                    .order((participants::joined_at.asc(), participants::user_id.asc()))
                    .select(participants::user_id)
                    .load(self)
                    .await
            }

            async fn arrival(&mut self, room: &str, limit: i64) -> QueryResult<Vec<ArrivalRow>> {
                Arrival {
                    room,
                    history_room: room,
                    limit,
                }
                .load(self)
                .await
            }

            async fn node_ids(&mut self) -> QueryResult<Vec<i64>> {
                participants::table
                    .select(participants::node_id)
                    .distinct()
                    .load(self)
                    .await
            }

            async fn held_by_for_update(&mut self, nodes: &[i64]) -> QueryResult<Vec<MemberRow>> {
                crate::repo::locking!(
                    $lock,
                    participants::table
                        .filter(participants::node_id.eq_any(nodes))
                        .order((participants::room_id.asc(), participants::user_id.asc()))
                        .select((
                            participants::room_id,
                            participants::user_id,
                            participants::node_id,
                        ))
                )
                .load(self)
                .await
            }

            async fn delete_held_by(&mut self, nodes: &[i64]) -> QueryResult<usize> {
                diesel::delete(participants::table.filter(participants::node_id.eq_any(nodes)))
                    .execute(self)
                    .await
            }
        }
    };
}

// Each expansion sees one backend's tables under the same names.
mod mysql {
    use super::ArrivalRow;
    use crate::records::{HeldRow, MemberRow};
    use crate::repo::seat_sql::Arrival;
    use crate::schema::mysql::participants;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    participant_repo!(crate::pool::MysqlConn, row_locks);
}

mod sqlite {
    use super::ArrivalRow;
    use crate::records::{HeldRow, MemberRow};
    use crate::repo::seat_sql::Arrival;
    use crate::schema::sqlite::participants;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    participant_repo!(crate::pool::SqliteConn, database_lock);
}
