//! Room events (the outbox): one event per committed change, in the change's transaction,
//! numbered 1, 2, 3, … per room without gaps; none for a change that did not happen.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use roomgate_domain::{NodeId, RoomId};
use roomgate_persistence::EventKind::{MemberJoined, MemberLeft, RoomOpened};
use roomgate_persistence::{
    Database, DepartureReason, EventKind, EventRecord, JoinGuard, PersistenceError,
};

use crate::helpers::{
    NODE, Server, assert_counts_agree, connect, new_room, on_both, room_id, user,
};

on_both!(
    opening_a_room_records_its_opening_and_its_creator,
    every_guard_records_a_join,
    every_departure_records_its_reason,
    reclaims_record_reclaimed_and_a_shutdown_records_shutdown,
    refused_and_duplicate_joins_leave_no_event,
    seq_is_gapless_under_concurrent_joins_and_leaves,
    events_page_by_seq,
    relaying_marks_and_pruning_deletes,
    a_second_mark_keeps_the_first,
    pruning_works_through_more_than_one_batch,
);

/// (seq, kind, user, attending, reason) of each event, for compact assertions.
type Summary = (u64, EventKind, String, u32, Option<DepartureReason>);

fn summary(events: &[EventRecord]) -> Vec<Summary> {
    events
        .iter()
        .map(|e| {
            (
                e.seq,
                e.kind,
                e.user.as_str().to_owned(),
                e.attending,
                e.reason,
            )
        })
        .collect()
}

fn ev(
    seq: u64,
    kind: EventKind,
    who: &str,
    attending: u32,
    reason: Option<DepartureReason>,
) -> Summary {
    (seq, kind, who.to_owned(), attending, reason)
}

async fn all_events(db: &Database, room: &RoomId) -> Vec<EventRecord> {
    db.events(room, 0, 1000).await.unwrap()
}

fn guards_for(server: Server) -> Vec<JoinGuard> {
    let mut guards = match server {
        Server::Mysql => JoinGuard::ALL.to_vec(),
        Server::Sqlite => vec![JoinGuard::Conditional, JoinGuard::Optimistic],
    };
    if cfg!(feature = "demo-unsafe") {
        if let Ok(naive) = "naive".parse() {
            guards.push(naive);
        }
    }
    guards
}

async fn opening_a_room_records_its_opening_and_its_creator(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let before = Utc::now();
    let opened = db
        .open_room_and_join(&new_room("r", 5, "alice"), NODE)
        .await
        .unwrap();
    let after = Utc::now();
    let events = all_events(&db, &room_id("r")).await;
    assert_eq!(
        summary(&events),
        [
            ev(1, RoomOpened, "alice", 0, None),
            ev(2, MemberJoined, "alice", 1, None),
        ]
    );
    for event in &events {
        assert_eq!(event.room, room_id("r"));
        assert_eq!(event.at, opened.created_at, "written with the room");
        assert!(before - chrono::Duration::milliseconds(1) <= event.at && event.at <= after);
    }
    // A refused second creation writes nothing.
    db.open_room_and_join(&new_room("r", 5, "bob"), NODE)
        .await
        .unwrap_err();
    assert_eq!(all_events(&db, &room_id("r")).await.len(), 2);
    test_db.cleanup().await;
}

async fn every_guard_records_a_join(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server) {
        let db = connect(&test_db, guard).await;
        let id = room_id(&format!("join-{guard}"));
        db.open_room_and_join(&new_room(id.as_str(), 5, "alice"), NODE)
            .await
            .unwrap();
        let before = Utc::now();
        db.join(&id, &user("bob"), NODE).await.unwrap();
        db.join(&id, &user("carol"), NodeId(2)).await.unwrap();
        let events = all_events(&db, &id).await;
        assert_eq!(
            summary(&events[2..]),
            [
                ev(3, MemberJoined, "bob", 2, None),
                ev(4, MemberJoined, "carol", 3, None),
            ],
            "{guard}"
        );
        assert!(events[2].at >= before - chrono::Duration::milliseconds(1));
        assert!(events[2].at <= events[3].at && events[3].at <= Utc::now());
    }
    test_db.cleanup().await;
}

async fn every_departure_records_its_reason(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    db.open_room_and_join(&new_room("r", 10, "alice"), NODE)
        .await
        .unwrap();
    for who in ["bob", "carol", "dan"] {
        db.join(&id, &user(who), NODE).await.unwrap();
    }
    assert_eq!(
        db.leave(&id, &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        db.leave(&id, &user("carol"), NODE, DepartureReason::Disconnected)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        db.leave(&id, &user("dan"), NODE, DepartureReason::TimedOut)
            .await
            .unwrap(),
        Some(1)
    );
    let seats = db.seats_of_node(NODE).await.unwrap();
    assert_eq!(seats.len(), 1);
    assert_eq!(
        db.remove_seat(&seats[0], DepartureReason::Reclaimed)
            .await
            .unwrap(),
        Some(0)
    );
    // Nothing left to remove: no event either.
    assert_eq!(
        db.remove_seat(&seats[0], DepartureReason::Reclaimed)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.leave(&id, &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap(),
        None
    );
    db.join(&id, &user("erin"), NODE).await.unwrap();
    assert_eq!(
        db.leave(&id, &user("erin"), NODE, DepartureReason::Shutdown)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        summary(&all_events(&db, &id).await[5..]),
        [
            ev(6, MemberLeft, "bob", 3, Some(DepartureReason::Left)),
            ev(
                7,
                MemberLeft,
                "carol",
                2,
                Some(DepartureReason::Disconnected)
            ),
            ev(8, MemberLeft, "dan", 1, Some(DepartureReason::TimedOut)),
            ev(9, MemberLeft, "alice", 0, Some(DepartureReason::Reclaimed)),
            ev(10, MemberJoined, "erin", 1, None),
            ev(11, MemberLeft, "erin", 0, Some(DepartureReason::Shutdown)),
        ]
    );
    test_db.cleanup().await;
}

async fn reclaims_record_reclaimed_and_a_shutdown_records_shutdown(server: Server) {
    const LIVE: NodeId = NodeId(1);
    const DEAD: NodeId = NodeId(2);
    const OTHER: NodeId = NodeId(3);
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let (a, b) = (room_id("a"), room_id("b"));
    db.open_room_and_join(&new_room("a", 10, "alice"), LIVE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("b", 10, "bob"), DEAD)
        .await
        .unwrap();
    // Room a: three members of the dead node among live ones; room b: its creator.
    for (who, node) in [
        ("dora", DEAD),
        ("lena", LIVE),
        ("dave", DEAD),
        ("dirk", DEAD),
    ] {
        db.join(&a, &user(who), node).await.unwrap();
    }
    db.join(&b, &user("olga"), OTHER).await.unwrap();
    db.join(&b, &user("liam"), LIVE).await.unwrap();
    db.register_node(LIVE).await.unwrap();
    db.register_node(OTHER).await.unwrap();

    // DEAD never registered: reaping takes its seats, in one transaction.
    let reclaimed = db.reap_dead_nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(reclaimed.len(), 4);
    let reclaimed_reason = Some(DepartureReason::Reclaimed);
    // a had 5 members (seq 2..=6 joins); the three leave in user order, attending 4, 3, 2.
    assert_eq!(
        summary(&all_events(&db, &a).await[6..]),
        [
            ev(7, MemberLeft, "dave", 4, reclaimed_reason),
            ev(8, MemberLeft, "dirk", 3, reclaimed_reason),
            ev(9, MemberLeft, "dora", 2, reclaimed_reason),
        ]
    );
    assert_eq!(assert_counts_agree(&db, &a).await, 2);
    assert_eq!(
        summary(&all_events(&db, &b).await[4..]),
        [ev(5, MemberLeft, "bob", 2, reclaimed_reason)]
    );

    // A single node booting reclaims OTHER's seat.
    db.reap_all_nodes_except(LIVE).await.unwrap();
    assert_eq!(
        summary(&all_events(&db, &b).await[5..]),
        [ev(6, MemberLeft, "olga", 1, reclaimed_reason)]
    );

    // LIVE shuts down: its own members leave with `shutdown`.
    let removed = db.remove_node(LIVE).await.unwrap();
    assert_eq!(removed.len(), 3);
    let shutdown = Some(DepartureReason::Shutdown);
    assert_eq!(
        summary(&all_events(&db, &a).await[9..]),
        [
            ev(10, MemberLeft, "alice", 1, shutdown),
            ev(11, MemberLeft, "lena", 0, shutdown),
        ]
    );
    assert_eq!(
        summary(&all_events(&db, &b).await[6..]),
        [ev(7, MemberLeft, "liam", 0, shutdown)]
    );
    // Nothing more to reclaim: nothing more recorded.
    assert!(db.remove_node(LIVE).await.unwrap().is_empty());
    assert!(db.reap_all_nodes_except(LIVE).await.unwrap().is_empty());
    assert_eq!(all_events(&db, &a).await.len(), 11);
    assert_eq!(all_events(&db, &b).await.len(), 7);
    test_db.cleanup().await;
}

async fn refused_and_duplicate_joins_leave_no_event(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server) {
        let db = connect(&test_db, guard).await;
        let id = room_id(&format!("full-{guard}"));
        db.open_room_and_join(&new_room(id.as_str(), 2, "alice"), NODE)
            .await
            .unwrap();
        let err = db.join(&id, &user("alice"), NODE).await.unwrap_err();
        assert!(
            matches!(err, PersistenceError::AlreadyJoined { .. }),
            "{guard}: {err:?}"
        );
        db.join(&id, &user("bob"), NODE).await.unwrap();
        // The room is full: carol is refused at the guard, bob (a member) as a duplicate.
        for (who, full) in [("carol", true), ("bob", false)] {
            let err = db.join(&id, &user(who), NODE).await.unwrap_err();
            let expected = if full {
                matches!(err, PersistenceError::RoomFull { .. })
            } else {
                matches!(err, PersistenceError::AlreadyJoined { .. })
            };
            assert!(expected, "{guard}: {who}: {err:?}");
        }
        // A missing room, a leave of a non-member: nothing anywhere.
        db.join(&room_id("ghost"), &user("bob"), NODE)
            .await
            .unwrap_err();
        assert_eq!(
            db.leave(&id, &user("carol"), NODE, DepartureReason::Left)
                .await
                .unwrap(),
            None
        );
        assert!(all_events(&db, &room_id("ghost")).await.is_empty());
        assert_eq!(
            summary(&all_events(&db, &id).await),
            [
                ev(1, RoomOpened, "alice", 0, None),
                ev(2, MemberJoined, "alice", 1, None),
                ev(3, MemberJoined, "bob", 2, None),
            ],
            "{guard}"
        );
        // The numbers the refused joins took were rolled back with them: the next is 4.
        db.leave(&id, &user("alice"), NODE, DepartureReason::Left)
            .await
            .unwrap();
        db.join(&id, &user("carol"), NODE).await.unwrap();
        let seqs: Vec<u64> = all_events(&db, &id).await.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{guard}");
    }
    test_db.cleanup().await;
}

const RACERS: usize = 64;

/// 64 tasks at once on one room of 20 seats (so joins race each other, leaves and a full room),
/// each joining and then leaving twice over 40 users: the events are numbered exactly 1..=N, one
/// per change that happened, and replaying them gives every `attending` they carry.
async fn seq_is_gapless_under_concurrent_joins_and_leaves(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server)
        .into_iter()
        .filter(|g| g.as_str() != "naive")
    {
        let db = Arc::new(connect(&test_db, guard).await);
        let id = room_id(&format!("race-{guard}"));
        db.open_room_and_join(&new_room(id.as_str(), 20, "u0"), NODE)
            .await
            .unwrap();
        let joins = Arc::new(AtomicUsize::new(0));
        let leaves = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (db, id) = (Arc::clone(&db), id.clone());
                let (joins, leaves) = (Arc::clone(&joins), Arc::clone(&leaves));
                tokio::spawn(async move {
                    for round in 0..2 {
                        let joiner = user(&format!("u{}", (i + round * 13) % 40));
                        match db.join(&id, &joiner, NodeId(1 + (i % 3) as u64)).await {
                            Ok(_) => {
                                joins.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(
                                PersistenceError::RoomFull { .. }
                                | PersistenceError::AlreadyJoined { .. }
                                | PersistenceError::Contended,
                            ) => {}
                            Err(other) => panic!("join: unexpected {other:?}"),
                        }
                        let leaver = user(&format!("u{}", (i * 7 + round) % 40));
                        let reason = DepartureReason::ALL[i % DepartureReason::ALL.len()];
                        if db
                            .leave(&id, &leaver, NODE, reason)
                            .await
                            .unwrap()
                            .is_some()
                        {
                            leaves.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let attending = assert_counts_agree(&db, &id).await;
        let events = all_events(&db, &id).await;
        let changes = 2 + joins.load(Ordering::Relaxed) + leaves.load(Ordering::Relaxed);
        assert_eq!(events.len(), changes, "{guard}: one event per change");
        let seqs: BTreeSet<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=changes as u64).collect::<BTreeSet<_>>(),
            "{guard}: gapless"
        );
        assert!(
            events.windows(2).all(|w| w[0].seq < w[1].seq),
            "{guard}: oldest first"
        );
        assert_eq!(events.last().unwrap().attending, attending, "{guard}");
        // Replaying the events reproduces each recorded attendance and the membership.
        let mut members = BTreeSet::new();
        for event in &events {
            match event.kind {
                RoomOpened => assert!(members.is_empty()),
                MemberJoined => assert!(members.insert(event.user.clone()), "{guard}"),
                MemberLeft => {
                    assert!(members.remove(&event.user), "{guard}");
                    assert!(event.reason.is_some());
                }
            }
            assert_eq!(
                event.attending as usize,
                members.len(),
                "{guard}: {event:?}"
            );
        }
        let stored: BTreeSet<_> = db.members(&id).await.unwrap().into_iter().collect();
        assert_eq!(members, stored, "{guard}");
    }
    test_db.cleanup().await;
}

async fn events_page_by_seq(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let (id, other) = (room_id("r"), room_id("other"));
    db.open_room_and_join(&new_room("r", 20, "u0"), NODE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("other", 20, "x"), NODE)
        .await
        .unwrap();
    for i in 1..10 {
        db.join(&id, &user(&format!("u{i}")), NODE).await.unwrap();
        db.join(&other, &user(&format!("x{i}")), NODE)
            .await
            .unwrap();
    }
    let seqs = |events: Vec<EventRecord>| {
        assert!(events.iter().all(|e| e.room == room_id("r")));
        events.into_iter().map(|e| e.seq).collect::<Vec<_>>()
    };
    assert_eq!(seqs(db.events(&id, 0, 4).await.unwrap()), [1, 2, 3, 4]);
    assert_eq!(seqs(db.events(&id, 4, 4).await.unwrap()), [5, 6, 7, 8]);
    assert_eq!(seqs(db.events(&id, 8, 4).await.unwrap()), [9, 10, 11]);
    assert!(db.events(&id, 11, 4).await.unwrap().is_empty());
    assert_eq!(seqs(db.events(&id, 10, 1000).await.unwrap()), [11]);
    assert_eq!(seqs(db.events(&id, 3, 1).await.unwrap()), [4]);
    assert!(db.events(&id, 0, 0).await.unwrap().is_empty());
    assert!(db.events(&id, u64::MAX, 10).await.unwrap().is_empty());
    assert!(
        db.events(&room_id("ghost"), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    test_db.cleanup().await;
}

async fn relaying_marks_and_pruning_deletes(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let (a, b) = (room_id("a"), room_id("b"));
    // Created b first: the relay's order is by room, not by time.
    db.open_room_and_join(&new_room("b", 10, "bob"), NODE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("a", 10, "alice"), NODE)
        .await
        .unwrap();
    db.join(&a, &user("carol"), NODE).await.unwrap();
    db.join(&b, &user("dan"), NODE).await.unwrap();
    let keys = |events: &[EventRecord]| {
        events
            .iter()
            .map(|e| (e.room.as_str().to_owned(), e.seq))
            .collect::<Vec<_>>()
    };
    let key = |room: &str, seq: u64| (room.to_owned(), seq);

    let pending = db.unrelayed_events(100).await.unwrap();
    assert_eq!(
        keys(&pending),
        [
            key("a", 1),
            key("a", 2),
            key("a", 3),
            key("b", 1),
            key("b", 2),
            key("b", 3)
        ]
    );
    assert_eq!(pending, {
        let mut both = all_events(&db, &a).await;
        both.extend(all_events(&db, &b).await);
        both
    });
    assert_eq!(
        keys(&db.unrelayed_events(4).await.unwrap()),
        [key("a", 1), key("a", 2), key("a", 3), key("b", 1)]
    );

    // A relay hands on a's events and b's first; marking again, or marking what does not
    // exist, changes nothing.
    let handed: Vec<(RoomId, u64)> = vec![
        (a.clone(), 2),
        (a.clone(), 1),
        (a.clone(), 3),
        (b.clone(), 1),
    ];
    assert_eq!(db.mark_relayed(&handed).await.unwrap(), 4);
    assert_eq!(db.mark_relayed(&handed).await.unwrap(), 4, "idempotent");
    assert_eq!(
        db.mark_relayed(&[
            (room_id("ghost"), 1),
            (b.clone(), 99),
            (b.clone(), u64::MAX)
        ])
        .await
        .unwrap(),
        0
    );
    assert_eq!(db.mark_relayed(&[]).await.unwrap(), 0);
    assert_eq!(
        keys(&db.unrelayed_events(100).await.unwrap()),
        [key("b", 2), key("b", 3)]
    );
    // Marked events are still readable until pruned.
    assert_eq!(all_events(&db, &a).await.len(), 3);

    // Nothing was relayed an hour ago.
    assert_eq!(
        db.prune_relayed(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(db.prune_relayed(Duration::ZERO).await.unwrap(), 4);
    assert!(all_events(&db, &a).await.is_empty());
    assert_eq!(
        keys(&all_events(&db, &b).await),
        [key("b", 2), key("b", 3)],
        "unrelayed events are never pruned"
    );
    assert_eq!(db.prune_relayed(Duration::ZERO).await.unwrap(), 0);

    // Pruning does not reuse numbers: the room's next event follows its last one.
    db.join(&a, &user("erin"), NODE).await.unwrap();
    assert_eq!(keys(&all_events(&db, &a).await), [key("a", 4)]);
    test_db.cleanup().await;
}

/// Two relays that handed on the same event: the event counts as relayed since the first, so
/// retention is measured from it.
async fn a_second_mark_keeps_the_first(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    db.open_room_and_join(&new_room("r", 5, "alice"), NODE)
        .await
        .unwrap();
    let first = [(id.clone(), 1)];
    assert_eq!(db.mark_relayed(&first).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        db.mark_relayed(&[(id.clone(), 1), (id.clone(), 2)])
            .await
            .unwrap(),
        2
    );
    // Relayed 1 s ago by the first mark, a moment ago for seq 2.
    assert_eq!(
        db.prune_relayed(Duration::from_millis(500)).await.unwrap(),
        1
    );
    let left: Vec<u64> = all_events(&db, &id).await.iter().map(|e| e.seq).collect();
    assert_eq!(left, [2]);
    test_db.cleanup().await;
}

/// More relayed events than one prune batch (500) are all pruned.
async fn pruning_works_through_more_than_one_batch(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("big");
    db.open_room_and_join(&new_room("big", 1000, "u0"), NODE)
        .await
        .unwrap();
    for i in 1..600 {
        db.join(&id, &user(&format!("u{i}")), NODE).await.unwrap();
    }
    let events = all_events(&db, &id).await;
    assert_eq!(events.len(), 601);
    let handed: Vec<(RoomId, u64)> = events.iter().map(|e| (e.room.clone(), e.seq)).collect();
    assert_eq!(db.mark_relayed(&handed).await.unwrap(), 601);
    assert!(db.unrelayed_events(10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(db.prune_relayed(Duration::ZERO).await.unwrap(), 601);
    assert!(all_events(&db, &id).await.is_empty());
    test_db.cleanup().await;
}
