//! Committed joins per second, for each join guard, next to the raw statements.
//!
//! `cargo bench -p roomgate-persistence --bench joins` (MariaDB at `ROOMGATE_TEST_MYSQL_URL`,
//! default `mysql://roomgate:roomgate@127.0.0.1:3306`; `bash .ci/ensure-services` sets it up).
//! `ROOMGATE_BENCH_SECS` sets the length of each cell (default 3), `ROOMGATE_BENCH_ROUNDS` the
//! number of rounds (default 2), and `ROOMGATE_BENCH_ONLY` a comma-separated subset of
//! `raw-outbox,conditional,pessimistic,optimistic` to run next to `raw` (default: all), e.g.
//! `ROOMGATE_BENCH_ONLY=raw-outbox,conditional` for the outbox's cost alone.
//!
//! Every cell runs N tasks that join as fast as they can until the time is up, on one hot room or
//! spread over 1,000 rooms, and counts the joins that committed. "raw" sends the conditional
//! guard's statements (`START TRANSACTION; UPDATE … WHERE attending < capacity; INSERT
//! participant; COMMIT`) through mysql_async directly, without diesel, the pool wrapper or the
//! post-commit read: the physical limit of the same work on the same server. "raw + outbox"
//! sends the same statements plus what the outbox adds to a join (the room's event counter
//! bumped in the same UPDATE, and the `member_joined` event's `INSERT … SELECT`), so the two raw
//! rows measure the outbox's cost in one run; every guard always writes its event.
//! A plain binary rather than criterion: the figure wanted is throughput under concurrency,
//! which criterion's per-iteration timing does not measure.

// A benchmark binary: a failed setup should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts, TxOpts};
use roomgate_domain::{NodeId, RoomId, UserId};
use roomgate_persistence::testing::TestDatabase;
use roomgate_persistence::{Database, JoinGuard, PersistenceError};

const ROOMS: usize = 1_000;
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const DEFAULT_ROUNDS: usize = 2;
const NODE: NodeId = NodeId(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    Raw,
    RawOutbox,
    Guard(JoinGuard),
}

impl Contender {
    /// The name `ROOMGATE_BENCH_ONLY` selects it by.
    fn key(self) -> &'static str {
        match self {
            Contender::Raw => "raw",
            Contender::RawOutbox => "raw-outbox",
            Contender::Guard(guard) => guard.as_str(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Contender::Raw => "raw statements (mysql_async)",
            Contender::RawOutbox => "raw + outbox INSERT",
            Contender::Guard(guard) => guard.as_str(),
        }
    }
}

#[derive(Clone, Copy)]
enum Layout {
    HotRoom,
    Spread,
}

/// The result of one cell (or the sum of several runs of it).
#[derive(Default)]
struct Cell {
    joins: u64,
    gave_up: u64,
    elapsed: Duration,
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        self.joins += other.joins;
        self.gave_up += other.gave_up;
        self.elapsed += other.elapsed;
    }

    fn per_second(&self) -> f64 {
        self.joins as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let secs: u64 = std::env::var("ROOMGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let cell_length = Duration::from_secs(secs);
    let test_db = TestDatabase::mysql().await;
    let mut settings = test_db.settings(JoinGuard::Conditional);
    let setup = Database::connect(&settings).await.unwrap();
    drop(setup);

    let setup_pool = raw_pool(test_db.url(), 1);
    create_rooms(&setup_pool).await;
    setup_pool.disconnect().await.unwrap();

    let rounds: usize = std::env::var("ROOMGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_ROUNDS);
    let only = std::env::var("ROOMGATE_BENCH_ONLY").ok();
    let selected = |contender: &Contender| match &only {
        // The raw statements always run: every ratio is taken against them.
        Some(only) => {
            *contender == Contender::Raw || only.split(',').any(|key| key.trim() == contender.key())
        }
        None => true,
    };
    let contenders: Vec<Contender> = [
        Contender::Raw,
        Contender::RawOutbox,
        Contender::Guard(JoinGuard::Conditional),
        Contender::Guard(JoinGuard::Pessimistic),
        Contender::Guard(JoinGuard::Optimistic),
    ]
    .into_iter()
    .filter(selected)
    .collect();
    // The machine is shared and the disk's fsync time drifts, so the contenders take turns
    // within each cell (in alternating order over the rounds) instead of running one after the
    // other; each figure is the total over all rounds.
    let mut table: Vec<(Contender, Vec<Cell>)> =
        contenders.iter().map(|&c| (c, Vec::new())).collect();
    let mut cell_number = 0_u64;
    for layout in [Layout::HotRoom, Layout::Spread] {
        for tasks in CONCURRENCY {
            let mut totals: Vec<Cell> = contenders.iter().map(|_| Cell::default()).collect();
            for round in 0..rounds {
                let mut order: Vec<usize> = (0..contenders.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for index in order {
                    cell_number += 1;
                    // Each cell gets pools of its own, as large as its number of tasks, so no
                    // task waits for a connection and the server's connection limit holds.
                    let raw = raw_pool(test_db.url(), tasks);
                    let database = match contenders[index] {
                        Contender::Raw | Contender::RawOutbox => None,
                        Contender::Guard(guard) => {
                            settings.join_guard = guard;
                            settings.max_connections = tasks as u32;
                            Some(Database::connect(&settings).await.unwrap())
                        }
                    };
                    let database = database.as_ref();
                    // A short unmeasured run first: connections open, statements prepared.
                    let warm_up = Duration::from_millis(300);
                    let outbox = contenders[index] == Contender::RawOutbox;
                    run_cell(
                        &raw,
                        database,
                        outbox,
                        layout,
                        tasks,
                        cell_number * 2,
                        warm_up,
                    )
                    .await;
                    let cell = run_cell(
                        &raw,
                        database,
                        outbox,
                        layout,
                        tasks,
                        cell_number * 2 + 1,
                        cell_length,
                    )
                    .await;
                    totals[index].add(&cell);
                    raw.disconnect().await.unwrap();
                }
            }
            for (index, total) in totals.into_iter().enumerate() {
                eprintln!(
                    "{:<30} {:<9} {:>2} tasks: {:>7.0} joins/s ({} joins, {} gave up)",
                    contenders[index].name(),
                    match layout {
                        Layout::HotRoom => "hot room",
                        Layout::Spread => "1k rooms",
                    },
                    tasks,
                    total.per_second(),
                    total.joins,
                    total.gave_up
                );
                table[index].1.push(total);
            }
        }
    }
    print_table(&table, secs, rounds);
    test_db.cleanup().await;
}

fn raw_pool(url: &str, size: usize) -> mysql_async::Pool {
    let constraints = PoolConstraints::new(1, size).unwrap();
    let opts = OptsBuilder::from_opts(Opts::from_url(url).unwrap())
        // No COM_RESET_CONNECTION on every return to the pool: the baseline is the statements.
        .pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_reset_connection(false),
        );
    mysql_async::Pool::new(opts)
}

async fn create_rooms(pool: &mysql_async::Pool) {
    let mut conn = pool.get_conn().await.unwrap();
    // Capacity is the hard limit, so no cell ever runs out of seats: every refusal would be a
    // measurement of something else.
    let values: Vec<String> = std::iter::once("hot".to_owned())
        .chain((0..ROOMS).map(|i| format!("room-{i}")))
        .map(|id| format!("('{id}', 'Bench', 1000000, 0, NULL, 'bench', UTC_TIMESTAMP(6), 0)"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO rooms (id, title, capacity, attending, password_hash, created_by, created_at, version) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
}

async fn run_cell(
    raw: &mysql_async::Pool,
    database: Option<&Database>,
    outbox: bool,
    layout: Layout,
    tasks: usize,
    cell: u64,
    length: Duration,
) -> Cell {
    let joins = Arc::new(AtomicU64::new(0));
    let gave_up = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + length;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let raw = raw.clone();
            let database = database.cloned();
            let joins = Arc::clone(&joins);
            let gave_up = Arc::clone(&gave_up);
            tokio::spawn(async move {
                let mut n = 0_usize;
                while Instant::now() < deadline {
                    let room = match layout {
                        Layout::HotRoom => "hot".to_owned(),
                        Layout::Spread => format!("room-{}", (task * 7919 + n) % ROOMS),
                    };
                    let user = format!("c{cell}-t{task}-{n}");
                    n += 1;
                    let committed = match &database {
                        Some(db) => join_with(db, &room, &user).await,
                        None => join_raw(&raw, &room, &user, outbox).await,
                    };
                    if committed {
                        joins.fetch_add(1, Ordering::Relaxed);
                    } else {
                        gave_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    Cell {
        joins: joins.load(Ordering::Relaxed),
        gave_up: gave_up.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

async fn join_with(db: &Database, room: &str, user: &str) -> bool {
    let room = RoomId::parse(room).unwrap();
    let user = UserId::parse(user).unwrap();
    match db.join(&room, &user, NODE).await {
        Ok(_) => true,
        Err(PersistenceError::Contended) => false,
        Err(e) => panic!("join failed: {e}"),
    }
}

async fn join_raw(pool: &mysql_async::Pool, room: &str, user: &str, outbox: bool) -> bool {
    let mut conn = pool.get_conn().await.unwrap();
    let mut tx = conn.start_transaction(TxOpts::default()).await.unwrap();
    let take_seat = if outbox {
        "UPDATE rooms SET attending = attending + 1, version = version + 1, \
         last_event_seq = last_event_seq + 1 WHERE id = ? AND attending < capacity"
    } else {
        "UPDATE rooms SET attending = attending + 1, version = version + 1 \
         WHERE id = ? AND attending < capacity"
    };
    tx.exec_drop(take_seat, (room,)).await.unwrap();
    assert_eq!(
        tx.affected_rows(),
        1,
        "a seat is always free in the benchmark"
    );
    tx.exec_drop(
        "INSERT INTO participants (room_id, user_id, node_id, joined_at) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
        (room, user, NODE.0),
    )
    .await
    .unwrap();
    if outbox {
        tx.exec_drop(
            "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
             SELECT id, last_event_seq, 'member_joined', ?, attending, NULL, UTC_TIMESTAMP(6) \
             FROM rooms WHERE id = ?",
            (user, room),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    true
}

fn print_table(table: &[(Contender, Vec<Cell>)], secs: u64, rounds: usize) {
    let raw = &table[0].1;
    println!("\nCommitted joins per second ({rounds} rounds of {secs} s per cell):\n");
    println!("| guard | hot room, 1 task | 16 | 64 | 1,000 rooms, 1 task | 16 | 64 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (contender, cells) in table {
        let figures: Vec<String> = cells
            .iter()
            .map(|cell| {
                let mut figure = format!("{:.0}", cell.per_second());
                if cell.gave_up > 0 {
                    figure.push_str(&format!(" ({} gave up)", cell.gave_up));
                }
                figure
            })
            .collect();
        println!("| {} | {} |", contender.name(), figures.join(" | "));
    }
    println!("\nTime per join relative to the raw statements (1.00 = raw):\n");
    println!("| guard | hot room, 1 task | 16 | 64 | 1,000 rooms, 1 task | 16 | 64 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (contender, cells) in table.iter().skip(1) {
        let ratios: Vec<String> = cells
            .iter()
            .zip(raw)
            .map(|(cell, raw)| format!("{:.2}×", raw.per_second() / cell.per_second()))
            .collect();
        println!("| {} | {} |", contender.name(), ratios.join(" | "));
    }
}
