//! Pending room creations: first registration wins, exactly once, and nothing outlives its TTL.

use std::sync::Arc;
use std::time::Duration;

use roomgate_admission::{ManualClock, PendingRoom, PendingRooms, RoomQueueTracker, StoreError};
use roomgate_domain::{AdmissionError, Capacity, Timestamp, Title};
use tokio::task::JoinSet;

use crate::backends::Backend;
use crate::{room, user};

fn pending(id: &str, creator: &str) -> PendingRoom {
    PendingRoom {
        id: room(id),
        title: Title::parse("Study").unwrap(),
        capacity: Capacity::new(10, 100).unwrap(),
        password: None,
        creator: user(creator),
    }
}

crate::on_both_backends!(
    a_hundred_concurrent_registrations_of_one_id_have_exactly_one_winner,
    a_registration_is_materialized_once_and_expires_with_its_ttl,
);

async fn a_hundred_concurrent_registrations_of_one_id_have_exactly_one_winner(
    backend: &impl Backend,
) {
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let tracker = backend.pending().clone();
        tasks.spawn(async move {
            tracker
                .register(
                    pending("rust-study", &format!("u{i}")),
                    Duration::from_secs(30),
                )
                .await
        });
    }
    let (mut won, mut pending_refusals) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Refused(AdmissionError::RoomPending { .. })) => pending_refusals += 1,
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!((won, pending_refusals), (1, 99));
    assert!(
        backend
            .pending()
            .get(&room("rust-study"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_registration_is_materialized_once_and_expires_with_its_ttl(backend: &impl Backend) {
    let tracker = backend.pending();
    let mut protected = pending("r", "alice");
    protected.password = Some(roomgate_domain::PasswordHash::hash("pw").unwrap());
    tracker
        .register(protected.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    let (found, _) = tracker.get(&room("r")).await.unwrap().unwrap();
    assert_eq!(found, protected);
    assert_eq!(tracker.materialize(&room("r")).await.unwrap(), protected);
    assert!(tracker.materialize(&room("r")).await.is_err());
    assert!(tracker.get(&room("r")).await.unwrap().is_none());
    tracker.remove(&room("r")).await.unwrap();

    tracker
        .register(pending("s", "bob"), Duration::from_secs(30))
        .await
        .unwrap();
    backend.advance(Duration::from_secs(30));
    assert!(tracker.get(&room("s")).await.unwrap().is_none());
    assert_eq!(
        tracker.materialize(&room("s")).await.unwrap_err(),
        StoreError::Refused(AdmissionError::TicketExpired)
    );
    // The expired registration no longer blocks the id.
    tracker
        .register(pending("s", "carol"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        tracker.get(&room("s")).await.unwrap().unwrap().0.creator,
        user("carol")
    );
}

#[test]
fn materialize_hands_the_room_over_exactly_once() {
    let tracker = RoomQueueTracker::new(Arc::new(ManualClock::new(Timestamp(0))));
    tracker
        .register(pending("r", "alice"), Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        tracker.materialize(&room("r")).unwrap().creator,
        user("alice")
    );
    assert!(matches!(
        tracker.materialize(&room("r")),
        Err(AdmissionError::RoomNotFound { .. })
    ));
    // Until the caller removes it after the database write, the id stays blocked.
    assert!(tracker.get(&room("r")).is_none());
    assert!(matches!(
        tracker.register(pending("r", "bob"), Duration::from_secs(30)),
        Err(AdmissionError::RoomPending { .. })
    ));
    assert!(tracker.remove(&room("r")).is_some());
    assert!(tracker.is_empty());
}

#[test]
fn an_expired_registration_cannot_be_materialized_and_is_reaped() {
    let clock = Arc::new(ManualClock::new(Timestamp(0)));
    let tracker = RoomQueueTracker::new(clock.clone());
    tracker
        .register(pending("r", "alice"), Duration::from_millis(100))
        .unwrap();
    assert!(tracker.get(&room("r")).is_some());
    clock.advance(Duration::from_millis(100));
    assert!(tracker.get(&room("r")).is_none());
    assert_eq!(
        tracker.materialize(&room("r")),
        Err(AdmissionError::TicketExpired)
    );
    assert_eq!(tracker.reap_expired(), 1);
    assert!(tracker.is_empty());
}

#[test]
fn an_expired_registration_no_longer_blocks_the_id() {
    let clock = Arc::new(ManualClock::new(Timestamp(0)));
    let tracker = RoomQueueTracker::new(clock.clone());
    tracker
        .register(pending("r", "alice"), Duration::from_millis(100))
        .unwrap();
    clock.advance(Duration::from_millis(150));
    tracker
        .register(pending("r", "bob"), Duration::from_millis(100))
        .unwrap();
    assert_eq!(tracker.get(&room("r")).unwrap().0.creator, user("bob"));
}
