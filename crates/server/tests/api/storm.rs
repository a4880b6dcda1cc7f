//! The storm: many users race for the few free seats of one room.

use futures_util::future::join_all;
use reqwest::StatusCode;
use roomgate_api::{ErrorCode, ReservationView};

use crate::helpers::{AppOptions, Backend, error_of, next_joined, spawn_app_with};
use crate::on_both_databases;

on_both_databases!(three_hundred_reservations_for_nine_seats);

const CONTENDERS: usize = 300;
const CAPACITY: u32 = 10;

async fn three_hundred_reservations_for_nine_seats(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    // The creator takes the first of the ten seats; nine are free.
    let _creator = app.open_room("creator", "arena", CAPACITY).await;
    let mut tokens = Vec::with_capacity(CONTENDERS);
    for i in 0..CONTENDERS {
        tokens.push(app.token(&format!("fan{i}")).await);
    }

    let responses = join_all(
        tokens
            .iter()
            .map(|token| app.reserve_raw(token, "arena", None)),
    )
    .await;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => admitted.push(response.json::<ReservationView>().await.unwrap()),
            StatusCode::CONFLICT => {
                assert_eq!(error_of(response).await.1, ErrorCode::RoomFull);
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let free = CAPACITY as usize - 1;
    assert_eq!((admitted.len(), refused), (free, CONTENDERS - free));
    let room = app.room("arena").await;
    assert_eq!((room.attending as usize, room.reserved as usize), (1, free));

    // Every admitted reservation confirms, all at once.
    let joins = admitted.iter().map(|reservation| async {
        let mut ws = app.ws(&reservation.ticket).await;
        // Fails the test unless the first frame is `joined`.
        let joined = next_joined(&mut ws).await;
        (ws, joined)
    });
    let sessions = join_all(joins).await;
    assert_eq!(sessions.len(), free);
    let room = app.room("arena").await;
    assert_eq!((room.attending, room.reserved), (CAPACITY, 0));

    // Nobody else gets in afterwards.
    let late = app.token("latecomer").await;
    assert_eq!(
        error_of(app.reserve_raw(&late, "arena", None).await)
            .await
            .1,
        ErrorCode::RoomFull
    );
    app.shutdown().await;
}
