//! `messages`: a room's chat history.

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::records::MessageRow;

pub(crate) trait MessageRepo {
    /// Inserts a message and returns its id. Fails with a foreign-key violation when the room
    /// does not exist.
    async fn insert(
        &mut self,
        room: &str,
        user: &str,
        body: &str,
        sent_at: NaiveDateTime,
    ) -> QueryResult<i64>;
    /// The newest `limit` messages of a room, newest first.
    async fn newest(&mut self, room: &str, limit: i64) -> QueryResult<Vec<MessageRow>>;
}

macro_rules! message_repo {
    ($conn:ty, $last_insert_id:literal) => {
        impl super::MessageRepo for $conn {
            async fn insert(
                &mut self,
                room: &str,
                user: &str,
                body: &str,
                sent_at: NaiveDateTime,
            ) -> QueryResult<i64> {
                diesel::insert_into(messages::table)
                    .values((
                        messages::room_id.eq(room),
                        messages::user_id.eq(user),
                        messages::body.eq(body),
                        messages::sent_at.eq(sent_at),
                    ))
                    .execute(self)
                    .await?;
                // MySQL has no RETURNING; the last id is kept per connection, and this pooled
                // connection is ours until both statements are done, so no other insert can
                // come between them.
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    $last_insert_id,
                ))
                .get_result(self)
                .await
            }

            async fn newest(&mut self, room: &str, limit: i64) -> QueryResult<Vec<MessageRow>> {
                messages::table
                    .filter(messages::room_id.eq(room))
                    .order(messages::id.desc())
                    .limit(limit)
                    .select(messages::all_columns)
                    .load(self)
                    .await
            }
        }
    };
}

// Each expansion sees one backend's tables under the same names.
mod mysql {
    use crate::records::MessageRow;
    use crate::schema::mysql::messages;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    message_repo!(crate::pool::MysqlConn, "LAST_INSERT_ID()");
}

mod sqlite {
    use crate::records::MessageRow;
    use crate::schema::sqlite::messages;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    message_repo!(crate::pool::SqliteConn, "last_insert_rowid()");
}
