#![doc = include_str!("../README.md")]

pub mod codes;
pub mod events;
pub mod frames;
pub mod rest;
pub mod rules;

#[cfg(feature = "client")]
pub mod client;

pub use codes::{CloseCode, ErrorCode};
pub use events::{Event, EventPage, EventType, LeaveReason};
pub use frames::{
    ClientFrame, ErrorFrame, FrameErrorCode, JoinedFrame, Message, PresenceEvent, PresenceFrame,
    ServerFrame, WaitingFrame,
};
pub use rest::{
    CreateRoomRequest, CreatedRoom, DevTokenRequest, DevTokenResponse, ErrorBody, ErrorDetail,
    QueueView, ReservationView, ReserveRequest, RoomPage, RoomState, RoomView, StatusBody,
};
