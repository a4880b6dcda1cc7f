//! Property test: random interleavings of reserve (with and without waiting) / confirm / attach /
//! check_place / cancel / dropped seats and waiting sockets / clock advance / reap /
//! pending-room operations, checked against a plain model after every step.
//!
//! The model keeps every user's seat or place and each room's waiting line. A seat freed while
//! someone waits goes to the model's head of the line at that moment, so the stores must agree
//! with it on who was seated, in which order, and on every position they report. After every
//! step: `reserved + joined <= capacity`; the counts (waiting included) are the model's; no idle
//! seat while anyone waits; every waiting socket sees its place where the model has it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use roomgate_admission::{
    Admission, Attached, PendingRoom, PendingRooms, PermitStore, PlaceStatus, SeatGuard,
    StoreError, WaitGuard,
};
use roomgate_domain::{AdmissionError, Capacity, SessionId, Ticket, Title};

use crate::backends::{Backend, MemoryBackend, RedisBackend, TICKET_MEMORY};
use crate::{request, room, user};

const ROOMS: [&str; 3] = ["a", "b", "c"];
const CAPACITIES: [u32; 3] = [1, 2, 3];
const USERS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];
/// The clock moves in whole multiples of this, and every TTL is one too: Redis keeps real time
/// running under the moved clock, and a case takes far less than this much real time, so no
/// expiry ever falls between the model's clock and Redis's.
const UNIT_MS: u64 = 5_000;
/// Reservation and place TTLs (a seat handed to an attached place is held for its place's TTL).
/// Short against Redis's real-time key expiry (the ticket index lives TTL + 40 s of real time).
const TTLS_MS: [u64; 2] = [2 * UNIT_MS, 4 * UNIT_MS];
const PENDING_TTL_MS: u64 = 2 * UNIT_MS;

#[derive(Clone, Debug)]
enum Op {
    /// `wait`: `Some(max_waiting)` asks with `reserve_or_wait`, `None` with `reserve`.
    Reserve {
        room: usize,
        user: usize,
        ttl: usize,
        wait: Option<u32>,
    },
    /// Presents a ticket: with `confirm` (only a reservation's) or `attach` (any). `live` picks
    /// among the tickets of the model's reservations and places, else among every ticket seen.
    Present {
        ticket: Index,
        live: bool,
        attach: bool,
    },
    /// A waiting socket looks at its place (and joins a seat handed to it).
    CheckPlace {
        place: Index,
    },
    /// A waiting socket ends.
    DropPlace {
        place: Index,
    },
    Cancel {
        room: usize,
        user: usize,
    },
    /// A member leaves.
    DropSeat {
        seat: Index,
    },
    Advance {
        units: u64,
    },
    Reap,
    RegisterPending {
        room: usize,
        user: usize,
    },
    MaterializePending {
        room: usize,
    },
    RemovePending {
        room: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let wait = prop_oneof![1 => Just(None), 3 => (1..=3u32).prop_map(Some)];
    prop_oneof![
        8 => (0..ROOMS.len(), 0..USERS.len(), 0..TTLS_MS.len(), wait)
            .prop_map(|(room, user, ttl, wait)| Op::Reserve { room, user, ttl, wait }),
        6 => (any::<Index>(), prop::bool::weighted(0.75), prop::bool::weighted(0.75))
            .prop_map(|(ticket, live, attach)| Op::Present { ticket, live, attach }),
        4 => any::<Index>().prop_map(|place| Op::CheckPlace { place }),
        1 => any::<Index>().prop_map(|place| Op::DropPlace { place }),
        1 => (0..ROOMS.len(), 0..USERS.len()).prop_map(|(room, user)| Op::Cancel { room, user }),
        3 => any::<Index>().prop_map(|seat| Op::DropSeat { seat }),
        2 => (1..=4u64).prop_map(|units| Op::Advance { units }),
        1 => Just(Op::Reap),
        1 => (0..ROOMS.len(), 0..USERS.len())
            .prop_map(|(room, user)| Op::RegisterPending { room, user }),
        1 => (0..ROOMS.len()).prop_map(|room| Op::MaterializePending { room }),
        1 => (0..ROOMS.len()).prop_map(|room| Op::RemovePending { room }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Seat {
    /// `used`: the ticket already opened a waiting socket (a seat handed to an attached place),
    /// so it opens nothing more.
    Reserved {
        ticket: Ticket,
        expires_at: u64,
        used: bool,
    },
    Joined {
        session: u64,
    },
    /// A place in line. `number` orders places by when they were taken.
    Waiting {
        ticket: Ticket,
        expires_at: u64,
        attached: Option<u64>,
        hold_ms: u64,
        number: u64,
    },
}

type Key = (usize, usize);

#[derive(Default)]
struct Model {
    now: u64,
    seats: HashMap<Key, Seat>,
    /// Each room's waiting line, first come first.
    lines: [VecDeque<usize>; 3],
    places_taken: u64,
    /// The number of the last place each room handed a seat to.
    last_seated: [Option<u64>; 3],
    /// Tickets used (by a confirm or an attach) or given back with a cancel: from then on they
    /// are unknown.
    spent: HashSet<Ticket>,
    /// Tickets that expired (reaped, replaced, refused as late, or their place given up when a
    /// seat went past it), with when: the stores say so for at least `TICKET_MEMORY`.
    expired: HashMap<Ticket, u64>,
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
                    Seat::Waiting { .. } => {}
                }
            }
        }
        counts
    }

    fn position(&self, (r, u): Key) -> u32 {
        let index = self.lines[r].iter().position(|&w| w == u).unwrap();
        u32::try_from(index + 1).unwrap()
    }

    fn holder_of(&self, ticket: &Ticket) -> Option<(Key, Seat)> {
        self.seats.iter().find_map(|(key, seat)| match seat {
            Seat::Reserved { ticket: t, .. } | Seat::Waiting { ticket: t, .. } if t == ticket => {
                Some((*key, seat.clone()))
            }
            _ => None,
        })
    }

    /// The tickets of every reservation and place, in a fixed order.
    fn live_tickets(&self) -> Vec<Ticket> {
        let mut held: Vec<(Key, Ticket)> = self
            .seats
            .iter()
            .filter_map(|(key, seat)| match seat {
                Seat::Reserved { ticket, .. } | Seat::Waiting { ticket, .. } => {
                    Some((*key, ticket.clone()))
                }
                Seat::Joined { .. } => None,
            })
            .collect();
        held.sort_by_key(|(key, _)| *key);
        held.into_iter().map(|(_, ticket)| ticket).collect()
    }

    fn expire(&mut self, ticket: Ticket) {
        if !self.spent.contains(&ticket) {
            self.expired.entry(ticket).or_insert(self.now);
        }
    }

    fn leave_line(&mut self, (r, u): Key) {
        self.lines[r].retain(|&w| w != u);
        self.seats.remove(&(r, u));
    }

    /// A seat of room `r` was let go: it goes to the head of the line, past unopened places
    /// that expired, or is simply free when no one (left) waits.
    fn seat_freed(&mut self, r: usize) {
        while let Some(u) = self.lines[r].pop_front() {
            let Some(Seat::Waiting {
                ticket,
                expires_at,
                attached,
                hold_ms,
                number,
            }) = self.seats.get(&(r, u)).cloned()
            else {
                panic!("u{u} is in line {r} without a place");
            };
            if attached.is_none() && self.now >= expires_at {
                self.seats.remove(&(r, u));
                self.expire(ticket);
                continue;
            }
            // First come first served, by construction; the stores are held to it below.
            assert!(
                self.last_seated[r] < Some(number),
                "places seated out of order"
            );
            self.last_seated[r] = Some(number);
            let seat = match attached {
                // The socket is there to confirm at once; the seat is held for the place's TTL.
                Some(_) => Seat::Reserved {
                    ticket,
                    expires_at: self.now + hold_ms,
                    used: true,
                },
                // Not opened yet: held for as long as the place would have been.
                None => Seat::Reserved {
                    ticket,
                    expires_at,
                    used: false,
                },
            };
            self.seats.insert((r, u), seat);
            return;
        }
    }

    /// The reaper's pass: unopened places and reservations past their TTL go; every seat freed
    /// so goes down the line. Returns how many were reclaimed.
    fn reap(&mut self) -> usize {
        let now = self.now;
        let mut reclaimed = 0;
        for r in 0..ROOMS.len() {
            let mut expired: Vec<(Key, bool, Ticket)> = self
                .seats
                .iter()
                .filter(|((room, _), _)| *room == r)
                .filter_map(|(key, seat)| match seat {
                    Seat::Reserved {
                        ticket, expires_at, ..
                    } if now >= *expires_at => Some((*key, true, ticket.clone())),
                    Seat::Waiting {
                        ticket,
                        expires_at,
                        attached: None,
                        ..
                    } if now >= *expires_at => Some((*key, false, ticket.clone())),
                    _ => None,
                })
                .collect();
            expired.sort_by_key(|(key, _, _)| *key);
            reclaimed += expired.len();
            let mut freed = 0;
            for (key, seat, ticket) in expired {
                self.expire(ticket);
                if seat {
                    self.seats.remove(&key);
                    freed += 1;
                } else {
                    self.leave_line(key);
                }
            }
            for _ in 0..freed {
                self.seat_freed(r);
            }
        }
        reclaimed
    }
}

fn ttl_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap()
}

fn refusal<T>(result: &Result<T, StoreError>) -> Option<&AdmissionError> {
    match result {
        Err(StoreError::Refused(refusal)) => Some(refusal),
        _ => None,
    }
}

#[allow(clippy::too_many_lines)] // one match arm per operation, each next to its model
async fn run(backend: &impl Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (store, tracker) = (backend.permits(), backend.pending());
    let seats_first = ops.len() % 2 == 0;
    let mut model = Model::default();
    let mut tickets: Vec<Ticket> = Vec::new();
    let mut seats: Vec<(usize, usize, SeatGuard)> = Vec::new();
    let mut places: Vec<(usize, usize, WaitGuard)> = Vec::new();
    let mut next_session = 0u64;

    for op in ops {
        match op {
            Op::Reserve {
                room: r,
                user: u,
                ttl,
                wait,
            } => {
                let ttl = TTLS_MS[ttl];
                let req = request(ROOMS[r], USERS[u], CAPACITIES[r], ttl);
                let result = match wait {
                    None => store.reserve(req).await.map(Admission::Seat),
                    Some(max_waiting) => store.reserve_or_wait(req, max_waiting).await,
                };
                let (reserved, joined) = model.held(r);
                let current = model.seats.get(&(r, u)).cloned();
                // No barging: while anyone waits, no one without a seat gets one.
                if !model.lines[r].is_empty()
                    && matches!(current, None | Some(Seat::Waiting { .. }))
                {
                    let seat = matches!(result, Ok(Admission::Seat(_)));
                    prop_assert!(!seat, "u{u} barged into room {r}: {result:?}");
                }
                match current {
                    Some(Seat::Joined { .. }) => {
                        let already =
                            matches!(refusal(&result), Some(AdmissionError::AlreadyJoined { .. }));
                        prop_assert!(already, "{result:?}");
                    }
                    Some(Seat::Reserved {
                        ticket, expires_at, ..
                    }) if model.now < expires_at => {
                        let Ok(Admission::Seat(got)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        prop_assert!(!got.fresh);
                        prop_assert_eq!(got.ticket, ticket);
                    }
                    Some(Seat::Reserved { .. }) => {
                        // Expired, not reaped yet: same permit, fresh ticket.
                        let Ok(Admission::Seat(got)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        prop_assert!(got.fresh);
                        if let Some(Seat::Reserved { ticket, .. }) = current {
                            model.expire(ticket);
                        }
                        tickets.push(got.ticket.clone());
                        model.seats.insert(
                            (r, u),
                            Seat::Reserved {
                                ticket: got.ticket,
                                expires_at: model.now + ttl,
                                used: false,
                            },
                        );
                    }
                    Some(Seat::Waiting { .. }) if wait.is_none() => {
                        let full =
                            matches!(refusal(&result), Some(AdmissionError::RoomFull { .. }));
                        prop_assert!(full, "{result:?}");
                    }
                    Some(Seat::Waiting {
                        ticket,
                        expires_at,
                        attached,
                        hold_ms,
                        number,
                    }) => {
                        let Ok(Admission::InLine(place)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        prop_assert_eq!(place.position, model.position((r, u)));
                        if attached.is_some() || model.now < expires_at {
                            prop_assert!(!place.fresh);
                            prop_assert_eq!(place.ticket, ticket);
                        } else {
                            // Never opened and expired, not reaped yet: same place, new ticket.
                            prop_assert!(place.fresh);
                            prop_assert_ne!(&place.ticket, &ticket);
                            model.expire(ticket);
                            tickets.push(place.ticket.clone());
                            model.seats.insert(
                                (r, u),
                                Seat::Waiting {
                                    ticket: place.ticket,
                                    expires_at: model.now + ttl,
                                    attached: None,
                                    hold_ms,
                                    number,
                                },
                            );
                        }
                    }
                    None if model.lines[r].is_empty() && reserved + joined < CAPACITIES[r] => {
                        let Ok(Admission::Seat(got)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        prop_assert!(got.fresh);
                        tickets.push(got.ticket.clone());
                        model.seats.insert(
                            (r, u),
                            Seat::Reserved {
                                ticket: got.ticket,
                                expires_at: model.now + ttl,
                                used: false,
                            },
                        );
                    }
                    None => match wait {
                        None => {
                            let full =
                                matches!(refusal(&result), Some(AdmissionError::RoomFull { .. }));
                            prop_assert!(full, "{result:?}");
                        }
                        Some(max_waiting) if model.lines[r].len() >= max_waiting as usize => {
                            let full =
                                matches!(refusal(&result), Some(AdmissionError::QueueFull { .. }));
                            prop_assert!(full, "{result:?}");
                        }
                        Some(_) => {
                            let Ok(Admission::InLine(place)) = result else {
                                return Err(TestCaseError::fail(format!("{result:?}")));
                            };
                            prop_assert!(place.fresh);
                            prop_assert_eq!(place.position as usize, model.lines[r].len() + 1);
                            model.places_taken += 1;
                            model.lines[r].push_back(u);
                            tickets.push(place.ticket.clone());
                            model.seats.insert(
                                (r, u),
                                Seat::Waiting {
                                    ticket: place.ticket,
                                    expires_at: model.now + ttl,
                                    attached: None,
                                    hold_ms: ttl,
                                    number: model.places_taken,
                                },
                            );
                        }
                    },
                }
            }
            Op::Present {
                ticket,
                live,
                attach,
            } => {
                let choices = if live {
                    model.live_tickets()
                } else {
                    tickets.clone()
                };
                if choices.is_empty() {
                    continue;
                }
                let ticket = choices[ticket.index(choices.len())].clone();
                next_session += 1;
                let session = SessionId(next_session);
                let result = if attach {
                    store.attach(&ticket, session).await
                } else {
                    store.confirm(&ticket, session).await.map(Attached::Seat)
                };
                let invalid = matches!(refusal(&result), Some(AdmissionError::InvalidTicket));
                let expired = matches!(refusal(&result), Some(AdmissionError::TicketExpired));
                match model.holder_of(&ticket) {
                    Some((_, Seat::Reserved { used: true, .. })) => {
                        prop_assert!(invalid, "{result:?}");
                    }
                    Some((key, Seat::Reserved { expires_at, .. })) if model.now < expires_at => {
                        let Ok(Attached::Seat(guard)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        model.spent.insert(ticket);
                        model.seats.insert(
                            key,
                            Seat::Joined {
                                session: next_session,
                            },
                        );
                        seats.push((key.0, key.1, guard));
                    }
                    Some((key, Seat::Reserved { .. })) => {
                        // Too late: the permit goes at once, down the line if anyone waits.
                        prop_assert!(expired, "{result:?}");
                        model.seats.remove(&key);
                        model.expire(ticket);
                        model.seat_freed(key.0);
                    }
                    // `confirm` does not know places and leaves their tickets usable.
                    Some((_, Seat::Waiting { .. })) if !attach => {
                        prop_assert!(invalid, "{result:?}");
                    }
                    Some((
                        _,
                        Seat::Waiting {
                            attached: Some(_), ..
                        },
                    )) => {
                        prop_assert!(invalid, "{result:?}");
                    }
                    Some((key, Seat::Waiting { expires_at, .. })) if model.now < expires_at => {
                        let Ok(Attached::Waiting(place)) = result else {
                            return Err(TestCaseError::fail(format!("{result:?}")));
                        };
                        if let Some(Seat::Waiting { attached, .. }) = model.seats.get_mut(&key) {
                            *attached = Some(next_session);
                        }
                        model.spent.insert(ticket);
                        places.push((key.0, key.1, place));
                    }
                    Some((key, Seat::Waiting { .. })) => {
                        prop_assert!(expired, "{result:?}");
                        model.leave_line(key);
                        model.expire(ticket);
                    }
                    Some((_, Seat::Joined { .. })) => unreachable!("a joined seat has no ticket"),
                    // Used or cancelled: unknown.
                    None if model.spent.contains(&ticket) => prop_assert!(invalid, "{result:?}"),
                    // Expired: told apart from unknown for a while, then perhaps forgotten.
                    None => match model.expired.get(&ticket) {
                        Some(at) if model.now < at + ttl_ms(TICKET_MEMORY) => {
                            prop_assert!(expired, "{result:?}");
                        }
                        _ => prop_assert!(invalid || expired, "{result:?}"),
                    },
                }
            }
            Op::CheckPlace { place } => {
                if places.is_empty() {
                    continue;
                }
                let index = place.index(places.len());
                let (r, u, ref guard) = places[index];
                let session = guard.session().0;
                let status = store.check_place(guard).await.unwrap();
                match model.seats.get(&(r, u)).cloned() {
                    Some(Seat::Waiting {
                        attached: Some(s), ..
                    }) if s == session => {
                        let PlaceStatus::Waiting { position, .. } = status else {
                            return Err(TestCaseError::fail(format!(
                                "u{u} in room {r} is waiting at {}: {status:?}",
                                model.position((r, u))
                            )));
                        };
                        prop_assert_eq!(position, model.position((r, u)));
                    }
                    // The place's own ticket: the seat the model handed it when it was the head.
                    Some(Seat::Reserved {
                        ticket, expires_at, ..
                    }) if &ticket == guard.ticket() && model.now < expires_at => {
                        let PlaceStatus::Seat(seat) = status else {
                            return Err(TestCaseError::fail(format!(
                                "u{u} in room {r} was handed a seat: {status:?}"
                            )));
                        };
                        let (_, _, guard) = places.swap_remove(index);
                        guard.seated(&seat);
                        model.seats.insert((r, u), Seat::Joined { session });
                        seats.push((r, u, seat));
                    }
                    _ => {
                        let gone = matches!(status, PlaceStatus::Gone);
                        prop_assert!(gone, "u{u} in room {r}: {status:?}");
                    }
                }
            }
            Op::DropPlace { place } => {
                if places.is_empty() {
                    continue;
                }
                let (r, u, guard) = places.swap_remove(place.index(places.len()));
                let session = guard.session().0;
                drop(guard);
                backend.settle().await;
                let attached = matches!(
                    model.seats.get(&(r, u)),
                    Some(Seat::Waiting { attached: Some(s), .. }) if *s == session
                );
                if attached {
                    model.leave_line((r, u));
                }
            }
            Op::Cancel { room: r, user: u } => {
                let result = store.cancel(&room(ROOMS[r]), &user(USERS[u])).await;
                match model.seats.get(&(r, u)).cloned() {
                    Some(Seat::Reserved { ticket, .. }) => {
                        prop_assert!(result.is_ok(), "{result:?}");
                        model.spent.insert(ticket);
                        model.seats.remove(&(r, u));
                        model.seat_freed(r);
                    }
                    Some(Seat::Waiting { ticket, .. }) => {
                        prop_assert!(result.is_ok(), "{result:?}");
                        model.spent.insert(ticket);
                        model.leave_line((r, u));
                    }
                    _ => {
                        let not_found = matches!(
                            refusal(&result),
                            Some(AdmissionError::ReservationNotFound { .. })
                        );
                        prop_assert!(not_found, "{result:?}");
                    }
                }
            }
            Op::DropSeat { seat } => {
                if seats.is_empty() {
                    continue;
                }
                let (r, u, guard) = seats.swap_remove(seat.index(seats.len()));
                drop(guard);
                backend.settle().await;
                model.seats.remove(&(r, u));
                model.seat_freed(r);
            }
            Op::Advance { units } => {
                backend.advance(Duration::from_millis(units * UNIT_MS));
                model.now += units * UNIT_MS;
            }
            Op::Reap => {
                let reclaimed = store.reap_expired().await.unwrap();
                prop_assert_eq!(reclaimed, model.reap());
                tracker.reap_expired().await.unwrap();
                let now = model.now;
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
                    .register(pending, Duration::from_millis(PENDING_TTL_MS))
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
                        model.pending.insert(r, (model.now + PENDING_TTL_MS, false));
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

        check(backend, &model, &places).await?;
    }

    // Everything dropped (seats before waiting sockets or after: both orders are drawn) and
    // every TTL passed: nothing remains anywhere.
    if seats_first {
        seats.clear();
        backend.settle().await;
        places.clear();
    } else {
        places.clear();
        backend.settle().await;
        seats.clear();
    }
    backend.settle().await;
    for name in ROOMS {
        tracker.remove(&room(name)).await.unwrap();
    }
    backend.reap_everything().await;
    prop_assert_eq!(store.permits_held().await.unwrap(), 0);
    prop_assert_eq!(store.waiting_total().await.unwrap(), 0);
    for name in ROOMS {
        prop_assert_eq!(store.counts(&room(name)).await.unwrap(), Default::default());
    }
    backend.assert_nothing_left().await;
    Ok(())
}

/// The invariants, after every step.
async fn check(
    backend: &impl Backend,
    model: &Model,
    places: &[(usize, usize, WaitGuard)],
) -> Result<(), TestCaseError> {
    let (store, tracker) = (backend.permits(), backend.pending());
    let (mut held, mut waiting) = (0, 0);
    for (r, name) in ROOMS.iter().enumerate() {
        let counts = store.counts(&room(name)).await.unwrap();
        let (reserved, joined) = model.held(r);
        let line = u32::try_from(model.lines[r].len()).unwrap();
        prop_assert_eq!(
            (counts.reserved, counts.joined, counts.waiting),
            (reserved, joined, line),
            "room {}",
            r
        );
        prop_assert!(counts.reserved + counts.joined <= CAPACITIES[r]);
        // No idle seat while anyone waits.
        if line > 0 {
            prop_assert_eq!(counts.reserved + counts.joined, CAPACITIES[r], "room {}", r);
        }
        held += u64::from(reserved + joined);
        waiting += u64::from(line);
        let live = tracker.get(&room(name)).await.unwrap().is_some();
        let modelled = model
            .pending
            .get(&r)
            .is_some_and(|(expires_at, taken)| !taken && model.now < *expires_at);
        prop_assert_eq!(live, modelled);
    }
    prop_assert_eq!(store.permits_held().await.unwrap(), held);
    prop_assert_eq!(store.waiting_total().await.unwrap(), waiting);
    // The model's own books: a user is in a line exactly when they hold a place in it.
    for (r, line) in model.lines.iter().enumerate() {
        for u in line {
            let in_line = matches!(model.seats.get(&(r, *u)), Some(Seat::Waiting { .. }));
            prop_assert!(in_line);
        }
    }
    let places_held = model
        .seats
        .values()
        .filter(|seat| matches!(seat, Seat::Waiting { .. }))
        .count();
    prop_assert_eq!(
        places_held,
        model.lines.iter().map(VecDeque::len).sum::<usize>()
    );

    // Every waiting socket sees its place where the model has it. A seat handed to a place is
    // not looked at here: looking joins it (that is `Op::CheckPlace`).
    for (r, u, guard) in places {
        let expected = match model.seats.get(&(*r, *u)) {
            Some(Seat::Waiting {
                attached: Some(s), ..
            }) if *s == guard.session().0 => Some(model.position((*r, *u))),
            Some(Seat::Reserved {
                ticket, expires_at, ..
            }) if ticket == guard.ticket() && model.now < *expires_at => continue,
            _ => None,
        };
        let status = store.check_place(guard).await.unwrap();
        match (expected, &status) {
            (Some(position), PlaceStatus::Waiting { position: seen, .. }) => {
                prop_assert_eq!(*seen, position, "u{} in room {}", u, r);
            }
            (None, PlaceStatus::Gone) => {}
            _ => {
                return Err(TestCaseError::fail(format!(
                    "u{u} in room {r}: expected {expected:?}, the store says {status:?}"
                )));
            }
        }
    }
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
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants_in_memory(ops in proptest::collection::vec(op(), 1..150)) {
        runtime().block_on(async { run(&MemoryBackend::new(), ops).await })?;
    }
}

proptest! {
    // Each case talks to a real Redis over loopback: fewer cases, same properties.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants_in_redis(ops in proptest::collection::vec(op(), 1..150)) {
        runtime().block_on(async {
            let backend = RedisBackend::new().await;
            let outcome = run(&backend, ops).await;
            backend.cleanup().await;
            outcome
        })?;
    }
}
