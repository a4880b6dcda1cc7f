//! Reservations per second at 64 concurrent clients: the in-memory store, the Redis store, and a
//! raw `EVALSHA` loop of the same reserve script (the floor the Redis store is measured against).
//!
//! Run: `cargo bench -p roomgate-admission --bench redis_reserve`
//! Needs Redis at `ROOMGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); uses its own key
//! prefix and deletes it afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot reserve has nothing to measure.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomgate_admission::{
    PermitStore, RedisPermitStore, RedisSettings, ReserveRequest, SemaphoreRegistry, SystemClock,
};
use roomgate_domain::{Capacity, NodeId, RoomId, UserId};

const CLIENTS: usize = 64;
const ROOMS: usize = 1_000;
const RUN_FOR: Duration = Duration::from_secs(5);

fn request(room: usize, user: &str) -> ReserveRequest {
    ReserveRequest {
        room: RoomId::parse(&format!("room-{room}")).unwrap(),
        user: UserId::parse(user).unwrap(),
        capacity: Capacity::from_trusted(1_000_000),
        occupied: 0,
        ttl: Duration::from_secs(300),
    }
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `CLIENTS` tasks, each calling `op(client, i)` back to back for `RUN_FOR`.
async fn measure<F, Fut>(op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while started.elapsed() < RUN_FOR {
                let t = Instant::now();
                op(client, i).await;
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn print(name: &str, figures: &Figures, floor: Option<&Figures>) {
    let ratio = floor.map_or(String::new(), |f| {
        format!(
            "  ({:.2}x the raw script's time per reservation)",
            f.per_second / figures.per_second
        )
    });
    println!(
        "{name:<28} {:>10.0} reservations/s   p50 {:>8.3} ms   p99 {:>8.3} ms{ratio}",
        figures.per_second,
        figures.p50.as_secs_f64() * 1e3,
        figures.p99.as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("ROOMGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("rgbench:{:016x}:", rand::random::<u64>());
    println!("{CLIENTS} concurrent clients, {ROOMS} rooms, {RUN_FOR:?} per row, Redis at {url}");

    let memory = SemaphoreRegistry::new(Arc::new(SystemClock), Default::default());
    let in_memory = measure(move |client, i| {
        let memory = memory.clone();
        async move {
            let user = format!("u{client}-{i}");
            PermitStore::reserve(&memory, request(i as usize % ROOMS, &user))
                .await
                .unwrap();
        }
    })
    .await;

    let settings = RedisSettings {
        url: url.clone(),
        key_prefix: prefix.clone(),
        node: NodeId::random(),
        node_lease: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        expired_ticket_memory: Duration::from_secs(60),
    };
    let store = RedisPermitStore::connect(&settings).unwrap();
    let redis_store = measure({
        let store = store.clone();
        move |client, i| {
            let store = store.clone();
            async move {
                let user = format!("u{client}-{i}");
                store
                    .reserve(request(i as usize % ROOMS, &user))
                    .await
                    .unwrap();
            }
        }
    })
    .await;

    // The same script, sent bare: no room index, no ticket index, no reply parsing.
    let client = redis::Client::open(url.as_str()).unwrap();
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    let script = redis::Script::new(&format!(
        "{}\n{}",
        include_str!("../src/redis_store/common.lua"),
        include_str!("../src/redis_store/reserve.lua")
    ));
    let raw_prefix = format!("{prefix}raw:");
    let raw = measure(move |client, i| {
        let mut connection = connection.clone();
        let script = script.clone();
        let key = format!("{raw_prefix}{{room-{}}}:seats", i as usize % ROOMS);
        async move {
            let _: Vec<String> = script
                .key(key)
                .arg(format!("u{client}-{i}"))
                .arg(1_000_000)
                .arg(0)
                .arg(300_000)
                .arg("ticket")
                .arg(0)
                .invoke_async(&mut connection)
                .await
                .unwrap();
        }
    })
    .await;

    print("in-memory store", &in_memory, None);
    print("redis store", &redis_store, Some(&raw));
    print("raw EVALSHA (the floor)", &raw, None);

    // Leave nothing behind.
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    for chunk in keys.chunks(1_000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}
