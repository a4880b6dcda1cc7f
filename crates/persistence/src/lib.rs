#![doc = include_str!("../README.md")]

mod database;
mod error;
mod guard;
mod pool;
mod records;
mod repo;
mod schema;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;

pub use database::Database;
pub use error::PersistenceError;
pub use records::{
    Arrival, DepartureReason, EventKind, EventRecord, HeldSeat, Joined, MessageRecord, NewMessage,
    NewRoom, ReclaimedMember, RoomRecord,
};
pub use settings::{Backend, DatabaseSettings, JoinGuard, UnknownJoinGuard};
