//! The admission crate's integration tests: one binary, one module per concern.
// Helpers outside `#[test]` functions unwrap too: a panic in a test is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model;
mod pending;
mod races;
mod ttl;

use std::sync::Arc;
use std::time::Duration;

use roomgate_admission::{ManualClock, RegistrySettings, ReserveRequest, SemaphoreRegistry};
use roomgate_domain::{Capacity, RoomId, Timestamp, UserId};

pub fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub fn request(room_id: &str, user_id: &str, capacity: u32, ttl_ms: u64) -> ReserveRequest {
    ReserveRequest {
        room: room(room_id),
        user: user(user_id),
        capacity: Capacity::new(capacity, 1_000_000).unwrap(),
        occupied: 0,
        ttl: Duration::from_millis(ttl_ms),
    }
}

pub fn manual_registry() -> (Arc<ManualClock>, SemaphoreRegistry) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let settings = RegistrySettings {
        idle_pool_ttl: Duration::from_millis(500),
        expired_ticket_memory: Duration::from_millis(2_000),
    };
    (clock.clone(), SemaphoreRegistry::new(clock, settings))
}
