//! Room creation and reads: validation, conflicts, pending rooms and their TTL, pagination.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, Backend, error_of, spawn_app_with, ticket_of};
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
    let body: Value = response.json().await.unwrap();
    let room = &body["room"];
    assert_eq!(room["id"], "rust-study");
    assert_eq!(room["title"], "Rust study");
    assert_eq!(room["capacity"], 4);
    assert_eq!(room["attending"], 0);
    assert_eq!(room["reserved"], 1);
    assert_eq!(room["has_password"], true);
    assert_eq!(room["state"], "pending");
    assert!(room["created_at"].as_str().unwrap().ends_with('Z'));
    let reservation = &body["reservation"];
    assert_eq!(reservation["room_id"], "rust-study");
    assert_eq!(reservation["user_id"], "alice");
    let ticket = ticket_of(reservation);
    assert!(ticket.len() >= 22, "at least 128 bits: {ticket}");
    assert_eq!(reservation["ws_url"], format!("/api/v1/ws?ticket={ticket}"));
    assert!(reservation["expires_at"].is_string());

    // Reads see it as pending, and the list (open rooms only) does not.
    let view = app.room("rust-study").await;
    assert_eq!(
        (
            view["state"].clone(),
            view["attending"].clone(),
            view["reserved"].clone()
        ),
        (json!("pending"), json!(0), json!(1))
    );
    let list: Value = app.get("/api/v1/rooms").await.json().await.unwrap();
    assert_eq!(list["rooms"], json!([]));
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
        assert_eq!(code, "invalid_request", "{body}");
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
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
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
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
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
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
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
        (status, code.as_str()),
        (StatusCode::CONFLICT, "room_exists")
    );
    assert_eq!(details["room_id"], "taken");
    assert_eq!(app.room("taken").await["title"], "Room taken");
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
        (status, code.as_str()),
        (StatusCode::CONFLICT, "room_pending")
    );
    // Reserving in it is refused the same way.
    let response = app.reserve_raw(&bob, "contested", None).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, code, _) = error_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "room_pending")
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
            StatusCode::ACCEPTED => winners.push(response.json::<Value>().await.unwrap()),
            StatusCode::CONFLICT => {
                let (_, code, _) = error_of(response).await;
                assert_eq!(code, "room_pending");
                conflicts += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 19));
    // The winner opens it; the creator recorded is the winner.
    let mut ws = app.ws(ticket_of(&winners[0]["reservation"])).await;
    let joined = crate::helpers::next_json(&mut ws).await;
    assert_eq!(
        joined["members"],
        json!([winners[0]["reservation"]["user_id"]])
    );
    app.shutdown().await;
}

async fn an_unconfirmed_room_leaves_no_row_and_can_be_created_again(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("admission.pending_room_ttl_ms", 300)
            .with("admission.reservation_ttl_ms", 300)
            .with("admission.reaper_interval_ms", 50),
    )
    .await;
    let alice = app.token("alice").await;
    let abandoned = app.create_room(&alice, "ghost-town", 3).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    // Gone from reads, and no row was ever written.
    assert_eq!(
        app.get("/api/v1/rooms/ghost-town").await.status(),
        StatusCode::NOT_FOUND
    );
    let db = roomgate_persistence::Database::connect(
        &app.database
            .settings(roomgate_persistence::JoinGuard::Conditional),
    )
    .await
    .unwrap();
    let id = roomgate_domain::RoomId::parse("ghost-town").unwrap();
    assert!(db.get_room(&id).await.unwrap().is_none());
    // The creator's late ticket opens nothing.
    let mut late = app.ws(ticket_of(&abandoned["reservation"])).await;
    assert_eq!(crate::helpers::expect_close(&mut late).await.0, 4002);
    assert!(db.get_room(&id).await.unwrap().is_none());

    // Anyone may create it again, and this time it opens.
    let bob = app.token("bob").await;
    let again = app.create_room(&bob, "ghost-town", 3).await;
    let mut ws = app.ws(ticket_of(&again["reservation"])).await;
    let joined = crate::helpers::next_json(&mut ws).await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"]["attending"], 1);
    assert_eq!(joined["room"]["reserved"], 0);
    app.shutdown().await;
}

async fn rooms_are_listed_by_id_a_page_at_a_time(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let mut sockets = Vec::new();
    for id in ["delta", "alpha", "charlie", "bravo", "echo"] {
        sockets.push(app.open_room(&format!("owner-{id}"), id, 3).await);
    }
    let page: Value = app.get("/api/v1/rooms?limit=2").await.json().await.unwrap();
    let ids = |page: &Value| -> Vec<String> {
        page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["alpha", "bravo"]);
    assert_eq!(page["next"], "bravo");
    assert_eq!(page["rooms"][0]["state"], "open");
    assert_eq!(page["rooms"][0]["attending"], 1);
    let page: Value = app
        .get("/api/v1/rooms?limit=2&after=bravo")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), ["charlie", "delta"]);
    let page: Value = app
        .get("/api/v1/rooms?limit=2&after=delta")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), ["echo"]);
    assert_eq!(page["next"], Value::Null);
    let all: Value = app.get("/api/v1/rooms").await.json().await.unwrap();
    assert_eq!(ids(&all).len(), 5);
    for bad in [
        "/api/v1/rooms?limit=0",
        "/api/v1/rooms?limit=101",
        "/api/v1/rooms?limit=x",
    ] {
        let (status, code, _) = error_of(app.get(bad).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
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
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "room_not_found")
    );
    let token = app.token("alice").await;
    let (status, code, _) = error_of(app.reserve_raw(&token, "nowhere", None).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "room_not_found")
    );
    app.shutdown().await;
}
