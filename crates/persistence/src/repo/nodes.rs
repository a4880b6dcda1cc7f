//! `nodes`: which server processes are alive, judged by their last heartbeat.

use chrono::NaiveDateTime;
use diesel::QueryResult;

pub(crate) trait NodeRepo {
    /// Inserts the node, or restarts its clock if the row is already there.
    async fn upsert(&mut self, id: i64, now: NaiveDateTime) -> QueryResult<()>;
    /// Returns 0 when the row is gone (the node was reaped as dead).
    async fn touch(&mut self, id: i64, now: NaiveDateTime) -> QueryResult<usize>;
    async fn all_ids(&mut self) -> QueryResult<Vec<i64>>;
    async fn silent_since(&mut self, cutoff: NaiveDateTime) -> QueryResult<Vec<i64>>;
    async fn delete(&mut self, ids: &[i64]) -> QueryResult<usize>;
}

macro_rules! node_repo {
    ($conn:ty) => {
        impl super::NodeRepo for $conn {
            async fn upsert(&mut self, id: i64, now: NaiveDateTime) -> QueryResult<()> {
                let updated = diesel::update(nodes::table.find(id))
                    .set((nodes::started_at.eq(now), nodes::heartbeat_at.eq(now)))
                    .execute(self)
                    .await?;
                if updated == 0 {
                    diesel::insert_into(nodes::table)
                        .values((
                            nodes::id.eq(id),
                            nodes::started_at.eq(now),
                            nodes::heartbeat_at.eq(now),
                        ))
                        .execute(self)
                        .await?;
                }
                Ok(())
            }

            async fn touch(&mut self, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
                diesel::update(nodes::table.find(id))
                    .set(nodes::heartbeat_at.eq(now))
                    .execute(self)
                    .await
            }

            async fn all_ids(&mut self) -> QueryResult<Vec<i64>> {
                nodes::table.select(nodes::id).load(self).await
            }

            async fn silent_since(&mut self, cutoff: NaiveDateTime) -> QueryResult<Vec<i64>> {
                nodes::table
                    .filter(nodes::heartbeat_at.lt(cutoff))
                    .select(nodes::id)
                    .load(self)
                    .await
            }

            async fn delete(&mut self, ids: &[i64]) -> QueryResult<usize> {
                diesel::delete(nodes::table.filter(nodes::id.eq_any(ids)))
                    .execute(self)
                    .await
            }
        }
    };
}

// Each expansion sees one backend's tables under the same names.
mod mysql {
    use crate::schema::mysql::nodes;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    node_repo!(crate::pool::MysqlConn);
}

mod sqlite {
    use crate::schema::sqlite::nodes;
    use chrono::NaiveDateTime;
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_async::RunQueryDsl;

    node_repo!(crate::pool::SqliteConn);
}
