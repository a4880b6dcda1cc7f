#![doc = include_str!("../README.md")]

pub mod error;
pub mod ids;
pub mod machine;
pub mod password;
pub mod room;
pub mod ticket;

pub use error::{AdmissionError, ValidationError};
pub use ids::{
    CAPACITY_HARD_LIMIT, Capacity, MessageBody, NodeId, RoomId, SessionId, Timestamp, Title,
    UserId, UserRoomKey,
};
pub use machine::{
    Effect, RoomEvent, RoomState, SeatEvent, SeatState, Transition, Wait, room_step, seat_step,
};
pub use password::{PASSWORD_MAX_BYTES, PasswordHash};
pub use room::Room;
pub use ticket::Ticket;
