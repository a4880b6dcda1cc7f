//! All SQL, one module per table. Each repository is a trait implemented for both backends'
//! connection types from one macro body, so every query is written once; the body is expanded
//! in a module that imports that backend's tables (`crate::schema::mysql` or `::sqlite`), and
//! is type-checked against each backend separately.
//!
//! Functions take the connection, not the pool, so that callers compose them inside one
//! transaction. They return diesel's errors untouched; the caller knows what a unique or
//! foreign-key violation means in its context.

pub(crate) mod events;
mod messages;
mod nodes;
mod participants;
pub(crate) mod rooms;
mod seat_sql;

pub(crate) use events::EventRepo;
pub(crate) use messages::{MessageRepo, NewMessageRow};
pub(crate) use nodes::NodeRepo;
pub(crate) use participants::ParticipantRepo;
pub(crate) use rooms::RoomRepo;

/// Appends `FOR UPDATE` on backends with row locks. SQLite has none (and diesel rejects the
/// clause there): its write transactions start with `BEGIN IMMEDIATE`, which already excludes
/// every other writer for the whole transaction.
macro_rules! locking {
    (row_locks, $query:expr) => {
        diesel::QueryDsl::for_update($query)
    };
    (database_lock, $query:expr) => {
        $query
    };
}
pub(crate) use locking;
