//! The real `roomgate` binary: `kill -9` then restart leaves no phantom members, and SIGTERM
//! closes every session with 1001, leaves every room and exits 0.

use roomgate_api::CloseCode;

use crate::fixtures::Process;
use crate::helpers::{Backend, expect_close, test_database};
use crate::on_both_databases;

on_both_databases!(
    a_restart_after_kill_9_reclaims_every_member,
    sigterm_closes_sessions_with_1001_and_exits_0,
);

async fn attending_in_database(database_url: &str, room: &str) -> u32 {
    let settings = roomgate_persistence::DatabaseSettings {
        url: database_url.to_owned(),
        ..Default::default()
    };
    let db = roomgate_persistence::Database::connect(&settings)
        .await
        .unwrap();
    let room = roomgate_domain::RoomId::parse(room).unwrap();
    let record = db
        .get_room(&room)
        .await
        .unwrap()
        .expect("the room row exists");
    assert_eq!(
        db.members(&room).await.unwrap().len() as u32,
        record.attending,
        "attending equals the participant rows"
    );
    record.attending
}

async fn a_restart_after_kill_9_reclaims_every_member(backend: Backend) {
    let database = test_database(backend).await;
    let mut first = Process::start(database.url()).await;
    let sockets = first.fill("survivors", "alice", &["bob", "carol"]).await;
    assert_eq!(first.room("survivors").await.attending, 3);

    first.signal("KILL");
    assert!(!first.wait().await.success());
    drop(sockets);
    // The dead process could not clean up: its members are still recorded.
    assert_eq!(attending_in_database(database.url(), "survivors").await, 3);

    let second = Process::start(database.url()).await;
    let room = second.room("survivors").await;
    assert_eq!((room.attending, room.reserved), (0, 0));
    // And the room works: all ten seats are free.
    let _sockets = second.fill("another", "dave", &[]).await;
    let token = second.token("erin").await;
    let reserved = second
        .api
        .reserve(&token, "survivors", &Default::default())
        .await
        .unwrap();
    assert!(reserved.fresh, "a fresh reservation (201)");
}

async fn sigterm_closes_sessions_with_1001_and_exits_0(backend: Backend) {
    let database = test_database(backend).await;
    let mut server = Process::start(database.url()).await;
    let mut sockets = server.fill("farewell", "alice", &["bob", "carol"]).await;
    server.signal("TERM");
    for ws in &mut sockets {
        let (code, _) = expect_close(ws).await;
        assert_eq!(code, CloseCode::GoingAway.code());
    }
    let status = server.wait().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(attending_in_database(database.url(), "farewell").await, 0);
}
