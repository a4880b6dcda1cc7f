//! The waiting line, on both backends: first come first served, no barging, no idle seat, and
//! every way a place can go.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use roomgate_admission::{
    Admission, Attached, PermitStore, Place, PlaceStatus, SeatGuard, StoreError, WaitGuard,
};
use roomgate_domain::{AdmissionError, SessionId, Ticket};
use tokio::task::JoinSet;

use crate::backends::Backend;
use crate::{request, room};

crate::on_both_backends!(
    places_are_seated_in_the_order_they_were_taken,
    no_direct_reservation_gets_a_seat_while_anyone_waits_under_a_storm,
    a_seat_freed_while_someone_waits_is_never_idle_however_it_was_freed,
    every_way_a_place_goes_moves_the_line_up_and_leaves_nothing_behind,
    a_full_line_refuses_and_asking_again_keeps_the_place,
    place_tickets_attach_once_and_confirm_refuses_them_without_using_them,
);

/// Long enough that nothing expires by itself while a test runs (Redis's real clock moves too).
const LONG: u64 = 600_000;
const MAX_WAITING: u32 = 1_000;

/// `n` members of `room` (users `m0`…), each holding a joined seat.
async fn members(store: &impl PermitStore, room_id: &str, capacity: u32, n: u32) -> Vec<SeatGuard> {
    let mut seats = Vec::new();
    for i in 0..n {
        let reservation = store
            .reserve(request(room_id, &format!("m{i}"), capacity, LONG))
            .await
            .unwrap();
        let session = SessionId(u64::from(i) + 1_000_000);
        seats.push(store.confirm(&reservation.ticket, session).await.unwrap());
    }
    seats
}

async fn take_place(
    store: &impl PermitStore,
    room_id: &str,
    user_id: &str,
    capacity: u32,
    ttl_ms: u64,
) -> Place {
    match store
        .reserve_or_wait(request(room_id, user_id, capacity, ttl_ms), MAX_WAITING)
        .await
        .unwrap()
    {
        Admission::InLine(place) => place,
        Admission::Seat(seat) => panic!("{user_id} got a seat in a full room: {seat:?}"),
    }
}

async fn attach_place(store: &impl PermitStore, ticket: &Ticket, session: u64) -> WaitGuard {
    match store.attach(ticket, SessionId(session)).await.unwrap() {
        Attached::Waiting(place) => place,
        Attached::Seat(seat) => panic!("a place's ticket joined a seat: {seat:?}"),
    }
}

async fn position(store: &impl PermitStore, place: &WaitGuard) -> u32 {
    match store.check_place(place).await.unwrap() {
        PlaceStatus::Waiting { position, .. } => position,
        other => panic!("{:?} is not waiting: {other:?}", place.key()),
    }
}

async fn seat_of(store: &impl PermitStore, place: WaitGuard) -> SeatGuard {
    match store.check_place(&place).await.unwrap() {
        PlaceStatus::Seat(seat) => {
            place.seated(&seat);
            seat
        }
        other => panic!("{:?} has no seat: {other:?}", place.key()),
    }
}

async fn counts(store: &impl PermitStore, room_id: &str) -> (u32, u32, u32) {
    let counts = store.counts(&room(room_id)).await.unwrap();
    (counts.reserved, counts.joined, counts.waiting)
}

fn refusal<T: std::fmt::Debug>(outcome: Result<T, StoreError>) -> AdmissionError {
    match outcome {
        Err(StoreError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn places_are_seated_in_the_order_they_were_taken(backend: &impl Backend) {
    let store = backend.permits();
    let mut seats: VecDeque<SeatGuard> = members(store, "fifo", 2, 2).await.into();
    let mut line: Vec<Option<WaitGuard>> = Vec::new();
    for i in 0..10u32 {
        let place = take_place(store, "fifo", &format!("w{i}"), 2, LONG).await;
        assert_eq!((place.position, place.fresh), (i + 1, true));
        line.push(Some(attach_place(store, &place.ticket, u64::from(i)).await));
    }
    assert_eq!(counts(store, "fifo").await, (0, 2, 10));
    assert_eq!(store.waiting_total().await.unwrap(), 10);
    // No departure seen yet: no estimate.
    let head = line[0].as_ref().unwrap();
    assert!(matches!(
        store.check_place(head).await.unwrap(),
        PlaceStatus::Waiting {
            position: 1,
            eta_ms: None
        }
    ));

    let mut seated = Vec::new();
    for round in 0..10usize {
        // Someone seated leaves: exactly the head of the line gets the seat.
        drop(seats.pop_front());
        backend.settle().await;
        let waiting = u32::try_from(10 - round - 1).unwrap();
        assert_eq!(counts(store, "fifo").await, (1, 1, waiting));
        for (k, slot) in line.iter_mut().enumerate() {
            let Some(place) = slot.as_ref() else { continue };
            match store.check_place(place).await.unwrap() {
                PlaceStatus::Seat(seat) => {
                    assert_eq!(k, round, "w{k} was seated before w{round}");
                    seated.push(k);
                    slot.take().unwrap().seated(&seat);
                    seats.push_back(seat);
                }
                PlaceStatus::Waiting { position, eta_ms } => {
                    assert_eq!(position as usize, k - round, "w{k} after round {round}");
                    assert!(eta_ms.is_some(), "a departure was seen");
                }
                PlaceStatus::Gone => panic!("w{k} lost its place"),
            }
        }
        assert_eq!(seated.len(), round + 1, "the freed seat went to no one");
        assert_eq!(counts(store, "fifo").await, (0, 2, waiting));
    }
    assert_eq!(seated, (0..10).collect::<Vec<_>>());
    drop(seats);
    backend.settle().await;
    assert_eq!(counts(store, "fifo").await, (0, 0, 0));
    assert_eq!(store.waiting_total().await.unwrap(), 0);
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

enum Held {
    Seat(SeatGuard),
    Place(WaitGuard),
    Nothing,
}

async fn no_direct_reservation_gets_a_seat_while_anyone_waits_under_a_storm(
    backend: &impl Backend,
) {
    const CAPACITY: u32 = 4;
    const WAITERS: usize = 20;
    /// The first this many waiters give their seat back at once, so 4 + 12 seats are handed
    /// over while the storm runs and 4 people are still waiting at the end.
    const DRAINED: usize = 12;
    const SEATED: usize = CAPACITY as usize + DRAINED;
    let store = backend.permits().clone();
    let seats = members(&store, "storm", CAPACITY, CAPACITY).await;
    let mut places = Vec::new();
    for i in 0..WAITERS {
        let place = take_place(&store, "storm", &format!("w{i}"), CAPACITY, LONG).await;
        places.push(attach_place(&store, &place.ticket, i as u64).await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seated = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = JoinSet::new();
    for (k, place) in places.into_iter().enumerate() {
        let (store, stop, seated) = (store.clone(), stop.clone(), seated.clone());
        waiters.spawn(async move {
            let mut watch = store.watch_line(&room("storm"));
            loop {
                match store.check_place(&place).await.unwrap() {
                    PlaceStatus::Seat(seat) => {
                        seated.lock().unwrap().push(k);
                        place.seated(&seat);
                        if k < DRAINED {
                            drop(seat);
                            return (k, Held::Nothing);
                        }
                        return (k, Held::Seat(seat));
                    }
                    PlaceStatus::Waiting { .. } => {}
                    PlaceStatus::Gone => panic!("w{k} lost its place"),
                }
                if stop.load(Ordering::SeqCst) {
                    return (k, Held::Place(place));
                }
                watch.changed().await;
            }
        });
    }
    let mut storm = JoinSet::new();
    for t in 0..8 {
        let (store, stop) = (store.clone(), stop.clone());
        storm.spawn(async move {
            let (mut admitted, mut full, mut attempts) = (0u32, 0u32, 0u32);
            while attempts < 100 || !stop.load(Ordering::SeqCst) {
                let user = format!("s{t}-{attempts}");
                match store.reserve(request("storm", &user, CAPACITY, LONG)).await {
                    Ok(_) => admitted += 1,
                    Err(StoreError::Refused(AdmissionError::RoomFull { .. })) => full += 1,
                    Err(other) => panic!("unexpected: {other}"),
                }
                attempts += 1;
                tokio::task::yield_now().await;
            }
            (admitted, full, attempts)
        });
    }

    // The members leave while the storm runs; every seat goes down the line.
    drop(seats);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seated.lock().unwrap().len() < SEATED {
        assert!(tokio::time::Instant::now() < deadline, "the line stalled");
        backend.settle().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let (mut admitted, mut full, mut attempts) = (0, 0, 0);
    while let Some(outcome) = storm.join_next().await {
        let (a, f, n) = outcome.unwrap();
        (admitted, full, attempts) = (admitted + a, full + f, attempts + n);
    }
    assert_eq!(admitted, 0, "a direct reservation barged in");
    assert_eq!(full, attempts);
    assert!(attempts >= 800);

    let mut held_seats = Vec::new();
    let mut still_waiting = Vec::new();
    while let Some(outcome) = waiters.join_next().await {
        match outcome.unwrap() {
            (_, Held::Seat(seat)) => held_seats.push(seat),
            (k, Held::Place(place)) => still_waiting.push((k, place)),
            (_, Held::Nothing) => {}
        }
    }
    let mut order = seated.lock().unwrap().clone();
    order.sort_unstable();
    assert_eq!(order, (0..SEATED).collect::<Vec<_>>());
    assert_eq!(held_seats.len(), CAPACITY as usize);
    still_waiting.sort_by_key(|(k, _)| *k);
    let ks: Vec<usize> = still_waiting.iter().map(|(k, _)| *k).collect();
    assert_eq!(ks, (SEATED..WAITERS).collect::<Vec<_>>());
    for (i, (_, place)) in still_waiting.iter().enumerate() {
        assert_eq!(position(&store, place).await as usize, i + 1);
    }
    let (reserved, joined, waiting) = counts(&store, "storm").await;
    assert_eq!((reserved + joined, waiting), (CAPACITY, 4));

    drop(still_waiting);
    backend.settle().await;
    assert_eq!(counts(&store, "storm").await, (0, CAPACITY, 0));
    drop(held_seats);
    backend.settle().await;
    assert_eq!(counts(&store, "storm").await, (0, 0, 0));
    assert_eq!(store.permits_held().await.unwrap(), 0);
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

async fn a_seat_freed_while_someone_waits_is_never_idle_however_it_was_freed(
    backend: &impl Backend,
) {
    let store = backend.permits();
    let r = "idle";
    // Four seats: one joined, one reservation to cancel, two that will expire.
    let mut joined = members(store, r, 4, 1).await;
    store
        .reserve(request(r, "cancelled", 4, LONG))
        .await
        .unwrap();
    store
        .reserve(request(r, "reaped", 4, 10_000))
        .await
        .unwrap();
    let late = store.reserve(request(r, "late", 4, 10_000)).await.unwrap();
    let mut line = VecDeque::new();
    for i in 0..6 {
        let place = take_place(store, r, &format!("w{i}"), 4, LONG).await;
        line.push_back(attach_place(store, &place.ticket, i).await);
    }
    assert_eq!(counts(store, r).await, (3, 1, 6));
    let mut seats = Vec::new();

    // A reservation cancelled.
    store
        .cancel(&room(r), &crate::user("cancelled"))
        .await
        .unwrap();
    assert_eq!(counts(store, r).await, (3, 1, 5));
    seats.push(seat_of(store, line.pop_front().unwrap()).await);
    assert_eq!(position(store, &line[0]).await, 1);

    // A reservation confirmed too late.
    backend.advance(Duration::from_secs(15));
    assert_eq!(
        refusal(store.confirm(&late.ticket, SessionId(77)).await),
        AdmissionError::TicketExpired
    );
    assert_eq!(counts(store, r).await, (2, 2, 4));
    seats.push(seat_of(store, line.pop_front().unwrap()).await);

    // A reservation reaped.
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    assert_eq!(counts(store, r).await, (1, 3, 3));
    seats.push(seat_of(store, line.pop_front().unwrap()).await);

    // A member leaving.
    drop(joined.pop());
    backend.settle().await;
    let (reserved, joined_now, waiting) = counts(store, r).await;
    assert_eq!((reserved + joined_now, waiting), (4, 2));
    seats.push(seat_of(store, line.pop_front().unwrap()).await);
    assert_eq!(position(store, &line[0]).await, 1);
    assert_eq!(position(store, &line[1]).await, 2);

    // Once no one waits, a freed seat is simply free.
    drop(line);
    backend.settle().await;
    drop(seats.pop());
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 3, 0));
    drop(seats);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 0, 0));
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

async fn every_way_a_place_goes_moves_the_line_up_and_leaves_nothing_behind(
    backend: &impl Backend,
) {
    let store = backend.permits();
    let r = "ways";
    let member = members(store, r, 1, 1).await;
    let a = take_place(store, r, "a", 1, LONG).await;
    let a = attach_place(store, &a.ticket, 1).await;
    let b = take_place(store, r, "b", 1, LONG).await;
    let b = attach_place(store, &b.ticket, 2).await;
    let c = take_place(store, r, "c", 1, 10_000).await;
    let d = take_place(store, r, "d", 1, 20_000).await;
    let e = take_place(store, r, "e", 1, LONG).await;
    let e = attach_place(store, &e.ticket, 5).await;
    let f = take_place(store, r, "f", 1, LONG).await;
    let f = attach_place(store, &f.ticket, 6).await;
    assert_eq!(counts(store, r).await, (0, 1, 6));
    assert_eq!(position(store, &f).await, 6);

    // The waiting socket ends.
    drop(a);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 1, 5));
    assert_eq!(position(store, &b).await, 1);
    assert_eq!(position(store, &f).await, 5);

    // The place is given up with a cancel; its socket ending later changes nothing.
    store.cancel(&room(r), &crate::user("b")).await.unwrap();
    assert!(matches!(
        store.check_place(&b).await.unwrap(),
        PlaceStatus::Gone
    ));
    drop(b);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 1, 4));
    assert_eq!(
        refusal(store.cancel(&room(r), &crate::user("b")).await),
        AdmissionError::ReservationNotFound {
            room: room(r),
            user: crate::user("b")
        }
    );

    // A place whose socket never opened expires.
    backend.advance(Duration::from_secs(15));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    assert_eq!(counts(store, r).await, (0, 1, 3));
    assert_eq!(
        refusal(store.attach(&c.ticket, SessionId(3)).await),
        AdmissionError::TicketExpired
    );
    assert_eq!(position(store, &e).await, 2);

    // A seat freed while an expired, unreaped place is at the head goes past it.
    backend.advance(Duration::from_secs(10));
    drop(member);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (1, 0, 1));
    assert_eq!(
        refusal(store.attach(&d.ticket, SessionId(4)).await),
        AdmissionError::TicketExpired
    );
    let e_seat = seat_of(store, e).await;
    assert_eq!(counts(store, r).await, (0, 1, 1));
    assert_eq!(position(store, &f).await, 1);

    // The hand-over's join fails (the database refused it): the seat goes to the next in line.
    drop(e_seat);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (1, 0, 0));
    let f_seat = seat_of(store, f).await;
    assert_eq!(counts(store, r).await, (0, 1, 0));
    drop(f_seat);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 0, 0));
    assert_eq!(store.waiting_total().await.unwrap(), 0);
    assert_eq!(store.permits_held().await.unwrap(), 0);
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

async fn a_full_line_refuses_and_asking_again_keeps_the_place(backend: &impl Backend) {
    let store = backend.permits();
    let r = "queue-full";
    let ask = |user: &str, ttl_ms| store.reserve_or_wait(request(r, user, 1, ttl_ms), 3);
    let member = store.reserve(request(r, "m", 1, LONG)).await.unwrap();
    let mut places = Vec::new();
    for (i, (user, ttl)) in [("w0", 10_000), ("w1", LONG), ("w2", LONG)]
        .into_iter()
        .enumerate()
    {
        let Admission::InLine(place) = ask(user, ttl).await.unwrap() else {
            panic!("a seat in a full room");
        };
        assert_eq!(place.position as usize, i + 1);
        places.push(place);
    }
    assert_eq!(
        refusal(ask("w3", LONG).await),
        AdmissionError::QueueFull {
            room: room(r),
            max_waiting: 3
        }
    );
    // Asking again with a live place hands it back unchanged, full line or not.
    let Admission::InLine(again) = ask("w1", LONG).await.unwrap() else {
        panic!("a seat in a full room");
    };
    assert_eq!(
        again,
        Place {
            fresh: false,
            ..places[1].clone()
        }
    );
    // Without waiting, there is no seat for a waiter or a newcomer; the place is kept.
    for user in ["w1", "newcomer"] {
        assert!(matches!(
            refusal(store.reserve(request(r, user, 1, LONG)).await),
            AdmissionError::RoomFull { capacity: 1, .. }
        ));
    }
    assert_eq!(counts(store, r).await, (1, 0, 3));
    // The member asking again keeps its seat.
    let Admission::Seat(kept) = ask("m", LONG).await.unwrap() else {
        panic!("the member lost its seat");
    };
    assert_eq!((kept.ticket, kept.fresh), (member.ticket.clone(), false));

    // An unopened place past its expiry but not reaped: same place, fresh ticket.
    backend.advance(Duration::from_secs(15));
    let Admission::InLine(renewed) = ask("w0", 10_000).await.unwrap() else {
        panic!("a seat in a full room");
    };
    assert!(renewed.fresh);
    assert_eq!(renewed.position, 1);
    assert_ne!(renewed.ticket, places[0].ticket);
    assert_eq!(
        refusal(store.attach(&places[0].ticket, SessionId(1)).await),
        AdmissionError::TicketExpired
    );
    assert_eq!(counts(store, r).await, (1, 0, 3));

    for user in ["w0", "w1", "w2", "m"] {
        store.cancel(&room(r), &crate::user(user)).await.unwrap();
    }
    assert_eq!(counts(store, r).await, (0, 0, 0));
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

async fn place_tickets_attach_once_and_confirm_refuses_them_without_using_them(
    backend: &impl Backend,
) {
    let store = backend.permits();
    let r = "tickets";
    store.reserve(request(r, "m", 1, LONG)).await.unwrap();
    let w0 = take_place(store, r, "w0", 1, LONG).await;
    let w1 = take_place(store, r, "w1", 1, 10_000).await;

    // `confirm` does not know places, and does not use their tickets up.
    for _ in 0..2 {
        assert_eq!(
            refusal(store.confirm(&w0.ticket, SessionId(1)).await),
            AdmissionError::InvalidTicket
        );
    }
    let waiting = attach_place(store, &w0.ticket, 1).await;
    assert_eq!(waiting.ticket(), &w0.ticket);
    // Single use: a second socket is refused, as is `confirm` now.
    assert_eq!(
        refusal(store.attach(&w0.ticket, SessionId(2)).await),
        AdmissionError::InvalidTicket
    );
    assert_eq!(
        refusal(store.confirm(&w0.ticket, SessionId(2)).await),
        AdmissionError::InvalidTicket
    );
    assert_eq!(position(store, &waiting).await, 1);

    // A place whose socket opens too late is gone.
    backend.advance(Duration::from_secs(15));
    for _ in 0..2 {
        assert_eq!(
            refusal(store.attach(&w1.ticket, SessionId(3)).await),
            AdmissionError::TicketExpired
        );
    }
    assert_eq!(counts(store, r).await, (1, 0, 1));

    // An unopened place handed a seat: its ticket now opens the seat itself.
    let w2 = take_place(store, r, "w2", 1, LONG).await;
    drop(waiting);
    backend.settle().await;
    store.cancel(&room(r), &crate::user("m")).await.unwrap();
    assert_eq!(counts(store, r).await, (1, 0, 0));
    let Attached::Seat(seat) = store.attach(&w2.ticket, SessionId(4)).await.unwrap() else {
        panic!("the handed-over seat was not joined");
    };
    assert_eq!(counts(store, r).await, (0, 1, 0));
    drop(seat);
    backend.settle().await;
    assert_eq!(counts(store, r).await, (0, 0, 0));
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}
