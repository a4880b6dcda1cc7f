//! Room creation and reads: validation, conflicts, pending rooms and their TTL, pagination.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use roomgate_api::{CloseCode, CreatedRoom, ErrorCode, RoomPage, RoomState};
use serde_json::{Value, json};

use crate::helpers::{AppOptions, Backend, error_of, expect_close, next_joined, spawn_app_with};
use crate::on_both_databases;

on_both_databases!(
    creating_a_room_registers_it_as_pending,
    invalid_room_requests_name_the_field,
    oversized_bodies_are_refused_with_413,
    an_open_room_cannot_be_created_again,
    a_pending_room_refuses_other_creators_with_retry_after,
    twenty_concurrent_creations_admit_exactly_one,
    an_unconfirmed_room_leaves_no_row_and_can_be_created_again,
    rooms_are_listed_by_id_a_page_at_a_time,
    unknown_rooms_are_not_found,
);

async fn creating_a_room_registers_it_as_pending(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    let response = app
        .create_room_raw(&token, &json!({"id": "rust-study", "title": "Rust study", "capacity": 4, "password": "s3cret"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: CreatedRoom = response.json().await.unwrap();
    let room = &body.room;
    assert_eq!(room.id, "rust-study");
    assert_eq!(room.title, "Rust study");
    assert_eq!(room.capacity, 4);
    assert_eq!(room.attending, 0);
    assert_eq!(room.reserved, 1);
    assert!(room.has_password);
    assert_eq!(room.state, RoomState::Pending);
    assert!(room.created_at.ends_with('Z'));
    let reservation = &body.reservation;
    assert_eq!(reservation.room_id, "rust-study");
    assert_eq!(reservation.user_id, "alice");
    let ticket = &reservation.ticket;
    assert!(ticket.len() >= 22, "at least 128 bits: {ticket}");
    assert_eq!(reservation.ws_url, format!("/api/v1/ws?ticket={ticket}"));

    // Reads see it as pending, and the list (open rooms only) does not.
    let view = app.room("rust-study").await;
    assert_eq!(
        (view.state, view.attending, view.reserved),
        (RoomState::Pending, 0, 1)
    );
    let list = app.api.rooms(None, None).await.unwrap();
    assert_eq!(list.rooms, []);
    app.shutdown().await;
}

async fn invalid_room_requests_name_the_field(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend).with("rooms.max_capacity", 50)).await;
    let token = app.token("alice").await;
    let valid = json!({"id": "ok", "title": "T", "capacity": 2});
    let cases: Vec<(Value, Option<&str>)> = vec![
        (
            json!({"id": "Bad Id", "title": "T", "capacity": 2}),
            Some("id"),
        ),
        (json!({"id": "-x", "title": "T", "capacity": 2}), Some("id")),
        (
            json!({"id": "x".repeat(64), "title": "T", "capacity": 2}),
            Some("id"),
        ),
        (
            json!({"id": "ok", "title": "", "capacity": 2}),
            Some("title"),
        ),
        (
            json!({"id": "ok", "title": "t".repeat(101), "capacity": 2}),
            Some("title"),
        ),
        (
            json!({"id": "ok", "title": "T", "capacity": 0}),
            Some("capacity"),
        ),
        (
            json!({"id": "ok", "title": "T", "capacity": 51}),
            Some("capacity"),
        ),
        (
            json!({"id": "ok", "title": "T", "capacity": 2, "password": "p".repeat(129)}),
            Some("password"),
        ),
        (
            json!({"id": "ok", "title": "T", "capacity": 2, "colour": "red"}),
            Some("colour"),
        ),
        (json!({"id": "ok", "capacity": 2}), Some("title")),
        (json!({"id": "ok", "title": "T", "capacity": "two"}), None),
    ];
    for (body, field) in cases {
        let (status, code, details) = error_of(app.create_room_raw(&token, &body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code, ErrorCode::InvalidRequest, "{body}");
        if let Some(field) = field {
            assert_eq!(details["field"], field, "{body}");
        }
    }
    // Malformed JSON and a wrong content type.
    let response = app
        .client
        .post(app.url("/api/v1/rooms"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!(
        (status, code),
        (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest)
    );
    let response = app
        .client
        .post(app.url("/api/v1/rooms"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(valid.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, StatusCode::BAD_REQUEST);
    // Nothing was registered by any of them.
    assert_eq!(
        app.get("/api/v1/rooms/ok").await.status(),
        StatusCode::NOT_FOUND
    );
    // A path id that cannot be a room id.
    let (status, _, details) = error_of(app.get("/api/v1/rooms/NOT_A_SLUG").await).await;
    assert_eq!(
        (status, details["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("room_id"))
    );
    app.shutdown().await;
}

async fn oversized_bodies_are_refused_with_413(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let token = app.token("alice").await;
    let body = json!({"id": "big", "title": "T", "capacity": 2, "password": "p".repeat(20_000)});
    let (status, code, _) = error_of(app.create_room_raw(&token, &body).await).await;
    assert_eq!(
        (status, code),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
    );
    let response = app
        .reserve_raw(
            &token,
            "big",
            Some(&json!({"password": "p".repeat(20_000)})),
        )
        .await;
    let (status, code, _) = error_of(response).await;
    assert_eq!(
        (status, code),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
    );
    app.shutdown().await;
}

async fn an_open_room_cannot_be_created_again(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "taken", 2).await;
    let bob = app.token("bob").await;
    let response = app
        .create_room_raw(
            &bob,
            &json!({"id": "taken", "title": "Mine now", "capacity": 9}),
        )
        .await;
    let (status, code, details) = error_of(response).await;
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, ErrorCode::RoomExists)
    );
    assert_eq!(details["room_id"], "taken");
    assert_eq!(app.room("taken").await.title, "Room taken");
    app.shutdown().await;
}

async fn a_pending_room_refuses_other_creators_with_retry_after(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let alice = app.token("alice").await;
    app.create_room(&alice, "contested", 2).await;
    let bob = app.token("bob").await;
    let response = app
        .create_room_raw(
            &bob,
            &json!({"id": "contested", "title": "B", "capacity": 2}),
        )
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let (status, code, _) = error_of(response).await;
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, ErrorCode::RoomPending)
    );
    // Reserving in it is refused the same way.
    let response = app.reserve_raw(&bob, "contested", None).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, code, _) = error_of(response).await;
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, ErrorCode::RoomPending)
    );
    app.shutdown().await;
}

async fn twenty_concurrent_creations_admit_exactly_one(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(app.token(&format!("creator{i}")).await);
    }
    let body = json!({"id": "popular", "title": "Popular", "capacity": 5});
    let attempts = tokens.iter().map(|token| app.create_room_raw(token, &body));
    let responses = join_all(attempts).await;
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for response in responses {
        match response.status() {
            StatusCode::ACCEPTED => winners.push(response.json::<CreatedRoom>().await.unwrap()),
            StatusCode::CONFLICT => {
                let (_, code, _) = error_of(response).await;
                assert_eq!(code, ErrorCode::RoomPending);
                conflicts += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 19));
    // The winner opens it; the creator recorded is the winner.
    let mut ws = app.ws(&winners[0].reservation.ticket).await;
    let joined = next_joined(&mut ws).await;
    assert_eq!(joined.members, [winners[0].reservation.user_id.clone()]);
    app.shutdown().await;
}

async fn an_unconfirmed_room_leaves_no_row_and_can_be_created_again(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with_manual_clock()
            .with("admission.pending_room_ttl_ms", 300)
            .with("admission.reservation_ttl_ms", 300)
            .with("admission.reaper_interval_ms", 50),
    )
    .await;
    let alice = app.token("alice").await;
    let abandoned = app.create_room(&alice, "ghost-town", 3).await;
    // Just short of its TTL it is still pending; past it, gone from reads.
    app.advance(Duration::from_millis(250));
    assert_eq!(app.room("ghost-town").await.state, RoomState::Pending);
    app.advance(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while app.get("/api/v1/rooms/ghost-town").await.status() != StatusCode::NOT_FOUND {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired pending room is still read"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // And no row was ever written.
    let db = roomgate_persistence::Database::connect(
        &app.database
            .settings(roomgate_persistence::JoinGuard::Conditional),
    )
    .await
    .unwrap();
    let id = roomgate_domain::RoomId::parse("ghost-town").unwrap();
    assert!(db.get_room(&id).await.unwrap().is_none());
    // The creator's late ticket opens nothing.
    let mut late = app.ws(&abandoned.reservation.ticket).await;
    assert_eq!(
        expect_close(&mut late).await.0,
        CloseCode::TicketExpired.code()
    );
    assert!(db.get_room(&id).await.unwrap().is_none());

    // Anyone may create it again, and this time it opens.
    let bob = app.token("bob").await;
    let again = app.create_room(&bob, "ghost-town", 3).await;
    let mut ws = app.ws(&again.reservation.ticket).await;
    let joined = next_joined(&mut ws).await;
    assert_eq!(joined.room.attending, 1);
    assert_eq!(joined.room.reserved, 0);
    app.shutdown().await;
}

async fn rooms_are_listed_by_id_a_page_at_a_time(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut sockets = Vec::new();
    for id in ["delta", "alpha", "charlie", "bravo", "echo"] {
        sockets.push(app.open_room(&format!("owner-{id}"), id, 3).await);
    }
    let page = app.api.rooms(Some(2), None).await.unwrap();
    let ids = |page: &RoomPage| -> Vec<String> {
        page.rooms.iter().map(|room| room.id.clone()).collect()
    };
    assert_eq!(ids(&page), ["alpha", "bravo"]);
    assert_eq!(page.next.as_deref(), Some("bravo"));
    assert_eq!(page.rooms[0].state, RoomState::Open);
    assert_eq!(page.rooms[0].attending, 1);
    let page = app.api.rooms(Some(2), Some("bravo")).await.unwrap();
    assert_eq!(ids(&page), ["charlie", "delta"]);
    let page = app.api.rooms(Some(2), Some("delta")).await.unwrap();
    assert_eq!(ids(&page), ["echo"]);
    assert_eq!(page.next, None);
    let all = app.api.rooms(None, None).await.unwrap();
    assert_eq!(ids(&all).len(), 5);
    for bad in [
        "/api/v1/rooms?limit=0",
        "/api/v1/rooms?limit=101",
        "/api/v1/rooms?limit=x",
    ] {
        let (status, code, _) = error_of(app.get(bad).await).await;
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            "{bad}"
        );
    }
    let (_, _, details) = error_of(app.get("/api/v1/rooms?after=NOPE").await).await;
    assert_eq!(details["field"], "after");
    app.shutdown().await;
}

async fn unknown_rooms_are_not_found(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let (status, code, _) = error_of(app.get("/api/v1/rooms/nowhere").await).await;
    assert_eq!(
        (status, code),
        (StatusCode::NOT_FOUND, ErrorCode::RoomNotFound)
    );
    let token = app.token("alice").await;
    let (status, code, _) = error_of(app.reserve_raw(&token, "nowhere", None).await).await;
    assert_eq!(
        (status, code),
        (StatusCode::NOT_FOUND, ErrorCode::RoomNotFound)
    );
    app.shutdown().await;
}
