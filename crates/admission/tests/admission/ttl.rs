//! Expiry with an injected clock: no sleeping.

use std::time::Duration;

use roomgate_admission::RegistryReap;
use roomgate_domain::{AdmissionError, SessionId};

use crate::{manual_registry, request, room, user};

#[test]
fn an_unconfirmed_reservation_is_reclaimed_after_its_ttl() {
    let (clock, registry) = manual_registry();
    let reservation = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    clock.advance(Duration::from_millis(99));
    assert_eq!(registry.reap_expired().reservations, 0);
    assert!(matches!(
        registry.reserve(request("r", "bob", 1, 100)),
        Err(AdmissionError::RoomFull { .. })
    ));
    clock.advance(Duration::from_millis(1));
    assert_eq!(registry.reap_expired().reservations, 1);
    assert_eq!(registry.permits_held(), 0);
    // The reclaimed ticket is told apart from an unknown one.
    assert_eq!(
        registry
            .confirm(&reservation.ticket, SessionId(1))
            .unwrap_err(),
        AdmissionError::TicketExpired
    );
    assert!(registry.reserve(request("r", "bob", 1, 100)).is_ok());
}

#[test]
fn confirming_an_expired_ticket_returns_the_permit_at_once() {
    let (clock, registry) = manual_registry();
    let reservation = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    clock.advance(Duration::from_millis(100));
    assert_eq!(
        registry
            .confirm(&reservation.ticket, SessionId(1))
            .unwrap_err(),
        AdmissionError::TicketExpired
    );
    assert_eq!(registry.permits_held(), 0);
    assert_eq!(
        registry
            .confirm(&reservation.ticket, SessionId(1))
            .unwrap_err(),
        AdmissionError::TicketExpired
    );
    // After the memory of expired tickets fades, the ticket is simply unknown.
    clock.advance(Duration::from_millis(2_000));
    registry.reap_expired();
    assert_eq!(
        registry
            .confirm(&reservation.ticket, SessionId(1))
            .unwrap_err(),
        AdmissionError::InvalidTicket
    );
}

#[test]
fn reserving_again_after_expiry_reissues_the_ticket_on_the_same_permit() {
    let (clock, registry) = manual_registry();
    let first = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    clock.advance(Duration::from_millis(150));
    let second = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    assert!(second.fresh);
    assert_ne!(first.ticket, second.ticket);
    assert_eq!(registry.permits_held(), 1);
    assert_eq!(
        registry.confirm(&first.ticket, SessionId(1)).unwrap_err(),
        AdmissionError::TicketExpired
    );
    assert!(registry.confirm(&second.ticket, SessionId(2)).is_ok());
}

#[test]
fn a_joined_seat_never_expires() {
    let (clock, registry) = manual_registry();
    let reservation = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    let seat = registry.confirm(&reservation.ticket, SessionId(1)).unwrap();
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(registry.reap_expired(), RegistryReap::default());
    assert_eq!(registry.counts(&room("r")).joined, 1);
    assert!(matches!(
        registry.reserve(request("r", "alice", 1, 100)),
        Err(AdmissionError::AlreadyJoined { .. })
    ));
    drop(seat);
    assert_eq!(registry.permits_held(), 0);
}

#[test]
fn idle_pools_are_evicted_but_never_while_a_permit_is_held() {
    let (clock, registry) = manual_registry();
    let reservation = registry.reserve(request("r", "alice", 2, 10_000)).unwrap();
    let seat = registry.confirm(&reservation.ticket, SessionId(1)).unwrap();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(registry.reap_expired().pools_evicted, 0);
    }
    assert_eq!(registry.pool_count(), 1);
    seat.release();
    registry.reap_expired();
    assert_eq!(
        registry.pool_count(),
        1,
        "an idle pool lives for its idle TTL"
    );
    clock.advance(Duration::from_millis(500));
    assert_eq!(registry.reap_expired().pools_evicted, 1);
    assert_eq!(registry.pool_count(), 0);
}

#[test]
fn seats_taken_elsewhere_are_subtracted_when_the_pool_is_created() {
    let (_, registry) = manual_registry();
    let mut req = request("r", "alice", 3, 100);
    req.occupied = 2;
    assert!(registry.reserve(req).is_ok());
    assert!(matches!(
        registry.reserve(request("r", "bob", 3, 100)),
        Err(AdmissionError::RoomFull { capacity: 3, .. })
    ));
}

#[test]
fn cancel_returns_the_permit_and_voids_the_ticket() {
    let (_, registry) = manual_registry();
    let reservation = registry.reserve(request("r", "alice", 1, 100)).unwrap();
    registry.cancel(&room("r"), &user("alice")).unwrap();
    assert_eq!(registry.permits_held(), 0);
    assert_eq!(
        registry
            .confirm(&reservation.ticket, SessionId(1))
            .unwrap_err(),
        AdmissionError::InvalidTicket
    );
    assert!(matches!(
        registry.cancel(&room("r"), &user("alice")),
        Err(AdmissionError::ReservationNotFound { .. })
    ));
    assert!(matches!(
        registry.cancel(&room("other"), &user("alice")),
        Err(AdmissionError::ReservationNotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_reaper_task_reclaims_on_its_interval_and_stops_on_shutdown() {
    use std::sync::Arc;
    use std::sync::Mutex;

    use roomgate_admission::{
        AnyPendingRooms, AnyPermitStore, ReapReport, Reaper, RoomQueueTracker,
    };

    let (clock, registry) = manual_registry();
    let tracker = RoomQueueTracker::new(clock.clone());
    registry.reserve(request("r", "alice", 1, 100)).unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let reaper = Reaper::spawn(
        AnyPermitStore::Memory(registry.clone()),
        AnyPendingRooms::Memory(tracker),
        Duration::from_millis(50),
        move |report| sink.lock().unwrap().push(report),
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        reports.lock().unwrap().is_empty(),
        "nothing has expired yet"
    );
    clock.advance(Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        *reports.lock().unwrap(),
        vec![ReapReport {
            reservations: 1,
            pending_rooms: 0
        }]
    );
    assert_eq!(registry.permits_held(), 0);
    reaper.shutdown().await;
}
