//! Building the application from settings, and running it until a shutdown signal.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use roomgate_admission::{
    AnyPendingRooms, AnyPermitStore, Clock, Reaper, RedisPermitStore, RedisSettings,
    RegistrySettings, RoomQueueTracker, SemaphoreRegistry, SystemClock,
};
use roomgate_domain::NodeId;
use roomgate_persistence::Database;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{SecretSource, TokenKeys};
use crate::config::Settings;
use crate::error::{self, extractors};
use crate::event_relay::EventRelay;
use crate::fanout::{FanoutTimeouts, RedisFanout};
use crate::hub::{Hub, LocalRooms};
use crate::message_writer::MessageWriter;
use crate::metrics::{Metrics, ReapedKind};
use crate::rate_limit::{RateLimits, limit_by_ip};
use crate::state::AppState;
use crate::{node, routes};

/// How often idle rate-limit keys are forgotten.
const LIMITER_SWEEP: Duration = Duration::from_secs(60);

/// A bound, ready-to-run server with its background tasks.
pub struct Application {
    server: Server,
    state: Arc<AppState>,
    local_addr: SocketAddr,
    reaper: Reaper,
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .field("node", &self.state.node)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to the database, reclaims what earlier runs left, binds the listener and
    /// starts the background tasks. Needs a tokio runtime.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// The same, with `clock` as the source of time for every TTL (reservations, pending
    /// rooms), so that tests can move time instead of sleeping it out.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let (tokens, secret) = TokenKeys::from_settings(&settings.auth)?;
        if secret == SecretSource::Development {
            tracing::warn!(
                "auth.jwt_secret is empty: using the built-in development secret, which anyone can \
                 read. Tokens prove nothing; set auth.jwt_secret before exposing this server."
            );
        }
        // Creates a missing SQLite folder, so a newcomer's first run just works.
        let db = Database::connect(&settings.database)
            .await
            .context("connecting to the database")?;

        let metrics = Metrics::new().context("registering metrics")?;
        let node = NodeId::random();
        let shutdown = CancellationToken::new();
        let (permits, pending, hub) = admission_backend(&settings, node, &clock, &shutdown)?;
        node::boot(&db, node, &metrics, !permits.is_shared())
            .await
            .context("registering this node")?;
        let limits = RateLimits::new(&settings.limits);

        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let local_addr = listener.local_addr()?;

        let messages = MessageWriter::start(db.clone(), hub.clone());
        let state = Arc::new(AppState {
            db: db.clone(),
            permits: permits.clone(),
            pending: pending.clone(),
            clock,
            hub,
            messages,
            metrics: metrics.clone(),
            tokens,
            limits,
            node,
            shutdown,
            live_seats: Default::default(),
            catalog: Default::default(),
            sessions: TaskTracker::new(),
            evictions: Default::default(),
            settings,
        });

        let server = http_server(&state, listener)?;

        let reaped = metrics.clone();
        let reaper = Reaper::spawn(
            permits,
            pending,
            state.settings.admission.reaper_interval(),
            move |report| {
                reaped.reaped(ReapedKind::Reservation, report.reservations);
                reaped.reaped(ReapedKind::PendingRoom, report.pending_rooms);
            },
        );
        let heartbeat = node::spawn_liveness(Arc::clone(&state));
        let reconciliation = node::spawn_reconciliation(Arc::clone(&state));
        let mut background = vec![heartbeat, reconciliation];
        if state.settings.redis.is_enabled() {
            let relay = EventRelay {
                client: redis::Client::open(state.settings.redis.url.expose())
                    .map_err(|e| anyhow::anyhow!("configuration key redis.url: {e}"))?,
                prefix: state.settings.redis.key_prefix.clone(),
                response_timeout: Duration::from_millis(state.settings.redis.response_timeout_ms),
            };
            background.push(relay.spawn(
                state.db.clone(),
                state.settings.events.clone(),
                state.shutdown.clone(),
            ));
        }
        background.push(spawn_limiter_sweep(Arc::clone(&state)));

        Ok(Self {
            server,
            state,
            local_addr,
            reaper,
            background,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn node(&self) -> NodeId {
        self.state.node
    }

    /// Serves until the server fails or `stop` resolves; then shuts down gracefully: stop
    /// accepting, close every session with 1001 (each leaves its room and returns its permit),
    /// remove this node, and return.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            reaper,
            background,
            ..
        } = self;
        let handle = server.handle();
        let mut serving = tokio::spawn(server);
        tokio::select! {
            result = &mut serving => {
                result.context("the HTTP server task failed")?.context("the HTTP server failed")?;
                return Ok(());
            }
            () = stop => {}
        }
        tracing::info!("shutting down: closing sessions");
        handle.pause().await;
        state.shutdown.cancel();
        state.sessions.close();
        let grace = Duration::from_millis(state.settings.server.shutdown_timeout_ms);
        if tokio::time::timeout(grace, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = state.sessions.len(),
                "sessions did not close in time"
            );
        }
        handle.stop(true).await;
        let _ = serving.await;
        reaper.shutdown().await;
        for task in background {
            task.abort();
            let _ = task.await;
        }
        // Seats given back in a shared store are queued; let them reach it before exiting.
        if tokio::time::timeout(grace, state.permits.flush_releases())
            .await
            .is_err()
        {
            tracing::warn!(
                "some seat releases did not reach redis; this node's lease returns them"
            );
        }
        node::retire(&state.db, state.node, &state.metrics).await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// In memory when this process is alone; in Redis, with cross-node fan-out, when `redis.url`
/// is set.
fn admission_backend(
    settings: &Settings,
    node: NodeId,
    clock: &Arc<dyn Clock>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(AnyPermitStore, AnyPendingRooms, Hub)> {
    let registry = RegistrySettings::default();
    if !settings.redis.is_enabled() {
        let permits = AnyPermitStore::Memory(SemaphoreRegistry::new(Arc::clone(clock), registry));
        let pending = AnyPendingRooms::Memory(RoomQueueTracker::new(Arc::clone(clock)));
        return Ok((permits, pending, Hub::default()));
    }
    let redis = &settings.redis;
    let store = RedisPermitStore::connect(&RedisSettings {
        url: redis.url.expose().to_owned(),
        key_prefix: redis.key_prefix.clone(),
        node,
        node_lease: settings.node.lease(),
        connect_timeout: Duration::from_millis(redis.connect_timeout_ms),
        response_timeout: Duration::from_millis(redis.response_timeout_ms),
        expired_ticket_memory: registry.expired_ticket_memory,
    })
    .map_err(|e| anyhow::anyhow!("configuration key redis.url: {e}"))?;
    let pending = AnyPendingRooms::Redis(store.pending_rooms());
    let client = redis::Client::open(redis.url.expose())
        .map_err(|e| anyhow::anyhow!("configuration key redis.url: {e}"))?;
    let local = LocalRooms::default();
    let timeouts = FanoutTimeouts {
        connect: Duration::from_millis(redis.connect_timeout_ms),
        response: Duration::from_millis(redis.response_timeout_ms),
    };
    let fanout = RedisFanout::start(
        client,
        &redis.key_prefix,
        timeouts,
        local.clone(),
        shutdown.clone(),
    );
    tracing::info!("admission and fan-out shared through redis");
    Ok((
        AnyPermitStore::Redis(store),
        pending,
        Hub::with_remote(local, fanout),
    ))
}

fn http_server(state: &Arc<AppState>, listener: TcpListener) -> anyhow::Result<Server> {
    let data = web::Data::from(Arc::clone(state));
    let body_limit = state.settings.limits.max_body_bytes;
    let dev_tokens = state.settings.auth.dev_tokens;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(extractors::json_config(body_limit))
            .app_data(extractors::path_config())
            .app_data(extractors::query_config())
            .wrap(from_fn(limit_by_ip))
            .wrap(from_fn(routes::ws::close_refused_upgrades))
            .wrap(from_fn(crate::telemetry::trace_request))
            .configure(|cfg| routes::configure(cfg, dev_tokens))
            .default_service(web::to(error::unmatched))
    })
    // Writes leave at once: a session already gathers the frames queued for it into one
    // write, so Nagle's algorithm would only hold the next write back until the peer
    // acknowledges the last, which a delayed ACK stretches to tens of milliseconds.
    .on_connect(|connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Err(error) = tcp.set_nodelay(true)
        {
            tracing::debug!(%error, "could not turn off Nagle's algorithm");
        }
    })
    .disable_signals()
    // Sessions are closed before the server is stopped; this only bounds in-flight requests.
    .shutdown_timeout(5);
    if state.settings.server.workers > 0 {
        server = server.workers(state.settings.server.workers);
    }
    Ok(server.listen(listener)?.run())
}

fn spawn_limiter_sweep(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(LIMITER_SWEEP);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticks.tick() => state.limits.forget_idle(),
            }
        }
    })
}
