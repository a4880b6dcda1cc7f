//! Delivery latency from a sender on one node to members on another, through Redis pub/sub,
//! next to members on the sender's own node (which also go through Redis: one path for all).
//!
//! Run: `cargo bench -p roomgate-server --bench cross_node`
//! Needs MariaDB (`ROOMGATE_TEST_MYSQL_URL`) and Redis (`ROOMGATE_TEST_REDIS_URL`) as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot connect has nothing to measure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomgate_api::client::{Client, Received, Session};
use roomgate_api::{ClientFrame, CreateRoomRequest, ReserveRequest, ServerFrame};
use roomgate_persistence::testing::TestDatabase;
use roomgate_server::{Application, Settings};

const MESSAGES: usize = 2_000;
const RATE_PER_SECOND: u64 = 500;
const MEMBERS_PER_NODE: usize = 8;

struct Node {
    client: Client,
}

impl Node {
    async fn start(database_url: &str, prefix: &str) -> Self {
        let redis = std::env::var("ROOMGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let env = [
            ("SERVER__BIND", "127.0.0.1:0".to_owned()),
            ("SERVER__WORKERS", "1".to_owned()),
            ("DATABASE__URL", database_url.to_owned()),
            ("REDIS__URL", redis),
            ("REDIS__KEY_PREFIX", prefix.to_owned()),
            ("LIMITS__USER_REQUESTS_PER_SECOND", "100000".to_owned()),
            ("LIMITS__USER_BURST", "100000".to_owned()),
            ("LIMITS__WS_MESSAGES_PER_SECOND", "100000".to_owned()),
        ]
        .map(|(key, value)| (format!("ROOMGATE__{key}"), value));
        let app = Application::build(Settings::load_from(None, env).unwrap())
            .await
            .unwrap();
        let client = Client::new(format!("http://127.0.0.1:{}", app.local_addr().port()));
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self { client }
    }

    async fn token(&self, user: &str) -> String {
        self.client.dev_token(user).await.unwrap().token
    }

    async fn connect(&self, ticket: &str) -> Session {
        let mut session = self.client.connect(ticket).await.unwrap();
        match session.next().await.unwrap() {
            Received::Frame(ServerFrame::Joined(_)) => session,
            other => panic!("not joined: {other:?}"),
        }
    }

    async fn join(&self, user: &str, room: &str) -> Session {
        let token = self.token(user).await;
        let reserved = self
            .client
            .reserve(&token, room, &ReserveRequest::default())
            .await
            .unwrap();
        self.connect(&reserved.reservation.ticket).await
    }
}

/// Receives every chat message on `session` and returns, per message number, when it arrived.
async fn receive(mut session: Session) -> Vec<Instant> {
    let mut arrivals = vec![None; MESSAGES];
    let mut seen = 0;
    while seen < MESSAGES {
        match session.next().await.unwrap() {
            Received::Frame(ServerFrame::Message(message)) => {
                let n: usize = message.body.parse().unwrap();
                arrivals[n] = Some(Instant::now());
                seen += 1;
            }
            Received::Frame(_) => {}
            Received::Closed(close) => panic!("closed: {close:?}"),
        }
    }
    arrivals.into_iter().map(Option::unwrap).collect()
}

fn percentiles(mut latencies: Vec<Duration>) -> (Duration, Duration, Duration) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.5), at(0.99), *latencies.last().unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let database = TestDatabase::mysql().await;
    let prefix = format!("rgbench:{:016x}:", rand::random::<u64>());
    let (a, b) = (
        Node::start(database.url(), &prefix).await,
        Node::start(database.url(), &prefix).await,
    );

    let alice = a.token("alice").await;
    let room = CreateRoomRequest {
        id: "bench".into(),
        title: "Bench".into(),
        capacity: 100,
        password: None,
    };
    let created = a.client.create_room(&alice, &room).await.unwrap();
    let mut sender = a.connect(&created.reservation.ticket).await;
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for i in 0..MEMBERS_PER_NODE {
        local.push(tokio::spawn(receive(
            a.join(&format!("near{i}"), "bench").await,
        )));
        remote.push(tokio::spawn(receive(
            b.join(&format!("far{i}"), "bench").await,
        )));
    }
    // Let presence frames settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sent_at = Arc::new(std::sync::Mutex::new(Vec::with_capacity(MESSAGES)));
    let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    for n in 0..MESSAGES {
        pace.tick().await;
        sent_at.lock().unwrap().push(Instant::now());
        let frame = ClientFrame::Message {
            body: n.to_string(),
        };
        sender.send(&frame).await.unwrap();
    }
    let sent_at = sent_at.lock().unwrap().clone();
    let latencies = |arrivals: Vec<Vec<Instant>>| {
        arrivals
            .into_iter()
            .flat_map(|times| {
                times
                    .into_iter()
                    .zip(&sent_at)
                    .map(|(got, sent)| got - *sent)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let mut near = Vec::new();
    for task in local {
        near.push(task.await.unwrap());
    }
    let mut far = Vec::new();
    for task in remote {
        far.push(task.await.unwrap());
    }
    println!(
        "{MESSAGES} messages at {RATE_PER_SECOND}/s to {MEMBERS_PER_NODE} members on each of two nodes (MariaDB, Redis on loopback)"
    );
    for (name, arrivals) in [("same node", near), ("other node", far)] {
        let (p50, p99, max) = percentiles(latencies(arrivals));
        println!(
            "{name:<12} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    let client = redis::Client::open(
        std::env::var("ROOMGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )
    .unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
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
    database.cleanup().await;
    // The two servers run until the process ends.
    std::process::exit(0);
}
