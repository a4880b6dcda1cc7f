//! A connection that ends without a close frame frees its seat at once, however it ends.
//!
//! Each round fills a room by a storm, then drops members' connections abruptly: with a FIN
//! (the client half-closes) or an RST (linger 0), after reading everything the server sent or
//! with frames still unread in its buffers. The heartbeat is set far beyond the test, so nothing
//! but the connection's end can free the seat: no ping, no frame, nothing else on the socket.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use roomgate_api::ReservationView;
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::MaybeTlsStream;

use crate::helpers::{
    AppOptions, Backend, TestApp, Ws, next_joined, say, send_frame, spawn_app_with,
};
use crate::on_both_databases;

on_both_databases!(two_hundred_abrupt_aborts_each_free_their_seat_within_500_ms);

const CAPACITY: u32 = 10;
/// Users racing for the room's seats in each round's storm.
const STORM: usize = 30;
/// Members dropped at once, twice per round.
const AT_ONCE: usize = 5;
const ROUNDS: usize = 20;
const WITHIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
enum Abort {
    /// The client shuts down its sending half: the server reads end-of-stream.
    Fin,
    /// The client closes with linger 0: the server's next read fails with ECONNRESET.
    Rst,
}

async fn two_hundred_abrupt_aborts_each_free_their_seat_within_500_ms(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("ws.heartbeat_interval_ms", 600_000)
            .with("ws.client_timeout_ms", 1_200_000),
    )
    .await;
    let mut aborted = 0;
    for round in 0..ROUNDS {
        let room = format!("aborts-{round}");
        let mut members = storm_into(&app, &room).await;
        // Alternate the four kinds of ending over the rounds, each with and without unread frames.
        let how = if round % 2 == 0 {
            Abort::Fin
        } else {
            Abort::Rst
        };
        let reading = round % 4 < 2;
        for wave in 0..2 {
            let mut leaving: Vec<Ws> = members.drain(..AT_ONCE).collect();
            let staying = members.len();
            if reading {
                // Everything the server sent has arrived and been read.
                tokio::time::sleep(Duration::from_millis(50)).await;
                drain_all(&mut leaving).await;
            } else {
                // One more message reaches everyone; the leaving clients never read it, so
                // their kernels hold unread bytes when the connections end.
                send_frame(&mut leaving[0], &say("unread")).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let started = Instant::now();
            let kept = abort_all(leaving, how).await;
            let view = app
                .wait_for_room(&room, Duration::from_secs(15), |view| {
                    view.attending as usize == staying && view.reserved == 0
                })
                .await;
            let took = started.elapsed();
            assert!(
                took <= WITHIN,
                "round {round} wave {wave} ({how:?}, reading: {reading}): {AT_ONCE} seats came back \
                 after {took:?}, not within {WITHIN:?}; room {view:?}"
            );
            drop(kept);
            aborted += AT_ONCE;
            drain_all(&mut members).await;
        }
        assert!(members.is_empty());
    }
    assert_eq!(aborted, 200);
}

/// `STORM` users race for the room's `CAPACITY` seats; exactly that many get one and join.
/// Returns the members' sockets, each past its `joined` frame.
async fn storm_into(app: &TestApp, room: &str) -> Vec<Ws> {
    let creator = app.token(&format!("{room}-creator")).await;
    let created = app.create_room(&creator, room, CAPACITY).await;
    let mut members = vec![app.ws(&created.reservation.ticket).await];
    next_joined(&mut members[0]).await;
    let mut tokens = Vec::new();
    for user in 0..STORM {
        tokens.push(app.token(&format!("{room}-u{user}")).await);
    }
    let attempts = tokens
        .iter()
        .map(|token| app.reserve_raw(token, room, None));
    let answers = futures_util::future::join_all(attempts).await;
    let mut tickets = Vec::new();
    for answer in answers {
        match answer.status() {
            StatusCode::CREATED => {
                let body: ReservationView = answer.json().await.unwrap();
                tickets.push(body.ticket);
            }
            StatusCode::CONFLICT => {}
            other => panic!("a storm reservation answered {other}"),
        }
    }
    assert_eq!(
        tickets.len(),
        CAPACITY as usize - 1,
        "exactly the free seats"
    );
    for ticket in &tickets {
        let mut ws = app.ws(ticket).await;
        next_joined(&mut ws).await;
        members.push(ws);
    }
    app.wait_for_room(room, Duration::from_secs(5), |view| {
        view.attending == CAPACITY && view.reserved == 0
    })
    .await;
    members
}

async fn drain_all(members: &mut [Ws]) {
    for ws in members {
        drain(ws).await;
    }
}

/// Reads every frame that has already arrived.
async fn drain(ws: &mut Ws) {
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(5), ws.next()).await {
        frame.expect("the socket is healthy");
    }
}

/// Ends every connection at once without a close frame. A half-closed socket is returned to be
/// kept open until the seat is seen free, so that the server sees only its FIN.
async fn abort_all(sockets: Vec<Ws>, how: Abort) -> Vec<Ws> {
    let mut kept = Vec::new();
    for mut ws in sockets {
        let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
            panic!("tests connect without TLS");
        };
        match how {
            Abort::Fin => {
                tcp.shutdown().await.expect("the write half shuts down");
                kept.push(ws);
            }
            Abort::Rst => {
                tcp.set_zero_linger().unwrap();
                drop(ws);
            }
        }
    }
    kept
}
