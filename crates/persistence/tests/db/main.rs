//! The persistence suite: every test runs against a fresh MariaDB database and a fresh SQLite
//! file (see `helpers::on_both!`), never skipped.

// Helpers and test bodies are plain functions, not `#[test]`s, so clippy's test exemption does
// not reach them; a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod concurrency;
mod events;
mod messages;
mod nodes;
mod rooms;
mod statements;
