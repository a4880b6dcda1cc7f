//! Several `roomgate` processes sharing one MariaDB database and one Redis: the same contract
//! and the same guarantees as a single node.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use roomgate_api::client::ClientError;
use roomgate_api::{
    CloseCode, CreateRoomRequest, CreatedRoom, ErrorCode, PresenceEvent, RoomView, ServerFrame,
};
use serde_json::json;

use crate::fixtures::{Process, redis_upstream};
use crate::helpers::{
    Backend, Ws, error_of, next_frame, next_message, next_presence, say, send_frame, test_database,
};
use roomgate_faults::{Fault, Relay};

pub fn redis_url() -> String {
    std::env::var("ROOMGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh key prefix in the test Redis; `cleanup` deletes it at the end of a test.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(format!("rgtest:{:016x}:", rand::random::<u64>()))
    }

    /// Stops `nodes` (so that none writes again) and deletes every key of this prefix.
    pub async fn cleanup(&self, nodes: Vec<Process>) {
        for mut node in nodes {
            node.signal("KILL");
            let _ = node.wait().await;
        }
        let client = redis::Client::open(redis_url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query_async(&mut connection)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
}

/// Starts `count` nodes over `database_url` sharing `prefix` in the Redis at `redis`, with
/// short liveness intervals so that a dead node is noticed in about a second and a half, and
/// any `extra` settings after those (a later setting of the same key wins).
pub async fn start_nodes(
    count: usize,
    database_url: &str,
    redis: &str,
    prefix: &RedisPrefix,
    extra: &[(&str, String)],
) -> Vec<Process> {
    let mut settings = vec![
        ("redis.url", redis.to_owned()),
        ("redis.key_prefix", prefix.0.clone()),
        ("redis.connect_timeout_ms", "500".to_owned()),
        ("redis.response_timeout_ms", "1000".to_owned()),
        ("node.heartbeat_interval_ms", "200".to_owned()),
        ("node.lease_ms", "1500".to_owned()),
        ("admission.reaper_interval_ms", "200".to_owned()),
        ("database.max_connections", "6".to_owned()),
        ("limits.user_requests_per_second", "10000".to_owned()),
        ("limits.user_burst", "10000".to_owned()),
    ];
    settings.extend(extra.iter().cloned());
    join_all((0..count).map(|_| Process::start_with(database_url, &settings))).await
}

pub async fn create_room(node: &Process, creator: &str, room: &str, capacity: u32) -> CreatedRoom {
    let token = node.token(creator).await;
    let request = CreateRoomRequest {
        id: room.to_owned(),
        title: "Shared".to_owned(),
        capacity,
        password: None,
    };
    node.api
        .create_room(&token, &request)
        .await
        .expect("the room is created (202)")
}

async fn reserve(node: &Process, token: &str, room: &str) -> reqwest::Response {
    node.client
        .post(format!("{}/api/v1/rooms/{room}/reservations", node.address))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

/// Reserves on `reserve_on` and confirms on `confirm_on`.
pub async fn join(reserve_on: &Process, confirm_on: &Process, user: &str, room: &str) -> Ws {
    let token = reserve_on.token(user).await;
    let response = reserve(reserve_on, &token, room).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{user} reserves");
    let reservation: roomgate_api::ReservationView = response.json().await.unwrap();
    confirm_on.connect(&reservation.ticket).await
}

/// Waits (bounded) until `room` as read on `node` satisfies `done`.
pub async fn wait_for_room(
    node: &Process,
    room: &str,
    what: &str,
    done: impl Fn(&RoomView) -> bool,
) -> RoomView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let view = node.room(room).await;
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: room stayed {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_spread_over_three_nodes_admit_exactly_the_free_seats() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(3, database.url(), &redis_url(), &prefix, &[]).await;

    // Created on node 0, opened by its creator's WebSocket on node 1.
    let created = create_room(&nodes[0], "alice", "shared", 25).await;
    let _alice = nodes[1].connect(&created.reservation.ticket).await;

    let all = &nodes;
    let users: Vec<String> = (0..600).map(|i| format!("user{i}")).collect();
    let tokens = join_all(
        users
            .iter()
            .enumerate()
            .map(|(i, user)| all[i % 3].token(user)),
    )
    .await;
    let outcomes = join_all(tokens.iter().enumerate().map(|(i, token)| async move {
        let outcome = all[i % 3]
            .api
            .reserve(token, "shared", &Default::default())
            .await;
        (i, outcome)
    }))
    .await;
    let admitted: Vec<_> = outcomes
        .iter()
        .filter_map(|(i, outcome)| match outcome {
            Ok(reserved) if reserved.fresh => Some((*i, &reserved.reservation)),
            _ => None,
        })
        .collect();
    let full = outcomes
        .iter()
        .filter(|(_, outcome)| {
            matches!(
                outcome,
                Err(ClientError::Refused { status: 409, body })
                    if body.error.code == ErrorCode::RoomFull
            )
        })
        .count();
    assert_eq!(
        (admitted.len(), full),
        (24, 576),
        "exactly the 24 free seats are reserved"
    );
    let view = all[2].room("shared").await;
    assert_eq!((view.attending, view.reserved), (1, 24));

    // Every ticket confirms on a different node than the one that issued it.
    let sockets = join_all(
        admitted
            .iter()
            .map(|(i, reservation)| all[(i + 1) % 3].connect(&reservation.ticket)),
    )
    .await;
    assert_eq!(sockets.len(), 24);
    for node in all {
        let view = node.room("shared").await;
        assert_eq!((view.attending, view.reserved), (25, 0));
    }
    let late = all[0].token("late").await;
    let response = reserve(&all[0], &late, "shared").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    drop(sockets);
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_sent_on_one_node_reaches_members_on_the_others() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(3, database.url(), &redis_url(), &prefix, &[]).await;

    let created = create_room(&nodes[0], "alice", "lobby", 5).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    let mut bob = join(&nodes[1], &nodes[1], "bob", "lobby").await;
    let mut carol = join(&nodes[2], &nodes[2], "carol", "lobby").await;

    // Presence crosses nodes too (alice also hears of her own arrival first).
    let mut arrivals = Vec::new();
    while arrivals.len() < 3 {
        let seen = next_presence(&mut alice).await;
        assert_eq!(seen.event, PresenceEvent::Joined);
        arrivals.push(seen.user_id);
    }
    assert_eq!(arrivals, ["alice", "bob", "carol"]);

    send_frame(&mut bob, &say("hello from node 1")).await;
    let mut ids = Vec::new();
    for socket in [&mut alice, &mut bob, &mut carol] {
        let message = next_message(socket).await;
        assert_eq!(message.user_id, "bob");
        assert_eq!(message.body, "hello from node 1");
        ids.push(message.id);
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one stored message: {ids:?}"
    );

    // Messages from one node arrive everywhere in the order the database assigned their ids.
    for n in 0..20 {
        send_frame(&mut carol, &say(&format!("m{n}"))).await;
    }
    let mut last = 0;
    for n in 0..20 {
        let message = next_message(&mut alice).await;
        assert_eq!(message.body, format!("m{n}"));
        let id = message.id;
        assert!(id > last, "ids increase");
        last = id;
    }
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_gives_its_seats_back_within_the_lease_and_its_rooms_hear_of_it() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let mut nodes = start_nodes(2, database.url(), &redis_url(), &prefix, &[]).await;

    let created = create_room(&nodes[0], "alice", "fragile", 3).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    let _bob = join(&nodes[0], &nodes[1], "bob", "fragile").await;
    let _carol = join(&nodes[0], &nodes[1], "carol", "fragile").await;
    let view = nodes[0].room("fragile").await;
    assert_eq!(view.attending, 3);
    let refused = reserve(&nodes[0], &nodes[0].token("dave").await, "fragile").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    let doomed = nodes.pop().unwrap();
    doomed.signal("KILL");

    // The survivor reclaims both memberships and both Redis seats, and tells alice.
    let mut left = Vec::new();
    while left.len() < 2 {
        let presence = tokio::time::timeout(Duration::from_secs(15), next_presence(&mut alice))
            .await
            .expect("the room hears that the dead node's members left");
        if presence.event == PresenceEvent::Left {
            left.push(presence.user_id);
        }
    }
    left.sort();
    assert_eq!(left, ["bob", "carol"]);
    wait_for_room(&nodes[0], "fragile", "seats come back", |v| {
        v.attending == 1 && v.reserved == 0
    })
    .await;

    // The seats are really free: two newcomers get them, a third does not.
    let _dave = join(&nodes[0], &nodes[0], "dave", "fragile").await;
    let _erin = join(&nodes[0], &nodes[0], "erin", "fragile").await;
    let refused = reserve(&nodes[0], &nodes[0].token("frank").await, "fragile").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_answers_503_keeps_local_chat_going_and_recovers_without_a_restart() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let relay = Relay::start(redis_upstream().await).await.unwrap();
    let relayed = format!("redis://{}", relay.address());
    let nodes = start_nodes(2, database.url(), &relayed, &prefix, &[]).await;

    let created = create_room(&nodes[0], "alice", "steady", 5).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    let mut bob = join(&nodes[1], &nodes[0], "bob", "steady").await;
    let _ = next_presence(&mut alice).await;

    relay.set(Fault::Cut);
    let carol = nodes[1].token("carol").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = reserve(&nodes[1], &carol, "steady").await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let (_, code, _) = error_of(response).await;
            assert_eq!(code, ErrorCode::Unavailable);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservations never noticed redis gone: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = nodes[1]
        .client
        .get(format!("{}/readyz", nodes[1].address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Alice and bob share node 0: they keep chatting while Redis is away.
    send_frame(&mut alice, &say("still here")).await;
    let message = next_message(&mut bob).await;
    assert_eq!(message.body, "still here");

    // Redis comes back on the same address; no restart.
    relay.set(Fault::None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = reserve(&nodes[1], &carol, "steady").await;
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservations never recovered: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing lost or doubled: alice and bob still hold their seats, carol holds one more.
    for node in &nodes {
        let view = node.room("steady").await;
        assert_eq!((view.attending, view.reserved), (2, 1));
    }
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_paused_past_its_lease_closes_its_sessions_when_it_wakes() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(2, database.url(), &redis_url(), &prefix, &[]).await;

    let created = create_room(&nodes[0], "alice", "pausing", 2).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    let mut bob = join(&nodes[1], &nodes[1], "bob", "pausing").await;

    // Node 1 stops (a long GC pause, a frozen VM): its lease runs out and node 0 gives bob's
    // seat away.
    nodes[1].signal("STOP");
    loop {
        let presence = tokio::time::timeout(Duration::from_secs(15), next_presence(&mut alice))
            .await
            .expect("the survivor reclaims the paused node's member");
        if presence.event == PresenceEvent::Left && presence.user_id == "bob" {
            break;
        }
    }
    wait_for_room(&nodes[0], "pausing", "bob's seat comes back", |v| {
        v.attending == 1 && v.reserved == 0
    })
    .await;
    let _carol = join(&nodes[0], &nodes[0], "carol", "pausing").await;

    // When node 1 wakes, Redis no longer knows it: it must not keep bob in a room that is
    // already full without him.
    nodes[1].signal("CONT");
    let (code, _) = crate::helpers::expect_close(&mut bob).await;
    assert_eq!(code, CloseCode::GoingAway.code());
    // Bob's departure was announced once, when his seat was reclaimed. Node 1's own cleanup of
    // bob runs right after the close; give a second announcement time to arrive, then check
    // that alice's next message comes with none before it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send_frame(&mut alice, &say("after")).await;
    loop {
        match next_frame(&mut alice).await {
            ServerFrame::Presence(presence) => assert_ne!(
                presence.user_id, "bob",
                "bob's departure is announced once: {presence:?}"
            ),
            ServerFrame::Message(_) => break,
            _ => {}
        }
    }
    let view = nodes[0].room("pausing").await;
    assert_eq!((view.attending, view.reserved), (2, 0));
    prefix.cleanup(nodes).await;
}

/// A joined seat in Redis that names a live node but no session of it (as a release lost with
/// a crashed task would leave) is given back by that node's reconciliation, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_seat_no_session_holds_is_given_back_by_its_node() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(
        1,
        database.url(),
        &redis_url(),
        &prefix,
        &[("node.reconcile_interval_ms", "200".to_owned())],
    )
    .await;
    let created = create_room(&nodes[0], "alice", "haunted", 2).await;
    let _alice = nodes[0].connect(&created.reservation.ticket).await;
    let node_id = crate::helpers::node_of(database.url(), "alice").await;

    // A ghost's joined seat on alice's node fills the room's second seat.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let seats = format!("{}{{haunted}}:seats", prefix.0);
    let _: () = redis::pipe()
        .hset(&seats, "ghost", format!("J\t12345\t{node_id}\tlost-ticket"))
        .hincr(&seats, "!j", 1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let bob = nodes[0].token("bob").await;
    let refused = reserve(&nodes[0], &bob, "haunted").await;
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "the ghost holds the seat"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = reserve(&nodes[0], &bob, "haunted").await;
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ghost's seat was never given back: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ghost: Option<String> = redis::cmd("HGET")
        .arg(&seats)
        .arg("ghost")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ghost, None);
    prefix.cleanup(nodes).await;
}
