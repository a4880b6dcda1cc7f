//! What a visit (reserve, join, the `joined` frame, leave) costs the database, counted on the
//! server's own connections: a read added back to the path fails this test. The frames are
//! checked too, so a count reached by leaving something out of them fails it as well.

use std::collections::BTreeMap;

use roomgate_api::ClientFrame;
use roomgate_persistence::testing::{Statement, statements};

use crate::helpers::{
    AppOptions, Backend, expect_close, next_message, say, send_frame, spawn_app_with,
};

/// The statements of one visit on MariaDB, by kind: the join (BEGIN, the guarded UPDATE, the
/// member's INSERT, the `member_joined` INSERT … RETURNING, which also answers with the members
/// and history the `joined` frame shows, COMMIT) and the leave (BEGIN, the UPDATE giving the
/// seat back, DELETE, the `member_left` INSERT … RETURNING, COMMIT). Nothing is read: the
/// reservation knows the room, and the frames are built from what the writes answered.
const VISIT: [(&str, usize); 5] = [
    ("BEGIN", 2),
    ("UPDATE", 2),
    ("INSERT", 3),
    ("DELETE", 1),
    ("COMMIT", 2),
];

/// The room's name, which the visits' statements bind and no background task's do.
const ROOM: &str = "counted";

/// The one message in the room's history.
const GREETING: &str = "welcome, counted ones";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_on_mariadb_is_ten_statements() {
    statements::record();
    let app = spawn_app_with(AppOptions::new(Backend::Mysql)).await;
    let url = app.database.url().to_owned();
    let mut host = app.open_room("host", ROOM, 10).await;
    // Something for the newcomers' history; its own statements come before the counting.
    send_frame(&mut host, &say(GREETING)).await;
    assert_eq!(next_message(&mut host).await.body, GREETING);
    // A first visit warms what a running server has warm (connections, prepared statements).
    visit(&app, "warmup").await;
    let before = statements::sent_to(&url).len();
    const VISITS: usize = 5;
    for i in 0..VISITS {
        visit(&app, &format!("guest{i}")).await;
    }
    let sent: Vec<Statement> = statements::sent_to(&url).into_iter().skip(before).collect();
    let counted = of_room(&sent);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for statement in &counted {
        *kinds.entry(statement.kind()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = VISIT
        .iter()
        .map(|(kind, count)| ((*kind).to_owned(), count * VISITS))
        .collect();
    let listing = counted
        .iter()
        .map(|s| s.sql.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        kinds, expected,
        "statements of {VISITS} visits, by kind:\n{listing}"
    );
    assert_eq!(counted.len(), 10 * VISITS, "{listing}");
    app.shutdown().await;
}

/// One visit: a seat reserved, the WebSocket joined (past its `joined` frame), `leave` sent, and
/// the close awaited, which the server sends only once the leave is committed.
async fn visit(app: &crate::helpers::TestApp, user: &str) {
    let (mut ws, joined) = app.join(user, ROOM).await;
    assert_eq!(joined.room.attending, 2, "{user}");
    assert_eq!(joined.members, ["host", user]);
    let history: Vec<(&str, &str)> = joined
        .history
        .iter()
        .map(|m| (m.user_id.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(history, [("host", GREETING)], "{user}");
    send_frame(&mut ws, &ClientFrame::Leave).await;
    expect_close(&mut ws).await;
}

/// The statements of the transactions (and lone statements) that name the room: per
/// connection, a run from `BEGIN` to `COMMIT` or `ROLLBACK` counts whole if any statement in it
/// binds the room's name. The server's background work (heartbeats, the reconciliation's read
/// of the node's seats, the pool's liveness check) names no room and is left out.
fn of_room(sent: &[Statement]) -> Vec<Statement> {
    let mut by_connection: BTreeMap<u64, Vec<&Statement>> = BTreeMap::new();
    for statement in sent {
        by_connection
            .entry(statement.connection)
            .or_default()
            .push(statement);
    }
    let names_room = |statement: &&Statement| statement.sql.contains(&format!("\"{ROOM}\""));
    let mut counted = Vec::new();
    for statements in by_connection.values() {
        let mut unit: Vec<&Statement> = Vec::new();
        for statement in statements {
            unit.push(statement);
            let kind = statement.kind();
            let open = unit.first().is_some_and(|first| first.kind() == "BEGIN");
            if !open || kind == "COMMIT" || kind == "ROLLBACK" {
                if unit.iter().any(names_room) {
                    counted.extend(unit.iter().map(|s| (*s).clone()));
                }
                unit.clear();
            }
        }
        assert!(
            unit.iter().all(|s| !names_room(s)),
            "a transaction on the room was still open after the visits: {unit:?}"
        );
    }
    counted
}
