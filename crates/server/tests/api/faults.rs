//! The fault suite: MariaDB or Redis cut, stalled and slowed under churn, then restored.
//!
//! Workers join, chat and leave in a loop (by `leave`, by a close frame, by a reset connection)
//! while a relay between the server and MariaDB or Redis misbehaves. During the faults no room
//! may hold more members than seats, and every refusal must be one the contract names (503 over
//! REST, 4500 / 4009 on the socket; never a 500). Once the relay passes again and the workers
//! have gone, every room must be back to the truth within seconds, with nothing restarted:
//! `attending == 0 && reserved == 0`, no participant row, no permit held.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use parking_lot::Mutex;
use reqwest::StatusCode;
use roomgate_api::client::{Client, ClientError};
use roomgate_api::{ClientFrame, CloseCode, CreateRoomRequest, ErrorCode, RoomView, ServerFrame};
use roomgate_faults::{Fault, Relay};
use tokio::task::JoinSet;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::fixtures::{Process, mysql_upstream, redis_upstream, relayed_mysql_url};
use crate::helpers::{
    AppOptions, Backend, TestApp, Ws, count_participants, permits_held, spawn_app_with,
    test_database,
};
use crate::multinode::{RedisPrefix, redis_url, start_nodes};

const ROOMS: usize = 6;
const CAPACITY: usize = 3;
const WORKERS: usize = 24;
/// How long after the last fault heals and the workers stop every room must be true again:
/// the contract's 5 s, plus the reservation TTL for tickets a stopped worker never used.
const HEALED_WITHIN: Duration = Duration::from_millis(5_000 + RESERVATION_TTL_MS);
const RESERVATION_TTL_MS: u64 = 2_000;

/// The faults each run goes through, in order, with a quiet second around each.
const FAULTS: [(Fault, Duration); 5] = [
    (Fault::Cut, Duration::from_secs(1)),
    (Fault::Cut, Duration::from_secs(3)),
    (Fault::Stall, Duration::from_secs(2)),
    (
        Fault::Delay(Duration::from_millis(200)),
        Duration::from_secs(2),
    ),
    (Fault::Cut, Duration::from_secs(5)),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_survives_mariadb_faults_under_churn() {
    let database = test_database(Backend::Mysql).await;
    let relay = Relay::start(mysql_upstream(database.url()).await)
        .await
        .unwrap();
    let app: TestApp = spawn_app_with(
        AppOptions::new(Backend::Mysql)
            .with("database.url", relayed_mysql_url(database.url(), &relay))
            .with("database.connect_timeout_ms", 500)
            .with("database.acquire_timeout_ms", 1000)
            .with("admission.reservation_ttl_ms", RESERVATION_TTL_MS)
            .with("admission.reaper_interval_ms", 200)
            .with("node.reconcile_interval_ms", 500),
    )
    .await;
    let nodes = vec![app.address.clone()];
    run_faults(&nodes, &relay, database.url()).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_survive_mariadb_faults_under_churn() {
    let database = test_database(Backend::Mysql).await;
    let relay = Relay::start(mysql_upstream(database.url()).await)
        .await
        .unwrap();
    let prefix = RedisPrefix::new();
    let nodes = start_nodes(
        2,
        &relayed_mysql_url(database.url(), &relay),
        &redis_url(),
        &prefix,
        &fault_settings(),
    )
    .await;
    let addresses: Vec<String> = nodes.iter().map(|node| node.address.clone()).collect();
    run_faults(&addresses, &relay, database.url()).await;
    prefix.cleanup(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_survive_redis_faults_under_churn() {
    let database = test_database(Backend::Mysql).await;
    let relay = Relay::start(redis_upstream().await).await.unwrap();
    let prefix = RedisPrefix::new();
    let nodes: Vec<Process> = start_nodes(
        2,
        database.url(),
        &format!("redis://{}", relay.address()),
        &prefix,
        &fault_settings(),
    )
    .await;
    let addresses: Vec<String> = nodes.iter().map(|node| node.address.clone()).collect();
    run_faults(&addresses, &relay, database.url()).await;
    prefix.cleanup(nodes).await;
}

fn fault_settings() -> Vec<(&'static str, String)> {
    vec![
        ("database.connect_timeout_ms", "500".to_owned()),
        ("database.acquire_timeout_ms", "1000".to_owned()),
        (
            "admission.reservation_ttl_ms",
            RESERVATION_TTL_MS.to_string(),
        ),
        ("node.reconcile_interval_ms", "500".to_owned()),
        // Long enough that a five-second Redis cut does not expire the nodes' leases.
        ("node.lease_ms", "10000".to_owned()),
    ]
}

/// Runs the churn through every fault, then checks that everything healed.
async fn run_faults(nodes: &[String], relay: &Relay, database_url: &str) {
    let client = crate::helpers::test_http_client(Duration::from_secs(20));
    let rooms = open_rooms(&client, &nodes[0]).await;
    let churn = Churn::start(client.clone(), nodes.to_vec(), rooms.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (fault, lasting) in FAULTS {
        relay.set(fault);
        tokio::time::sleep(lasting).await;
        relay.set(Fault::None);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let outcome = churn.stop().await;
    assert!(
        outcome.joins > 50,
        "the churn barely ran, so it proves nothing: {outcome:?}"
    );
    assert_eq!(outcome.over_admitted, 0, "over-admitted: {outcome:?}");
    assert!(
        outcome.unexpected.is_empty(),
        "answers the contract does not name: {outcome:?}"
    );

    // Back to the truth, with nothing restarted.
    let deadline = tokio::time::Instant::now() + HEALED_WITHIN;
    loop {
        let state = observe(&client, nodes, &rooms, database_url).await;
        if state.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not healed {HEALED_WITHIN:?} after the last fault: {state:?} (churn: {outcome:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What is still held after everyone left: one line per thing that is not zero.
async fn observe(
    client: &reqwest::Client,
    nodes: &[String],
    rooms: &[String],
    database_url: &str,
) -> Vec<String> {
    let mut held = Vec::new();
    for node in nodes {
        for room in rooms {
            let Ok(response) = client
                .get(format!("{node}/api/v1/rooms/{room}"))
                .send()
                .await
            else {
                held.push(format!("{node} did not answer for {room}"));
                continue;
            };
            match response.json::<RoomView>().await {
                Ok(view) if view.attending == 0 && view.reserved == 0 => {}
                Ok(view) => held.push(format!("{node}: {view:?}")),
                Err(error) => held.push(format!("{node}: {room} unreadable ({error})")),
            }
        }
        let metrics = client
            .get(format!("{node}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let permits = permits_held(&metrics);
        if permits != 0 {
            held.push(format!("{node}: {permits} permits held"));
        }
    }
    let rows = count_participants(database_url).await;
    if rows != 0 {
        held.push(format!("{rows} participant rows"));
    }
    held
}

async fn open_rooms(client: &reqwest::Client, node: &str) -> Vec<String> {
    let mut rooms = Vec::new();
    for index in 0..ROOMS {
        let room = format!("faulty-{index}");
        let token = token(client, node, &format!("creator-{index}")).await;
        let request = CreateRoomRequest {
            id: room.clone(),
            title: "Faulty".to_owned(),
            capacity: CAPACITY as u32,
            password: None,
        };
        let created = Client::with_http(client.clone(), node)
            .create_room(&token, &request)
            .await
            .unwrap();
        let mut ws = connect(node, &created.reservation.ticket).await.unwrap();
        let first = first_frame(&mut ws).await;
        assert!(matches!(first, Ok(Ok(ServerFrame::Joined(_)))), "{first:?}");
        // The creator leaves at once: the room stays open and empty.
        ws.send(frame_text(&ClientFrame::Leave)).await.unwrap();
        rooms.push(room);
    }
    rooms
}

async fn token(client: &reqwest::Client, node: &str, user: &str) -> String {
    Client::with_http(client.clone(), node)
        .dev_token(user)
        .await
        .unwrap()
        .token
}

fn frame_text(frame: &ClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).unwrap())
}

async fn connect(node: &str, ticket: &str) -> Option<Ws> {
    let url = format!(
        "{}/api/v1/ws?ticket={ticket}",
        node.replacen("http://", "ws://", 1)
    );
    let connected = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(url),
    )
    .await;
    match connected {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// The first frame of a session: `Ok(frame)` (or `Ok(Err(text))` for a frame the contract does
/// not describe) or `Err(close code)`.
async fn first_frame(ws: &mut Ws) -> Result<Result<ServerFrame, String>, u16> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Ok(serde_json::from_str(text.as_str()).map_err(|_| text.to_string()));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(frame.map_or(1005, |frame| u16::from(frame.code)));
            }
            Ok(Some(Ok(_))) => continue,
            // The connection dropped without a close frame: the contract never does that.
            Ok(Some(Err(_)) | None) => return Err(1006),
            Err(_) => return Err(0),
        }
    }
}

/// What the churn saw.
#[derive(Debug, Default)]
struct Outcome {
    joins: u64,
    /// Moments a room held more members, as the clients themselves counted them, than seats.
    over_admitted: u64,
    /// Answers the contract does not allow under faults, with how often each came.
    unexpected: BTreeMap<String, u64>,
    /// Every REST status and close code seen, for the failure message.
    seen: BTreeMap<String, u64>,
}

struct Churn {
    stop: Arc<AtomicBool>,
    workers: JoinSet<()>,
    outcome: Arc<Mutex<Outcome>>,
}

impl Churn {
    async fn start(client: reqwest::Client, nodes: Vec<String>, rooms: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        // Members each room holds as its clients count them: from the `joined` frame until the
        // client starts to leave, a span inside the server's own, so this never over-counts.
        let members: Arc<Vec<AtomicI64>> =
            Arc::new(rooms.iter().map(|_| AtomicI64::new(0)).collect());
        let joins = Arc::new(AtomicU64::new(0));
        let mut workers = JoinSet::new();
        for worker in 0..WORKERS {
            let user = format!("worker-{worker}");
            let token = token(&client, &nodes[0], &user).await;
            let context = Worker {
                client: client.clone(),
                nodes: nodes.clone(),
                rooms: rooms.clone(),
                token,
                stop: Arc::clone(&stop),
                outcome: Arc::clone(&outcome),
                members: Arc::clone(&members),
                joins: Arc::clone(&joins),
                seed: worker,
            };
            workers.spawn(context.run());
        }
        Self {
            stop,
            workers,
            outcome,
        }
    }

    async fn stop(mut self) -> Outcome {
        self.stop.store(true, Ordering::Release);
        let all_done = tokio::time::timeout(Duration::from_secs(60), async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        assert!(all_done.is_ok(), "workers did not finish");
        std::mem::take(&mut *self.outcome.lock())
    }
}

struct Worker {
    client: reqwest::Client,
    nodes: Vec<String>,
    rooms: Vec<String>,
    token: String,
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
    members: Arc<Vec<AtomicI64>>,
    joins: Arc<AtomicU64>,
    seed: usize,
}

impl Worker {
    fn note(&self, what: String, allowed: bool) {
        let mut outcome = self.outcome.lock();
        *outcome.seen.entry(what.clone()).or_default() += 1;
        if !allowed {
            *outcome.unexpected.entry(what).or_default() += 1;
        }
    }

    async fn run(self) {
        let mut visit = self.seed;
        while !self.stop.load(Ordering::Acquire) {
            visit += 1;
            let room = visit % self.rooms.len();
            let reserve_on = &self.nodes[visit % self.nodes.len()];
            let confirm_on = &self.nodes[(visit / 2) % self.nodes.len()];
            if !self.visit(room, reserve_on, confirm_on, visit).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut outcome = self.outcome.lock();
        outcome.joins = self.joins.load(Ordering::Acquire);
    }

    /// One visit; false when no seat was had.
    async fn visit(&self, room: usize, reserve_on: &str, confirm_on: &str, visit: usize) -> bool {
        let room_id = &self.rooms[room];
        let api = Client::with_http(self.client.clone(), reserve_on);
        let reservation = match api.reserve(&self.token, room_id, &Default::default()).await {
            // 201, or 200 for the live one again.
            Ok(reserved) => reserved.reservation,
            Err(ClientError::Refused { status, body }) => {
                let code = body.error.code;
                let allowed = matches!(
                    (StatusCode::from_u16(status).ok(), code),
                    (
                        Some(StatusCode::CONFLICT),
                        ErrorCode::RoomFull | ErrorCode::AlreadyJoined
                    ) | (
                        Some(StatusCode::SERVICE_UNAVAILABLE),
                        ErrorCode::Unavailable
                    )
                );
                self.note(format!("reserve {status} {code}"), allowed);
                return false;
            }
            Err(ClientError::Http(error)) => {
                self.note(format!("reserve: no answer ({error})"), false);
                return false;
            }
            Err(other) => {
                self.note(format!("reserve {other}"), false);
                return false;
            }
        };
        let Some(mut ws) = connect(confirm_on, &reservation.ticket).await else {
            self.note("upgrade failed".to_owned(), false);
            return false;
        };
        match first_frame(&mut ws).await {
            Ok(Ok(ServerFrame::Joined(joined))) => {
                let attending = joined.room.attending;
                let here = self.members[room].fetch_add(1, Ordering::AcqRel) + 1;
                if here > CAPACITY as i64 || attending > CAPACITY as u32 {
                    self.outcome.lock().over_admitted += 1;
                }
                self.joins.fetch_add(1, Ordering::AcqRel);
            }
            Ok(Ok(other)) => {
                self.note(format!("first frame {other:?}"), false);
                return false;
            }
            Ok(Err(text)) => {
                self.note(format!("first frame {text}"), false);
                return false;
            }
            Err(code) => {
                // The join could not be committed; the database guard refused; the ticket
                // lapsed while the database was away.
                let allowed = matches!(
                    CloseCode::from_code(code),
                    Some(CloseCode::JoinFailed | CloseCode::RoomFull | CloseCode::TicketExpired)
                );
                self.note(format!("close {code}"), allowed);
                return false;
            }
        }
        if visit % 2 == 0 {
            let _ = ws
                .send(frame_text(&ClientFrame::Message {
                    body: "hi".to_owned(),
                }))
                .await;
        }
        tokio::time::sleep(Duration::from_millis((visit % 4) as u64 * 10)).await;
        // No longer counted from here on: the server frees the seat after this.
        self.members[room].fetch_sub(1, Ordering::AcqRel);
        match visit % 3 {
            0 => {
                let _ = ws.send(frame_text(&ClientFrame::Leave)).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.next()).await;
            }
            1 => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
            _ => {
                if let MaybeTlsStream::Plain(tcp) = ws.get_mut() {
                    let _ = tcp.set_zero_linger();
                }
                drop(ws);
            }
        }
        true
    }
}
