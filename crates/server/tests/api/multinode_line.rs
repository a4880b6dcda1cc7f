//! The waiting line across nodes over Redis: the head is seated wherever its socket is, by
//! whichever node frees the seat, and a dead node's waiters leave the line with its lease.

use std::time::Duration;

use reqwest::StatusCode;
use roomgate_api::{ClientFrame, QueueView, ServerFrame, WaitingFrame};
use serde_json::json;

use crate::fixtures::Process;
use crate::helpers::{Backend, Ws, expect_close, next_frame, send_frame, test_database};
use crate::multinode::{RedisPrefix, create_room, redis_url, start_nodes, wait_for_room};

/// Takes a place through `rest` and opens its waiting socket on `socket_on`; returns the socket
/// past its first waiting frame, which must say `position`.
async fn wait_in_line(
    rest: &Process,
    socket_on: &Process,
    user: &str,
    room: &str,
    position: u32,
) -> Ws {
    let token = rest.token(user).await;
    let response = rest
        .client
        .post(format!("{}/api/v1/rooms/{room}/reservations", rest.address))
        .bearer_auth(&token)
        .json(&json!({"wait": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{user} takes a place"
    );
    let place: QueueView = response.json().await.unwrap();
    assert_eq!(place.position, position);
    let (mut ws, _) = tokio_tungstenite::connect_async(socket_on.api.ws_url(&place.ticket))
        .await
        .unwrap();
    assert_eq!(next_waiting(&mut ws).await.position, position);
    ws
}

async fn next_waiting(ws: &mut Ws) -> WaitingFrame {
    match next_frame(ws).await {
        ServerFrame::Waiting(waiting) => waiting,
        other => panic!("expected a waiting frame, got {other:?}"),
    }
}

/// The next frame must be `joined`. (How soon is a figure, measured by `roomgate-load queue`
/// in docs/BENCHMARKS.md, not asserted here: a timed assertion would fail on a busy machine.)
async fn seated(ws: &mut Ws, who: &str) {
    match next_frame(ws).await {
        ServerFrame::Joined(joined) => assert!(joined.members.iter().any(|m| m == who)),
        other => panic!("expected {who}'s joined frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_head_is_seated_on_its_own_node_when_another_node_frees_the_seat() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(2, database.url(), &redis_url(), &prefix, &[]).await;
    let created = create_room(&nodes[0], "alice", "shared-line", 1).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    // Bob asks node 0 and waits on node 1; carol asks node 1 and waits on node 0.
    let mut bob = wait_in_line(&nodes[0], &nodes[1], "bob", "shared-line", 1).await;
    let mut carol = wait_in_line(&nodes[1], &nodes[0], "carol", "shared-line", 2).await;
    let view = nodes[1].room("shared-line").await;
    assert_eq!((view.attending, view.reserved, view.waiting), (1, 0, 2));

    // Alice leaves on node 0: bob, waiting on node 1, gets the seat; carol moves up.
    send_frame(&mut alice, &ClientFrame::Leave).await;
    seated(&mut bob, "bob").await;
    assert_eq!(next_waiting(&mut carol).await.position, 1);
    // A newcomer cannot take a seat past carol on either node.
    for node in &nodes {
        let token = node.token("dave").await;
        let refused = node
            .api
            .reserve(&token, "shared-line", &Default::default())
            .await;
        assert!(refused.is_err(), "no barging on {}", node.address);
    }

    // Bob leaves on node 1: carol, waiting on node 0, is seated.
    send_frame(&mut bob, &ClientFrame::Leave).await;
    assert_eq!(expect_close(&mut bob).await.0, 1000);
    seated(&mut carol, "carol").await;
    let view = wait_for_room(&nodes[0], "shared-line", "carol seated", |v| {
        v.attending == 1
    })
    .await;
    assert_eq!((view.reserved, view.waiting), (0, 0));
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_takes_its_waiters_out_of_the_line_with_its_lease() {
    let database = test_database(Backend::Mysql).await;
    let prefix = RedisPrefix::new();
    let mut nodes = start_nodes(2, database.url(), &redis_url(), &prefix, &[]).await;
    let created = create_room(&nodes[0], "alice", "fragile-line", 1).await;
    let mut alice = nodes[0].connect(&created.reservation.ticket).await;
    // Bob and carol wait on the node that will die; dave behind them on the survivor.
    let _bob = wait_in_line(&nodes[0], &nodes[1], "bob", "fragile-line", 1).await;
    let _carol = wait_in_line(&nodes[0], &nodes[1], "carol", "fragile-line", 2).await;
    let mut dave = wait_in_line(&nodes[0], &nodes[0], "dave", "fragile-line", 3).await;

    let doomed = nodes.pop().unwrap();
    doomed.signal("KILL");
    // Within the lease, the dead node's waiters are gone and dave is at the head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let waiting = tokio::time::timeout_at(deadline, next_waiting(&mut dave))
            .await
            .expect("dave moves up once the dead node's waiters are removed");
        if waiting.position == 1 {
            break;
        }
    }
    let view = nodes[0].room("fragile-line").await;
    assert_eq!((view.attending, view.reserved, view.waiting), (1, 0, 1));

    // The seat alice frees goes to dave, not to a dead node's waiter.
    send_frame(&mut alice, &ClientFrame::Leave).await;
    seated(&mut dave, "dave").await;
    let view = wait_for_room(&nodes[0], "fragile-line", "dave seated", |v| {
        v.attending == 1 && v.reserved == 0
    })
    .await;
    assert_eq!(view.waiting, 0);
    prefix.cleanup(nodes).await;
}
