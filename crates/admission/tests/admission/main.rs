//! The admission crate's integration tests: one binary, one module per concern.
//!
//! The race and property suites are written once against the `PermitStore` / `PendingRooms`
//! traits and run against both backends: the in-memory store and Redis (a real server at
//! `ROOMGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`; each test uses its own key
//! prefix and removes its keys afterwards).
// Helpers outside `#[test]` functions unwrap too: a panic in a test is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod line;
mod model;
mod pending;
mod races;
mod redis_only;
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

/// Declares one async test per backend from a generic `async fn(&impl Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = $crate::backends::MemoryBackend::new();
                    super::$name(&backend).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = $crate::backends::RedisBackend::new().await;
                    super::$name(&backend).await;
                    $crate::backends::Backend::settle(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}
