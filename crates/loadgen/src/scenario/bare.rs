//! `churn --bare-mysql URL`: the physical limit of a visit, measured in the same run as churn.
//!
//! A visit's durable work is two transactions: the join (BEGIN, the guarded UPDATE, the
//! participant INSERT, the `member_joined` event INSERT, COMMIT) and the leave (BEGIN, the UPDATE
//! giving the seat back, the DELETE, the `member_left` event INSERT, COMMIT). Here the same
//! workers send exactly those statements, prepared, through mysql_async, with no server, no HTTP,
//! no WebSocket and no permit in between: what the database alone allows on this machine. Churn
//! divided by this is the share of the limit the whole server reaches.
//!
//! Two bare runs, one after the other, each as long as the churn: first the transactions alone
//! (the floor, the figure churn is measured against), then, on MariaDB, the same statements with
//! the server's `RETURNING` clauses: the leave's event INSERT answering with the attendance, the
//! join's also with the members and the newest 50 messages as JSON (the `joined` frame's view).
//! The second is the database work the server's visit asks for; the gap between the two is
//! what the view costs the database.
//!
//! The statements run in a scratch database on the same MariaDB server, its tables created from
//! the server's own (`SHOW CREATE TABLE`), so the schema, indexes and checks are the server's,
//! while the server's reaper never sees these rows. The scratch database is dropped at the end;
//! a run killed before that leaves its `roomgate_bare_<pid>` behind.

use std::time::{Duration, Instant};

use anyhow::Context;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts, TxOpts};
use rand::Rng;
use serde::Serialize;

use crate::latency::{Latency, LatencySummary};
use crate::report::{self, Table};

/// The tables a visit writes (and `messages`, which the join's view reads), created in the
/// scratch database as the server created them, in an order their foreign keys allow.
const TABLES: [&str; 4] = ["rooms", "participants", "messages", "room_events"];

/// The node every bare participant row names (the column is NOT NULL; nothing reads it here).
const NODE: i64 = 1;

const JOIN_SEAT: &str = "UPDATE rooms SET attending = attending + 1, version = version + 1, \
     last_event_seq = last_event_seq + 1 WHERE id = ? AND attending < capacity";
const JOIN_MEMBER: &str = "INSERT INTO participants (room_id, user_id, node_id, joined_at) \
     VALUES (?, ?, ?, UTC_TIMESTAMP(6))";
const JOIN_EVENT: &str = "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
     SELECT id, last_event_seq, 'member_joined', ?, attending, NULL, UTC_TIMESTAMP(6) \
     FROM rooms WHERE id = ?";
const LEAVE_SEAT: &str = "UPDATE rooms SET attending = attending - 1, last_event_seq = last_event_seq + 1 \
     WHERE id = ? AND EXISTS (SELECT 1 FROM participants WHERE participants.room_id = rooms.id \
     AND participants.user_id = ? AND participants.node_id = ?)";
const LEAVE_MEMBER: &str =
    "DELETE FROM participants WHERE room_id = ? AND user_id = ? AND node_id = ?";
const LEAVE_EVENT: &str = "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
     SELECT id, last_event_seq, 'member_left', ?, attending, 'left', UTC_TIMESTAMP(6) \
     FROM rooms WHERE id = ?";

/// [`JOIN_EVENT`] as the server sends it on MariaDB: answering with the attendance, the members
/// and the newest 50 messages (the `joined` frame's view).
const JOIN_EVENT_RETURNING: &str = "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
     SELECT id, last_event_seq, 'member_joined', ?, attending, NULL, UTC_TIMESTAMP(6) \
     FROM rooms WHERE id = ? RETURNING attending, \
     (SELECT JSON_ARRAYAGG(user_id ORDER BY joined_at, user_id) FROM participants WHERE room_id = ?), \
     (SELECT JSON_ARRAYAGG(JSON_ARRAY(id, user_id, body, sent_at)) FROM (\
     SELECT id, user_id, body, sent_at FROM messages WHERE room_id = ? ORDER BY id DESC LIMIT 50) AS recent)";

/// [`LEAVE_EVENT`] as the server sends it on MariaDB: answering with the attendance.
const LEAVE_EVENT_RETURNING: &str = "INSERT INTO room_events (room_id, seq, kind, user_id, attending, reason, at) \
     SELECT id, last_event_seq, 'member_left', ?, attending, 'left', UTC_TIMESTAMP(6) \
     FROM rooms WHERE id = ? RETURNING attending";

#[derive(Debug, Clone, Serialize)]
pub struct BareResult {
    /// Whether the event INSERTs answered as the server's do (`RETURNING`, the view included).
    pub as_sent: bool,
    workers: u32,
    rooms: u32,
    seconds: f64,
    /// Complete visits: a committed join and a committed leave.
    pub visits: u64,
    pub visits_per_second: f64,
    /// Joins that found the room full (rolled back, retried in another room).
    full: u64,
    join_latency: LatencySummary,
    leave_latency: LatencySummary,
}

impl BareResult {
    pub fn table(&self, churn_per_second: f64) -> Table {
        let share = if self.visits_per_second > 0.0 {
            format!("{:.2}×", churn_per_second / self.visits_per_second)
        } else {
            "—".to_owned()
        };
        let title = if self.as_sent {
            "bare statements as the server sends them (RETURNING, the joined frame's view)"
        } else {
            "bare statements (the same visits through mysql_async, no server): the floor"
        };
        Table::pairs(
            title,
            &[
                ("ran", format!("{:.1} s", self.seconds)),
                (
                    "complete visits",
                    format!(
                        "{} ({}/s)",
                        report::thousands(self.visits),
                        report::rate(self.visits_per_second)
                    ),
                ),
                ("rooms found full", report::thousands(self.full)),
                (
                    "join p50 / p99",
                    format!(
                        "{:.2} / {:.2} ms",
                        self.join_latency.p50_ms, self.join_latency.p99_ms
                    ),
                ),
                (
                    "leave p50 / p99",
                    format!(
                        "{:.2} / {:.2} ms",
                        self.leave_latency.p50_ms, self.leave_latency.p99_ms
                    ),
                ),
                ("churn ÷ bare", share),
            ],
        )
    }
}

/// The shape of the run, taken from the churn it is measured beside.
#[derive(Debug, Clone, Copy)]
pub struct BareWorkload {
    pub workers: u32,
    pub rooms: u32,
    pub capacity: u32,
    pub duration: Duration,
}

/// Runs the bare visits against a scratch copy of the schema next to `database_url`'s database:
/// the floor, then (on MariaDB) the statements as the server sends them.
pub async fn run(database_url: &str, workload: BareWorkload) -> anyhow::Result<Vec<BareResult>> {
    let source = Opts::from_url(database_url).context("parsing --bare-mysql")?;
    let schema = quoted(
        source
            .db_name()
            .context("--bare-mysql must name the server's database")?,
    );
    let scratch = format!("roomgate_bare_{}", std::process::id());
    let mut admin = mysql_async::Conn::new(source.clone()).await?;
    let version: String = admin
        .query_first("SELECT VERSION()")
        .await?
        .context("the server did not say its version")?;
    // The server uses `RETURNING` where the database has it: MariaDB (10.5 and later).
    let returning = version.to_ascii_lowercase().contains("mariadb");
    admin
        .query_drop(format!("CREATE DATABASE {}", quoted(&scratch)))
        .await?;
    let measured = async {
        admin
            .query_drop(format!("USE {}", quoted(&scratch)))
            .await?;
        for table in TABLES {
            let (_, create): (String, String) = admin
                .query_first(format!("SHOW CREATE TABLE {schema}.{}", quoted(table)))
                .await?
                .with_context(|| format!("the server's database has no table {table}"))?;
            admin.query_drop(create).await?;
        }
        let rooms: Vec<String> = (0..workload.rooms)
            .map(|i| {
                format!(
                    "('bare-{i}', 'bare', {}, 0, NULL, 'bare', UTC_TIMESTAMP(6), 0, 0)",
                    workload.capacity
                )
            })
            .collect();
        admin
            .query_drop(format!(
                "INSERT INTO rooms (id, title, capacity, attending, password_hash, created_by, \
                 created_at, version, last_event_seq) VALUES {}",
                rooms.join(", ")
            ))
            .await?;
        let opts = OptsBuilder::from_opts(source)
            .db_name(Some(scratch.clone()))
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(
                        PoolConstraints::new(1, workload.workers as usize)
                            .context("--workers must be at least 1")?,
                    )
                    // What a long-lived server connection does: no reset on every checkout.
                    .with_reset_connection(false),
            );
        let pool = mysql_async::Pool::new(opts);
        let mut runs = vec![drive(&pool, workload, false).await];
        if returning {
            runs.push(drive(&pool, workload, true).await);
        }
        pool.disconnect().await?;
        runs.into_iter().collect::<anyhow::Result<Vec<_>>>()
    }
    .await;
    let dropped = admin
        .query_drop(format!("DROP DATABASE {}", quoted(&scratch)))
        .await;
    // The run's own error says more than the clean-up's.
    let result = measured?;
    dropped.with_context(|| format!("dropping the scratch database {scratch}"))?;
    Ok(result)
}

/// `name` as a MariaDB identifier.
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

async fn drive(
    pool: &mysql_async::Pool,
    workload: BareWorkload,
    returning: bool,
) -> anyhow::Result<BareResult> {
    // A short unmeasured start: connections open and statements prepared, as on a warm server.
    run_workers(pool, workload, returning, Duration::from_millis(500)).await?;
    let started = Instant::now();
    let totals = run_workers(pool, workload, returning, workload.duration).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(BareResult {
        as_sent: returning,
        workers: workload.workers,
        rooms: workload.rooms,
        seconds,
        visits: totals.visits,
        visits_per_second: report::per_second(totals.visits, seconds),
        full: totals.full,
        join_latency: totals.join.summary(),
        leave_latency: totals.leave.summary(),
    })
}

#[derive(Default)]
struct Totals {
    visits: u64,
    full: u64,
    join: Latency,
    leave: Latency,
}

async fn run_workers(
    pool: &mysql_async::Pool,
    workload: BareWorkload,
    returning: bool,
    duration: Duration,
) -> anyhow::Result<Totals> {
    let deadline = Instant::now() + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..workload.workers {
        let pool = pool.clone();
        let rooms = workload.rooms;
        workers.spawn(async move {
            let user = format!("bare-{worker}");
            let mut totals = Totals::default();
            while Instant::now() < deadline {
                let room = format!("bare-{}", rand::rng().random_range(0..rooms));
                let started = Instant::now();
                if !join(&pool, &room, &user, returning).await? {
                    totals.full += 1;
                    continue;
                }
                totals.join.record(started.elapsed());
                let started = Instant::now();
                leave(&pool, &room, &user, returning).await?;
                totals.leave.record(started.elapsed());
                totals.visits += 1;
            }
            Ok::<_, anyhow::Error>(totals)
        });
    }
    let mut all = Totals::default();
    while let Some(done) = workers.join_next().await {
        let totals = done??;
        all.visits += totals.visits;
        all.full += totals.full;
        all.join.merge(&totals.join);
        all.leave.merge(&totals.leave);
    }
    Ok(all)
}

/// The join transaction; `false` when the room was full (nothing written).
async fn join(
    pool: &mysql_async::Pool,
    room: &str,
    user: &str,
    returning: bool,
) -> anyhow::Result<bool> {
    let mut conn = pool.get_conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    tx.exec_drop(JOIN_SEAT, (room,)).await?;
    if tx.affected_rows() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.exec_drop(JOIN_MEMBER, (room, user, NODE)).await?;
    if returning {
        // Read like the server reads it: the whole row, the view's JSON included.
        let view: Option<(i32, Option<String>, Option<String>)> = tx
            .exec_first(JOIN_EVENT_RETURNING, (user, room, room, room))
            .await?;
        anyhow::ensure!(view.is_some(), "the join's event was not written");
    } else {
        tx.exec_drop(JOIN_EVENT, (user, room)).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The leave transaction of a seat the same worker holds.
async fn leave(
    pool: &mysql_async::Pool,
    room: &str,
    user: &str,
    returning: bool,
) -> anyhow::Result<()> {
    let mut conn = pool.get_conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    tx.exec_drop(LEAVE_SEAT, (room, user, NODE)).await?;
    anyhow::ensure!(tx.affected_rows() == 1, "the seat in {room} was not held");
    tx.exec_drop(LEAVE_MEMBER, (room, user, NODE)).await?;
    if returning {
        let attending: Option<i32> = tx.exec_first(LEAVE_EVENT_RETURNING, (user, room)).await?;
        anyhow::ensure!(attending.is_some(), "the leave's event was not written");
    } else {
        tx.exec_drop(LEAVE_EVENT, (user, room)).await?;
    }
    tx.commit().await?;
    Ok(())
}
