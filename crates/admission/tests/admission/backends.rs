//! The two admission backends behind one test harness.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use roomgate_admission::{
    ManualClock, PendingRooms, PermitStore, RedisPendingRooms, RedisPermitStore, RedisSettings,
    RegistrySettings, RoomQueueTracker, SemaphoreRegistry,
};
use roomgate_domain::{NodeId, Timestamp};

/// Expired tickets are remembered this long in both backends.
pub const TICKET_MEMORY: Duration = Duration::from_secs(40);
/// Empty in-memory pools are evicted after this long.
pub const IDLE_POOL: Duration = Duration::from_secs(30);

pub trait Backend: Sync {
    type Permits: PermitStore + Clone;
    type Pending: PendingRooms + Clone;
    fn permits(&self) -> &Self::Permits;
    fn pending(&self) -> &Self::Pending;
    /// Moves the backend's clock forward without sleeping.
    fn advance(&self, by: Duration);
    /// Waits until every dropped seat has been given back (Redis releases are queued).
    fn settle(&self) -> impl Future<Output = ()> + Send;
    /// Asserts that nothing remains that would not expire by itself.
    fn assert_nothing_left(&self) -> impl Future<Output = ()> + Send;

    /// Lets every TTL pass and the reaper run until nothing more can be reclaimed.
    fn reap_everything(&self) -> impl Future<Output = ()> + Send {
        async move {
            for _ in 0..3 {
                self.advance(Duration::from_secs(60) + IDLE_POOL + TICKET_MEMORY);
                self.permits().reap_expired().await.unwrap();
                self.pending().reap_expired().await.unwrap();
            }
        }
    }
}

pub struct MemoryBackend {
    clock: Arc<ManualClock>,
    registry: SemaphoreRegistry,
    tracker: RoomQueueTracker,
}

impl MemoryBackend {
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
        let settings = RegistrySettings {
            idle_pool_ttl: IDLE_POOL,
            expired_ticket_memory: TICKET_MEMORY,
        };
        Self {
            registry: SemaphoreRegistry::new(clock.clone(), settings),
            tracker: RoomQueueTracker::new(clock.clone()),
            clock,
        }
    }
}

impl Backend for MemoryBackend {
    type Permits = SemaphoreRegistry;
    type Pending = RoomQueueTracker;

    fn permits(&self) -> &SemaphoreRegistry {
        &self.registry
    }

    fn pending(&self) -> &RoomQueueTracker {
        &self.tracker
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn settle(&self) {}

    async fn assert_nothing_left(&self) {
        assert_eq!(self.registry.pool_count(), 0, "pools left behind");
        assert_eq!(self.registry.ticket_count(), 0, "tickets left behind");
        assert!(self.tracker.is_empty(), "pending rooms left behind");
    }
}

pub fn redis_url() -> String {
    std::env::var("ROOMGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn redis_settings(prefix: &str, node: NodeId) -> RedisSettings {
    RedisSettings {
        url: redis_url(),
        key_prefix: prefix.to_owned(),
        node,
        node_lease: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        expired_ticket_memory: TICKET_MEMORY,
    }
}

pub struct RedisBackend {
    pub permits: RedisPermitStore,
    pending: RedisPendingRooms,
}

impl RedisBackend {
    pub async fn new() -> Self {
        let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
        Self::with_prefix(&prefix, NodeId::random()).await
    }

    pub async fn with_prefix(prefix: &str, node: NodeId) -> Self {
        let permits = RedisPermitStore::connect(&redis_settings(prefix, node)).unwrap();
        if let Err(error) = permits.ping().await {
            panic!(
                "Redis is not reachable at {} ({error}). Start it (`bash .ci/ensure-services`) \
                 or point ROOMGATE_TEST_REDIS_URL at a running server.",
                redis_url()
            );
        }
        let pending = permits.pending_rooms();
        Self { permits, pending }
    }

    /// Deletes every key of this test's prefix.
    pub async fn cleanup(&self) {
        let keys = self.permits.keys_in_use().await.unwrap();
        if !keys.is_empty() {
            let client = redis::Client::open(redis_url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
}

impl Backend for RedisBackend {
    type Permits = RedisPermitStore;
    type Pending = RedisPendingRooms;

    fn permits(&self) -> &RedisPermitStore {
        &self.permits
    }

    fn pending(&self) -> &RedisPendingRooms {
        &self.pending
    }

    fn advance(&self, by: Duration) {
        self.permits.advance_clock(by);
    }

    async fn settle(&self) {
        self.permits.flush_releases().await;
    }

    async fn assert_nothing_left(&self) {
        // Ticket and pending-room keys expire by themselves on Redis's real clock; everything
        // else (seats, the room index) must be gone once every holder is.
        let client = redis::Client::open(redis_url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        for key in self.permits.keys_in_use().await.unwrap() {
            // A room's seats and its line go with its last holder and its last place.
            assert!(
                !key.ends_with(":line") && !key.ends_with(":seats"),
                "room key {key} left behind"
            );
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(ttl > 0, "key {key} would never expire");
        }
    }
}
