//! Phase 1 for a room this node has seen asks the database nothing, unless the database has
//! stopped answering: then a reservation answers 503 rather than promise a seat.

use std::time::Duration;

use reqwest::StatusCode;
use roomgate_faults::{Fault, Relay};

use crate::failures::execute;
use crate::fixtures::{mysql_upstream, relayed_mysql_url};
use crate::helpers::{AppOptions, Backend, error_of, spawn_app_with, test_database};
use crate::on_both_databases;

on_both_databases!(a_reservation_for_a_seen_room_reads_nothing);

async fn a_reservation_for_a_seen_room_reads_nothing(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "seen", 3).await;
    // The rooms table goes away behind the server's back: any read of it would fail.
    let url = app.database.url().to_owned();
    execute(backend, &url, "ALTER TABLE rooms RENAME TO rooms_away").await;
    let bob = app.token("bob").await;
    let response = app.reserve_raw(&bob, "seen", None).await;
    assert_eq!(response.status(), StatusCode::CREATED, "no read was needed");
    // A room it has not seen still needs the read, which now fails.
    let carol = app.token("carol").await;
    let response = app.reserve_raw(&carol, "unseen", None).await;
    assert!(response.status().is_server_error() || response.status() == StatusCode::NOT_FOUND);
    execute(backend, &url, "ALTER TABLE rooms_away RENAME TO rooms").await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seen_room_answers_503_while_the_database_is_unreachable() {
    let database = test_database(Backend::Mysql).await;
    let url = database.url().to_owned();
    let relay = Relay::start(mysql_upstream(&url).await).await.unwrap();
    let relayed = relayed_mysql_url(&url, &relay);
    let app = spawn_app_with(
        AppOptions::new(Backend::Mysql)
            .with("database.url", &relayed)
            .with("database.connect_timeout_ms", 300)
            .with("database.acquire_timeout_ms", 500)
            .with("node.reconcile_interval_ms", 100),
    )
    .await;
    let _alice = app.open_room("alice", "remote", 3).await;
    let bob = app.token("bob").await;

    relay.set(Fault::Cut);
    // The node's own periodic work (its reconciliation) finds the database gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.reserve_raw(&bob, "remote", None).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let (_, code, _) = error_of(response).await;
            assert_eq!(code, roomgate_api::ErrorCode::Unavailable);
            break;
        }
        // Until it notices, the seat is held from the catalog; give it back.
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            app.cancel(&bob, "remote").await.status(),
            StatusCode::NO_CONTENT
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservations never noticed the database gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    relay.set(Fault::None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.reserve_raw(&bob, "remote", None).await.status() != StatusCode::CREATED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservations never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(database);
    app.shutdown().await;
}
