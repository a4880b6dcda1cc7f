//! What a visit costs in statements, counted on the connections themselves (see
//! `roomgate_persistence::testing::statements`), and what greets a newcomer: the join's own
//! answer, the same as the one read that gives it on MySQL.

use roomgate_domain::{RoomId, UserId};
use roomgate_persistence::JoinGuard;
use roomgate_persistence::testing::{Statement, statements};

use crate::helpers::{Server, body, connect, new_room, on_both, room_id, user};

on_both!(
    a_visit_is_ten_statements,
    an_arrival_is_the_members_and_the_newest_messages,
    a_join_answers_with_what_an_arrival_read_would_show,
    a_join_shows_the_longest_history_whatever_its_bodies_escape_to,
    a_join_whose_view_cannot_be_read_leaves_nothing_behind,
    join_and_leave_report_the_attendance_they_recorded,
);

/// One visit as the server makes it: the guarded join (answering with what the `joined` frame
/// shows), the leave. On MariaDB (10.5+) and SQLite each event INSERT answers with the
/// attendance it recorded (`RETURNING`), the join's also with the members and history, so
/// nothing is read.
const VISIT: [&str; 10] = [
    "BEGIN", "UPDATE", "INSERT", "INSERT", "COMMIT", // join: seat, member, member_joined
    "BEGIN", "UPDATE", "DELETE", "INSERT", "COMMIT", // leave: seat, member, member_left
];

async fn a_visit_is_ten_statements(server: Server) {
    statements::record();
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let room = room_id("counted");
    db.open_room_and_join(&new_room("counted", 10, "host"), crate::helpers::NODE)
        .await
        .unwrap();
    let before = statements::sent_to(test_db.url()).len();
    const VISITS: usize = 4;
    for i in 0..VISITS {
        let guest = user(&format!("guest{i}"));
        let joined = db.join_arriving(&room, &guest, crate::helpers::NODE, 50);
        let joined = joined.await.unwrap();
        assert_eq!(joined.room.attending, 2);
        assert_eq!(joined.room.title, "Room counted");
        assert_eq!(joined.arrival.members, [user("host"), guest.clone()]);
        assert!(joined.arrival.history.is_empty());
        let left = db.leave(
            &room,
            &guest,
            crate::helpers::NODE,
            roomgate_persistence::DepartureReason::Left,
        );
        assert_eq!(left.await.unwrap(), Some(1));
    }
    let sent: Vec<Statement> = statements::sent_to(test_db.url())
        .into_iter()
        .skip(before)
        // The pool's liveness check of a connection idle for more than 2 s: not part of a
        // visit, and only sent when the machine stalls between two of them.
        .filter(|statement| statement.sql.trim() != "SELECT 1")
        .collect();
    let kinds: Vec<String> = sent.iter().map(Statement::kind).collect();
    let expected: Vec<&str> = VISIT
        .iter()
        .copied()
        .cycle()
        .take(VISIT.len() * VISITS)
        .collect();
    assert_eq!(
        kinds,
        expected,
        "statements of {VISITS} visits on {server:?}:\n{}",
        sent.iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    test_db.cleanup().await;
}

async fn an_arrival_is_the_members_and_the_newest_messages(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("chat");
    db.open_room_and_join(&new_room("chat", 5, "zed"), crate::helpers::NODE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("other", 5, "zed"), crate::helpers::NODE)
        .await
        .unwrap();
    let empty = db.arrival(&id, 10).await.unwrap();
    assert_eq!(empty.members, [user("zed")]);
    assert!(empty.history.is_empty());
    for who in ["mallory", "bob", "alice"] {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        db.join(&id, &user(who), crate::helpers::NODE)
            .await
            .unwrap();
    }
    for i in 0..5 {
        db.post_message(&id, &user("bob"), &body(&format!("m{i}")))
            .await
            .unwrap();
        db.post_message(&room_id("other"), &user("zed"), &body("elsewhere"))
            .await
            .unwrap();
    }
    for limit in [0, 3, 100] {
        let arrival = db.arrival(&id, limit).await.unwrap();
        assert_eq!(arrival.members, db.members(&id).await.unwrap());
        let history = db.history(&id, limit).await.unwrap();
        assert_eq!(shown(&arrival.history), shown(&history), "limit {limit}");
    }
    let names: Vec<String> = db
        .arrival(&id, 0)
        .await
        .unwrap()
        .members
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["zed", "mallory", "bob", "alice"]);
    let nobody = db.arrival(&room_id("ghost"), 10).await.unwrap();
    assert!(nobody.members.is_empty() && nobody.history.is_empty());
    test_db.cleanup().await;
}

/// The members and history a join answers with (from its own statement) are exactly what a
/// read right after it shows, for every guard and history length; message bodies keep every
/// character JSON must escape.
async fn a_join_answers_with_what_an_arrival_read_would_show(server: Server) {
    let test_db = server.fresh().await;
    let guards = match server {
        Server::Mysql => JoinGuard::ALL.to_vec(),
        Server::Sqlite => vec![JoinGuard::Conditional, JoinGuard::Optimistic],
    };
    let creator = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("shown");
    creator
        .open_room_and_join(&new_room("shown", 50, "host"), crate::helpers::NODE)
        .await
        .unwrap();
    let bodies = [
        "plain",
        "quote \" back\\slash",
        "new\nline\ttab",
        "ünïcödé 🎉",
        "\u{1}bell\u{7}",
        "{\"json\": [1, 2]}",
    ];
    let mut joiner = 0;
    // First a room without a message (MariaDB aggregates nothing into NULL), then with them.
    for stage in 0..2 {
        if stage == 1 {
            for text in bodies {
                creator
                    .post_message(&id, &user("host"), &body(text))
                    .await
                    .unwrap();
            }
        }
        for guard in &guards {
            let db = connect(&test_db, *guard).await;
            for limit in [0, 3, 100] {
                joiner += 1;
                let who = user(&format!("j{joiner}"));
                let joined = db.join_arriving(&id, &who, crate::helpers::NODE, limit);
                let joined = joined.await.unwrap();
                let read = db.arrival(&id, limit).await.unwrap();
                assert_eq!(joined.arrival.members, read.members, "{guard:?} {limit}");
                assert_eq!(joined.arrival.members.last(), Some(&who));
                assert_eq!(
                    shown(&joined.arrival.history),
                    shown(&read.history),
                    "{guard:?}, limit {limit}"
                );
                let expected = if stage == 0 {
                    0
                } else {
                    bodies.len().min(limit as usize)
                };
                assert_eq!(joined.arrival.history.len(), expected);
                assert_eq!(joined.room.attending as usize, read.members.len());
            }
        }
    }
    // The bodies went through JSON and back unchanged, oldest first.
    let last = user("last");
    let joined = creator.join_arriving(&id, &last, crate::helpers::NODE, 100);
    let stored: Vec<String> = joined
        .await
        .unwrap()
        .arrival
        .history
        .iter()
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(stored, bodies);
    test_db.cleanup().await;
}

/// The attendance a join or a leave reports is the one its event recorded, with or without a
/// read, for a room this process has seen and one it has not.
async fn join_and_leave_report_the_attendance_they_recorded(server: Server) {
    let test_db = server.fresh().await;
    let guards = match server {
        Server::Mysql => JoinGuard::ALL.to_vec(),
        Server::Sqlite => vec![JoinGuard::Conditional, JoinGuard::Optimistic],
    };
    let creator = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("r");
    creator
        .open_room_and_join(&new_room("r", 10, "host"), crate::helpers::NODE)
        .await
        .unwrap();
    let mut expected = 1;
    for guard in guards {
        // A second process has never seen the room: its first join reads it back.
        let db = connect(&test_db, guard).await;
        for i in 0..2 {
            let who = user(&format!("{guard:?}{i}").to_lowercase());
            let joined = db.join(&id, &who, crate::helpers::NODE).await.unwrap();
            expected += 1;
            assert_eq!(joined.attending, expected, "{guard:?}");
            assert_eq!(joined.capacity, 10);
            assert_eq!(joined.created_by, user("host"));
        }
        let who = user(&format!("{guard:?}0").to_lowercase());
        let left = db
            .leave(
                &id,
                &who,
                crate::helpers::NODE,
                roomgate_persistence::DepartureReason::Left,
            )
            .await
            .unwrap();
        expected -= 1;
        assert_eq!(left, Some(expected), "{guard:?}");
    }
    let events = creator.events(&id, 0, 100).await.unwrap();
    let attendances: Vec<u32> = events.iter().map(|e| e.attending).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    assert_eq!(attendances.last(), Some(&expected));
    crate::helpers::assert_counts_agree(&creator, &id).await;
    test_db.cleanup().await;
}

/// Every field of each message, for comparing two lists of them.
fn shown(
    messages: &[roomgate_persistence::MessageRecord],
) -> Vec<(u64, RoomId, UserId, String, chrono::DateTime<chrono::Utc>)> {
    messages
        .iter()
        .map(|m| {
            (
                m.id,
                m.room_id.clone(),
                m.user_id.clone(),
                m.body.clone(),
                m.sent_at,
            )
        })
        .collect()
}

/// Fifty messages of 4,000 characters that JSON escapes to six bytes each: their history is
/// over 1 MiB as JSON, past MariaDB's default cap on an aggregate (`group_concat_max_len`),
/// which the server's connections raise. The join still answers with all of them, intact.
async fn a_join_shows_the_longest_history_whatever_its_bodies_escape_to(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("long");
    db.open_room_and_join(&new_room("long", 10, "host"), crate::helpers::NODE)
        .await
        .unwrap();
    let text: String = "\u{1}".repeat(3999) + "x";
    for _ in 0..50 {
        db.post_message(&id, &user("host"), &body(&text))
            .await
            .unwrap();
    }
    let guest = user("guest");
    let joined = db.join_arriving(&id, &guest, crate::helpers::NODE, 50);
    let joined = joined.await.unwrap();
    assert_eq!(joined.arrival.history.len(), 50);
    assert!(joined.arrival.history.iter().all(|m| m.body == text));
    assert_eq!(
        shown(&joined.arrival.history),
        shown(&db.history(&id, 50).await.unwrap())
    );
    test_db.cleanup().await;
}

/// The newcomer's view is taken inside the join's transaction: a view that cannot be read (here
/// a stored message whose author is not a valid user id) refuses the join and rolls it back, so
/// no seat, member row or event is left for a session that will never run.
async fn a_join_whose_view_cannot_be_read_leaves_nothing_behind(server: Server) {
    let test_db = server.fresh().await;
    let guards = match server {
        Server::Mysql => JoinGuard::ALL.to_vec(),
        Server::Sqlite => vec![JoinGuard::Conditional, JoinGuard::Optimistic],
    };
    let creator = connect(&test_db, JoinGuard::Conditional).await;
    let id = room_id("spoiled");
    creator
        .open_room_and_join(&new_room("spoiled", 10, "host"), crate::helpers::NODE)
        .await
        .unwrap();
    crate::helpers::execute_raw(
        &test_db,
        "INSERT INTO messages (room_id, user_id, body, sent_at) \
         VALUES ('spoiled', 'Not A User!', 'planted', '2026-01-01 00:00:00.000000')",
    )
    .await;
    let events_before = creator.events(&id, 0, 100).await.unwrap().len();
    let guest = user("guest");
    for guard in guards {
        let db = connect(&test_db, guard).await;
        let refused = db
            .join_arriving(&id, &guest, crate::helpers::NODE, 10)
            .await;
        assert!(refused.is_err(), "{guard:?}: {refused:?}");
        assert_eq!(crate::helpers::assert_counts_agree(&creator, &id).await, 1);
        assert_eq!(creator.members(&id).await.unwrap(), [user("host")]);
        assert_eq!(
            creator.events(&id, 0, 100).await.unwrap().len(),
            events_before
        );
    }
    // Nothing of the refused joins is left: the same user joins (without the history).
    let joined = creator.join_arriving(&id, &guest, crate::helpers::NODE, 0);
    assert_eq!(joined.await.unwrap().arrival.members, [user("host"), guest]);
    test_db.cleanup().await;
}
