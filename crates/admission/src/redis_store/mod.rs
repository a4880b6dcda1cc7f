//! Permits, tickets and pending rooms in Redis, so that any number of nodes share one truth.
//!
//! Every operation on a room is one Lua script on that room's keys, which all carry the room id
//! as their hash tag (`{room}`) and so live in one slot of a Redis Cluster. Expiry is computed
//! from Redis's `TIME`, never a node's clock. A room with no holder leaves no key behind.
//! Joined seats name the node that holds them; a node renews one lease for all of its seats with
//! [`RedisPermitStore::heartbeat`], and whichever node reaps next reclaims the seats of a node
//! whose lease ran out.

mod keys;
mod pending;
mod permits;
mod scripts;
mod wakeups;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use roomgate_domain::NodeId;

use crate::error::StoreError;

pub use pending::RedisPendingRooms;
pub use permits::RedisPermitStore;

/// How to reach Redis and how this node takes part.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key, so that deployments (or tests) can share one server.
    /// Must not contain `{` or `}`.
    pub key_prefix: String,
    /// This node; recorded in the joined seats it holds.
    pub node: NodeId,
    /// How long a node's seats survive without a heartbeat.
    pub node_lease: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for one reply; past it the operation answers `Unavailable`.
    pub response_timeout: Duration,
    /// How long an expired ticket is still told apart from an unknown one.
    pub expired_ticket_memory: Duration,
}

pub(crate) struct Shared {
    connection: ConnectionManager,
    /// For the line's pub/sub subscription, which needs a connection of its own.
    client: redis::Client,
    /// Bounds one attempt to (re)subscribe.
    subscribe_timeout: Duration,
    keys: keys::Keys,
    node: NodeId,
    node_lease: Duration,
    expired_ticket_memory: Duration,
    /// Added to Redis's clock in every script; only tests move it.
    clock_offset_ms: AtomicI64,
}

impl Shared {
    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    fn offset(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// Why `prefix` cannot prefix Roomgate's keys, if it cannot: a brace would change the keys' hash
/// tag (`{room}`), and with it which Cluster slot a room's keys share.
pub fn key_prefix_problem(prefix: &str) -> Option<&'static str> {
    prefix
        .contains(['{', '}'])
        .then_some("must not contain '{' or '}'")
}

/// Opens the (lazy, self-reconnecting) connection shared by the permit and pending-room stores.
/// Nothing is sent yet, so a node starts even while Redis is down and recovers when it is back.
pub(crate) fn open(settings: &RedisSettings) -> Result<Arc<Shared>, StoreError> {
    if let Some(problem) = key_prefix_problem(&settings.key_prefix) {
        return Err(StoreError::Unavailable(format!(
            "redis key prefix {problem}"
        )));
    }
    let client = redis::Client::open(settings.url.as_str()).map_err(unavailable)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout))
        // Fail fast while Redis is down; the manager reconnects on the next call.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let connection =
        ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
    Ok(Arc::new(Shared {
        connection,
        client,
        subscribe_timeout: settings.connect_timeout + settings.response_timeout,
        keys: keys::Keys::new(&settings.key_prefix),
        node: settings.node,
        node_lease: settings.node_lease,
        expired_ticket_memory: settings.expired_ticket_memory,
        clock_offset_ms: AtomicI64::new(0),
    }))
}

/// Redis's clock as the scripts see it (including the test offset).
pub(crate) async fn permits_now(
    shared: &Shared,
    connection: &mut ConnectionManager,
) -> Result<roomgate_domain::Timestamp, StoreError> {
    let (seconds, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(connection)
        .await
        .map_err(unavailable)?;
    let millis = (seconds * 1000 + micros / 1000).saturating_add_signed(shared.offset());
    Ok(roomgate_domain::Timestamp(millis))
}
