//! Room events over the wire: one per membership change, in a gapless order, with the reason a
//! member left, paged by `seq`; with Redis, relayed to the room's stream in order.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use roomgate_api::{ClientFrame, CloseCode, ErrorCode, Event, EventPage, EventType, LeaveReason};
use tokio_tungstenite::MaybeTlsStream;

use crate::fixtures::Process;
use crate::helpers::{
    AppOptions, Backend, TestApp, Ws, error_of, expect_close, send_frame, spawn_app_with,
    test_database,
};
use crate::multinode::{RedisPrefix, redis_url, start_nodes};
use crate::on_both_databases;

on_both_databases!(
    every_ending_is_an_event_with_its_reason,
    events_page_by_seq_and_refuse_bad_queries,
);

async fn events(app: &TestApp, room: &str, query: &str) -> reqwest::Response {
    let token = app.token("reader").await;
    app.client
        .get(app.url(&format!("/api/v1/rooms/{room}/events{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn all_events(app: &TestApp, room: &str) -> Vec<Event> {
    let response = events(app, room, "?limit=1000").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<EventPage>().await.unwrap().events
}

/// Polls until the room has `count` events.
async fn wait_for_events(app: &TestApp, room: &str, count: usize) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_events(app, room).await;
        if events.len() >= count {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "room {room} has {} events, expected {count}: {events:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Keeps answering the server's pings on `ws` in the background.
fn keep_alive(mut ws: Ws) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} })
}

async fn every_ending_is_an_event_with_its_reason(backend: Backend) {
    let app = spawn_app_with(
        AppOptions::new(backend)
            .with("ws.heartbeat_interval_ms", 300)
            .with("ws.client_timeout_ms", 1200)
            .with("node.reconcile_interval_ms", 200),
    )
    .await;
    let alice = app.open_room("alice", "lifecycle", 5).await;
    let _alice = keep_alive(alice);

    let (mut bob, _) = app.join("bob", "lifecycle").await;
    send_frame(&mut bob, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut bob).await.0, CloseCode::Left.code());

    let (mut carol, _) = app.join("carol", "lifecycle").await;
    if let MaybeTlsStream::Plain(tcp) = carol.get_mut() {
        tcp.set_zero_linger().unwrap();
    }
    drop(carol);
    // Carol's departure is recorded before dave arrives, so the order below is the only one.
    wait_for_events(&app, "lifecycle", 6).await;

    // Dave stops reading, so he answers no ping and times out.
    let (dave, _) = app.join("dave", "lifecycle").await;

    let expected = [
        (EventType::RoomOpened, "alice", 0, None),
        (EventType::MemberJoined, "alice", 1, None),
        (EventType::MemberJoined, "bob", 2, None),
        (EventType::MemberLeft, "bob", 1, Some(LeaveReason::Left)),
        (EventType::MemberJoined, "carol", 2, None),
        (
            EventType::MemberLeft,
            "carol",
            1,
            Some(LeaveReason::Disconnected),
        ),
        (EventType::MemberJoined, "dave", 2, None),
        (
            EventType::MemberLeft,
            "dave",
            1,
            Some(LeaveReason::TimedOut),
        ),
    ];
    let seen = wait_for_events(&app, "lifecycle", expected.len()).await;
    drop(dave);
    let seen: Vec<_> = seen
        .iter()
        .map(|event| {
            (
                event.kind,
                event.user_id.as_str(),
                event.attending,
                event.reason,
            )
        })
        .collect();
    assert_eq!(seen, expected);
    let all = all_events(&app, "lifecycle").await;
    let seqs: Vec<u64> = all.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "gapless from 1");
    assert!(all.iter().all(|event| event.room_id == "lifecycle"));

    // A row no session holds is reclaimed by the node's reconciliation, and says so.
    let url = app.database.url().to_owned();
    crate::failures::execute(
        backend,
        &url,
        "INSERT INTO participants (room_id, user_id, node_id, joined_at) \
         SELECT room_id, 'ghost', node_id, joined_at FROM participants WHERE user_id = 'alice'",
    )
    .await;
    crate::failures::execute(
        backend,
        &url,
        "UPDATE rooms SET attending = attending + 1 WHERE id = 'lifecycle'",
    )
    .await;
    let reclaimed = wait_for_events(&app, "lifecycle", 9).await;
    let ghost = &reclaimed[8];
    assert_eq!(
        (ghost.kind, ghost.user_id.as_str(), ghost.reason),
        (EventType::MemberLeft, "ghost", Some(LeaveReason::Reclaimed))
    );

    // A graceful shutdown records why alice left; a server started afterwards shows it.
    let database_url = app.database.url().to_owned();
    let mut app = app;
    app.stop().await;
    let restarted =
        spawn_app_with(AppOptions::new(backend).with("database.url", &database_url)).await;
    let after = all_events(&restarted, "lifecycle").await;
    let last = after.last().unwrap();
    assert_eq!(
        (
            last.seq,
            last.kind,
            last.user_id.as_str(),
            last.attending,
            last.reason
        ),
        (
            10,
            EventType::MemberLeft,
            "alice",
            0,
            Some(LeaveReason::Shutdown)
        )
    );
    restarted.shutdown().await;
    drop(app);
}

async fn events_page_by_seq_and_refuse_bad_queries(backend: Backend) {
    let app = spawn_app_with(AppOptions::new(backend)).await;
    let _alice = app.open_room("alice", "paged", 10).await;
    let mut members = Vec::new();
    for user in ["bob", "carol", "dave"] {
        members.push(app.join(user, "paged").await.0);
    }
    // 2 (opened, alice joined) + 3 joins = 5 events.
    let first: EventPage = events(&app, "paged", "?limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        first.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(first.next, Some(2));
    let second: EventPage = events(&app, "paged", "?after=2&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        second.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    let last: EventPage = events(&app, "paged", "?after=4&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
    assert_eq!(last.next, None);
    let beyond: EventPage = events(&app, "paged", "?after=99")
        .await
        .json()
        .await
        .unwrap();
    assert!(beyond.events.is_empty());

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?after=-1", ""),
    ] {
        let (status, code, details) = error_of(events(&app, "paged", query).await).await;
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            "{query}"
        );
        if !field.is_empty() {
            assert_eq!(details["field"], field, "{query}");
        }
    }
    let (status, code, _) = error_of(events(&app, "nowhere", "").await).await;
    assert_eq!(
        (status, code),
        (StatusCode::NOT_FOUND, ErrorCode::RoomNotFound)
    );
    let anonymous = app
        .client
        .get(app.url("/api/v1/rooms/paged/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A pending room has no events yet, and is not unknown.
    let erin = app.token("erin").await;
    app.create_room(&erin, "draft", 2).await;
    let pending: EventPage = events(&app, "draft", "").await.json().await.unwrap();
    assert!(pending.events.is_empty());
    drop(members);
    app.shutdown().await;
}

/// Reads a room's whole stream: the events of its entries, in stream order.
async fn stream_of(prefix: &RedisPrefix, room: &str) -> Vec<Event> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}events:{{{room}}}", prefix.0))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries
        .iter()
        .map(|(_, fields)| {
            Event::from_stream_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .expect("every entry is an event")
        })
        .collect()
}

/// Two nodes relay at once, and one is killed while events keep coming: after dropping
/// duplicates by `seq` the stream holds every event of the room, in order, none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relaying_nodes_one_killed_leave_every_event_in_order() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let mut nodes: Vec<Process> = start_nodes(
        2,
        database.url(),
        &redis_url(),
        &prefix,
        &[("events.relay_interval_ms", "20".to_owned())],
    )
    .await;
    let created = crate::multinode::create_room(&nodes[0], "alice", "streamed", 50).await;
    let _alice = nodes[0].connect(&created.reservation.ticket).await;
    let mut visits = 0;
    for round in 0..40 {
        if round == 20 {
            let doomed = nodes.pop().unwrap();
            doomed.signal("KILL");
        }
        let node = &nodes[round % nodes.len()];
        let user = format!("u{round}");
        let mut ws = crate::multinode::join(node, node, &user, "streamed").await;
        send_frame(&mut ws, &ClientFrame::Leave).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        visits += 1;
    }
    // opened + alice + a join and a leave per visit; the killed node's members (none by then)
    // would add their own.
    let expected = 2 + 2 * visits;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let firsts = loop {
        let stream = stream_of(&prefix, "streamed").await;
        let mut firsts: Vec<Event> = Vec::new();
        for event in stream {
            match firsts.last() {
                Some(last) if event.seq <= last.seq => {
                    // A duplicate: the same event, relayed twice.
                    let original = firsts.iter().find(|seen| seen.seq == event.seq);
                    assert_eq!(original, Some(&event), "a duplicate carries the same event");
                }
                _ => firsts.push(event),
            }
        }
        if firsts.len() >= expected as usize {
            break firsts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream has {} of {expected} events",
            firsts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seqs: Vec<u64> = firsts.iter().map(|event| event.seq).collect();
    assert_eq!(
        seqs,
        (1..=expected).collect::<Vec<_>>(),
        "every event, in order"
    );
    prefix.cleanup(nodes).await;
}
