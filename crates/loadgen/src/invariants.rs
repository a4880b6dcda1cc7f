//! The contract's invariants, checked from outside.
//!
//! Over-admission is looked for in two independent ways, and a room's excess is the larger of
//! the two:
//! - **the clients' count**: a client counts itself in when its `joined` frame arrives and out
//!   just *before* it sends `leave`, so the count is a lower bound of the members the server
//!   holds at that moment; if it ever exceeds the capacity, the server admitted too many;
//! - **the server's own reads**: `GET /api/v1/rooms/{id}` must always show
//!   `attending + reserved <= capacity` (invariant 1 of the contract).
//!
//! A *leak* is a room that, once every client is gone, still shows attending members,
//! reserved seats or people in its waiting line (invariant 3).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::Serialize;

use roomgate_api::RoomView;

/// At most this many violations are described in a report; all are counted.
const MAX_DESCRIBED: usize = 20;

#[derive(Debug)]
struct RoomState {
    capacity: u32,
    /// Clients currently between their `joined` frame and their `leave`.
    inside: AtomicU32,
    peak_inside: AtomicU32,
    /// The largest excess over capacity in the clients' own count.
    client_excess: AtomicU32,
    /// The largest excess over capacity in a server read.
    read_excess: AtomicU32,
    reads: AtomicU64,
}

/// Which check saw an excess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    ByClients,
    InServerRead,
}

/// Over-admission bookkeeping for a set of rooms, shared by every task of a run.
#[derive(Debug)]
pub struct AdmissionCheck {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    rooms: Vec<RoomState>,
    violations: AtomicU64,
    described: Mutex<Vec<String>>,
}

/// What the checks found, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionFindings {
    /// Sum over rooms of the largest excess over capacity either check saw. Must be 0.
    pub over_admitted: u64,
    /// Sum over rooms of the largest excess in the clients' own count: more clients held a
    /// joined session at once than the room has seats.
    pub over_admitted_by_clients: u64,
    /// Sum over rooms of the largest excess in a server read (`attending + reserved`).
    pub over_capacity_in_reads: u64,
    /// Rooms where an excess was seen.
    pub rooms_over_capacity: u64,
    /// Largest number of clients that held a joined session in one room at once.
    pub peak_inside: u32,
    /// Room reads taken while the load ran.
    pub server_reads: u64,
    /// Reads or client counts that broke the invariant (each counted, the first few described).
    pub violations: u64,
    pub described: Vec<String>,
}

impl AdmissionCheck {
    /// `rooms`: `(room id, capacity)`, indexed in this order by [`enter`](Self::enter).
    pub fn new(rooms: impl IntoIterator<Item = (String, u32)>) -> Self {
        let (ids, capacities): (Vec<String>, Vec<u32>) = rooms.into_iter().unzip();
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let rooms = capacities
            .into_iter()
            .map(|capacity| RoomState {
                capacity,
                inside: AtomicU32::new(0),
                peak_inside: AtomicU32::new(0),
                client_excess: AtomicU32::new(0),
                read_excess: AtomicU32::new(0),
                reads: AtomicU64::new(0),
            })
            .collect();
        Self {
            ids,
            index,
            rooms,
            violations: AtomicU64::new(0),
            described: Mutex::new(Vec::new()),
        }
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// A client of room `room` received its `joined` frame.
    pub fn enter(&self, room: usize) {
        let Some(state) = self.rooms.get(room) else {
            return;
        };
        let inside = state.inside.fetch_add(1, Ordering::AcqRel) + 1;
        state.peak_inside.fetch_max(inside, Ordering::AcqRel);
        if inside > state.capacity {
            self.violation(
                room,
                Seen::ByClients,
                inside - state.capacity,
                format!(
                    "room {}: {inside} clients held a joined session at once, capacity {}",
                    self.ids[room], state.capacity
                ),
            );
        }
    }

    /// A client of room `room` is about to leave (call before sending `leave`).
    pub fn exit(&self, room: usize) {
        if let Some(state) = self.rooms.get(room) {
            // Never below zero, even if a caller exits without having entered.
            let _ = state
                .inside
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// Checks one `GET /api/v1/rooms/{id}` answer.
    pub fn observe(&self, view: &RoomView) {
        let Some(&room) = self.index.get(&view.id) else {
            return;
        };
        let state = &self.rooms[room];
        state.reads.fetch_add(1, Ordering::Relaxed);
        let held = view.attending.saturating_add(view.reserved);
        if view.capacity != state.capacity {
            self.violation(
                room,
                Seen::InServerRead,
                0,
                format!(
                    "room {}: the server reports capacity {}, it was created with {}",
                    view.id, view.capacity, state.capacity
                ),
            );
        }
        if held > state.capacity {
            self.violation(
                room,
                Seen::InServerRead,
                held - state.capacity,
                format!(
                    "room {}: server read attending {} + reserved {} > capacity {}",
                    view.id, view.attending, view.reserved, state.capacity
                ),
            );
        }
    }

    fn violation(&self, room: usize, seen: Seen, excess: u32, description: String) {
        let state = &self.rooms[room];
        match seen {
            Seen::ByClients => state.client_excess.fetch_max(excess, Ordering::AcqRel),
            Seen::InServerRead => state.read_excess.fetch_max(excess, Ordering::AcqRel),
        };
        self.violations.fetch_add(1, Ordering::AcqRel);
        let mut described = self
            .described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if described.len() < MAX_DESCRIBED {
            described.push(description);
        }
    }

    pub fn findings(&self) -> AdmissionFindings {
        let excess = |r: &RoomState| {
            let clients = r.client_excess.load(Ordering::Acquire);
            let reads = r.read_excess.load(Ordering::Acquire);
            (u64::from(clients), u64::from(reads))
        };
        let over_admitted = self
            .rooms
            .iter()
            .map(|r| {
                let (clients, reads) = excess(r);
                clients.max(reads)
            })
            .sum();
        let over_admitted_by_clients = self.rooms.iter().map(|r| excess(r).0).sum();
        let over_capacity_in_reads = self.rooms.iter().map(|r| excess(r).1).sum();
        let rooms_over_capacity = self.rooms.iter().filter(|r| excess(r) != (0, 0)).count() as u64;
        let peak_inside = self
            .rooms
            .iter()
            .map(|r| r.peak_inside.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        let server_reads = self
            .rooms
            .iter()
            .map(|r| r.reads.load(Ordering::Relaxed))
            .sum();
        AdmissionFindings {
            over_admitted,
            over_admitted_by_clients,
            over_capacity_in_reads,
            rooms_over_capacity,
            peak_inside,
            server_reads,
            violations: self.violations.load(Ordering::Acquire),
            described: self
                .described
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A room that still holds seats once every client is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leak {
    pub room: String,
    pub attending: u32,
    pub reserved: u32,
    /// People still in the room's waiting line (v1.1).
    pub waiting: u32,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "room {}: attending {}, reserved {}, waiting {} after every client left",
            self.room, self.attending, self.reserved, self.waiting
        )
    }
}

/// The rooms among `views` that are not back to `attending == 0 && reserved == 0 &&
/// waiting == 0`.
pub fn leaks<'a>(views: impl IntoIterator<Item = &'a RoomView>) -> Vec<Leak> {
    views
        .into_iter()
        .filter(|v| v.attending != 0 || v.reserved != 0 || v.waiting != 0)
        .map(|v| Leak {
            room: v.id.clone(),
            attending: v.attending,
            reserved: v.reserved,
            waiting: v.waiting,
        })
        .collect()
}

/// `roomgate_permits_held N` in the server's `/metrics` text: the seats (reserved or joined)
/// its permit store holds. Once every client is gone it must be 0.
pub fn permits_held(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("roomgate_permits_held "))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, capacity: u32, attending: u32, reserved: u32) -> RoomView {
        RoomView {
            id: id.into(),
            title: format!("load {id}"),
            capacity,
            attending,
            reserved,
            waiting: 0,
            has_password: false,
            state: roomgate_api::RoomState::Open,
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    fn two_rooms() -> AdmissionCheck {
        AdmissionCheck::new([("a".to_owned(), 2), ("b".to_owned(), 1)])
    }

    #[test]
    fn clients_up_to_capacity_are_fine() {
        let check = two_rooms();
        check.enter(0);
        check.enter(0);
        check.enter(1);
        check.exit(1);
        check.enter(1);
        let findings = check.findings();
        assert_eq!(findings.over_admitted, 0);
        assert_eq!(findings.violations, 0);
        assert_eq!(findings.peak_inside, 2);
    }

    #[test]
    fn one_client_more_than_capacity_at_once_is_over_admission() {
        let check = two_rooms();
        check.enter(0);
        check.enter(0);
        check.enter(0);
        let findings = check.findings();
        assert_eq!(findings.over_admitted, 1);
        assert_eq!(findings.rooms_over_capacity, 1);
        assert_eq!(findings.violations, 1);
        assert!(findings.described[0].contains("room a"), "{findings:?}");
    }

    #[test]
    fn the_worst_excess_counts_once_per_room_not_per_sighting() {
        let check = two_rooms();
        for _ in 0..4 {
            check.enter(1); // capacity 1: excess 1, 2, 3
        }
        check.observe(&view("b", 1, 2, 0)); // excess 1 again
        let findings = check.findings();
        assert_eq!(findings.over_admitted, 3);
        assert_eq!(findings.over_admitted_by_clients, 3);
        assert_eq!(findings.over_capacity_in_reads, 1);
        assert_eq!(findings.violations, 4);
    }

    #[test]
    fn leaving_before_the_next_join_is_never_counted_as_excess() {
        let check = two_rooms();
        for _ in 0..100 {
            check.enter(1);
            check.exit(1);
        }
        assert_eq!(check.findings().over_admitted, 0);
        // An exit without an enter does not make room for a later excess to hide in.
        check.exit(1);
        check.enter(1);
        check.enter(1);
        assert_eq!(check.findings().over_admitted, 1);
    }

    #[test]
    fn server_reads_over_capacity_are_over_admission() {
        let check = two_rooms();
        check.observe(&view("a", 2, 2, 0));
        check.observe(&view("a", 2, 1, 1));
        assert_eq!(check.findings().over_admitted, 0);
        check.observe(&view("a", 2, 2, 1));
        let findings = check.findings();
        assert_eq!(findings.over_admitted, 1);
        assert_eq!(findings.over_admitted_by_clients, 0);
        assert_eq!(findings.over_capacity_in_reads, 1);
        assert_eq!(findings.server_reads, 3);
        check.observe(&view("a", 2, 5, 0));
        assert_eq!(check.findings().over_admitted, 3);
    }

    #[test]
    fn a_changed_capacity_is_a_violation_and_unknown_rooms_are_ignored() {
        let check = two_rooms();
        check.observe(&view("b", 7, 0, 0));
        assert_eq!(check.findings().violations, 1);
        check.observe(&view("zzz", 1, 9, 9));
        assert_eq!(check.findings().violations, 1);
    }

    #[test]
    fn descriptions_are_bounded_but_every_violation_counts() {
        let check = two_rooms();
        for _ in 0..100 {
            check.observe(&view("b", 1, 2, 0));
        }
        let findings = check.findings();
        assert_eq!(findings.violations, 100);
        assert_eq!(findings.described.len(), MAX_DESCRIBED);
    }

    #[test]
    fn the_permits_gauge_is_read_from_the_metrics_text() {
        let text = "# HELP roomgate_permits_held Seats held.\n\
                    # TYPE roomgate_permits_held gauge\n\
                    roomgate_permits_held 3\n\
                    roomgate_ws_sessions 1\n";
        assert_eq!(permits_held(text), Some(3));
        assert_eq!(permits_held("roomgate_permits_held 0\n"), Some(0));
        assert_eq!(permits_held("roomgate_ws_sessions 1\n"), None);
    }

    #[test]
    fn leaks_are_rooms_with_any_member_or_reservation_left() {
        let views = [
            view("a", 2, 0, 0),
            view("b", 2, 1, 0),
            view("c", 2, 0, 1),
            view("d", 5, 0, 0),
            RoomView {
                waiting: 1,
                ..view("e", 5, 0, 0)
            },
        ];
        let found = leaks(&views);
        assert_eq!(
            found.iter().map(|l| l.room.as_str()).collect::<Vec<_>>(),
            ["b", "c", "e"]
        );
        assert!(leaks(&[view("a", 1, 0, 0)]).is_empty());
    }
}
