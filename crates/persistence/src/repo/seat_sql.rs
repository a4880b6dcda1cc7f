//! The seat-counting `UPDATE`s and the event `INSERT`s that go with them, written out as fixed
//! statements.
//!
//! diesel marks every `UpdateStatement` as unsafe to cache (its changeset could differ from one
//! call to the next), so on MySQL each guarded update would be prepared, executed and closed
//! again: an extra round trip inside every join. These statements never vary, so each is its own
//! type with a static query id, and the connection's statement cache prepares it once.
//! One type per SQL text: the cache is keyed by type, so two texts must never share one.
//! Names are the same on both backends and match `schema/*.rs` (the schema check guards them).

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text, Timestamp};

macro_rules! seat_statement {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty => $sql_ty:ty),* $(,)? }
        sql: [$($piece:literal),* $(,)?]
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name<'a> {
            $(pub $field: $ty,)*
        }

        impl QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<DB> QueryFragment<DB> for $name<'_>
        where
            DB: Backend
                + HasSqlType<Text>
                + HasSqlType<BigInt>
                + HasSqlType<Integer>
                + HasSqlType<Timestamp>,
            str: ToSql<Text, DB>,
            i64: ToSql<BigInt, DB>,
            i32: ToSql<Integer, DB>,
            NaiveDateTime: ToSql<Timestamp, DB>,
        {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                seat_statement!(@walk out, self, [$($piece),*], [$($field: $sql_ty),*]);
                Ok(())
            }
        }
    };
    // SQL pieces alternate with binds: piece, bind, piece, bind, …, piece.
    (@walk $out:ident, $self:ident, [$piece:literal $(, $rest:literal)*], [$field:ident: $sql_ty:ty $(, $rf:ident: $rt:ty)*]) => {
        $out.push_sql($piece);
        $out.push_bind_param::<$sql_ty, _>(&$self.$field)?;
        seat_statement!(@walk $out, $self, [$($rest),*], [$($rf: $rt),*]);
    };
    (@walk $out:ident, $self:ident, [$piece:literal], []) => {
        $out.push_sql($piece);
    };
}

// Every statement that takes a seat also advances the room's event counter
// (`last_event_seq`): the row it updates is locked until the commit, so the `seq` it hands out
// is gapless and in commit order, and a join that rolls back gives its number back.

seat_statement! {
    /// The conditional guard: one statement checks for a free seat and takes it.
    TakeSeatIfFree { room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1, \
         last_event_seq = last_event_seq + 1 WHERE id = ",
        " AND attending < capacity",
    ]
}

seat_statement! {
    /// The optimistic guard: takes a seat only at the version that was read.
    TakeSeatAtVersion { room: &'a str => Text, version: i64 => BigInt }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1, \
         last_event_seq = last_event_seq + 1 WHERE id = ",
        " AND version = ",
        " AND attending < capacity",
    ]
}

seat_statement! {
    /// The pessimistic guard's update, once the locked row showed a free seat.
    TakeSeat { room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1, \
         last_event_seq = last_event_seq + 1 WHERE id = ",
        "",
    ]
}

seat_statement! {
    /// Gives back `count` seats whose participant rows were just deleted, and reserves `events`
    /// (always equal to `count`) sequence numbers for their departures. No version bump: freeing
    /// a seat cannot invalidate an optimistic join's "there is a free seat", so joins need not
    /// retry because of leaves.
    FreeSeats { count: i32 => Integer, events: i64 => BigInt, room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending - ",
        ", last_event_seq = last_event_seq + ",
        " WHERE id = ",
        "",
    ]
}

// The event of a single join or leave copies `seq` and `attending` from the room row that the
// statement before it updated (and locked) in the same transaction: no read-back round trip, no
// value computed from an earlier read. On MySQL/MariaDB the `SELECT` part is a locking read of
// a row this transaction already holds exclusively, so it waits for nothing; on SQLite the
// transaction holds the database's write lock. Cost: this one INSERT per change.

seat_statement! {
    /// The `member_joined` event of the seat just taken.
    RecordJoined { user: &'a str => Text, at: NaiveDateTime => Timestamp, room: &'a str => Text }
    sql: [
        "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
         SELECT id, last_event_seq, 'member_joined', ",
        ", attending, NULL, ",
        " FROM rooms WHERE id = ",
        "",
    ]
}

seat_statement! {
    /// The `member_left` event of the one seat just given back.
    RecordLeft {
        user: &'a str => Text,
        reason: &'a str => Text,
        at: NaiveDateTime => Timestamp,
        room: &'a str => Text,
    }
    sql: [
        "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
         SELECT id, last_event_seq, 'member_left', ",
        ", attending, ",
        ", ",
        " FROM rooms WHERE id = ",
        "",
    ]
}
