//! Single-task behaviour of rooms, joins, leaves and messages.

use std::time::{Duration, Instant};

use roomgate_domain::{NodeId, PasswordHash};
use roomgate_persistence::testing::TestDatabase;
use roomgate_persistence::{
    Backend, Database, DatabaseSettings, DepartureReason, JoinGuard, PersistenceError,
};

use crate::helpers::{
    NODE, Server, assert_counts_agree, body, connect, new_room, on_both, room_id, user,
};

on_both!(
    open_room_makes_the_creator_its_first_member,
    opening_a_taken_id_is_refused,
    duplicate_join_is_refused_and_leaves_attending_unchanged,
    joining_a_missing_room_is_not_found,
    leaving_twice_is_a_no_op,
    removing_a_seen_seat_never_removes_a_later_membership,
    a_full_room_refuses_the_next_member,
    history_is_the_last_messages_oldest_first,
    list_rooms_pages_by_id,
    members_are_ordered_by_join_time,
);

async fn open_room_makes_the_creator_its_first_member(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    assert_eq!(
        db.backend(),
        match server {
            Server::Mysql => Backend::Mysql,
            Server::Sqlite => Backend::Sqlite,
        }
    );
    db.ping().await.unwrap();

    let mut room = new_room("rust-study", 5, "alice");
    room.password = Some(PasswordHash::from_stored("$argon2id$stored".to_owned()));
    let opened = db.open_room_and_join(&room, NODE).await.unwrap();
    assert_eq!(opened.attending, 1);
    assert_eq!(opened.capacity, 5);

    let stored = db.get_room(&room.id).await.unwrap().unwrap();
    assert_eq!(stored.id, room.id);
    assert_eq!(stored.title, "Room rust-study");
    assert_eq!(stored.attending, 1);
    assert_eq!(stored.created_by, user("alice"));
    assert_eq!(
        stored.created_at, opened.created_at,
        "timestamps survive the round trip"
    );
    assert_eq!(
        stored.password_hash.as_ref().map(PasswordHash::as_str),
        Some("$argon2id$stored")
    );
    assert_eq!(db.members(&room.id).await.unwrap(), vec![user("alice")]);
    assert!(db.get_room(&room_id("nope")).await.unwrap().is_none());
    test_db.cleanup().await;
}

async fn opening_a_taken_id_is_refused(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.open_room_and_join(&new_room("r", 5, "alice"), NODE)
        .await
        .unwrap();
    let err = db
        .open_room_and_join(&new_room("r", 9, "bob"), NODE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::RoomExists { ref room } if room.as_str() == "r"),
        "{err:?}"
    );
    let stored = db.get_room(&room_id("r")).await.unwrap().unwrap();
    assert_eq!((stored.capacity, stored.attending), (5, 1));
    assert_eq!(
        db.members(&room_id("r")).await.unwrap(),
        vec![user("alice")]
    );
    test_db.cleanup().await;
}

async fn duplicate_join_is_refused_and_leaves_attending_unchanged(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server) {
        let db = connect(&test_db, guard).await;
        let id = format!("dup-{guard}");
        db.open_room_and_join(&new_room(&id, 5, "alice"), NODE)
            .await
            .unwrap();
        let joined = db.join(&room_id(&id), &user("bob"), NODE).await.unwrap();
        assert_eq!(joined.attending, 2);
        for who in ["bob", "alice"] {
            let err = db.join(&room_id(&id), &user(who), NODE).await.unwrap_err();
            assert!(
                matches!(err, PersistenceError::AlreadyJoined { ref user, .. } if user.as_str() == who),
                "{guard}: {err:?}"
            );
        }
        assert_eq!(assert_counts_agree(&db, &room_id(&id)).await, 2, "{guard}");
    }
    test_db.cleanup().await;
}

async fn joining_a_missing_room_is_not_found(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server) {
        let db = connect(&test_db, guard).await;
        let err = db
            .join(&room_id("ghost"), &user("bob"), NODE)
            .await
            .unwrap_err();
        assert!(
            matches!(err, PersistenceError::NotFound { .. }),
            "{guard}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    test_db.cleanup().await;
}

async fn removing_a_seen_seat_never_removes_a_later_membership(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    db.open_room_and_join(&new_room("r", 5, "alice"), NODE)
        .await
        .unwrap();
    db.join(&id, &user("bob"), NODE).await.unwrap();
    let seen = db.seats_of_node(NODE).await.unwrap();
    let mut users: Vec<_> = seen.iter().map(|seat| seat.user.clone()).collect();
    users.sort();
    assert_eq!(users, vec![user("alice"), user("bob")]);
    let bobs = seen.iter().find(|seat| seat.user == user("bob")).unwrap();

    // Bob leaves and joins again between the reconciliation's read and its removal.
    assert_eq!(
        db.leave(&id, &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap(),
        Some(1)
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    db.join(&id, &user("bob"), NODE).await.unwrap();
    assert_eq!(
        db.remove_seat(bobs, DepartureReason::Reclaimed)
            .await
            .unwrap(),
        None,
        "a later row stays"
    );
    assert_eq!(assert_counts_agree(&db, &id).await, 2);

    // The row it saw is removed exactly once, with the attendance after it.
    let alices = seen.iter().find(|seat| seat.user == user("alice")).unwrap();
    assert_eq!(
        db.remove_seat(alices, DepartureReason::Reclaimed)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        db.remove_seat(alices, DepartureReason::Reclaimed)
            .await
            .unwrap(),
        None
    );
    assert_eq!(assert_counts_agree(&db, &id).await, 1);
    assert_eq!(db.members(&id).await.unwrap(), vec![user("bob")]);
    test_db.cleanup().await;
}

async fn leaving_twice_is_a_no_op(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    db.open_room_and_join(&new_room("r", 5, "alice"), NODE)
        .await
        .unwrap();
    db.join(&id, &user("bob"), NODE).await.unwrap();
    // Another node never removes the seat bob holds through this one.
    assert!(
        db.leave(&id, &user("bob"), NodeId(NODE.0 + 1), DepartureReason::Left)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(assert_counts_agree(&db, &id).await, 2);
    assert_eq!(
        db.leave(&id, &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap(),
        Some(1),
        "alice is left"
    );
    assert!(
        db.leave(&id, &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.leave(&id, &user("nobody"), NODE, DepartureReason::Left)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.leave(&room_id("ghost"), &user("bob"), NODE, DepartureReason::Left)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.leave(&id, &user("alice"), NODE, DepartureReason::Left)
            .await
            .unwrap(),
        Some(0)
    );
    assert!(
        db.leave(&id, &user("alice"), NODE, DepartureReason::Left)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(assert_counts_agree(&db, &id).await, 0, "never negative");
    // The freed seat can be taken again.
    assert_eq!(db.join(&id, &user("bob"), NODE).await.unwrap().attending, 1);
    test_db.cleanup().await;
}

async fn a_full_room_refuses_the_next_member(server: Server) {
    let test_db = server.fresh().await;
    for guard in guards_for(server) {
        let db = connect(&test_db, guard).await;
        let id = room_id(&format!("full-{guard}"));
        db.open_room_and_join(&new_room(id.as_str(), 2, "alice"), NODE)
            .await
            .unwrap();
        db.join(&id, &user("bob"), NODE).await.unwrap();
        let err = db.join(&id, &user("carol"), NODE).await.unwrap_err();
        assert!(
            matches!(err, PersistenceError::RoomFull { capacity: 2, .. }),
            "{guard}: {err:?}"
        );
        assert_eq!(assert_counts_agree(&db, &id).await, 2);
    }
    test_db.cleanup().await;
}

async fn history_is_the_last_messages_oldest_first(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("chat");
    db.open_room_and_join(&new_room("chat", 5, "alice"), NODE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("other", 5, "alice"), NODE)
        .await
        .unwrap();
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push(
            db.post_message(&id, &user("alice"), &body(&format!("m{i}")))
                .await
                .unwrap(),
        );
        db.post_message(&room_id("other"), &user("alice"), &body("elsewhere"))
            .await
            .unwrap();
    }
    assert!(posted.windows(2).all(|w| w[0].id < w[1].id), "ids increase");

    let last3 = db.history(&id, 3).await.unwrap();
    let bodies: Vec<&str> = last3.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m2", "m3", "m4"]);
    assert_eq!(last3[2].id, posted[4].id);
    assert_eq!(last3[2].sent_at, posted[4].sent_at);
    assert_eq!(db.history(&id, 100).await.unwrap().len(), 5);
    assert!(db.history(&room_id("empty"), 10).await.unwrap().is_empty());

    let err = db
        .post_message(&room_id("ghost"), &user("alice"), &body("hello?"))
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::NotFound { .. }), "{err:?}");
    test_db.cleanup().await;
}

async fn list_rooms_pages_by_id(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    for id in ["c", "a", "e", "b", "d"] {
        db.open_room_and_join(&new_room(id, 3, "alice"), NODE)
            .await
            .unwrap();
    }
    let ids = |rooms: Vec<roomgate_persistence::RoomRecord>| {
        rooms
            .into_iter()
            .map(|r| r.id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let first = db.list_rooms(None, 2).await.unwrap();
    assert_eq!(ids(first.clone()), ["a", "b"]);
    let second = db.list_rooms(Some(&first[1].id), 2).await.unwrap();
    assert_eq!(ids(second.clone()), ["c", "d"]);
    let third = db.list_rooms(Some(&second[1].id), 2).await.unwrap();
    assert_eq!(ids(third), ["e"]);
    assert!(
        db.list_rooms(Some(&room_id("e")), 2)
            .await
            .unwrap()
            .is_empty()
    );
    test_db.cleanup().await;
}

async fn members_are_ordered_by_join_time(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    db.open_room_and_join(&new_room("r", 10, "zed"), NODE)
        .await
        .unwrap();
    for who in ["mallory", "bob", "alice"] {
        tokio::time::sleep(Duration::from_millis(2)).await;
        db.join(&id, &user(who), NODE).await.unwrap();
    }
    let members = db.members(&id).await.unwrap();
    let names: Vec<&str> = members.iter().map(|u| u.as_str()).collect();
    assert_eq!(names, ["zed", "mallory", "bob", "alice"]);
    test_db.cleanup().await;
}

fn guards_for(server: Server) -> Vec<JoinGuard> {
    match server {
        Server::Mysql => JoinGuard::ALL.to_vec(),
        Server::Sqlite => vec![JoinGuard::Conditional, JoinGuard::Optimistic],
    }
}

#[tokio::test]
async fn pessimistic_on_sqlite_is_a_configuration_error() {
    let test_db = TestDatabase::sqlite();
    let err = Database::connect(&test_db.settings(JoinGuard::Pessimistic))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::Config(ref m) if m.contains("pessimistic")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_url_schemes_are_configuration_errors() {
    for url in ["postgres://localhost/x", "sqlite://", "sqlite::memory:", ""] {
        let settings = DatabaseSettings {
            url: url.to_owned(),
            ..DatabaseSettings::default()
        };
        let err = Database::connect(&settings).await.unwrap_err();
        assert!(matches!(err, PersistenceError::Config(_)), "{url}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    // Port 9 (discard) on loopback: nothing listens there, so connecting is refused.
    let timeout = Duration::from_millis(500);
    let settings = DatabaseSettings {
        url: "mysql://roomgate:roomgate@127.0.0.1:9/roomgate".to_owned(),
        max_connections: 4,
        connect_timeout: timeout,
        acquire_timeout: timeout,
        join_guard: JoinGuard::Conditional,
    };
    let started = Instant::now();
    let err = Database::connect(&settings).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PersistenceError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(elapsed < timeout * 10, "answered after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_unavailable_within_the_timeout() {
    // A listener that accepts connections but never speaks: the MySQL handshake never starts,
    // which is what a hung server or a black-holed route looks like to the pool.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(500);
    let settings = DatabaseSettings {
        url: format!("mysql://roomgate:roomgate@127.0.0.1:{port}/roomgate"),
        max_connections: 4,
        connect_timeout: timeout,
        acquire_timeout: timeout,
        join_guard: JoinGuard::Conditional,
    };
    let started = Instant::now();
    let err = Database::connect(&settings).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PersistenceError::Unavailable(_)), "{err:?}");
    assert!(elapsed < timeout * 10, "answered after {elapsed:?}");
}
