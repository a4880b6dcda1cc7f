//! Phase 2 and chat: the joined frame, fan-out, presence, bad frames, limits and every way a
//! session ends.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    AppOptions, Backend, expect_close, next_json, next_of_type, send_json, spawn_app_with,
    ticket_of,
};
use crate::on_both_databases;

on_both_databases!(
    creator_opens_the_room_and_members_chat_with_presence,
    history_is_sent_on_join_oldest_first,
    bad_frames_get_an_error_frame_and_the_session_stays,
    leave_closes_with_1000_and_returns_the_seat,
    a_frame_over_the_limit_closes_with_1009,
    too_many_messages_close_with_1008,
    tickets_are_single_use_and_forgeries_are_refused,
    an_expired_ticket_closes_with_4002_and_its_seat_is_back,
    a_cancelled_ticket_is_refused,
    a_full_database_guard_closes_with_4009,
    abrupt_disconnects_return_every_seat,
    a_silent_client_is_dropped_after_the_timeout,
);

const SETTLE: Duration = Duration::from_secs(5);

async fn creator_opens_the_room_and_members_chat_with_presence(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    let created = app.create_room(&token, "lounge", 3).await;
    assert_eq!(created["room"]["state"], "pending");

    let mut alice = app.ws(ticket_of(&created["reservation"])).await;
    let joined = next_json(&mut alice).await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"]["id"], "lounge");
    assert_eq!(joined["room"]["state"], "open");
    assert_eq!(joined["room"]["attending"], 1);
    assert_eq!(joined["room"]["reserved"], 0);
    assert_eq!(joined["members"], json!(["alice"]));
    assert_eq!(joined["history"], json!([]));
    let own = next_of_type(&mut alice, "presence").await;
    assert_eq!(
        own,
        json!({"type": "presence", "event": "joined", "user_id": "alice", "attending": 1})
    );

    let (mut bob, bob_joined) = app.join("bob", "lounge").await;
    let mut members: Vec<String> = serde_json::from_value(bob_joined["members"].clone()).unwrap();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let presence = next_of_type(&mut alice, "presence").await;
    assert_eq!(
        presence,
        json!({"type": "presence", "event": "joined", "user_id": "bob", "attending": 2})
    );

    send_json(&mut bob, &json!({"type": "message", "body": "hello alice"})).await;
    let at_alice = next_of_type(&mut alice, "message").await;
    let at_bob = next_of_type(&mut bob, "message").await;
    assert_eq!(
        at_alice, at_bob,
        "the sender gets the same frame as everyone"
    );
    assert_eq!(at_alice["room_id"], "lounge");
    assert_eq!(at_alice["user_id"], "bob");
    assert_eq!(at_alice["body"], "hello alice");
    assert!(at_alice["id"].as_u64().is_some(), "{at_alice}");
    assert!(at_alice["sent_at"].as_str().unwrap().ends_with('Z'));

    send_json(&mut bob, &json!({"type": "leave"})).await;
    assert_eq!(expect_close(&mut bob).await.0, 1000);
    let left = next_of_type(&mut alice, "presence").await;
    assert_eq!(
        left,
        json!({"type": "presence", "event": "left", "user_id": "bob", "attending": 1})
    );
    assert_eq!(app.room("lounge").await["attending"], 1);
    app.shutdown().await;
}

async fn history_is_sent_on_join_oldest_first(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend).with("chat.history_on_join", 3)).await;
    let mut alice = app.open_room("alice", "archive", 5).await;
    for i in 1..=5 {
        send_json(
            &mut alice,
            &json!({"type": "message", "body": format!("m{i}")}),
        )
        .await;
        assert_eq!(
            next_of_type(&mut alice, "message").await["body"],
            format!("m{i}")
        );
    }
    let (_bob, joined) = app.join("bob", "archive").await;
    let bodies: Vec<&str> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m3", "m4", "m5"]);
    assert_eq!(joined["history"][0]["type"], "message");
    assert_eq!(joined["history"][0]["user_id"], "alice");
    app.shutdown().await;
}

async fn bad_frames_get_an_error_frame_and_the_session_stays(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "strict", 2).await;
    let bad = [
        Message::text("not json"),
        Message::text(json!({"type": "shout", "body": "x"}).to_string()),
        Message::text(json!({"type": "message"}).to_string()),
        Message::text(json!({"type": "message", "body": ""}).to_string()),
        Message::text(json!({"type": "message", "body": "x".repeat(4001)}).to_string()),
        Message::binary(vec![1, 2, 3]),
    ];
    for frame in bad {
        alice.send(frame).await.unwrap();
        let error = next_of_type(&mut alice, "error").await;
        assert_eq!(error["code"], "invalid_message", "{error}");
        assert!(error["message"].is_string());
    }
    send_json(
        &mut alice,
        &json!({"type": "message", "body": "x".repeat(4000)}),
    )
    .await;
    assert_eq!(
        next_of_type(&mut alice, "message").await["body"]
            .as_str()
            .unwrap()
            .len(),
        4000
    );
    app.shutdown().await;
}

async fn leave_closes_with_1000_and_returns_the_seat(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "brief", 1).await;
    send_json(&mut alice, &json!({"type": "leave"})).await;
    let (code, _) = expect_close(&mut alice).await;
    assert_eq!(code, 1000);
    app.wait_for_room("brief", SETTLE, |room| {
        room["attending"] == 0 && room["reserved"] == 0
    })
    .await;
    // The only seat is free again.
    let (_bob, joined) = app.join("bob", "brief").await;
    assert_eq!(joined["room"]["attending"], 1);
    app.shutdown().await;
}

async fn a_frame_over_the_limit_closes_with_1009(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "big", 2).await;
    let huge = json!({"type": "message", "body": "x".repeat(70 * 1024)}).to_string();
    alice.send(Message::text(huge)).await.unwrap();
    let (code, _) = expect_close(&mut alice).await;
    assert_eq!(code, 1009);
    app.wait_for_room("big", SETTLE, |room| room["attending"] == 0)
        .await;
    app.shutdown().await;
}

async fn too_many_messages_close_with_1008(backend: Backend) {
    let app =
        spawn_app_with(AppOptions::new(backend).with("limits.ws_messages_per_second", 2)).await;
    let mut alice = app.open_room("alice", "chatty", 2).await;
    // A burst of twice the rate is allowed; the frame after that is one too many.
    for i in 0..6 {
        if alice
            .send(Message::text(
                json!({"type": "message", "body": format!("{i}")}).to_string(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, reason) = expect_close(&mut alice).await;
    assert_eq!((code, reason.as_str()), (1008, "rate_limited"));
    app.wait_for_room("chatty", SETTLE, |room| room["attending"] == 0)
        .await;
    app.shutdown().await;
}

async fn tickets_are_single_use_and_forgeries_are_refused(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    let created = app.create_room(&token, "once", 2).await;
    let ticket = ticket_of(&created["reservation"]).to_owned();
    let mut first = app.ws(&ticket).await;
    assert_eq!(next_json(&mut first).await["type"], "joined");

    let mut reused = app.ws(&ticket).await;
    assert_eq!(
        expect_close(&mut reused).await,
        (4001, "invalid_ticket".to_owned())
    );

    // Well-formed but never issued.
    let forged = "A".repeat(43);
    let mut forgery = app.ws(&forged).await;
    assert_eq!(
        expect_close(&mut forgery).await,
        (4001, "invalid_ticket".to_owned())
    );

    for path in ["/api/v1/ws?ticket=garbage", "/api/v1/ws"] {
        let mut socket = app.ws_path(path).await;
        assert_eq!(expect_close(&mut socket).await.0, 4001, "{path}");
    }
    // Nothing was written for the refused ones.
    let room = app.room("once").await;
    assert_eq!(
        (room["attending"].clone(), room["reserved"].clone()),
        (json!(1), json!(0))
    );
    app.shutdown().await;
}

async fn an_expired_ticket_closes_with_4002_and_its_seat_is_back(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("admission.reservation_ttl_ms", 300)
            .with("admission.reaper_interval_ms", 50),
    )
    .await;
    let _alice = app.open_room("alice", "short", 2).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "short").await;
    assert_eq!(app.room("short").await["reserved"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut late = app.ws(ticket_of(&reservation)).await;
    assert_eq!(
        expect_close(&mut late).await,
        (4002, "ticket_expired".to_owned())
    );
    let room = app
        .wait_for_room("short", SETTLE, |room| room["reserved"] == 0)
        .await;
    assert_eq!(room["attending"], 1);
    app.shutdown().await;
}

async fn a_cancelled_ticket_is_refused(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "fickle", 2).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "fickle").await;
    assert_eq!(app.cancel(&bob, "fickle").await.status(), 204);
    assert_eq!(app.room("fickle").await["reserved"], 0);
    let mut socket = app.ws(ticket_of(&reservation)).await;
    assert_eq!(expect_close(&mut socket).await.0, 4001);
    assert_eq!(app.room("fickle").await["attending"], 1);
    app.shutdown().await;
}

/// The permit pool and the database normally agree; a membership written by another node
/// makes them disagree, and then the database guard has the last word.
async fn a_full_database_guard_closes_with_4009(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "guarded", 2).await;
    let db = roomgate_persistence::Database::connect(
        &app.database
            .settings(roomgate_persistence::JoinGuard::Conditional),
    )
    .await
    .unwrap();
    let room = roomgate_domain::RoomId::parse("guarded").unwrap();
    let ghost = roomgate_domain::UserId::parse("ghost").unwrap();
    db.join(&room, &ghost, roomgate_domain::NodeId(u64::from(u32::MAX)))
        .await
        .unwrap();

    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "guarded").await;
    let mut socket = app.ws(ticket_of(&reservation)).await;
    assert_eq!(
        expect_close(&mut socket).await,
        (4009, "room_full".to_owned())
    );
    let view = app
        .wait_for_room("guarded", SETTLE, |room| room["reserved"] == 0)
        .await;
    assert_eq!(view["attending"], 2);
    app.shutdown().await;
}

async fn abrupt_disconnects_return_every_seat(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let alice = app.open_room("alice", "flaky", 5).await;
    let mut sockets = vec![alice];
    for user in ["bob", "carol", "dave", "erin"] {
        sockets.push(app.join(user, "flaky").await.0);
    }
    assert_eq!(app.room("flaky").await["attending"], 5);
    // Dropping the stream closes the TCP connection without a close frame.
    drop(sockets);
    let room = app
        .wait_for_room("flaky", SETTLE, |room| room["attending"] == 0)
        .await;
    assert_eq!(room["reserved"], 0);
    let (_frank, joined) = app.join("frank", "flaky").await;
    assert_eq!(joined["room"]["attending"], 1);
    assert_eq!(joined["members"], json!(["frank"]));
    app.shutdown().await;
}

async fn a_silent_client_is_dropped_after_the_timeout(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("ws.heartbeat_interval_ms", 100)
            .with("ws.client_timeout_ms", 400),
    )
    .await;
    // The client never reads again, so it never answers a ping.
    let _silent = app.open_room("alice", "quiet", 2).await;
    app.wait_for_room("quiet", SETTLE, |room| room["attending"] == 0)
        .await;
    app.shutdown().await;
}

/// A member who stops reading must not hold up the room: once its queue overflows it is closed
/// (1013) and its seat returned, while the sender keeps chatting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_is_closed_not_buffered() {
    let app = spawn_app_with(
        AppOptions::new(Backend::Sqlite)
            .with("ws.outbound_queue_frames", 4)
            .with("limits.ws_messages_per_second", 100_000),
    )
    .await;
    let mut alice = app.open_room("alice", "firehose", 2).await;
    let (mut bob, _) = app.join("bob", "firehose").await;
    let body = "x".repeat(4000);
    let mut sent = 0;
    // Bob reads nothing; once the socket buffers and his queue are full, he is dropped.
    while app.room("firehose").await["attending"] == 2 {
        assert!(sent < 5000, "bob was never closed");
        for _ in 0..50 {
            send_json(&mut alice, &json!({"type": "message", "body": body})).await;
            next_of_type(&mut alice, "message").await;
            sent += 1;
        }
    }
    // The close frame (1013 too_slow) gets through only if there is room for it in bob's
    // buffers; otherwise the connection is simply dropped. Either way bob's stream ends.
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), bob.next())
            .await
            .expect("bob's stream ends");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(
                    (u16::from(frame.code), frame.reason.as_str()),
                    (1013, "too_slow")
                );
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    // Alice never noticed, beyond the presence frame.
    send_json(
        &mut alice,
        &json!({"type": "message", "body": "still here"}),
    )
    .await;
    loop {
        let frame = next_json(&mut alice).await;
        if frame["body"] == "still here" {
            break;
        }
    }
    app.shutdown().await;
}
