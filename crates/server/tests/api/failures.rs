//! The database failing under a running server: joins fail with 4500 and give the permit
//! back, REST answers 503, and the server recovers when the database does.

use std::time::Duration;

use reqwest::StatusCode;
use roomgate_api::{CloseCode, ErrorCode, PresenceEvent, PresenceFrame};

use crate::fixtures::{mysql_upstream, relayed_mysql_url};
use crate::helpers::{
    AppOptions, Backend, error_of, expect_close, next_joined, next_presence, permits_held,
    spawn_app_with, test_database,
};
use crate::on_both_databases;
use roomgate_faults::{Fault, Relay};

on_both_databases!(
    a_join_the_database_cannot_commit_closes_with_4500_and_returns_the_permit,
    a_row_no_session_holds_is_removed_and_announced_without_a_restart,
);

/// Runs one SQL statement against the test database, behind the server's back.
pub async fn execute(backend: Backend, url: &str, sql: &str) {
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    match backend {
        Backend::Mysql => {
            let mut conn = diesel_async::AsyncMysqlConnection::establish(url)
                .await
                .unwrap();
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let mut conn = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
                diesel::SqliteConnection,
            >::establish(path)
            .await
            .unwrap();
            // The server holds the same file open and may be writing: wait for its lock rather
            // than fail with "database is locked".
            diesel::sql_query("PRAGMA busy_timeout = 10000")
                .execute(&mut conn)
                .await
                .unwrap();
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

async fn a_join_the_database_cannot_commit_closes_with_4500_and_returns_the_permit(
    backend: Backend,
) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "fragile", 3).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "fragile").await;
    assert_eq!(
        permits_held(&app.get("/metrics").await.text().await.unwrap()),
        2
    );

    // The membership table disappears between phase 1 and phase 2.
    let url = app.database.url().to_owned();
    execute(
        backend,
        &url,
        "ALTER TABLE participants RENAME TO participants_away",
    )
    .await;
    let mut ws = app.ws(&reservation.ticket).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (CloseCode::JoinFailed.code(), "join_failed".to_owned())
    );
    assert_eq!(
        permits_held(&app.get("/metrics").await.text().await.unwrap()),
        1,
        "bob's permit is back; alice keeps hers"
    );

    // Once the database is whole again, bob can reserve and join.
    execute(
        backend,
        &url,
        "ALTER TABLE participants_away RENAME TO participants",
    )
    .await;
    let (_bob, joined) = app.join("bob", "fragile").await;
    assert_eq!(joined.room.attending, 2);
    app.shutdown().await;
}

/// The reconciliation's net: a participant row of this node that no session holds (as a task
/// cancelled between the commit and its session would leave) is removed and announced.
async fn a_row_no_session_holds_is_removed_and_announced_without_a_restart(backend: Backend) {
    let app =
        spawn_app_with(AppOptions::new(backend).with("node.reconcile_interval_ms", 200)).await;
    let mut alice = app.open_room("alice", "haunted", 3).await;
    let url = app.database.url().to_owned();
    // A ghost on alice's node, counted in `attending`, with no session behind it.
    execute(
        backend,
        &url,
        "INSERT INTO participants (room_id, user_id, node_id, joined_at) \
         SELECT room_id, 'ghost', node_id, joined_at FROM participants WHERE user_id = 'alice'",
    )
    .await;
    execute(
        backend,
        &url,
        "UPDATE rooms SET attending = attending + 1 WHERE id = 'haunted'",
    )
    .await;

    let left = loop {
        let presence = next_presence(&mut alice).await;
        if presence.event == PresenceEvent::Left {
            break presence;
        }
    };
    assert_eq!(
        left,
        PresenceFrame {
            event: PresenceEvent::Left,
            user_id: "ghost".to_owned(),
            attending: 1
        }
    );
    let view = app.room("haunted").await;
    assert_eq!((view.attending, view.reserved), (1, 0));
    // Alice's own seat, which her session holds, was left alone.
    let (_bob, joined) = app.join("bob", "haunted").await;
    assert_eq!(joined.members, ["alice", "bob"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_the_server_recovers() {
    let database = test_database(Backend::Mysql).await;
    let url = database.url().to_owned();
    let relay = Relay::start(mysql_upstream(&url).await).await.unwrap();
    let relayed = relayed_mysql_url(&url, &relay);

    let app = spawn_app_with(
        AppOptions::new(Backend::Mysql)
            .with("database.url", &relayed)
            .with("database.connect_timeout_ms", 500)
            .with("database.acquire_timeout_ms", 1000),
    )
    .await;
    let _alice = app.open_room("alice", "remote", 3).await;
    let bob = app.token("bob").await;
    let reservation = app.reserve(&bob, "remote").await;

    relay.set(Fault::Cut);
    // Relayed connections close as their tasks wind down; readiness notices within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get("/readyz").await.status() != StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never reported the database gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let carol = app.token("carol").await;
    let (status, code, _) = error_of(app.reserve_raw(&carol, "remote", None).await).await;
    assert_eq!(
        (status, code),
        (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
    );
    let mut ws = app.ws(&reservation.ticket).await;
    assert_eq!(expect_close(&mut ws).await.0, CloseCode::JoinFailed.code());

    // The database comes back on the same address.
    relay.set(Fault::None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.get("/readyz").await.status() != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reservation = app.reserve(&carol, "remote").await;
    let mut ws = app.ws(&reservation.ticket).await;
    let joined = next_joined(&mut ws).await;
    assert!(joined.members.iter().any(|member| member == "carol"));
    drop(database);
    app.shutdown().await;
}
