//! Node liveness: reaping a dead node gives its seats back; a live node keeps its own.

use std::time::Duration;

use roomgate_domain::NodeId;
use roomgate_persistence::JoinGuard;

use crate::helpers::{Server, assert_counts_agree, connect, new_room, on_both, room_id, user};

on_both!(
    reaping_a_dead_node_restores_counts,
    seats_of_unregistered_nodes_are_reaped,
    a_booting_single_node_reclaims_everything_else,
    a_node_shutting_down_gives_back_its_seats,
);

const LIVE: NodeId = NodeId(1);
const DEAD: NodeId = NodeId(2);
const STALE: Duration = Duration::from_millis(600);

async fn reaping_a_dead_node_restores_counts(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.register_node(DEAD).await.unwrap();
    let (a, b) = (room_id("a"), room_id("b"));
    db.open_room_and_join(&new_room("a", 5, "alice"), LIVE)
        .await
        .unwrap();
    db.open_room_and_join(&new_room("b", 5, "bob"), DEAD)
        .await
        .unwrap();
    db.join(&a, &user("dora"), DEAD).await.unwrap();
    db.join(&a, &user("dave"), DEAD).await.unwrap();
    db.join(&b, &user("lena"), LIVE).await.unwrap();

    // DEAD stops beating; LIVE registers later and keeps beating. The margins are wide (DEAD is
    // silent for 1 s, LIVE must stay fresh for 600 ms) so a stalled CI machine cannot flip them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    db.register_node(LIVE).await.unwrap();
    db.heartbeat(LIVE).await.unwrap();

    let mut reclaimed = db.reap_dead_nodes(STALE).await.unwrap();
    reclaimed.sort_by_key(|m| (m.room.clone(), m.user.clone()));
    let got: Vec<(&str, &str, NodeId)> = reclaimed
        .iter()
        .map(|m| (m.room.as_str(), m.user.as_str(), m.node))
        .collect();
    assert_eq!(
        got,
        [("a", "dave", DEAD), ("a", "dora", DEAD), ("b", "bob", DEAD)]
    );

    assert_eq!(assert_counts_agree(&db, &a).await, 1);
    assert_eq!(assert_counts_agree(&db, &b).await, 1);
    assert_eq!(db.members(&a).await.unwrap(), [user("alice")]);
    assert_eq!(db.members(&b).await.unwrap(), [user("lena")]);

    // Nothing more to reap: the live node is untouched, the dead one is gone.
    assert!(db.reap_dead_nodes(STALE).await.unwrap().is_empty());
    // Its seats are free again.
    db.join(&b, &user("dave"), LIVE).await.unwrap();
    test_db.cleanup().await;
}

async fn seats_of_unregistered_nodes_are_reaped(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.register_node(LIVE).await.unwrap();
    let a = room_id("a");
    db.open_room_and_join(&new_room("a", 5, "alice"), LIVE)
        .await
        .unwrap();
    // A node that never registered (or whose row was deleted) holds a seat.
    db.join(&a, &user("ghost"), NodeId(99)).await.unwrap();

    let reclaimed = db.reap_dead_nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(
        (reclaimed[0].user.as_str(), reclaimed[0].node),
        ("ghost", NodeId(99))
    );
    assert_eq!(assert_counts_agree(&db, &a).await, 1);
    test_db.cleanup().await;
}

async fn a_booting_single_node_reclaims_everything_else(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    for node in [LIVE, DEAD, NodeId(3)] {
        db.register_node(node).await.unwrap();
    }
    let a = room_id("a");
    db.open_room_and_join(&new_room("a", 5, "alice"), LIVE)
        .await
        .unwrap();
    db.join(&a, &user("bob"), DEAD).await.unwrap();
    db.join(&a, &user("carl"), NodeId(3)).await.unwrap();
    db.join(&a, &user("dan"), NodeId(4)).await.unwrap();

    let reclaimed = db.reap_all_nodes_except(LIVE).await.unwrap();
    assert_eq!(reclaimed.len(), 3);
    assert_eq!(db.members(&a).await.unwrap(), [user("alice")]);
    assert_eq!(assert_counts_agree(&db, &a).await, 1);
    // The other nodes' rows are gone, ours stays: reaping the stale ones now finds nothing.
    assert!(db.reap_dead_nodes(Duration::ZERO).await.unwrap().len() <= 1);
    test_db.cleanup().await;
}

async fn a_node_shutting_down_gives_back_its_seats(server: Server) {
    let test_db = server.fresh().await;
    let db = connect(&test_db, JoinGuard::Conditional).await;
    db.register_node(LIVE).await.unwrap();
    db.register_node(DEAD).await.unwrap();
    let a = room_id("a");
    db.open_room_and_join(&new_room("a", 5, "alice"), LIVE)
        .await
        .unwrap();
    db.join(&a, &user("bob"), DEAD).await.unwrap();

    let removed = db.remove_node(LIVE).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].user, user("alice"));
    assert_eq!(db.members(&a).await.unwrap(), [user("bob")]);
    assert_eq!(assert_counts_agree(&db, &a).await, 1);
    assert!(
        db.remove_node(LIVE).await.unwrap().is_empty(),
        "second call is a no-op"
    );
    // A heartbeat after being removed registers the node again instead of failing.
    db.heartbeat(LIVE).await.unwrap();
    test_db.cleanup().await;
}
