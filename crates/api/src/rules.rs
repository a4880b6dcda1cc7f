//! The limits and patterns the contract sets on what clients send. The server's parsers enforce
//! them (`roomgate-domain`); the OpenAPI schemas and the web client read them from here.

/// `room_id`: a slug chosen by the room's creator.
pub const ROOM_ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
/// `user_id`: 1-64 characters of `[A-Za-z0-9_.-]`.
pub const USER_ID_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";
pub const USER_ID_MAX_CHARS: usize = 64;
pub const ROOM_ID_MAX_CHARS: usize = 63;
/// A room's title, in characters.
pub const TITLE_MAX_CHARS: usize = 100;
/// A room's password, in bytes of UTF-8.
pub const PASSWORD_MAX_BYTES: usize = 128;
/// A chat message's body, in characters.
pub const MESSAGE_MAX_CHARS: usize = 4000;
/// The largest capacity the default configuration allows (`rooms.max_capacity`); the served
/// document states the configured one.
pub const DEFAULT_MAX_CAPACITY: u32 = 10_000;
/// Rooms per page of `GET /api/v1/rooms`.
pub const ROOM_PAGE_DEFAULT: u32 = 50;
pub const ROOM_PAGE_MAX: u32 = 100;
/// Events per page of `GET /api/v1/rooms/{room_id}/events`.
pub const EVENT_PAGE_DEFAULT: u32 = 100;
pub const EVENT_PAGE_MAX: u32 = 1000;
