//! The seat-counting `UPDATE`s, written out as fixed statements.
//!
//! diesel marks every `UpdateStatement` as unsafe to cache (its changeset could differ from one
//! call to the next), so on MySQL each guarded update would be prepared, executed and closed
//! again: an extra round trip inside every join. These statements never vary, so each is its own
//! type with a static query id, and the connection's statement cache prepares it once.
//! One type per SQL text: the cache is keyed by type, so two texts must never share one.
//! Names are the same on both backends and match `schema/*.rs` (the schema check guards them).

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text};

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
            DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Integer>,
            str: ToSql<Text, DB>,
            i64: ToSql<BigInt, DB>,
            i32: ToSql<Integer, DB>,
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

seat_statement! {
    /// The conditional guard: one statement checks for a free seat and takes it.
    TakeSeatIfFree { room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1 WHERE id = ",
        " AND attending < capacity",
    ]
}

seat_statement! {
    /// The optimistic guard: takes a seat only at the version that was read.
    TakeSeatAtVersion { room: &'a str => Text, version: i64 => BigInt }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1 WHERE id = ",
        " AND version = ",
        " AND attending < capacity",
    ]
}

seat_statement! {
    /// The pessimistic guard's update, once the locked row showed a free seat.
    TakeSeat { room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending + 1, version = version + 1 WHERE id = ",
        "",
    ]
}

seat_statement! {
    /// Gives back seats whose participant rows were just deleted. No version bump: freeing a
    /// seat cannot invalidate an optimistic join's "there is a free seat", so joins need not
    /// retry because of leaves.
    FreeSeats { count: i32 => Integer, room: &'a str => Text }
    sql: [
        "UPDATE rooms SET attending = attending - ",
        " WHERE id = ",
        "",
    ]
}
