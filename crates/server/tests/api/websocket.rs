//! Phase 2 and chat: the joined frame, fan-out, presence, bad frames, limits and every way a
//! session ends.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use roomgate_api::{
    ClientFrame, CloseCode, FrameErrorCode, PresenceEvent, PresenceFrame, RoomState, ServerFrame,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    AppOptions, Backend, expect_close, next_error_frame, next_frame, next_joined, next_message,
    next_presence, next_received, say, send_frame, spawn_app_with,
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
    assert_eq!(created.room.state, RoomState::Pending);

    let mut alice = app.ws(&created.reservation.ticket).await;
    let joined = next_joined(&mut alice).await;
    assert_eq!(joined.room.id, "lounge");
    assert_eq!(joined.room.state, RoomState::Open);
    assert_eq!(joined.room.attending, 1);
    assert_eq!(joined.room.reserved, 0);
    assert_eq!(joined.members, ["alice"]);
    assert_eq!(joined.history, []);
    let presence = |event, user: &str, attending| PresenceFrame {
        event,
        user_id: user.to_owned(),
        attending,
    };
    let own = next_presence(&mut alice).await;
    assert_eq!(own, presence(PresenceEvent::Joined, "alice", 1));

    let (mut bob, bob_joined) = app.join("bob", "lounge").await;
    let mut members = bob_joined.members;
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let joined_bob = next_presence(&mut alice).await;
    assert_eq!(joined_bob, presence(PresenceEvent::Joined, "bob", 2));

    send_frame(&mut bob, &say("hello alice")).await;
    let at_alice = next_message(&mut alice).await;
    let at_bob = next_message(&mut bob).await;
    assert_eq!(
        at_alice, at_bob,
        "the sender gets the same frame as everyone"
    );
    assert_eq!(at_alice.room_id, "lounge");
    assert_eq!(at_alice.user_id, "bob");
    assert_eq!(at_alice.body, "hello alice");
    assert!(at_alice.sent_at.ends_with('Z'));

    send_frame(&mut bob, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut bob).await.0, CloseCode::Left.code());
    let left = next_presence(&mut alice).await;
    assert_eq!(left, presence(PresenceEvent::Left, "bob", 1));
    assert_eq!(app.room("lounge").await.attending, 1);
    app.shutdown().await;
}

async fn history_is_sent_on_join_oldest_first(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend).with("chat.history_on_join", 3)).await;
    let mut alice = app.open_room("alice", "archive", 5).await;
    for i in 1..=5 {
        send_frame(&mut alice, &say(&format!("m{i}"))).await;
        assert_eq!(next_message(&mut alice).await.body, format!("m{i}"));
    }
    let (_bob, joined) = app.join("bob", "archive").await;
    let bodies: Vec<&str> = joined.history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m3", "m4", "m5"]);
    assert_eq!(joined.history[0].user_id, "alice");
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
        let error = next_error_frame(&mut alice).await;
        assert_eq!(error.code, FrameErrorCode::InvalidMessage, "{error:?}");
    }
    send_frame(&mut alice, &say(&"x".repeat(4000))).await;
    assert_eq!(next_message(&mut alice).await.body.len(), 4000);
    app.shutdown().await;
}

async fn leave_closes_with_1000_and_returns_the_seat(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "brief", 1).await;
    send_frame(&mut alice, &ClientFrame::Leave).await;
    let (code, _) = expect_close(&mut alice).await;
    assert_eq!(code, CloseCode::Left.code());
    app.wait_for_room("brief", SETTLE, |room| {
        room.attending == 0 && room.reserved == 0
    })
    .await;
    // The only seat is free again.
    let (_bob, joined) = app.join("bob", "brief").await;
    assert_eq!(joined.room.attending, 1);
    app.shutdown().await;
}

async fn a_frame_over_the_limit_closes_with_1009(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "big", 2).await;
    send_frame(&mut alice, &say(&"x".repeat(70 * 1024))).await;
    let (code, _) = expect_close(&mut alice).await;
    assert_eq!(code, CloseCode::FrameTooLarge.code());
    app.wait_for_room("big", SETTLE, |room| room.attending == 0)
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
                serde_json::to_string(&say(&format!("{i}"))).unwrap(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, reason) = expect_close(&mut alice).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::RateLimited.code(), "rate_limited")
    );
    app.wait_for_room("chatty", SETTLE, |room| room.attending == 0)
        .await;
    app.shutdown().await;
}

async fn tickets_are_single_use_and_forgeries_are_refused(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    let created = app.create_room(&token, "once", 2).await;
    let ticket = created.reservation.ticket;
    let mut first = app.ws(&ticket).await;
    next_joined(&mut first).await;

    let mut reused = app.ws(&ticket).await;
    assert_eq!(
        expect_close(&mut reused).await,
        (CloseCode::InvalidTicket.code(), "invalid_ticket".to_owned())
    );

    // Well-formed but never issued.
    let forged = "A".repeat(43);
    let mut forgery = app.ws(&forged).await;
    assert_eq!(
        expect_close(&mut forgery).await,
        (CloseCode::InvalidTicket.code(), "invalid_ticket".to_owned())
    );

    for path in ["/api/v1/ws?ticket=garbage", "/api/v1/ws"] {
        let mut socket = app.ws_path(path).await;
        assert_eq!(
            expect_close(&mut socket).await.0,
            CloseCode::InvalidTicket.code(),
            "{path}"
        );
    }
    // Nothing was written for the refused ones.
    let room = app.room("once").await;
    assert_eq!((room.attending, room.reserved), (1, 0));
    app.shutdown().await;
}

async fn an_expired_ticket_closes_with_4002_and_its_seat_is_back(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with_manual_clock()
            .with("admission.reservation_ttl_ms", 300)
            .with("admission.reaper_interval_ms", 50),
    )
    .await;
    let _alice = app.open_room("alice", "short", 2).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "short").await;
    assert_eq!(app.room("short").await.reserved, 1);
    app.advance(Duration::from_millis(500));
    let mut late = app.ws(&reservation.ticket).await;
    assert_eq!(
        expect_close(&mut late).await,
        (CloseCode::TicketExpired.code(), "ticket_expired".to_owned())
    );
    let room = app
        .wait_for_room("short", SETTLE, |room| room.reserved == 0)
        .await;
    assert_eq!(room.attending, 1);
    app.shutdown().await;
}

async fn a_cancelled_ticket_is_refused(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "fickle", 2).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "fickle").await;
    assert_eq!(app.cancel(&bob, "fickle").await.status(), 204);
    assert_eq!(app.room("fickle").await.reserved, 0);
    let mut session = app.session(&reservation.ticket).await;
    let refused = next_received(&mut session).await;
    assert_eq!(
        refused.close_code(),
        Some(CloseCode::InvalidTicket),
        "{refused:?}"
    );
    assert_eq!(app.room("fickle").await.attending, 1);
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
    let mut socket = app.ws(&reservation.ticket).await;
    assert_eq!(
        expect_close(&mut socket).await,
        (CloseCode::RoomFull.code(), "room_full".to_owned())
    );
    let view = app
        .wait_for_room("guarded", SETTLE, |room| room.reserved == 0)
        .await;
    assert_eq!(view.attending, 2);
    app.shutdown().await;
}

async fn abrupt_disconnects_return_every_seat(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let alice = app.open_room("alice", "flaky", 5).await;
    let mut sockets = vec![alice];
    for user in ["bob", "carol", "dave", "erin"] {
        sockets.push(app.join(user, "flaky").await.0);
    }
    assert_eq!(app.room("flaky").await.attending, 5);
    // Dropping the stream closes the TCP connection without a close frame.
    drop(sockets);
    let room = app
        .wait_for_room("flaky", SETTLE, |room| room.attending == 0)
        .await;
    assert_eq!(room.reserved, 0);
    let (_frank, joined) = app.join("frank", "flaky").await;
    assert_eq!(joined.room.attending, 1);
    assert_eq!(joined.members, ["frank"]);
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
    app.wait_for_room("quiet", SETTLE, |room| room.attending == 0)
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
    while app.room("firehose").await.attending == 2 {
        assert!(sent < 5000, "bob was never closed");
        for _ in 0..50 {
            send_frame(&mut alice, &say(&body)).await;
            next_message(&mut alice).await;
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
                    (CloseCode::TooSlow.code(), "too_slow")
                );
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    // Alice never noticed, beyond the presence frame.
    send_frame(&mut alice, &say("still here")).await;
    loop {
        if let ServerFrame::Message(message) = next_frame(&mut alice).await
            && message.body == "still here"
        {
            break;
        }
    }
    app.shutdown().await;
}
