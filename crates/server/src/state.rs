//! What every handler and session shares.

use std::sync::Arc;

use parking_lot::Mutex;

use roomgate_admission::{AnyPendingRooms, AnyPermitStore, Clock};
use roomgate_domain::NodeId;
use roomgate_persistence::Database;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenKeys;
use crate::catalog::RoomCatalog;
use crate::config::Settings;
use crate::hub::Hub;
use crate::live_seats::LiveSeats;
use crate::message_writer::MessageWriter;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;

pub struct AppState {
    pub settings: Settings,
    pub db: Database,
    pub permits: AnyPermitStore,
    pub pending: AnyPendingRooms,
    pub clock: Arc<dyn Clock>,
    pub hub: Hub,
    /// Stores chat messages by group commit and publishes them once stored.
    pub messages: MessageWriter,
    pub metrics: Metrics,
    pub tokens: TokenKeys,
    pub limits: RateLimits,
    /// This process, as recorded on every membership it holds.
    pub node: NodeId,
    /// Fires when the server starts shutting down; every session closes with 1001.
    pub shutdown: CancellationToken,
    /// The seats this node's sessions hold, from confirmation until their row is gone; what
    /// the reconciliation compares the database against.
    pub live_seats: Arc<LiveSeats>,
    /// The immutable facts of rooms this node has read, for reservations without a read.
    pub catalog: RoomCatalog,
    /// Every live WebSocket session, so that shutdown can wait for them to leave their rooms.
    pub sessions: TaskTracker,
    /// Fires to close every session of this node without shutting down (the node lost its
    /// lease); replaced after firing so that later sessions get a fresh one.
    pub evictions: Mutex<CancellationToken>,
}

impl AppState {
    /// The token a session starting now watches for eviction.
    pub fn eviction(&self) -> CancellationToken {
        self.evictions.lock().clone()
    }

    /// Closes every current session (each leaves its room as usual); new ones are unaffected.
    pub fn evict_sessions(&self) {
        let previous = std::mem::take(&mut *self.evictions.lock());
        previous.cancel();
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("node", &self.node)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}
