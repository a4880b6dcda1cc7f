//! What can go wrong, in the caller's terms: what the caller asked for was refused
//! (`NotFound`, `RoomFull`, `AlreadyJoined`, `RoomExists`), the database could not be reached
//! (`Unavailable`, retryable), the configuration is wrong (`Config`), or a bug (`Internal`).

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use roomgate_domain::{RoomId, UserId};

#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    #[error("room {room} does not exist")]
    NotFound { room: RoomId },
    #[error("room {room} is full ({capacity} members)")]
    RoomFull { room: RoomId, capacity: u32 },
    #[error("{user} is already a member of room {room}")]
    AlreadyJoined { room: RoomId, user: UserId },
    #[error("room {room} already exists")]
    RoomExists { room: RoomId },
    /// The optimistic join guard lost every retry to concurrent writers. Nothing was changed.
    #[error("the room is too contended right now; nothing was changed, try again")]
    Contended,
    /// The database cannot be reached, no connection was free in time, or the connection was lost.
    /// Nothing was committed, unless the connection died during the commit itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("internal database error: {0}")]
    Internal(String),
}

impl PersistenceError {
    /// True when the same call may succeed if tried again later (503 rather than 500).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Contended)
    }
}

/// Errors inside a transaction: either a decision already made in the caller's terms, or a raw
/// database error still to be classified, or an optimistic update that lost its race. Kept
/// separate from [`PersistenceError`] so that deadlock and conflict retries can see the
/// database's own error before it is flattened into a message.
#[derive(Debug)]
pub(crate) enum TxError {
    Refused(PersistenceError),
    Db(DieselError),
    /// The room's version changed between read and update (optimistic guard only).
    VersionConflict,
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

impl From<PersistenceError> for TxError {
    fn from(e: PersistenceError) -> Self {
        TxError::Refused(e)
    }
}

impl TxError {
    /// InnoDB chose this transaction as a deadlock victim or gave up waiting for a lock; the
    /// whole transaction was rolled back and may simply run again.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, TxError::Db(e) if is_transient(e))
    }

    /// The connection this came from can no longer be trusted and must leave the pool:
    /// recycling checks only connections idle for a while, so a dead one in steady use would
    /// otherwise be handed out again and again.
    pub(crate) fn spoils_connection(&self) -> bool {
        matches!(self, TxError::Db(e) if spoils_connection(e))
    }

    pub(crate) fn into_persistence(self) -> PersistenceError {
        match self {
            TxError::Refused(e) => e,
            TxError::Db(e) => classify(e),
            // Only the optimistic guard produces this and it retries; reaching here is a bug.
            TxError::VersionConflict => PersistenceError::Contended,
        }
    }
}

impl From<DieselError> for PersistenceError {
    fn from(e: DieselError) -> Self {
        classify(e)
    }
}

/// diesel-async's MySQL driver reports deadlocks (1213) and lock wait timeouts (1205) as
/// `Unknown` with only the server's message, so the message is what identifies them.
pub(crate) fn is_transient(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().contains("try restarting transaction")
        }
        _ => false,
    }
}

/// Sorts a database error the caller did not anticipate into "retry later" or "bug".
pub(crate) fn classify(e: DieselError) -> PersistenceError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
            PersistenceError::Unavailable(e.to_string())
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if is_connection_failure(info.message()) =>
        {
            PersistenceError::Unavailable(e.to_string())
        }
        DieselError::BrokenTransactionManager => PersistenceError::Unavailable(e.to_string()),
        _ if is_transient(&e) => PersistenceError::Unavailable(e.to_string()),
        _ => PersistenceError::Internal(e.to_string()),
    }
}

/// Whether `e` means the connection itself failed (as opposed to the statement or a lock).
pub(crate) fn spoils_connection(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            is_connection_failure(info.message()) && !is_transient(e)
        }
        _ => false,
    }
}

/// Messages of errors that mean "the connection is gone", not "the statement was wrong":
/// mysql_async's I/O and driver errors, and SQLite's busy timeout running out.
fn is_connection_failure(message: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "Input/output error",
        "Driver error",
        "Connection to the server is closed",
        "Pool was disconnected",
        "database is locked",
        "Lost connection",
    ];
    MARKERS.iter().any(|marker| message.contains(marker))
}

pub(crate) fn connection_error(e: &ConnectionError) -> PersistenceError {
    match e {
        ConnectionError::InvalidConnectionUrl(_) => {
            PersistenceError::Config(format!("invalid database url: {e}"))
        }
        _ => PersistenceError::Unavailable(e.to_string()),
    }
}
