//! Roomgate's server: the HTTP and WebSocket wiring of the admission and persistence crates.
//!
//! Reading order: [`startup`] builds the application from [`config`]; [`routes`] are the REST
//! handlers (phase 1 of the join); [`join`] and [`session`] are phase 2 and the chat session;
//! [`hub`] fans frames out; [`error`] is the only place that chooses HTTP status codes.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod event_relay;
pub mod fanout;
pub mod hub;
pub mod join;
pub mod live_seats;
pub mod message_writer;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod session;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod views;

pub use config::Settings;
pub use startup::Application;
