//! Property test: random interleavings of reserve / confirm / cancel / drop / clock advance /
//! reap / pending-room operations, checked against a plain model after every step.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use roomgate_admission::{PendingRoom, PendingRooms, PermitStore, SeatGuard, StoreError};
use roomgate_domain::{AdmissionError, Capacity, SessionId, Ticket, Title};

use crate::backends::{Backend, MemoryBackend, RedisBackend};
use crate::{request, room, user};

const ROOMS: [&str; 3] = ["a", "b", "c"];
const CAPACITIES: [u32; 3] = [1, 2, 3];
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
// Long enough that Redis's real-time key expiry never overtakes the test's moved clock.
const TTL_MS: u64 = 10_000;

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
        // Whole seconds: Redis keeps real time running under the moved clock, and a step of a
        // whole second never lands within that drift of an expiry.
        2 => (1..15u64).prop_map(|seconds| Op::Advance { millis: seconds * 1_000 }),
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

async fn run(backend: &impl Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (store, tracker) = (backend.permits(), backend.pending());
    let mut model = Model::default();
    let mut tickets: Vec<Ticket> = Vec::new();
    let mut guards: Vec<(usize, usize, SeatGuard)> = Vec::new();
    let mut next_session = 0u64;

    for op in ops {
        match op {
            Op::Reserve { room: r, user: u } => {
                let result = store
                    .reserve(request(ROOMS[r], USERS[u], CAPACITIES[r], TTL_MS))
                    .await;
                let (reserved, joined) = model.held(r);
                match model.seats.get(&(r, u)).cloned() {
                    Some(Seat::Joined { .. }) => {
                        let already = matches!(
                            result,
                            Err(StoreError::Refused(AdmissionError::AlreadyJoined { .. }))
                        );
                        prop_assert!(already, "{result:?}");
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
                        let full = matches!(
                            result,
                            Err(StoreError::Refused(AdmissionError::RoomFull { .. }))
                        );
                        prop_assert!(full, "{result:?}");
                    }
                }
            }
            Op::Confirm { ticket } => {
                let Some(ticket) = tickets.get(ticket).cloned() else {
                    continue;
                };
                next_session += 1;
                let result = store.confirm(&ticket, SessionId(next_session)).await;
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
                        prop_assert_eq!(
                            result.unwrap_err(),
                            StoreError::Refused(AdmissionError::TicketExpired)
                        );
                        model.seats.remove(&key);
                    }
                    None => {
                        // Used, cancelled, replaced or reaped: refused either way, nothing changes.
                        let err = result.unwrap_err();
                        let refused = matches!(
                            err,
                            StoreError::Refused(
                                AdmissionError::InvalidTicket | AdmissionError::TicketExpired
                            )
                        );
                        prop_assert!(refused, "{err:?}");
                    }
                }
            }
            Op::Cancel { room: r, user: u } => {
                let result = store.cancel(&room(ROOMS[r]), &user(USERS[u])).await;
                if let Some(Seat::Reserved { .. }) = model.seats.get(&(r, u)) {
                    prop_assert!(result.is_ok());
                    model.seats.remove(&(r, u));
                } else {
                    let not_found = matches!(
                        result,
                        Err(StoreError::Refused(
                            AdmissionError::ReservationNotFound { .. }
                        ))
                    );
                    prop_assert!(not_found);
                }
            }
            Op::DropSeat { seat } => {
                if seat < guards.len() {
                    let (r, u, guard) = guards.swap_remove(seat);
                    drop(guard);
                    backend.settle().await;
                    model.seats.remove(&(r, u));
                }
            }
            Op::Advance { millis } => {
                backend.advance(Duration::from_millis(millis));
                model.now += millis;
            }
            Op::Reap => {
                let reclaimed = store.reap_expired().await.unwrap();
                let now = model.now;
                let before = model.seats.len();
                model.seats.retain(|_, seat| !matches!(seat, Seat::Reserved { expires_at, .. } if now >= *expires_at));
                prop_assert_eq!(reclaimed, before - model.seats.len());
                tracker.reap_expired().await.unwrap();
                model.pending.retain(|_, (expires_at, _)| now < *expires_at);
            }
            Op::RegisterPending { room: r, user: u } => {
                let pending = PendingRoom {
                    id: room(ROOMS[r]),
                    title: Title::parse("t").unwrap(),
                    capacity: Capacity::new(CAPACITIES[r], 10).unwrap(),
                    password: None,
                    creator: user(USERS[u]),
                };
                let result = tracker
                    .register(pending, Duration::from_millis(TTL_MS))
                    .await;
                match model.pending.get(&r) {
                    Some((expires_at, _)) if model.now < *expires_at => {
                        let refused = matches!(
                            result,
                            Err(StoreError::Refused(AdmissionError::RoomPending { .. }))
                        );
                        prop_assert!(refused, "{result:?}");
                    }
                    _ => {
                        prop_assert!(result.is_ok(), "{result:?}");
                        model.pending.insert(r, (model.now + TTL_MS, false));
                    }
                }
            }
            Op::MaterializePending { room: r } => {
                let result = tracker.materialize(&room(ROOMS[r])).await;
                match model.pending.get_mut(&r) {
                    Some((expires_at, taken)) if !*taken && model.now < *expires_at => {
                        prop_assert!(result.is_ok(), "{result:?}");
                        *taken = true;
                    }
                    _ => prop_assert!(result.is_err()),
                }
            }
            Op::RemovePending { room: r } => {
                tracker.remove(&room(ROOMS[r])).await.unwrap();
                model.pending.remove(&r);
            }
        }

        // Invariants after every step.
        let mut total = 0;
        for (r, name) in ROOMS.iter().enumerate() {
            let counts = store.counts(&room(name)).await.unwrap();
            let (reserved, joined) = model.held(r);
            prop_assert_eq!((counts.reserved, counts.joined), (reserved, joined));
            prop_assert!(counts.reserved + counts.joined <= CAPACITIES[r]);
            total += u64::from(reserved + joined);
            let live = tracker.get(&room(name)).await.unwrap().is_some();
            let modelled = model
                .pending
                .get(&r)
                .is_some_and(|(expires_at, taken)| !taken && model.now < *expires_at);
            prop_assert_eq!(live, modelled);
        }
        prop_assert_eq!(store.permits_held().await.unwrap(), total);
    }

    // Everything dropped and every TTL passed: nothing remains anywhere.
    guards.clear();
    backend.settle().await;
    for name in ROOMS {
        tracker.remove(&room(name)).await.unwrap();
    }
    backend.reap_everything().await;
    prop_assert_eq!(store.permits_held().await.unwrap(), 0);
    for name in ROOMS {
        prop_assert_eq!(store.counts(&room(name)).await.unwrap(), Default::default());
    }
    backend.assert_nothing_left().await;
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants_in_memory(ops in proptest::collection::vec(op(), 1..120)) {
        runtime().block_on(async { run(&MemoryBackend::new(), ops).await })?;
    }
}

proptest! {
    // Each case talks to a real Redis over loopback: fewer cases, same properties.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants_in_redis(ops in proptest::collection::vec(op(), 1..120)) {
        runtime().block_on(async {
            let backend = RedisBackend::new().await;
            let outcome = run(&backend, ops).await;
            backend.cleanup().await;
            outcome
        })?;
    }
}
