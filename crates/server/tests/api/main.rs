//! The server's one integration-test binary: a real server on port 0 per test, real HTTP and
//! WebSocket clients, on SQLite and on a fresh MariaDB database.

// Helpers outside `#[test]` functions panic on purpose too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod helpers;

mod aborts;
mod auth;
mod bad_bytes;
mod catalog;
mod events;
mod failures;
mod faults;
mod messages;
mod multinode;
mod multinode_line;
mod operations;
mod processes;
mod reservations;
mod rooms;
mod statements;
mod storm;
mod waiting;
mod web_client;
mod websocket;
