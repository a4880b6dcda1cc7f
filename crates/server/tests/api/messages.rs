//! The message writer seen from the sockets: messages of many senders stored by group commit
//! reach every member in id order with each sender's order kept, and a message the database
//! does not take is answered to its sender alone, with nothing published.

use std::collections::HashMap;

use roomgate_api::{FrameErrorCode, Message, ServerFrame};
use tokio::task::JoinSet;

use crate::failures::execute;
use crate::helpers::{
    AppOptions, Backend, Ws, next_error_frame, next_frame, next_message, next_presence, say,
    send_frame, spawn_app_with,
};
use crate::on_both_databases;

on_both_databases!(
    a_newcomer_misses_no_message_posted_while_it_joins,
    concurrent_senders_reach_every_member_in_id_order,
    a_message_the_database_refuses_is_answered_to_its_sender_and_published_to_no_one,
    one_refused_message_does_not_fail_the_others_stored_with_it,
);

const MEMBERS: usize = 6;
const PER_SENDER: usize = 25;

/// Joins `MEMBERS` members to `room` (the first opens it) and reads every presence frame, so
/// that each socket's next frames are chat messages.
async fn full_room(app: &crate::helpers::TestApp, room: &str) -> Vec<Ws> {
    let mut sockets = vec![app.open_room("m0", room, MEMBERS as u32).await];
    for i in 1..MEMBERS {
        let (ws, _) = app.join(&format!("m{i}"), room).await;
        sockets.push(ws);
    }
    // Member i sees its own arrival and everyone's after it.
    for (i, ws) in sockets.iter_mut().enumerate() {
        for _ in i..MEMBERS {
            next_presence(ws).await;
        }
    }
    sockets
}

/// Reads `count` chat messages from `ws`.
async fn read_messages(ws: &mut Ws, count: usize) -> Vec<Message> {
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        messages.push(next_message(ws).await);
    }
    messages
}

async fn concurrent_senders_reach_every_member_in_id_order(backend: Backend) {
    let app =
        spawn_app_with(AppOptions::new(backend).with("limits.ws_messages_per_second", 100_000))
            .await;
    let sockets = full_room(&app, "busy").await;
    let total = MEMBERS * PER_SENDER;
    let mut members = JoinSet::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        members.spawn(async move {
            // Every member sends its messages back to back, all at once with the others, then
            // reads the room's (at most `total` frames queue for it, well under the bound).
            for n in 0..PER_SENDER {
                send_frame(&mut ws, &say(&format!("m{i} {n}"))).await;
            }
            (i, read_messages(&mut ws, total).await)
        });
    }
    let mut received = HashMap::new();
    while let Some(member) = members.join_next().await {
        let (i, messages) = member.unwrap();
        received.insert(i, messages);
    }
    let reference: Vec<(u64, String, String)> = received[&0]
        .iter()
        .map(|m| (m.id, m.user_id.clone(), m.body.clone()))
        .collect();
    assert!(
        reference.windows(2).all(|w| w[0].0 < w[1].0),
        "frames arrive in id order: {:?}",
        reference.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    for i in 0..MEMBERS {
        let sender = format!("m{i}");
        let bodies: Vec<&str> = reference
            .iter()
            .filter(|m| m.1 == sender)
            .map(|m| m.2.as_str())
            .collect();
        let sent: Vec<String> = (0..PER_SENDER).map(|n| format!("m{i} {n}")).collect();
        assert_eq!(
            bodies, sent,
            "{sender}'s messages, all and in the order sent"
        );
        let seen: Vec<(u64, String, String)> = received[&i]
            .iter()
            .map(|m| (m.id, m.user_id.clone(), m.body.clone()))
            .collect();
        assert_eq!(seen, reference, "member {i} received what member 0 did");
    }
    app.shutdown().await;
}

async fn a_message_the_database_refuses_is_answered_to_its_sender_and_published_to_no_one(
    backend: Backend,
) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "fragile", 3).await;
    let (mut bob, _) = app.join("bob", "fragile").await;
    next_presence(&mut alice).await;
    next_presence(&mut alice).await;
    next_presence(&mut bob).await;

    let url = app.database.url().to_owned();
    execute(
        backend,
        &url,
        "ALTER TABLE messages RENAME TO messages_away",
    )
    .await;
    send_frame(&mut alice, &say("lost")).await;
    let error = next_error_frame(&mut alice).await;
    assert_eq!(error.code, FrameErrorCode::Unavailable);
    execute(
        backend,
        &url,
        "ALTER TABLE messages_away RENAME TO messages",
    )
    .await;

    // Both sessions stayed, and the next frame either of them sees is the next message: the
    // refused one was never published.
    send_frame(&mut alice, &say("back")).await;
    assert_eq!(next_message(&mut alice).await.body, "back");
    assert_eq!(next_message(&mut bob).await.body, "back");
    app.shutdown().await;
}

/// A message the database refuses by itself (a trigger here) fails alone: the messages of the
/// other senders, stored in the same batch or not, are stored and delivered in id order.
async fn one_refused_message_does_not_fail_the_others_stored_with_it(backend: Backend) {
    let app =
        spawn_app_with(AppOptions::new(backend).with("limits.ws_messages_per_second", 100_000))
            .await;
    let url = app.database.url().to_owned();
    let trigger = match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages \
             WHEN NEW.body = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        }
        Backend::Mysql => {
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW \
             IF NEW.body = 'poison' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; \
             END IF"
        }
    };
    execute(backend, &url, trigger).await;
    let sockets = full_room(&app, "mixed").await;
    let mut members = JoinSet::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        members.spawn(async move {
            let mut refused = 0;
            for n in 0..PER_SENDER {
                let body = if i == 0 && n % 5 == 2 {
                    refused += 1;
                    "poison".to_owned()
                } else {
                    format!("m{i} {n}")
                };
                send_frame(&mut ws, &say(&body)).await;
            }
            let stored = MEMBERS * PER_SENDER - PER_SENDER / 5;
            let mut messages = Vec::new();
            let mut errors = Vec::new();
            while messages.len() < stored || errors.len() < refused {
                match next_frame(&mut ws).await {
                    ServerFrame::Message(message) => messages.push(message),
                    ServerFrame::Error(error) => errors.push(error.code),
                    other => panic!("unexpected frame {other:?}"),
                }
            }
            (i, messages, errors)
        });
    }
    while let Some(member) = members.join_next().await {
        let (i, messages, errors) = member.unwrap();
        assert!(messages.windows(2).all(|w| w[0].id < w[1].id), "id order");
        assert!(
            messages.iter().all(|m| m.body != "poison"),
            "nothing refused was published"
        );
        let mine: Vec<&str> = messages
            .iter()
            .filter(|m| m.user_id == "m0")
            .map(|m| m.body.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_SENDER)
            .filter(|n| n % 5 != 2)
            .map(|n| format!("m0 {n}"))
            .collect();
        assert_eq!(
            mine, expected,
            "member {i} got every stored message of m0, in order"
        );
        let refused = if i == 0 { PER_SENDER / 5 } else { 0 };
        assert_eq!(
            errors,
            vec![FrameErrorCode::Unavailable; refused],
            "member {i}"
        );
    }
    app.shutdown().await;
}

/// Messages posted while newcomers join: each newcomer's history and the messages it then
/// receives live, together, hold every message from the oldest one it was shown onwards. Its
/// view of the room is taken inside the join and it subscribes before that, so no message can
/// fall between the two (one may come twice).
async fn a_newcomer_misses_no_message_posted_while_it_joins(backend: Backend) {
    const MESSAGES: usize = 300;
    const NEWCOMERS: usize = 8;
    let app =
        spawn_app_with(AppOptions::new(backend).with("limits.ws_messages_per_second", 100_000))
            .await;
    let mut sender = app.open_room("talker", "lively", 20).await;
    let posting = async {
        // One message at a time, each echoed before the next: the room's messages in id order.
        let mut ids = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            send_frame(&mut sender, &say(&format!("n{n}"))).await;
            ids.push(next_message(&mut sender).await.id);
        }
        send_frame(&mut sender, &say("done")).await;
        next_message(&mut sender).await;
        ids
    };
    let newcomers = (0..NEWCOMERS).map(|i| {
        let app = &app;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(25 * i as u64)).await;
            let (mut ws, joined) = app.join(&format!("newcomer{i}"), "lively").await;
            let mut seen: Vec<u64> = joined.history.iter().map(|m| m.id).collect();
            loop {
                let message = next_message(&mut ws).await;
                if message.body == "done" {
                    break;
                }
                seen.push(message.id);
            }
            (i, seen)
        }
    });
    let (posted, seen_by) = tokio::join!(posting, futures_util::future::join_all(newcomers));
    for (i, seen) in seen_by {
        let first = seen.iter().min().copied().unwrap_or(u64::MAX);
        let missed: Vec<u64> = posted
            .iter()
            .copied()
            .filter(|id| *id >= first && !seen.contains(id))
            .collect();
        assert!(
            missed.is_empty(),
            "newcomer{i} missed {missed:?} (first shown {first})"
        );
    }
    app.shutdown().await;
}
