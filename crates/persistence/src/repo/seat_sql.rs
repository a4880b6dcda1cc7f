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
use diesel::sql_types::{BigInt, HasSqlType, Integer, Nullable, Text, Timestamp};

macro_rules! seat_statement {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty => $sql_ty:ty),* $(,)? }
        sql: [$($piece:expr),* $(,)?]
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
    // A statement that answers with rows of `$row` (a `RETURNING` clause, or a read).
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty => $sql_ty:ty),* $(,)? }
        returns: $row:ty,
        sql: [$($piece:expr),* $(,)?]
    ) => {
        seat_statement! {
            $(#[$doc])*
            $name { $($field: $ty => $sql_ty),* }
            sql: [$($piece),*]
        }

        impl diesel::query_builder::Query for $name<'_> {
            type SqlType = $row;
        }
    };
    // SQL pieces alternate with binds: piece, bind, piece, bind, …, piece.
    (@walk $out:ident, $self:ident, [$piece:expr $(, $rest:expr)*], [$field:ident: $sql_ty:ty $(, $rf:ident: $rt:ty)*]) => {
        $out.push_sql($piece);
        $out.push_bind_param::<$sql_ty, _>(&$self.$field)?;
        seat_statement!(@walk $out, $self, [$($rest),*], [$($rf: $rt),*]);
    };
    (@walk $out:ident, $self:ident, [$piece:expr], []) => {
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

// Where the backend has `RETURNING` (MariaDB 10.5+, SQLite 3.35+; not MySQL), the event's
// INSERT also answers with the attendance it copied from the locked room row, so neither a join
// nor a leave needs a read to say how many are in the room after it.

seat_statement! {
    /// [`RecordJoined`], answering with the room's attendance after the join.
    RecordJoinedReturning { user: &'a str => Text, at: NaiveDateTime => Timestamp, room: &'a str => Text }
    returns: Integer,
    sql: [
        "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
         SELECT id, last_event_seq, 'member_joined', ",
        ", attending, NULL, ",
        " FROM rooms WHERE id = ",
        " RETURNING attending",
    ]
}

// A join whose newcomer is about to be shown the room also answers, in the same statement, with
// what the `joined` frame needs: the members (the newcomer included) and the newest messages, as
// JSON arrays built by the database. They are read inside the join's transaction, after its
// participant INSERT and under the room row's lock, so the member list is exactly the one this
// join's event describes; and the newcomer's first frame costs no statement of its own. The
// history is aggregated from a derived table (the newest `limit`), whose order the aggregate does
// not promise: the caller sorts it by id. The two dialects differ only in the JSON functions'
// names, so the text is written once with those as parameters.

macro_rules! record_joined_arriving {
    ($(#[$doc:meta])* $name:ident, array_agg: $agg:literal, array: $array:literal) => {
        seat_statement! {
            $(#[$doc])*
            $name {
                user: &'a str => Text,
                at: NaiveDateTime => Timestamp,
                room: &'a str => Text,
                members_room: &'a str => Text,
                history_room: &'a str => Text,
                limit: i64 => BigInt,
            }
            returns: (Integer, Nullable<Text>, Nullable<Text>),
            sql: [
                "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
                 SELECT id, last_event_seq, 'member_joined', ",
                ", attending, NULL, ",
                " FROM rooms WHERE id = ",
                concat!(
                    " RETURNING attending, (SELECT ",
                    $agg,
                    "(user_id ORDER BY joined_at, user_id) FROM participants WHERE room_id = "
                ),
                concat!(
                    "), (SELECT ",
                    $agg,
                    "(",
                    $array,
                    "(id, user_id, body, sent_at)) FROM (\
                     SELECT id, user_id, body, sent_at FROM messages WHERE room_id = "
                ),
                " ORDER BY id DESC LIMIT ",
                ") AS recent)",
            ]
        }
    };
}

record_joined_arriving! {
    /// [`RecordJoinedReturning`] plus the newcomer's view, on MariaDB: `(attending, members,
    /// history)` with `members` a JSON array of user ids in join order and `history` a JSON array
    /// of `[id, user_id, body, sent_at]` (NULL when the room has no message).
    RecordJoinedArrivingMariadb, array_agg: "JSON_ARRAYAGG", array: "JSON_ARRAY"
}

record_joined_arriving! {
    /// [`RecordJoinedArrivingMariadb`] on SQLite (an empty history is `[]`).
    RecordJoinedArrivingSqlite, array_agg: "json_group_array", array: "json_array"
}

seat_statement! {
    /// [`RecordLeft`], answering with the room's attendance after the departure.
    RecordLeftReturning {
        user: &'a str => Text,
        reason: &'a str => Text,
        at: NaiveDateTime => Timestamp,
        room: &'a str => Text,
    }
    returns: Integer,
    sql: [
        "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
         SELECT id, last_event_seq, 'member_left', ",
        ", attending, ",
        ", ",
        " FROM rooms WHERE id = ",
        " RETURNING attending",
    ]
}

// A leave locks the room row first, as every join does (so a join and a leave of the same user
// cannot deadlock), and in the same statement gives the seat back only if the membership is
// there: no read before it. The subquery's row is read under a shared lock on InnoDB (a read
// inside a write statement), so the DELETE that follows finds it; on SQLite the transaction
// holds the write lock.

seat_statement! {
    /// Gives back `user`'s seat in `room` and takes an event number for the departure, if the
    /// seat is held through `node`; updates nothing otherwise.
    FreeSeatOfMember { room: &'a str => Text, user: &'a str => Text, node: i64 => BigInt }
    sql: [
        "UPDATE rooms SET attending = attending - 1, last_event_seq = last_event_seq + 1 \
         WHERE id = ",
        " AND EXISTS (SELECT 1 FROM participants WHERE participants.room_id = rooms.id \
         AND participants.user_id = ",
        " AND participants.node_id = ",
        ")",
    ]
}

seat_statement! {
    /// As [`FreeSeatOfMember`], for exactly the row taken at `joined_at`.
    FreeSeatOfRow {
        room: &'a str => Text,
        user: &'a str => Text,
        node: i64 => BigInt,
        joined_at: NaiveDateTime => Timestamp,
    }
    sql: [
        "UPDATE rooms SET attending = attending - 1, last_event_seq = last_event_seq + 1 \
         WHERE id = ",
        " AND EXISTS (SELECT 1 FROM participants WHERE participants.room_id = rooms.id \
         AND participants.user_id = ",
        " AND participants.node_id = ",
        " AND participants.joined_at = ",
        ")",
    ]
}

seat_statement! {
    /// What a newcomer is shown, in one read: the members (kind 0: user, joined_at) in the
    /// order they joined, then the newest `limit` messages (kind 1: user, id, body, sent_at),
    /// oldest first. The inner SELECT is wrapped because SQLite allows ORDER BY and LIMIT only
    /// at the end of a compound SELECT.
    Arrival { room: &'a str => Text, history_room: &'a str => Text, limit: i64 => BigInt }
    returns: (BigInt, Text, Nullable<BigInt>, Nullable<Text>, Timestamp),
    sql: [
        "SELECT 0 AS part, user_id, NULL AS id, NULL AS body, joined_at AS at \
         FROM participants WHERE room_id = ",
        " UNION ALL SELECT part, user_id, id, body, at FROM (\
         SELECT 1 AS part, user_id, id, body, sent_at AS at FROM messages WHERE room_id = ",
        " ORDER BY id DESC LIMIT ",
        ") AS recent ORDER BY 1, 3, 5, 2",
    ]
}
