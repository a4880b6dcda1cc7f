//! Prometheus metrics, registered on one registry that `/metrics` renders.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reservation attempts by outcome: `created`, `existing`, `room_full`, `already_joined`,
    /// `wrong_password`, `room_not_found`, `room_pending`, `unavailable`.
    pub reservations: IntCounterVec,
    /// Permits held across all rooms (reserved + joined); set when scraped.
    pub permits_held: IntGauge,
    /// Open WebSocket sessions that have joined a room.
    pub ws_sessions: IntGauge,
    /// From the WebSocket upgrade to the `joined` frame.
    pub join_duration: Histogram,
    /// Things reclaimed by the reaper and at boot, by kind: `reservation`, `pending_room`, `member`.
    pub reaped: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reservations = IntCounterVec::new(
            Opts::new(
                "roomgate_reservations_total",
                "Reservation attempts by outcome.",
            ),
            &["outcome"],
        )?;
        let permits_held = IntGauge::new(
            "roomgate_permits_held",
            "Permits held across all rooms: reserved plus joined seats.",
        )?;
        let ws_sessions = IntGauge::new(
            "roomgate_ws_sessions",
            "WebSocket sessions currently joined to a room.",
        )?;
        let join_duration = Histogram::with_opts(
            HistogramOpts::new(
                "roomgate_join_duration_seconds",
                "Time from WebSocket upgrade to the joined frame.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let reaped = IntCounterVec::new(
            Opts::new(
                "roomgate_reaped_total",
                "Reclaimed reservations, pending rooms and members.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(reservations.clone()))?;
        registry.register(Box::new(permits_held.clone()))?;
        registry.register(Box::new(ws_sessions.clone()))?;
        registry.register(Box::new(join_duration.clone()))?;
        registry.register(Box::new(reaped.clone()))?;
        // Make every labelled series visible from the first scrape.
        for outcome in [
            "created",
            "existing",
            "room_full",
            "already_joined",
            "wrong_password",
            "room_not_found",
            "room_pending",
            "unavailable",
        ] {
            reservations.with_label_values(&[outcome]);
        }
        for kind in [
            "reservation",
            "pending_room",
            "member",
            "orphan_member",
            "orphan_seat",
        ] {
            reaped.with_label_values(&[kind]);
        }
        Ok(Self {
            registry,
            reservations,
            permits_held,
            ws_sessions,
            join_duration,
            reaped,
        })
    }

    pub fn reservation(&self, outcome: &str) {
        self.reservations.with_label_values(&[outcome]).inc();
    }

    pub fn reaped(&self, kind: &str, count: usize) {
        self.reaped
            .with_label_values(&[kind])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
