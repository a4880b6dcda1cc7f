//! `messages`: a room's chat history.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text, Timestamp};

use crate::records::MessageRow;

/// One message to insert, as bound into the statement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewMessageRow<'a> {
    pub room: &'a str,
    pub user: &'a str,
    pub body: &'a str,
    pub sent_at: NaiveDateTime,
}

/// `INSERT INTO messages … VALUES (…), (…), … RETURNING id`: several messages in one
/// statement, answering with their ids. Only on backends with `RETURNING`.
///
/// The text depends on the number of rows, so the statement has no static query id and the
/// connection's cache keys it by its SQL: callers keep the number of distinct row counts small
/// (see `Database::post_messages`), since every one is a statement prepared on the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InsertMessagesReturning<'a> {
    pub rows: &'a [NewMessageRow<'a>],
}

impl QueryId for InsertMessagesReturning<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for InsertMessagesReturning<'_> {
    type SqlType = BigInt;
}

impl<DB> QueryFragment<DB> for InsertMessagesReturning<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO messages (room_id, user_id, body, sent_at) VALUES ");
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(row.room)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(row.user)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(row.body)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&row.sent_at)?;
            out.push_sql(")");
        }
        out.push_sql(" RETURNING id");
        Ok(())
    }
}

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
    /// Inserts `rows` in one statement and returns their ids, in no promised order (the
    /// caller sorts them). Only on backends with `RETURNING`.
    async fn insert_returning(&mut self, rows: &[NewMessageRow<'_>]) -> QueryResult<Vec<i64>>;
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

            async fn insert_returning(
                &mut self,
                rows: &[super::NewMessageRow<'_>],
            ) -> QueryResult<Vec<i64>> {
                super::InsertMessagesReturning { rows }.load(self).await
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
