//! Phase 1: reserving, idempotence, refusals, cancelling, expiry and rate limits.

use std::time::Duration;

use reqwest::StatusCode;
use roomgate_api::{CreateRoomRequest, ErrorCode, ReservationView, RoomState};
use serde_json::json;

use crate::helpers::{AppOptions, Backend, error_of, next_joined, spawn_app_with};
use crate::on_both_databases;

on_both_databases!(
    a_reservation_holds_a_seat_and_is_idempotent,
    protected_rooms_need_the_password,
    a_full_room_refuses_with_409,
    a_joined_user_cannot_reserve_again,
    cancelling_returns_the_permit_at_once,
    a_creator_who_cancels_keeps_the_pending_room_until_its_ttl,
    unconfirmed_reservations_are_reclaimed_after_their_ttl,
    users_over_their_request_budget_get_429,
);

async fn a_reservation_holds_a_seat_and_is_idempotent(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "cafe", 3).await;
    let bob = app.token("bob").await;
    let response = app.reserve_raw(&bob, "cafe", None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let first: ReservationView = response.json().await.unwrap();
    assert_eq!(first.room_id, "cafe");
    assert_eq!(first.user_id, "bob");
    assert!(first.expires_at.ends_with('Z'));
    assert_eq!(first.ws_url, format!("/api/v1/ws?ticket={}", first.ticket));

    // The same live reservation again, with 200; an empty JSON body is fine too.
    let response = app.reserve_raw(&bob, "cafe", Some(&json!({}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again: ReservationView = response.json().await.unwrap();
    assert_eq!(again, first);
    let room = app.room("cafe").await;
    assert_eq!((room.attending, room.reserved), (1, 1));

    // Bodies are checked like any other.
    let response = app
        .reserve_raw(&bob, "cafe", Some(&json!({"pasword": "x"})))
        .await;
    let (status, _, details) = error_of(response).await;
    assert_eq!(
        (status, details["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("pasword"))
    );
    app.shutdown().await;
}

async fn protected_rooms_need_the_password(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let alice = app.token("alice").await;
    let vault = CreateRoomRequest {
        id: "vault".to_owned(),
        title: "Vault".to_owned(),
        capacity: 3,
        password: Some("open sesame".to_owned()),
    };
    let created = app.api.create_room(&alice, &vault).await.unwrap();
    assert!(created.room.has_password);
    let mut ws = app.ws(&created.reservation.ticket).await;
    assert!(next_joined(&mut ws).await.room.has_password);

    let bob = app.token("bob").await;
    for body in [None, Some(json!({"password": "open says me"}))] {
        let (status, code, _) = error_of(app.reserve_raw(&bob, "vault", body.as_ref()).await).await;
        assert_eq!(
            (status, code),
            (StatusCode::FORBIDDEN, ErrorCode::WrongPassword)
        );
    }
    assert_eq!(app.room("vault").await.reserved, 0);
    let response = app
        .reserve_raw(&bob, "vault", Some(&json!({"password": "open sesame"})))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.shutdown().await;
}

async fn a_full_room_refuses_with_409(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "tiny", 2).await;
    let bob = app.token("bob").await;
    app.reserve(&bob, "tiny").await;
    let carol = app.token("carol").await;
    let (status, code, details) = error_of(app.reserve_raw(&carol, "tiny", None).await).await;
    assert_eq!((status, code), (StatusCode::CONFLICT, ErrorCode::RoomFull));
    assert_eq!(details["capacity"], 2);
    let room = app.room("tiny").await;
    assert_eq!((room.attending, room.reserved), (1, 1));
    app.shutdown().await;
}

async fn a_joined_user_cannot_reserve_again(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "solo", 3).await;
    let alice = app.token("alice").await;
    let (status, code, _) = error_of(app.reserve_raw(&alice, "solo", None).await).await;
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, ErrorCode::AlreadyJoined)
    );
    app.shutdown().await;
}

async fn a_creator_who_cancels_keeps_the_pending_room_until_its_ttl(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let alice = app.token("alice").await;
    app.create_room(&alice, "draft", 3).await;
    assert_eq!(
        app.cancel(&alice, "draft").await.status(),
        StatusCode::NO_CONTENT
    );
    let view = app.room("draft").await;
    assert_eq!((view.state, view.reserved), (RoomState::Pending, 0));
    // Nobody else may take the id meanwhile, and the creator may still open the room.
    let bob = app.token("bob").await;
    let (status, code, _) = error_of(app.reserve_raw(&bob, "draft", None).await).await;
    assert_eq!(
        (status, code),
        (StatusCode::CONFLICT, ErrorCode::RoomPending)
    );
    let again = app.reserve(&alice, "draft").await;
    let mut ws = app.ws(&again.ticket).await;
    let joined = next_joined(&mut ws).await;
    assert_eq!(joined.room.state, RoomState::Open);
    app.shutdown().await;
}

async fn cancelling_returns_the_permit_at_once(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "pub", 2).await;
    let bob = app.token("bob").await;
    app.reserve(&bob, "pub").await;
    assert_eq!(app.room("pub").await.reserved, 1);
    assert_eq!(
        app.cancel(&bob, "pub").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.room("pub").await.reserved, 0);
    let (status, code, _) = error_of(app.cancel(&bob, "pub").await).await;
    assert_eq!(
        (status, code),
        (StatusCode::NOT_FOUND, ErrorCode::ReservationNotFound)
    );
    // The seat went back: carol can take the last one.
    let carol = app.token("carol").await;
    app.reserve(&carol, "pub").await;
    app.shutdown().await;
}

async fn unconfirmed_reservations_are_reclaimed_after_their_ttl(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with_manual_clock()
            .with("admission.reservation_ttl_ms", 200)
            .with("admission.reaper_interval_ms", 50),
    )
    .await;
    let _alice = app.open_room("alice", "hall", 4).await;
    for user in ["bob", "carol", "dave"] {
        let token = app.token(user).await;
        app.reserve(&token, "hall").await;
    }
    assert_eq!(app.room("hall").await.reserved, 3);
    // Before their TTL, nothing is reclaimed however many reaper rounds pass.
    app.advance(Duration::from_millis(150));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.room("hall").await.reserved, 3);
    // Past it, reclaimed within a reaper interval (with slack for a loaded machine).
    app.advance(Duration::from_millis(100));
    let room = app
        .wait_for_room("hall", Duration::from_secs(3), |room| room.reserved == 0)
        .await;
    assert_eq!(room.attending, 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("roomgate_reaped_total{kind=\"reservation\"} 3"),
        "{metrics}"
    );
    app.shutdown().await;
}

async fn users_over_their_request_budget_get_429(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("limits.user_requests_per_second", 1)
            .with("limits.user_burst", 3),
    )
    .await;
    let alice = app.token("alice").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = app.reserve_raw(&alice, "nowhere", None).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").cloned();
            let (_, code, _) = error_of(response).await;
            assert_eq!(code, ErrorCode::RateLimited);
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    let wait: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another user has a budget of their own.
    let bob = app.token("bob").await;
    assert_eq!(
        app.reserve_raw(&bob, "nowhere", None).await.status(),
        StatusCode::NOT_FOUND
    );
    app.shutdown().await;
}
