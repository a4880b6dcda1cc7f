//! `Database::post_messages`, the message writer's group commit: many messages in one
//! transaction, their ids in the order given, all stored or none.

use roomgate_persistence::testing::{Statement, statements};
use roomgate_persistence::{JoinGuard, MessageRecord, NewMessage, PersistenceError};

use crate::helpers::{NODE, Server, body, connect, new_room, on_both, room_id, user};

on_both!(
    a_batch_is_stored_in_the_order_given,
    a_batch_is_one_transaction_of_few_statements,
    a_batch_with_a_missing_room_stores_nothing,
    concurrent_batches_each_keep_their_order,
);

fn message(room: &str, who: &str, text: &str) -> NewMessage {
    NewMessage {
        room: room_id(room),
        user: user(who),
        body: body(text),
    }
}

/// Bodies of a room's history, oldest first.
async fn bodies(db: &roomgate_persistence::Database, room: &str) -> Vec<String> {
    db.history(&room_id(room), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect()
}

async fn a_batch_is_stored_in_the_order_given(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    for room in ["left", "right"] {
        db.open_room_and_join(&new_room(room, 5, "alice"), NODE)
            .await
            .unwrap();
    }
    assert!(db.post_messages(&[]).await.unwrap().is_empty());
    // 300 rows: more than one INSERT (256 + 32 + 8 + 4), still one transaction.
    let batch: Vec<NewMessage> = (0..300)
        .map(|i| {
            let room = if i % 3 == 0 { "left" } else { "right" };
            let who = if i % 2 == 0 { "alice" } else { "bob" };
            message(room, who, &format!("m{i}"))
        })
        .collect();
    let stored = db.post_messages(&batch).await.unwrap();
    assert_eq!(stored.len(), batch.len());
    for (record, sent) in stored.iter().zip(&batch) {
        assert_eq!(
            (&record.room_id, &record.user_id, record.body.as_str()),
            (&sent.room, &sent.user, sent.body.as_str())
        );
    }
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in the order given"
    );
    // What was read back is what was returned: same ids for the same bodies.
    for room in ["left", "right"] {
        let history = db.history(&room_id(room), 1_000).await.unwrap();
        let returned: Vec<(u64, &str)> = stored
            .iter()
            .filter(|m| m.room_id.as_str() == room)
            .map(|m| (m.id, m.body.as_str()))
            .collect();
        let read: Vec<(u64, &str)> = history.iter().map(|m| (m.id, m.body.as_str())).collect();
        assert_eq!(read, returned, "room {room}");
    }
    // The next batch's ids come after this one's.
    let next = db
        .post_messages(&[message("left", "carol", "later")])
        .await
        .unwrap();
    assert!(next[0].id > stored.last().unwrap().id);
    test_db.cleanup().await;
}

/// One commit for the lot: on MariaDB (with `RETURNING`) and SQLite a batch of 7 is BEGIN,
/// INSERTs of 4, 2 and 1 rows, COMMIT, and nothing reads the ids back.
async fn a_batch_is_one_transaction_of_few_statements(server: Server) {
    statements::record();
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.open_room_and_join(&new_room("counted", 5, "alice"), NODE)
        .await
        .unwrap();
    let before = statements::sent_to(test_db.url()).len();
    let batch: Vec<NewMessage> = (0..7)
        .map(|i| message("counted", "alice", &format!("m{i}")))
        .collect();
    db.post_messages(&batch).await.unwrap();
    let sent: Vec<Statement> = statements::sent_to(test_db.url())
        .into_iter()
        .skip(before)
        .filter(|statement| statement.sql.trim() != "SELECT 1")
        .collect();
    let kinds: Vec<String> = sent.iter().map(Statement::kind).collect();
    assert_eq!(
        kinds,
        ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"],
        "{server:?}:\n{}",
        sent.iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    test_db.cleanup().await;
}

async fn a_batch_with_a_missing_room_stores_nothing(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.open_room_and_join(&new_room("chat", 5, "alice"), NODE)
        .await
        .unwrap();
    let mixed = [
        message("chat", "alice", "first"),
        message("ghost", "alice", "nowhere"),
        message("chat", "alice", "last"),
    ];
    let error = db.post_messages(&mixed).await.unwrap_err();
    assert!(
        matches!(error, PersistenceError::Internal(_)),
        "a refused row of several rooms: {error:?}"
    );
    assert!(bodies(&db, "chat").await.is_empty(), "nothing was stored");
    let error = db
        .post_messages(&[message("ghost", "alice", "a"), message("ghost", "bob", "b")])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PersistenceError::NotFound { room } if room.as_str() == "ghost"),
        "{error:?}"
    );
    // The connection is fine afterwards.
    db.post_messages(&[message("chat", "alice", "after")])
        .await
        .unwrap();
    assert_eq!(bodies(&db, "chat").await, ["after"]);
    test_db.cleanup().await;
}

async fn concurrent_batches_each_keep_their_order(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.open_room_and_join(&new_room("busy", 50, "alice"), NODE)
        .await
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut stored: Vec<MessageRecord> = Vec::new();
                for round in 0..10 {
                    let batch: Vec<NewMessage> = (0..1 + round % 5)
                        .map(|i| message("busy", &format!("w{w}"), &format!("w{w} r{round} i{i}")))
                        .collect();
                    stored.extend(db.post_messages(&batch).await.unwrap());
                }
                stored
            })
        })
        .collect();
    let mut all = Vec::new();
    for writer in writers {
        let stored = writer.await.unwrap();
        assert!(
            stored.windows(2).all(|w| w[0].id < w[1].id),
            "one writer's messages in its own order"
        );
        all.extend(stored);
    }
    all.sort_by_key(|m| m.id);
    let expected: Vec<(u64, String)> = all.iter().map(|m| (m.id, m.body.clone())).collect();
    let read: Vec<(u64, String)> = db
        .history(&room_id("busy"), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.body))
        .collect();
    assert_eq!(read, expected, "every id returned names the row stored");
    test_db.cleanup().await;
}
