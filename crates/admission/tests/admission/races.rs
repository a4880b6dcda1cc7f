//! Many real tasks on a multi-thread runtime against one store: exact counts, never more.

use roomgate_admission::{PermitStore, StoreError};
use roomgate_domain::{AdmissionError, SessionId};
use tokio::task::JoinSet;

use crate::backends::Backend;
use crate::{request, room};

crate::on_both_backends!(
    ten_thousand_reservations_for_one_room_of_a_hundred_admit_exactly_a_hundred,
    ten_thousand_reservations_over_a_thousand_rooms_admit_exactly_capacity_each,
    one_user_reserving_concurrently_holds_one_permit,
    a_ticket_confirms_once_however_many_race_for_it,
    churn_of_join_and_leave_never_exceeds_capacity,
);

async fn ten_thousand_reservations_for_one_room_of_a_hundred_admit_exactly_a_hundred(
    backend: &impl Backend,
) {
    let store = backend.permits().clone();
    let mut tasks = JoinSet::new();
    for i in 0..10_000 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .reserve(request("hot", &format!("u{i}"), 100, 60_000))
                .await
        });
    }
    let (mut admitted, mut full) = (Vec::new(), 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(reservation) => admitted.push(reservation),
            Err(StoreError::Refused(AdmissionError::RoomFull { capacity: 100, .. })) => full += 1,
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(admitted.len(), 100);
    assert_eq!(full, 9_900);
    let counts = store.counts(&room("hot")).await.unwrap();
    assert_eq!((counts.reserved, counts.joined), (100, 0));

    // Every admitted ticket confirms, concurrently, into exactly 100 joined seats.
    let mut confirms = JoinSet::new();
    for (i, reservation) in admitted.into_iter().enumerate() {
        let store = store.clone();
        confirms.spawn(async move {
            store
                .confirm(&reservation.ticket, SessionId(i as u64))
                .await
        });
    }
    let mut guards = Vec::new();
    while let Some(outcome) = confirms.join_next().await {
        guards.push(outcome.unwrap().unwrap());
    }
    let counts = store.counts(&room("hot")).await.unwrap();
    assert_eq!((counts.reserved, counts.joined), (0, 100));
    drop(guards);
    backend.settle().await;
    assert_eq!(store.permits_held().await.unwrap(), 0);
    backend.reap_everything().await;
    backend.assert_nothing_left().await;
}

async fn ten_thousand_reservations_over_a_thousand_rooms_admit_exactly_capacity_each(
    backend: &impl Backend,
) {
    let store = backend.permits().clone();
    let mut tasks = JoinSet::new();
    // Ten users race for each of 1,000 rooms with three seats.
    for i in 0..10_000 {
        let store = store.clone();
        tasks.spawn(async move {
            let room = format!("room-{}", i % 1_000);
            store
                .reserve(request(&room, &format!("u{i}"), 3, 60_000))
                .await
        });
    }
    let (mut admitted, mut full) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => admitted += 1,
            Err(StoreError::Refused(AdmissionError::RoomFull { .. })) => full += 1,
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(admitted, 3_000);
    assert_eq!(full, 7_000);
    for r in 0..1_000 {
        let counts = store.counts(&room(&format!("room-{r}"))).await.unwrap();
        assert_eq!(counts.reserved, 3);
    }
    assert_eq!(store.permits_held().await.unwrap(), 3_000);
}

async fn one_user_reserving_concurrently_holds_one_permit(backend: &impl Backend) {
    let store = backend.permits().clone();
    let mut tasks = JoinSet::new();
    for _ in 0..200 {
        let store = store.clone();
        tasks.spawn(async move { store.reserve(request("solo", "alice", 5, 60_000)).await });
    }
    let mut tickets = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        tickets.push(outcome.unwrap().unwrap());
    }
    assert_eq!(tickets.iter().filter(|r| r.fresh).count(), 1);
    assert!(tickets.iter().all(|r| r.ticket == tickets[0].ticket));
    assert_eq!(store.counts(&room("solo")).await.unwrap().reserved, 1);
}

async fn a_ticket_confirms_once_however_many_race_for_it(backend: &impl Backend) {
    let store = backend.permits().clone();
    let reservation = store
        .reserve(request("r", "alice", 5, 60_000))
        .await
        .unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let store = store.clone();
        let ticket = reservation.ticket.clone();
        tasks.spawn(async move { store.confirm(&ticket, SessionId(i)).await });
    }
    let mut guards = Vec::new();
    let mut invalid = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(guard) => guards.push(guard),
            Err(StoreError::Refused(AdmissionError::InvalidTicket)) => invalid += 1,
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!((guards.len(), invalid), (1, 99));
    assert_eq!(store.counts(&room("r")).await.unwrap().joined, 1);
}

async fn churn_of_join_and_leave_never_exceeds_capacity(backend: &impl Backend) {
    let store = backend.permits().clone();
    let mut tasks = JoinSet::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut joined = 0;
            for round in 0..40u64 {
                if let Ok(r) = store
                    .reserve(request("churn", &format!("u{i}"), 8, 60_000))
                    .await
                {
                    let guard = store.confirm(&r.ticket, SessionId(round)).await.unwrap();
                    let counts = store.counts(&room("churn")).await.unwrap();
                    assert!(counts.reserved + counts.joined <= 8);
                    joined += 1;
                    drop(guard);
                }
                tokio::task::yield_now().await;
            }
            joined
        });
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined.unwrap();
    }
    assert!(total > 0);
    backend.settle().await;
    assert_eq!(store.permits_held().await.unwrap(), 0);
    assert_eq!(
        store.counts(&room("churn")).await.unwrap(),
        Default::default()
    );
}
