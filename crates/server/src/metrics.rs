//! Prometheus metrics, registered on one registry that `/metrics` renders.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The `outcome` label of `roomgate_reservations_total`: one per way a reservation (or the
/// creator's seat of a new room) can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationOutcome {
    /// A new seat is held (201).
    Created,
    /// The user's live reservation, returned unchanged (200).
    Existing,
    /// A new place in the room's waiting line (202).
    Queued,
    /// The user's place in line, returned unchanged (200).
    ExistingPlace,
    RoomFull,
    QueueFull,
    AlreadyJoined,
    WrongPassword,
    RoomNotFound,
    RoomPending,
    /// A room to be created is already registered or open.
    RoomExists,
    /// The request was malformed (400, 413).
    InvalidRequest,
    RateLimited,
    /// A backing service could not be reached (503).
    Unavailable,
    /// A server error (500).
    Internal,
}

impl ReservationOutcome {
    pub const ALL: [Self; 15] = [
        Self::Created,
        Self::Existing,
        Self::Queued,
        Self::ExistingPlace,
        Self::RoomFull,
        Self::QueueFull,
        Self::AlreadyJoined,
        Self::WrongPassword,
        Self::RoomNotFound,
        Self::RoomPending,
        Self::RoomExists,
        Self::InvalidRequest,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Existing => "existing",
            Self::Queued => "queued",
            Self::ExistingPlace => "existing_place",
            Self::RoomFull => "room_full",
            Self::QueueFull => "queue_full",
            Self::AlreadyJoined => "already_joined",
            Self::WrongPassword => "wrong_password",
            Self::RoomNotFound => "room_not_found",
            Self::RoomPending => "room_pending",
            Self::RoomExists => "room_exists",
            Self::InvalidRequest => "invalid_request",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// The `kind` label of `roomgate_reaped_total`: what was reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReapedKind {
    /// A reservation past its TTL.
    Reservation,
    /// A pending room past its TTL.
    PendingRoom,
    /// A membership of a dead or earlier node.
    Member,
    /// A participant row of this node that no session holds.
    OrphanMember,
    /// A Redis seat of this node that no session holds.
    OrphanSeat,
}

impl ReapedKind {
    pub const ALL: [Self; 5] = [
        Self::Reservation,
        Self::PendingRoom,
        Self::Member,
        Self::OrphanMember,
        Self::OrphanSeat,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Self::Reservation => "reservation",
            Self::PendingRoom => "pending_room",
            Self::Member => "member",
            Self::OrphanMember => "orphan_member",
            Self::OrphanSeat => "orphan_seat",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reservation attempts by outcome (labels: [`ReservationOutcome::label`]).
    pub reservations: IntCounterVec,
    /// Permits held across all rooms (reserved + joined); set when scraped.
    pub permits_held: IntGauge,
    /// Open WebSocket sessions that have joined a room.
    pub ws_sessions: IntGauge,
    /// People in every room's waiting line; set when scraped.
    pub waiting: IntGauge,
    /// From taking a place in line to the `joined` frame on its socket.
    pub queue_wait: Histogram,
    /// From the WebSocket upgrade to the `joined` frame.
    pub join_duration: Histogram,
    /// Things reclaimed by the reaper, at boot and by reconciliation, by kind (labels:
    /// [`ReapedKind::label`]).
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
        let waiting = IntGauge::new("roomgate_waiting", "People in the rooms' waiting lines.")?;
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "roomgate_queue_wait_seconds",
                "Time from taking a place in a waiting line to the joined frame.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
            ]),
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
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        registry.register(Box::new(join_duration.clone()))?;
        registry.register(Box::new(reaped.clone()))?;
        // Make every labelled series visible from the first scrape.
        for outcome in ReservationOutcome::ALL {
            reservations.with_label_values(&[outcome.label()]);
        }
        for kind in ReapedKind::ALL {
            reaped.with_label_values(&[kind.label()]);
        }
        Ok(Self {
            registry,
            reservations,
            permits_held,
            ws_sessions,
            waiting,
            queue_wait,
            join_duration,
            reaped,
        })
    }

    pub fn reservation(&self, outcome: ReservationOutcome) {
        self.reservations
            .with_label_values(&[outcome.label()])
            .inc();
    }

    pub fn reaped(&self, kind: ReapedKind, count: usize) {
        self.reaped
            .with_label_values(&[kind.label()])
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(text: &str, metric: &str, label: &str, value: &str) -> bool {
        let series = format!("{metric}{{{label}=\"{value}\"}} ");
        text.lines().any(|line| line.starts_with(&series))
    }

    #[test]
    fn every_outcome_and_kind_is_exported_from_the_first_scrape() {
        let metrics = Metrics::new().unwrap();
        let text = metrics.render().unwrap();
        for outcome in ReservationOutcome::ALL {
            assert!(
                exported(
                    &text,
                    "roomgate_reservations_total",
                    "outcome",
                    outcome.label()
                ),
                "{outcome:?} missing from:\n{text}"
            );
        }
        for kind in ReapedKind::ALL {
            assert!(
                exported(&text, "roomgate_reaped_total", "kind", kind.label()),
                "{kind:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn labels_are_distinct() {
        let outcomes: std::collections::HashSet<_> =
            ReservationOutcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(outcomes.len(), ReservationOutcome::ALL.len());
        let kinds: std::collections::HashSet<_> =
            ReapedKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(kinds.len(), ReapedKind::ALL.len());
    }

    #[test]
    fn counting_moves_the_labelled_series() {
        let metrics = Metrics::new().unwrap();
        metrics.reservation(ReservationOutcome::RateLimited);
        metrics.reaped(ReapedKind::OrphanSeat, 3);
        let text = metrics.render().unwrap();
        assert!(text.contains("roomgate_reservations_total{outcome=\"rate_limited\"} 1"));
        assert!(text.contains("roomgate_reaped_total{kind=\"orphan_seat\"} 3"));
    }
}
