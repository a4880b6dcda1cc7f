//! What only the shared store has to do: several nodes, leases, outages.

use std::time::Duration;

use roomgate_admission::{PermitStore, RedisPermitStore, StoreError};
use roomgate_domain::{AdmissionError, NodeId, SessionId};

use crate::backends::{RedisBackend, redis_settings};
use crate::{request, room};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_issued_on_one_node_confirms_on_another() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let node_a = RedisBackend::with_prefix(&prefix, NodeId(1)).await;
    let node_b = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    let reservation = node_a
        .permits
        .reserve(request("r", "alice", 2, 60_000))
        .await
        .unwrap();
    let seat = node_b
        .permits
        .confirm(&reservation.ticket, SessionId(9))
        .await
        .unwrap();
    assert_eq!(node_a.permits.counts(&room("r")).await.unwrap().joined, 1);
    // Single use across nodes too.
    assert_eq!(
        node_a
            .permits
            .confirm(&reservation.ticket, SessionId(10))
            .await
            .unwrap_err(),
        StoreError::Refused(AdmissionError::InvalidTicket)
    );
    drop(seat);
    node_b.permits.flush_releases().await;
    assert_eq!(node_a.permits.permits_held().await.unwrap(), 0);
    node_a.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seats_of_a_node_that_stops_heartbeating_are_reclaimed_by_a_survivor() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let dead = RedisBackend::with_prefix(&prefix, NodeId(1)).await;
    let survivor = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    assert!(
        dead.permits.heartbeat().await.unwrap(),
        "a new node is unknown to Redis"
    );
    assert!(!dead.permits.heartbeat().await.unwrap());
    survivor.permits.heartbeat().await.unwrap();

    let mut seats = Vec::new();
    for user in ["a", "b", "c"] {
        let r = dead
            .permits
            .reserve(request("r", user, 5, 60_000))
            .await
            .unwrap();
        seats.push(dead.permits.confirm(&r.ticket, SessionId(1)).await.unwrap());
    }
    // The node "dies": its guards are never dropped and it stops renewing its lease.
    std::mem::forget(seats);
    survivor.permits.advance_clock(Duration::from_secs(5));
    survivor.permits.heartbeat().await.unwrap();
    assert_eq!(
        survivor.permits.reap_expired().await.unwrap(),
        0,
        "the lease has not run out yet"
    );
    survivor.permits.advance_clock(Duration::from_secs(6));
    survivor.permits.heartbeat().await.unwrap();
    assert_eq!(survivor.permits.reap_expired().await.unwrap(), 3);
    assert_eq!(
        survivor.permits.counts(&room("r")).await.unwrap(),
        Default::default()
    );
    // Were the node to come back, it would learn that its seats are gone.
    assert!(dead.permits.heartbeat().await.unwrap());
    dead.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_answers_unavailable_quickly_and_changes_nothing() {
    let mut settings = redis_settings("rgtest:down:", NodeId(1));
    // A port nothing listens on.
    settings.url = "redis://127.0.0.1:1/".into();
    settings.connect_timeout = Duration::from_millis(300);
    settings.response_timeout = Duration::from_millis(300);
    let store = RedisPermitStore::connect(&settings).unwrap();
    let started = std::time::Instant::now();
    let outcome = store.reserve(request("r", "alice", 1, 1_000)).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(store.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_released_while_redis_is_away_is_given_back_when_it_returns() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let direct = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    let (relayed, relay) = relayed_store(&prefix).await;

    let reservation = relayed
        .reserve(request("r", "alice", 1, 60_000))
        .await
        .unwrap();
    let seat = relayed
        .confirm(&reservation.ticket, SessionId(1))
        .await
        .unwrap();
    relay.set(roomgate_faults::Fault::Cut);

    // The session ends while Redis cannot be reached: the release waits in the queue.
    drop(seat);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(direct.permits.counts(&room("r")).await.unwrap().joined, 1);

    // Redis is back: the queued release reaches it and the seat is free again.
    relay.set(roomgate_faults::Fault::None);
    tokio::time::timeout(Duration::from_secs(20), relayed.flush_releases())
        .await
        .expect("the queued release reaches redis once it is back");
    assert_eq!(
        direct.permits.counts(&room("r")).await.unwrap(),
        Default::default()
    );
    assert!(
        direct
            .permits
            .reserve(request("r", "bob", 1, 60_000))
            .await
            .is_ok()
    );
    direct.cleanup().await;
}

/// A relayed store (node 1) whose connection to Redis the test can cut, beside a direct one
/// (node 2) on the same prefix.
async fn relayed_store(prefix: &str) -> (RedisPermitStore, roomgate_faults::Relay) {
    let host = crate::backends::redis_url();
    let upstream =
        tokio::net::lookup_host(host.trim_start_matches("redis://").trim_end_matches('/'))
            .await
            .unwrap()
            .next()
            .unwrap();
    let relay = roomgate_faults::Relay::start(upstream).await.unwrap();
    let mut settings = redis_settings(prefix, NodeId(1));
    settings.url = format!("redis://{}", relay.address());
    settings.connect_timeout = Duration::from_millis(300);
    settings.response_timeout = Duration::from_millis(500);
    (RedisPermitStore::connect(&settings).unwrap(), relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_given_up_while_redis_is_away_leaves_the_line_when_it_returns() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let direct = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    let (relayed, relay) = relayed_store(&prefix).await;
    let alice = direct
        .permits
        .reserve(request("r", "alice", 1, 60_000))
        .await
        .unwrap();
    let alice = direct
        .permits
        .confirm(&alice.ticket, SessionId(1))
        .await
        .unwrap();
    let bob = attach_place(&relayed, "bob", 2).await;
    let carol = attach_place(&direct.permits, "carol", 3).await;

    // Bob's waiting socket ends while his node cannot reach Redis: the removal waits in the
    // queue, and his place still counts.
    relay.set(roomgate_faults::Fault::Cut);
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(direct.permits.counts(&room("r")).await.unwrap().waiting, 2);

    // Redis is back: the place is given up and carol moves up, without anything restarting.
    relay.set(roomgate_faults::Fault::None);
    tokio::time::timeout(Duration::from_secs(20), relayed.flush_releases())
        .await
        .expect("the queued removal reaches redis once it is back");
    assert_eq!(direct.permits.counts(&room("r")).await.unwrap().waiting, 1);
    let status = direct.permits.check_place(&carol).await.unwrap();
    assert!(
        matches!(
            status,
            roomgate_admission::PlaceStatus::Waiting { position: 1, .. }
        ),
        "{status:?}"
    );

    // The seat alice frees goes to carol, not to bob's abandoned place.
    drop(alice);
    direct.permits.flush_releases().await;
    let roomgate_admission::PlaceStatus::Seat(seat) =
        direct.permits.check_place(&carol).await.unwrap()
    else {
        panic!("carol is seated");
    };
    carol.seated(&seat);
    drop(seat);
    direct.permits.flush_releases().await;
    assert_eq!(
        direct.permits.counts(&room("r")).await.unwrap(),
        Default::default()
    );
    direct.cleanup().await;
}

async fn attach_place(
    store: &RedisPermitStore,
    user: &str,
    session: u64,
) -> roomgate_admission::WaitGuard {
    let admission = store
        .reserve_or_wait(request("r", user, 1, 600_000), 100)
        .await
        .unwrap();
    let roomgate_admission::Admission::InLine(place) = admission else {
        panic!("{user} got a seat in a full room");
    };
    match store
        .attach(&place.ticket, SessionId(session))
        .await
        .unwrap()
    {
        roomgate_admission::Attached::Waiting(place) => place,
        roomgate_admission::Attached::Seat(_) => panic!("a place's ticket joined a seat"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiters_of_a_node_that_stops_heartbeating_leave_the_line_with_its_lease() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let dead = RedisBackend::with_prefix(&prefix, NodeId(1)).await;
    let survivor = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    dead.permits.heartbeat().await.unwrap();
    survivor.permits.heartbeat().await.unwrap();

    let reservation = survivor
        .permits
        .reserve(request("r", "member", 1, 600_000))
        .await
        .unwrap();
    let member = survivor
        .permits
        .confirm(&reservation.ticket, SessionId(1))
        .await
        .unwrap();
    // Two waiters on the node that will die, then one on the survivor.
    let a = attach_place(&dead.permits, "a", 10).await;
    let b = attach_place(&dead.permits, "b", 11).await;
    let c = attach_place(&survivor.permits, "c", 12).await;
    // The member leaves: the seat is handed to the head, a waiter on the doomed node.
    drop(member);
    survivor.permits.flush_releases().await;
    let counts = survivor.permits.counts(&room("r")).await.unwrap();
    assert_eq!((counts.reserved, counts.joined, counts.waiting), (1, 0, 2));

    // The node "dies" before its waiter looks: guards never dropped, lease not renewed.
    std::mem::forget((a, b));
    survivor.permits.advance_clock(Duration::from_secs(11));
    survivor.permits.heartbeat().await.unwrap();
    // The seat handed to its waiter and its other place go; the seat goes down the line.
    assert_eq!(survivor.permits.reap_expired().await.unwrap(), 2);
    let counts = survivor.permits.counts(&room("r")).await.unwrap();
    assert_eq!((counts.reserved, counts.joined, counts.waiting), (1, 0, 0));
    let roomgate_admission::PlaceStatus::Seat(seat) =
        survivor.permits.check_place(&c).await.unwrap()
    else {
        panic!("the survivor's waiter did not get the seat");
    };
    c.seated(&seat);
    drop(seat);
    survivor.permits.flush_releases().await;
    assert_eq!(
        survivor.permits.counts(&room("r")).await.unwrap(),
        Default::default()
    );
    dead.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_freed_on_one_node_wakes_the_waiter_on_another_at_once() {
    let prefix = format!("rgtest:{:016x}:", rand::random::<u64>());
    let node_a = RedisBackend::with_prefix(&prefix, NodeId(1)).await;
    let node_b = RedisBackend::with_prefix(&prefix, NodeId(2)).await;
    let reservation = node_b
        .permits
        .reserve(request("r", "member", 1, 600_000))
        .await
        .unwrap();
    let member = node_b
        .permits
        .confirm(&reservation.ticket, SessionId(1))
        .await
        .unwrap();
    let place = attach_place(&node_a.permits, "w", 2).await;
    node_a.permits.line_subscribed().await;
    // Let the wake-up for taking the place pass, so that only the hand-over can wake us.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut watch = node_a.permits.watch_line(&room("r"));

    let started = std::time::Instant::now();
    drop(member);
    watch.changed().await;
    let woken_after = started.elapsed();
    assert!(
        woken_after < roomgate_admission::LINE_RECHECK - Duration::from_millis(100),
        "woken after {woken_after:?}: by the recheck timer, not the hand-over"
    );
    let roomgate_admission::PlaceStatus::Seat(seat) =
        node_a.permits.check_place(&place).await.unwrap()
    else {
        panic!("woken, but no seat");
    };
    place.seated(&seat);
    drop(seat);
    node_a.permits.flush_releases().await;
    assert_eq!(
        node_b.permits.counts(&room("r")).await.unwrap(),
        Default::default()
    );
    node_a.cleanup().await;
}
