//! Property test: random interleavings of reserve / confirm / cancel / drop / clock advance /
//! reap / pending-room operations, checked against a plain model after every step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use roomgate_admission::{
    ManualClock, PendingRoom, RegistrySettings, RoomQueueTracker, SeatGuard, SemaphoreRegistry,
};
use roomgate_domain::{AdmissionError, Capacity, SessionId, Ticket, Timestamp, Title};

use crate::{request, room, user};

const ROOMS: [&str; 3] = ["a", "b", "c"];
const CAPACITIES: [u32; 3] = [1, 2, 3];
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const TTL_MS: u64 = 100;
const IDLE_MS: u64 = 300;
const MEMORY_MS: u64 = 400;

#[derive(Clone, Debug)]
enum Op {
    Reserve { room: usize, user: usize },
    Confirm { ticket: usize },
    Cancel { room: usize, user: usize },
    DropSeat { seat: usize },
    Advance { millis: u64 },
    Reap,
    RegisterPending { room: usize, user: usize },
    MaterializePending { room: usize },
    RemovePending { room: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4usize).prop_map(|(room, user)| Op::Reserve { room, user }),
        4 => (0..64usize).prop_map(|ticket| Op::Confirm { ticket }),
        1 => (0..3usize, 0..4usize).prop_map(|(room, user)| Op::Cancel { room, user }),
        2 => (0..64usize).prop_map(|seat| Op::DropSeat { seat }),
        2 => (1..150u64).prop_map(|millis| Op::Advance { millis }),
        1 => Just(Op::Reap),
        1 => (0..3usize, 0..4usize).prop_map(|(room, user)| Op::RegisterPending { room, user }),
        1 => (0..3usize).prop_map(|room| Op::MaterializePending { room }),
        1 => (0..3usize).prop_map(|room| Op::RemovePending { room }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Seat {
    Reserved { ticket: Ticket, expires_at: u64 },
    Joined { session: u64 },
}

#[derive(Default)]
struct Model {
    now: u64,
    seats: HashMap<(usize, usize), Seat>,
    /// Pending registrations by room: (expires_at, taken).
    pending: HashMap<usize, (u64, bool)>,
}

impl Model {
    fn held(&self, room: usize) -> (u32, u32) {
        let mut counts = (0, 0);
        for ((r, _), seat) in &self.seats {
            if *r == room {
                match seat {
                    Seat::Reserved { .. } => counts.0 += 1,
                    Seat::Joined { .. } => counts.1 += 1,
                }
            }
        }
        counts
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let start = 1_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp(start)));
    let settings = RegistrySettings {
        idle_pool_ttl: Duration::from_millis(IDLE_MS),
        expired_ticket_memory: Duration::from_millis(MEMORY_MS),
    };
    let registry = SemaphoreRegistry::new(clock.clone(), settings);
    let tracker = RoomQueueTracker::new(clock.clone());
    let mut model = Model {
        now: start,
        ..Default::default()
    };
    let mut tickets: Vec<Ticket> = Vec::new();
    let mut guards: Vec<(usize, usize, SeatGuard)> = Vec::new();
    let mut next_session = 0u64;

    for op in ops {
        match op {
            Op::Reserve { room: r, user: u } => {
                let result = registry.reserve(request(ROOMS[r], USERS[u], CAPACITIES[r], TTL_MS));
                let (reserved, joined) = model.held(r);
                match model.seats.get(&(r, u)).cloned() {
                    Some(Seat::Joined { .. }) => {
                        let already = matches!(result, Err(AdmissionError::AlreadyJoined { .. }));
                        prop_assert!(already);
                    }
                    Some(Seat::Reserved { ticket, expires_at }) if model.now < expires_at => {
                        let got = result.unwrap();
                        prop_assert!(!got.fresh);
                        prop_assert_eq!(got.ticket, ticket);
                    }
                    Some(Seat::Reserved { .. }) => {
                        let got = result.unwrap();
                        prop_assert!(got.fresh);
                        tickets.push(got.ticket.clone());
                        model.seats.insert(
                            (r, u),
                            Seat::Reserved {
                                ticket: got.ticket,
                                expires_at: model.now + TTL_MS,
                            },
                        );
                    }
                    None if reserved + joined < CAPACITIES[r] => {
                        let got = result.unwrap();
                        prop_assert!(got.fresh);
                        tickets.push(got.ticket.clone());
                        model.seats.insert(
                            (r, u),
                            Seat::Reserved {
                                ticket: got.ticket,
                                expires_at: model.now + TTL_MS,
                            },
                        );
                    }
                    None => {
                        prop_assert!(
                            matches!(result, Err(AdmissionError::RoomFull { .. })),
                            "{result:?}"
                        );
                    }
                }
            }
            Op::Confirm { ticket } => {
                let Some(ticket) = tickets.get(ticket).cloned() else {
                    continue;
                };
                next_session += 1;
                let result = registry.confirm(&ticket, SessionId(next_session));
                let holder = model.seats.iter().find_map(|(key, seat)| match seat {
                    Seat::Reserved {
                        ticket: t,
                        expires_at,
                    } if *t == ticket => Some((*key, *expires_at)),
                    _ => None,
                });
                match holder {
                    Some((key, expires_at)) if model.now < expires_at => {
                        let guard = result.unwrap();
                        model.seats.insert(
                            key,
                            Seat::Joined {
                                session: next_session,
                            },
                        );
                        guards.push((key.0, key.1, guard));
                    }
                    Some((key, _)) => {
                        prop_assert_eq!(result.unwrap_err(), AdmissionError::TicketExpired);
                        model.seats.remove(&key);
                    }
                    None => {
                        // Used, cancelled, replaced or reaped: refused either way, nothing changes.
                        let err = result.unwrap_err();
                        prop_assert!(
                            matches!(
                                err,
                                AdmissionError::InvalidTicket | AdmissionError::TicketExpired
                            ),
                            "{err:?}"
                        );
                    }
                }
            }
            Op::Cancel { room: r, user: u } => {
                let result = registry.cancel(&room(ROOMS[r]), &user(USERS[u]));
                if let Some(Seat::Reserved { .. }) = model.seats.get(&(r, u)) {
                    prop_assert!(result.is_ok());
                    model.seats.remove(&(r, u));
                } else {
                    let is_not_found =
                        matches!(result, Err(AdmissionError::ReservationNotFound { .. }));
                    prop_assert!(is_not_found);
                }
            }
            Op::DropSeat { seat } => {
                if seat < guards.len() {
                    let (r, u, guard) = guards.swap_remove(seat);
                    drop(guard);
                    model.seats.remove(&(r, u));
                }
            }
            Op::Advance { millis } => {
                clock.advance(Duration::from_millis(millis));
                model.now += millis;
            }
            Op::Reap => {
                let report = registry.reap_expired();
                let now = model.now;
                let before = model.seats.len();
                model.seats.retain(|_, seat| !matches!(seat, Seat::Reserved { expires_at, .. } if now >= *expires_at));
                prop_assert_eq!(report.reservations, before - model.seats.len());
                let reaped = tracker.reap_expired();
                let before = model.pending.len();
                model.pending.retain(|_, (expires_at, _)| now < *expires_at);
                prop_assert!(reaped <= before - model.pending.len());
            }
            Op::RegisterPending { room: r, user: u } => {
                let pending = PendingRoom {
                    id: room(ROOMS[r]),
                    title: Title::parse("t").unwrap(),
                    capacity: Capacity::new(CAPACITIES[r], 10).unwrap(),
                    password: None,
                    creator: user(USERS[u]),
                };
                let result = tracker.register(pending, Duration::from_millis(TTL_MS));
                match model.pending.get(&r) {
                    Some((expires_at, _)) if model.now < *expires_at => {
                        let pending = matches!(result, Err(AdmissionError::RoomPending { .. }));
                        prop_assert!(pending);
                    }
                    _ => {
                        prop_assert!(result.is_ok());
                        model.pending.insert(r, (model.now + TTL_MS, false));
                    }
                }
            }
            Op::MaterializePending { room: r } => {
                let result = tracker.materialize(&room(ROOMS[r]));
                match model.pending.get_mut(&r) {
                    Some((expires_at, taken)) if !*taken && model.now < *expires_at => {
                        prop_assert!(result.is_ok());
                        *taken = true;
                    }
                    _ => prop_assert!(result.is_err()),
                }
            }
            Op::RemovePending { room: r } => {
                let removed = tracker.remove(&room(ROOMS[r]));
                prop_assert_eq!(removed.is_some(), model.pending.remove(&r).is_some());
            }
        }

        // Invariants after every step.
        let mut total = 0;
        for (r, name) in ROOMS.iter().enumerate() {
            let counts = registry.counts(&room(name));
            let (reserved, joined) = model.held(r);
            prop_assert_eq!((counts.reserved, counts.joined), (reserved, joined));
            prop_assert!(counts.reserved + counts.joined <= CAPACITIES[r]);
            total += u64::from(reserved + joined);
        }
        prop_assert_eq!(registry.permits_held(), total);
        prop_assert_eq!(tracker.len(), model.pending.len());
    }

    // Everything dropped and every TTL passed: nothing remains anywhere.
    guards.clear();
    for _ in 0..3 {
        clock.advance(Duration::from_millis(TTL_MS + IDLE_MS + MEMORY_MS));
        registry.reap_expired();
        tracker.reap_expired();
    }
    prop_assert_eq!(registry.permits_held(), 0);
    for name in ROOMS {
        prop_assert_eq!(registry.counts(&room(name)), Default::default());
    }
    prop_assert_eq!(registry.pool_count(), 0);
    prop_assert_eq!(registry.ticket_count(), 0);
    prop_assert!(tracker.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
