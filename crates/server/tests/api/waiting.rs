//! The waiting line over the wire: places, waiting frames, the hand-over on the same socket, no
//! barging, and every way a place is given up.

use std::time::Duration;

use reqwest::StatusCode;
use roomgate_api::{ClientFrame, ErrorCode, PresenceEvent, QueueView, ServerFrame, WaitingFrame};
use serde_json::json;

use crate::helpers::{
    AppOptions, Backend, TestApp, Ws, error_of, expect_close, next_frame, next_joined,
    next_presence, send_frame, spawn_app_with,
};
use crate::on_both_databases;

on_both_databases!(
    a_waiter_is_seated_on_its_own_socket_in_the_order_places_were_taken,
    no_newcomer_takes_a_seat_while_someone_waits,
    a_waiter_who_goes_away_gives_up_the_place_at_once,
    a_place_is_given_up_by_delete_and_by_expiry_before_its_socket_opened,
    the_line_is_capped_at_max_waiting,
);

/// `POST …/reservations {"wait": true}`: the status and the place.
async fn take_place(app: &TestApp, user: &str, room: &str) -> (StatusCode, QueueView) {
    let token = app.token(user).await;
    let response = app
        .reserve_raw(&token, room, Some(&json!({"wait": true})))
        .await;
    let status = response.status();
    let text = response.text().await.unwrap();
    let place = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a QueueView ({status}): {e}: {text}"));
    (status, place)
}

/// Takes a place and opens its socket; returns the socket past its first waiting frame.
async fn wait_in_line(app: &TestApp, user: &str, room: &str) -> (Ws, WaitingFrame) {
    let (status, place) = take_place(app, user, room).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{user} takes a place");
    let mut ws = app.ws(&place.ticket).await;
    let waiting = next_waiting(&mut ws).await;
    assert_eq!(waiting.position, place.position);
    (ws, waiting)
}

async fn next_waiting(ws: &mut Ws) -> WaitingFrame {
    match next_frame(ws).await {
        ServerFrame::Waiting(waiting) => waiting,
        other => panic!("expected a waiting frame, got {other:?}"),
    }
}

async fn a_waiter_is_seated_on_its_own_socket_in_the_order_places_were_taken(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "cafe", 1).await;
    let (mut bob, first) = wait_in_line(&app, "bob", "cafe").await;
    assert_eq!((first.room_id.as_str(), first.position), ("cafe", 1));
    assert_eq!(first.eta_ms, None, "no departure seen yet");
    let (mut carol, second) = wait_in_line(&app, "carol", "cafe").await;
    assert_eq!(second.position, 2);
    let room = app.room("cafe").await;
    assert_eq!((room.attending, room.reserved, room.waiting), (1, 0, 2));

    // Alice leaves: the seat goes to bob, on the socket he waited on, and carol moves up.
    send_frame(&mut alice, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut alice).await.0, 1000);
    let joined = next_joined(&mut bob).await;
    assert_eq!(joined.members, vec!["bob".to_owned()]);
    assert_eq!((joined.room.attending, joined.room.waiting), (1, 1));
    let moved = next_waiting(&mut carol).await;
    assert_eq!(moved.position, 1);
    assert!(moved.eta_ms.is_some(), "a departure was seen");

    // Bob is a member like any other now; when he leaves, carol is seated.
    send_frame(&mut bob, &crate::helpers::say("hello")).await;
    send_frame(&mut bob, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut bob).await.0, 1000);
    let joined = next_joined(&mut carol).await;
    assert_eq!(joined.members, vec!["carol".to_owned()]);
    assert_eq!(joined.history.len(), 1, "carol sees what bob said");
    let room = app.room("cafe").await;
    assert_eq!((room.attending, room.reserved, room.waiting), (1, 0, 0));

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("roomgate_queue_wait_seconds_count 2"),
        "two waits measured:\n{metrics}"
    );
    assert!(metrics.contains("roomgate_waiting 0"), "{metrics}");
    app.shutdown().await;
}

async fn no_newcomer_takes_a_seat_while_someone_waits(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "cafe", 2).await;
    let (mut bob_member, _) = app.join("bob", "cafe").await;
    let (mut carol, _) = wait_in_line(&app, "carol", "cafe").await;
    // With the line not empty, a newcomer asking for a seat is refused, wait or not ...
    let dave = app.token("dave").await;
    let (status, code, _) = error_of(app.reserve_raw(&dave, "cafe", None).await).await;
    assert_eq!((status, code), (StatusCode::CONFLICT, ErrorCode::RoomFull));
    let (status, place) = take_place(&app, "dave", "cafe").await;
    assert_eq!((status, place.position), (StatusCode::ACCEPTED, 2));
    // ... and asking again keeps the same place (200).
    let (status, again) = take_place(&app, "dave", "cafe").await;
    assert_eq!((status, &again), (StatusCode::OK, &place));

    // A seat frees: it is carol's, not a newcomer's.
    send_frame(&mut bob_member, &ClientFrame::Leave).await;
    expect_close(&mut bob_member).await;
    let eve = app.token("eve").await;
    let (status, code, _) = error_of(app.reserve_raw(&eve, "cafe", None).await).await;
    assert_eq!((status, code), (StatusCode::CONFLICT, ErrorCode::RoomFull));
    next_joined(&mut carol).await;
    // Alice saw herself, bob come and go, then carol come.
    let mut events = Vec::new();
    for _ in 0..4 {
        let presence = next_presence(&mut alice).await;
        events.push((presence.event, presence.user_id));
    }
    assert_eq!(
        events,
        [
            (PresenceEvent::Joined, "alice".to_owned()),
            (PresenceEvent::Joined, "bob".to_owned()),
            (PresenceEvent::Left, "bob".to_owned()),
            (PresenceEvent::Joined, "carol".to_owned()),
        ]
    );
    let room = app.room("cafe").await;
    assert!(room.attending + room.reserved <= room.capacity);
    assert_eq!(room.waiting, 1, "dave still waits, his socket not open yet");
    app.shutdown().await;
}

async fn a_waiter_who_goes_away_gives_up_the_place_at_once(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut alice = app.open_room("alice", "cafe", 1).await;
    let (bob, _) = wait_in_line(&app, "bob", "cafe").await;
    let (mut carol, _) = wait_in_line(&app, "carol", "cafe").await;
    let (mut dave, _) = wait_in_line(&app, "dave", "cafe").await;

    // Bob's connection simply goes away (no close frame): everyone behind moves up.
    drop(bob);
    assert_eq!(next_waiting(&mut carol).await.position, 1);
    assert_eq!(next_waiting(&mut dave).await.position, 2);
    // Carol says `leave` while waiting: she is closed with 1000 and dave moves up.
    send_frame(&mut carol, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut carol).await.0, 1000);
    assert_eq!(next_waiting(&mut dave).await.position, 1);
    assert_eq!(app.room("cafe").await.waiting, 1);

    // The seat alice frees goes to dave, the only one left.
    send_frame(&mut alice, &ClientFrame::Leave).await;
    expect_close(&mut alice).await;
    next_joined(&mut dave).await;
    drop(dave);
    let room = app
        .wait_for_room("cafe", Duration::from_secs(5), |room| {
            room.attending == 0 && room.reserved == 0
        })
        .await;
    assert_eq!(room.waiting, 0);
    app.shutdown().await;
}

async fn a_place_is_given_up_by_delete_and_by_expiry_before_its_socket_opened(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend).with_manual_clock()).await;
    let mut alice = app.open_room("alice", "cafe", 1).await;
    let (mut bob, _) = wait_in_line(&app, "bob", "cafe").await;
    let (status, carol_place) = take_place(&app, "carol", "cafe").await;
    assert_eq!((status, carol_place.position), (StatusCode::ACCEPTED, 2));
    let (_, dave_place) = take_place(&app, "dave", "cafe").await;
    assert_eq!(dave_place.position, 3);

    // Bob gives his place up over REST; his socket is told and closed with 1000.
    let bob_token = app.token("bob").await;
    assert_eq!(
        app.cancel(&bob_token, "cafe").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(expect_close(&mut bob).await.0, 1000);
    assert_eq!(app.room("cafe").await.waiting, 2);

    // Carol and dave never open their sockets: past `expires_at` their places are reclaimed.
    app.advance(Duration::from_secs(31));
    let room = app
        .wait_for_room("cafe", Duration::from_secs(5), |room| room.waiting == 0)
        .await;
    assert_eq!((room.attending, room.reserved), (1, 0));
    // The seat alice frees is nobody's but the next newcomer's now.
    send_frame(&mut alice, &ClientFrame::Leave).await;
    expect_close(&mut alice).await;
    let (_, _) = app.join("erin", "cafe").await;
    // A place's ticket opened too late is told it expired.
    let mut late = app.ws(&carol_place.ticket).await;
    assert_eq!(expect_close(&mut late).await.0, 4002);
    app.shutdown().await;
}

async fn the_line_is_capped_at_max_waiting(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend).with("rooms.max_waiting", 2)).await;
    let _alice = app.open_room("alice", "cafe", 1).await;
    for user in ["bob", "carol"] {
        assert_eq!(take_place(&app, user, "cafe").await.0, StatusCode::ACCEPTED);
    }
    let dave = app.token("dave").await;
    let response = app
        .reserve_raw(&dave, "cafe", Some(&json!({"wait": true})))
        .await;
    let (status, code, details) = error_of(response).await;
    assert_eq!((status, code), (StatusCode::CONFLICT, ErrorCode::QueueFull));
    assert_eq!(details["max_waiting"], json!(2));
    let room = app.room("cafe").await;
    assert_eq!(room.waiting, 2, "the refusal changed nothing");
    app.shutdown().await;
}
