//! A full admission cycle — reserve, confirm, drop the seat — on one and two threads, next to a
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot reserve has nothing to measure.
//! bare `tokio::sync::Semaphore` acquire/release as the floor.
//!
//! Run: `cargo bench -p roomgate-admission --bench cycle`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roomgate_admission::{ReserveRequest, SemaphoreRegistry, SystemClock};
use roomgate_domain::{Capacity, RoomId, SessionId, UserId};

const ROOMS: usize = 10_000;

fn registry() -> SemaphoreRegistry {
    SemaphoreRegistry::new(Arc::new(SystemClock), Default::default())
}

fn rooms() -> Vec<RoomId> {
    (0..ROOMS)
        .map(|i| RoomId::parse(&format!("room-{i}")).unwrap())
        .collect()
}

fn users(n: usize) -> Vec<UserId> {
    (0..n)
        .map(|i| UserId::parse(&format!("user-{i}")).unwrap())
        .collect()
}

/// One reserve → confirm → drop cycle.
fn cycle(registry: &SemaphoreRegistry, room: &RoomId, user: &UserId, session: u64) {
    let reservation = registry
        .reserve(ReserveRequest {
            room: room.clone(),
            user: user.clone(),
            capacity: Capacity::from_trusted(1_000),
            occupied: 0,
            ttl: Duration::from_secs(30),
        })
        .unwrap();
    let seat = registry
        .confirm(&reservation.ticket, SessionId(session))
        .unwrap();
    black_box(&seat);
    drop(seat);
}

/// Runs `iters` cycles split over `threads` OS threads and returns the wall time.
///
/// Each thread parses its own ids, as a server does per request: sharing one `Arc` between
/// threads would measure contention on the ids' reference counts, which no server has.
fn on_threads(
    threads: usize,
    iters: u64,
    registry: &SemaphoreRegistry,
    pick: impl Fn(usize, u64) -> (usize, usize) + Sync,
) -> Duration {
    let per_thread = iters / threads as u64;
    let ids: Vec<(Vec<RoomId>, Vec<UserId>)> = (0..threads).map(|_| (rooms(), users(64))).collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (t, (rooms, users)) in ids.iter().enumerate() {
            let pick = &pick;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let (room, user) = pick(t, i);
                    cycle(registry, &rooms[room], &users[user], i);
                }
            });
        }
    });
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let rooms = rooms();
    let users = users(64);
    let mut group = c.benchmark_group("admission_cycle");
    group.throughput(Throughput::Elements(1));

    group.bench_function("tokio_semaphore_baseline", |b| {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1_000));
        b.iter(|| {
            let permit = Arc::clone(&semaphore).try_acquire_owned().unwrap();
            black_box(&permit);
        });
    });

    let registry_distinct = registry();
    group.bench_function("distinct_rooms_1_thread", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % ROOMS;
            cycle(&registry_distinct, &rooms[i], &users[0], i as u64);
        });
    });

    let registry_hot = registry();
    group.bench_function("hot_room_1_thread", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % users.len();
            cycle(&registry_hot, &rooms[0], &users[i], i as u64);
        });
    });

    let registry_distinct_2 = registry();
    group.bench_function("distinct_rooms_2_threads", |b| {
        b.iter_custom(|iters| {
            // Each thread walks its own half of the rooms.
            let pick = |t: usize, i: u64| (t * (ROOMS / 2) + (i as usize % (ROOMS / 2)), t);
            on_threads(2, iters, &registry_distinct_2, pick)
        });
    });

    let registry_hot_2 = registry();
    group.bench_function("hot_room_2_threads", |b| {
        b.iter_custom(|iters| {
            // Both threads in one room, each with its own users.
            let pick = |t: usize, i: u64| (0, t * 32 + (i as usize % 32));
            on_threads(2, iters, &registry_hot_2, pick)
        });
    });
    group.finish();
}

criterion_group!(admission, benches);
criterion_main!(admission);
