//! Command line: one subcommand per scenario, each bounded in time and in count.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::target::{DEFAULT_URL, Target, TargetError};

/// Largest number of users, members or clients one run may ask for: well above the issue's
/// 10,000 and below what one process can hold open on a machine with 20,000 descriptors.
pub const MAX_CLIENTS: u32 = 100_000;
/// Longest a time-bounded phase may run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Debug, Parser)]
#[command(
    name = "roomgate-load",
    version,
    about = "Drives a running Roomgate over its HTTP and WebSocket contract and reports \
             throughput, latency percentiles, over-admission and leaked seats.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print the report as JSON on stdout; the table then goes to stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar and no table (the JSON, when asked for, is still printed).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Draw the latency percentiles (or the comparison) into this SVG file.
    #[arg(long, global = true, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Base URL of the running server [default: http://127.0.0.1:8080]. Only loopback
    /// addresses (127.0.0.0/8, ::1, localhost) are accepted without --allow-remote.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Accept a --url whose host is not a loopback address. Never point this at a machine you
    /// do not run.
    #[arg(long)]
    pub allow_remote: bool,
}

impl TargetArgs {
    pub fn target(&self) -> Result<Target, TargetError> {
        match &self.url {
            Some(url) => Target::parse(url, true, self.allow_remote),
            None => Target::parse(DEFAULT_URL, false, self.allow_remote),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// N users race for R rooms of capacity C: reservations/s, reserve and confirm latency,
    /// over-admission (exit 3 if any).
    Storm(StormArgs),
    /// Workers join, chat a little and leave in a loop: joins/s and leaves/s, and every room
    /// back to zero at the end (exit 3 if a seat leaked).
    Churn(ChurnArgs),
    /// R rooms × K members each sending at a rate: delivered messages/s and delivery latency.
    Fanout(FanoutArgs),
    /// N idle members: the server's resident memory per member.
    Idle(IdleArgs),
    /// Starts servers with each join guard and permit store and runs one workload against
    /// each: joins/s, p99, retries, over-admitted, next to the design notes' figures.
    Compare(CompareArgs),
    /// Starts a server on MariaDB behind a relay the tool cuts now and then, runs churn for a
    /// long time: joins/s, server memory and descriptors over time; exit 3 if a seat leaked,
    /// a room was over-admitted or the memory grew.
    Soak(SoakArgs),
    /// Full rooms with a waiting line: members leave at random, waiters are seated by
    /// hand-over and re-queue after their stay. Hand-over latency, waiting time, order
    /// inversions, idle seats; exit 3 on any inversion, idle seat, over-admission or leak.
    Queue(QueueArgs),
    /// Draws docs/BENCHMARKS.md's headline charts (one SVG each) from the figures file.
    Charts(ChartsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ChartsArgs {
    /// The figures, a JSON list of charts (see `docs/benchmarks/headline.json`).
    #[arg(long, default_value = "docs/benchmarks/headline.json")]
    pub figures: std::path::PathBuf,
    /// Where the SVGs go.
    #[arg(long, default_value = "docs/benchmarks")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Rooms, each kept full.
    #[arg(long, default_value_t = 100)]
    pub rooms: u32,
    /// Capacity of each room: the members who hold its seats.
    #[arg(long, default_value_t = 20)]
    pub capacity: u32,
    /// People per room beyond its capacity, who take places in its line (`"wait": true`).
    #[arg(long, default_value_t = 50)]
    pub waiters: u32,
    /// Mean time a member stays before sending `leave` (exponentially distributed); then it
    /// takes a place in line again.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stay: Duration,
    /// How long the line runs; then members leave and waiters give up their places.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How often every room is read (`GET /api/v1/rooms` pages) for idle seats and
    /// over-admission.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// A room counts as having an idle seat when every read over at least this long showed
    /// `attending + reserved < capacity` with `waiting > 0` (the contract's rule 7: the head is
    /// seated within 1 s). 0: a single such read counts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub idle_grace: Duration,
    /// Two hand-overs committed concurrently may confirm out of order: a waiter seated before
    /// someone who took a place earlier is an inversion only if that earlier one is not seated
    /// within this long after.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub order_grace: Duration,
    /// Mean pause before retrying a refused reservation (jittered ±50 %).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub backoff: Duration,
    /// How long to wait at the end for every room to be back to attending, reserved and
    /// waiting 0 (a place whose socket never opened lasts `admission.reservation_ttl`).
    #[arg(long, default_value = "35s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Another node of the same deployment (same database and Redis). Repeat for more. People
    /// are spread over the nodes (person i talks to node i mod N, REST and socket alike), so a
    /// seat freed on one node is handed to a head waiting on another. Loopback only, as --url.
    #[arg(long = "also-url", value_name = "URL")]
    pub also_urls: Vec<String>,
}

impl QueueArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("rooms", self.rooms, 1)?;
        count_in_range("capacity", self.capacity, 1)?;
        count_in_range("waiters", self.waiters, 1)?;
        let people = u64::from(self.rooms) * (u64::from(self.capacity) + u64::from(self.waiters));
        if people > u64::from(MAX_CLIENTS) {
            return Err(usage(
                "waiters",
                format!("rooms × (capacity + waiters) must stay within {MAX_CLIENTS}"),
            ));
        }
        duration_in_range("duration", self.duration)?;
        duration_in_range("settle", self.settle)?;
        if self.stay.is_zero() || self.stay > MAX_DURATION {
            return Err(usage("stay", "must be more than 0 and at most an hour"));
        }
        if self.sample_every < Duration::from_millis(10) || self.sample_every > self.duration {
            return Err(usage(
                "sample-every",
                format!(
                    "must be between 10ms and --duration ({:?}), got {:?}",
                    self.duration, self.sample_every
                ),
            ));
        }
        for (flag, value) in [
            ("idle-grace", self.idle_grace),
            ("order-grace", self.order_grace),
            ("backoff", self.backoff),
        ] {
            if value > MAX_DURATION {
                return Err(usage(flag, "at most an hour"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Users racing (each makes one reservation).
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Rooms; user i goes for room i mod R.
    #[arg(long, default_value_t = 1)]
    pub rooms: u32,
    /// Capacity of each room.
    #[arg(long, default_value_t = 100)]
    pub capacity: u32,
    /// Reservations in flight at once (each one HTTP connection).
    #[arg(long, default_value_t = 512)]
    pub concurrency: u32,
    /// Give up on the storm after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub workload: ChurnWorkload,
    /// How long to churn.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many complete joins, if reached first.
    #[arg(long)]
    pub count: Option<u64>,
    /// How long to wait at the end for every room to be back to zero.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,
    /// The server's MariaDB database (`mysql://user:password@host:port/database`): first run
    /// the same visits as bare statements through mysql_async, with no server, for as long, in
    /// a scratch copy of its schema, and report churn as a share of that limit.
    #[arg(long, value_name = "URL")]
    pub bare_mysql: Option<String>,
}

/// The churn workload itself, shared by `churn` and `soak`.
#[derive(Debug, Clone, Args)]
pub struct ChurnWorkload {
    /// Concurrent clients, each looping reserve → join → chat → leave.
    #[arg(long, default_value_t = 64)]
    pub workers: u32,
    /// Rooms the workers spread over at random.
    #[arg(long, default_value_t = 100)]
    pub rooms: u32,
    /// Capacity of each room.
    #[arg(long, default_value_t = 50)]
    pub capacity: u32,
    /// Messages each visit sends (and waits to see echoed) before leaving.
    #[arg(long, default_value_t = 2)]
    pub messages: u32,
    /// Mean pause before retrying a refused attempt (jittered ±50 %); a `Retry-After` wins.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub backoff: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: u32,
    /// Members per room (the room's capacity); every one of them sends.
    #[arg(long, default_value_t = 100)]
    pub members: u32,
    /// Messages per second each member sends (the server's default limit is 20).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// How long members send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop each member after this many messages, if reached first.
    #[arg(long)]
    pub count: Option<u64>,
    /// Bytes of each message body (at least the timestamp it carries).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: u32,
    /// How long to wait after the last send for deliveries still in flight.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Idle members to open.
    #[arg(long, default_value_t = 10_000)]
    pub members: u32,
    /// Members per room.
    #[arg(long, default_value_t = 100)]
    pub room_capacity: u32,
    /// Joins in flight at once while opening the members.
    #[arg(long, default_value_t = 256)]
    pub concurrency: u32,
    /// The server's process id, to read its resident memory from /proc/PID/status.
    /// Without it, the server's `process_resident_memory_bytes` metric is used if it has one.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// How long the members stay idle before memory is read.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long to wait at the end for every room to be back to zero.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// Where a compared server keeps its permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Permits {
    /// In the server process (`redis.url` empty).
    Memory,
    /// In Redis (`redis.url` = --redis-url).
    Redis,
}

impl Permits {
    pub fn as_str(self) -> &'static str {
        match self {
            Permits::Memory => "memory",
            Permits::Redis => "redis",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The `roomgate` binary to start [default: the one next to this program].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// MariaDB/MySQL server; a scratch database is created on it for each configuration and
    /// dropped afterwards.
    #[arg(long, default_value = "mysql://roomgate:roomgate@127.0.0.1:3306")]
    pub mysql_url: String,
    /// Use a scratch SQLite file per configuration instead of MariaDB.
    #[arg(long)]
    pub sqlite: bool,
    /// Redis for the `redis` permit store.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Accept MariaDB or Redis URLs whose host is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Join guards (`database.join_guard`) to compare; `naive` needs a server built with the
    /// `demo-unsafe` feature.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "conditional,pessimistic,optimistic"
    )]
    pub guards: Vec<String>,
    /// Permit stores to compare.
    #[arg(long, value_delimiter = ',', default_value = "memory,redis")]
    pub permits: Vec<Permits>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: u32,
    /// Rooms of the spread phase.
    #[arg(long, default_value_t = 1000)]
    pub rooms: u32,
    /// Capacity of the hot room; below --clients, so that clients contend for its seats and
    /// an over-admission would show.
    #[arg(long, default_value_t = 32)]
    pub hot_capacity: u32,
    /// Capacity of each room of the spread phase.
    #[arg(long, default_value_t = 8)]
    pub room_capacity: u32,
    /// Length of each phase (hot room, then spread) per configuration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop a phase after this many complete joins, if reached first.
    #[arg(long)]
    pub count: Option<u64>,
    /// How long a client stays in a room before leaving.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub hold: Duration,
    /// Mean pause before retrying a refused attempt (jittered ±50 %); a `Retry-After` wins.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub backoff: Duration,
    /// How long to wait at the end for every room to be back to zero.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Extra server settings, `section.key=value` (e.g. `database.max_connections=32`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub churn: ChurnWorkload,
    /// How long the whole soak runs, warm-up included.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How often the database connection is cut; the first cut comes this long after the
    /// warm-up, and no cut starts unless it heals before --duration.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub fault_every: Duration,
    /// How long each cut lasts: every relayed connection is reset and new ones are refused.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub fault_for: Duration,
    /// The first part of the run, without faults; the server's memory at its end is the
    /// baseline of the memory check.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How often joins/s, memory, descriptors and the fault state are recorded.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// How long to wait at the end, every worker stopped and every fault healed, for every
    /// room and permit to be back to zero.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Largest growth of the server's resident memory, in percent, from the end of the warm-up
    /// to the end of the run.
    #[arg(long, default_value_t = 10.0)]
    pub max_rss_growth: f64,
    /// The `roomgate` binary to start [default: the one next to this program].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// MariaDB/MySQL server; a scratch database is created on it and dropped afterwards, and
    /// the server reaches it through the tool's relay.
    #[arg(long, default_value = "mysql://roomgate:roomgate@127.0.0.1:3306")]
    pub mysql_url: String,
    /// Accept a --mysql-url whose host is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Extra server settings, `section.key=value` (e.g. `database.max_connections=32`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// A command-line value the scenarios cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--{flag}: {message}")]
pub struct UsageError {
    pub flag: &'static str,
    pub message: String,
}

fn usage(flag: &'static str, message: impl Into<String>) -> UsageError {
    UsageError {
        flag,
        message: message.into(),
    }
}

fn count_in_range(flag: &'static str, value: u32, min: u32) -> Result<(), UsageError> {
    if value < min || value > MAX_CLIENTS {
        return Err(usage(
            flag,
            format!("must be between {min} and {MAX_CLIENTS}, got {value}"),
        ));
    }
    Ok(())
}

fn duration_in_range(flag: &'static str, value: Duration) -> Result<(), UsageError> {
    if value.is_zero() || value > MAX_DURATION {
        return Err(usage(
            flag,
            format!("must be more than 0 and at most {MAX_DURATION:?}, got {value:?}"),
        ));
    }
    Ok(())
}

fn positive_count(flag: &'static str, value: Option<u64>) -> Result<(), UsageError> {
    if value == Some(0) {
        return Err(usage(flag, "must be at least 1"));
    }
    Ok(())
}

impl StormArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("users", self.users, 1)?;
        count_in_range("rooms", self.rooms, 1)?;
        count_in_range("capacity", self.capacity, 1)?;
        count_in_range("concurrency", self.concurrency, 1)?;
        duration_in_range("duration", self.duration)?;
        if u64::from(self.rooms) * u64::from(self.capacity) > u64::from(MAX_CLIENTS) {
            return Err(usage(
                "capacity",
                format!("rooms × capacity must stay within {MAX_CLIENTS} open sessions"),
            ));
        }
        Ok(())
    }
}

impl ChurnArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        self.workload.validate()?;
        if self.bare_mysql.is_some() && self.workload.messages > 0 {
            return Err(usage(
                "bare-mysql",
                "measures visits without messages: add --messages 0",
            ));
        }
        duration_in_range("duration", self.duration)?;
        duration_in_range("settle", self.settle)?;
        positive_count("count", self.count)?;
        Ok(())
    }
}

impl ChurnWorkload {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("workers", self.workers, 1)?;
        count_in_range("rooms", self.rooms, 1)?;
        count_in_range("capacity", self.capacity, 1)?;
        if self.backoff > MAX_DURATION {
            return Err(usage("backoff", "at most an hour"));
        }
        if self.messages > 1000 {
            return Err(usage("messages", "at most 1000 per visit"));
        }
        Ok(())
    }
}

impl SoakArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        self.churn.validate()?;
        duration_in_range("duration", self.duration)?;
        duration_in_range("fault-every", self.fault_every)?;
        duration_in_range("fault-for", self.fault_for)?;
        duration_in_range("sample-every", self.sample_every)?;
        duration_in_range("settle", self.settle)?;
        if self.fault_for >= self.fault_every {
            return Err(usage(
                "fault-for",
                format!(
                    "must be shorter than --fault-every ({:?}), got {:?}",
                    self.fault_every, self.fault_for
                ),
            ));
        }
        if self.warmup.is_zero() || self.warmup >= self.duration {
            return Err(usage(
                "warmup",
                format!(
                    "must be more than 0 and shorter than --duration ({:?}), got {:?}",
                    self.duration, self.warmup
                ),
            ));
        }
        if self.sample_every < Duration::from_millis(100) || self.sample_every > self.warmup {
            return Err(usage(
                "sample-every",
                format!(
                    "must be between 100ms and --warmup ({:?}), got {:?}",
                    self.warmup, self.sample_every
                ),
            ));
        }
        if !(self.max_rss_growth.is_finite() && self.max_rss_growth >= 0.0) {
            return Err(usage("max-rss-growth", "must be a percentage, 0 or more"));
        }
        for setting in &self.settings {
            parse_setting(setting)?;
        }
        Ok(())
    }
}

impl FanoutArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("rooms", self.rooms, 1)?;
        count_in_range("members", self.members, 1)?;
        if u64::from(self.rooms) * u64::from(self.members) > u64::from(MAX_CLIENTS) {
            return Err(usage(
                "members",
                format!("rooms × members must stay within {MAX_CLIENTS}"),
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0) {
            return Err(usage(
                "rate",
                format!("must be above 0 and at most 1000, got {}", self.rate),
            ));
        }
        duration_in_range("duration", self.duration)?;
        duration_in_range("drain", self.drain)?;
        positive_count("count", self.count)?;
        if !(crate::scenario::fanout::MIN_BODY..=4000).contains(&self.body_bytes) {
            return Err(usage(
                "body-bytes",
                format!(
                    "must be between {} (room for the timestamp) and 4000",
                    crate::scenario::fanout::MIN_BODY
                ),
            ));
        }
        Ok(())
    }
}

impl IdleArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("members", self.members, 1)?;
        count_in_range("room-capacity", self.room_capacity, 1)?;
        count_in_range("concurrency", self.concurrency, 1)?;
        duration_in_range("duration", self.duration)?;
        duration_in_range("settle", self.settle)?;
        Ok(())
    }
}

impl CompareArgs {
    pub fn validate(&self) -> Result<(), UsageError> {
        count_in_range("clients", self.clients, 1)?;
        count_in_range("rooms", self.rooms, 1)?;
        count_in_range("hot-capacity", self.hot_capacity, 1)?;
        count_in_range("room-capacity", self.room_capacity, 1)?;
        duration_in_range("duration", self.duration)?;
        duration_in_range("settle", self.settle)?;
        positive_count("count", self.count)?;
        if self.hold > MAX_DURATION {
            return Err(usage("hold", "at most an hour"));
        }
        if self.backoff > MAX_DURATION {
            return Err(usage("backoff", "at most an hour"));
        }
        if self.guards.is_empty() {
            return Err(usage("guards", "name at least one join guard"));
        }
        for guard in &self.guards {
            if guard.is_empty() || !guard.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                return Err(usage(
                    "guards",
                    format!("{guard:?} is not a join guard name (lowercase letters)"),
                ));
            }
        }
        if self.permits.is_empty() {
            return Err(usage("permits", "name at least one permit store"));
        }
        for setting in &self.settings {
            parse_setting(setting)?;
        }
        Ok(())
    }
}

/// `section.key=value` → (`ROOMGATE__SECTION__KEY`, `value`).
pub fn parse_setting(setting: &str) -> Result<(String, String), UsageError> {
    let Some((key, value)) = setting.split_once('=') else {
        return Err(usage(
            "set",
            format!("{setting:?} is not section.key=value"),
        ));
    };
    let valid = key.split('.').count() == 2
        && key.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(usage("set", format!("{key:?} is not section.key")));
    }
    Ok((
        format!("ROOMGATE__{}", key.replace('.', "__").to_uppercase()),
        value.to_owned(),
    ))
}

/// `250ms`, `2s`, `1.5s`, `3m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 2s or 1m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("roomgate-load").chain(args.iter().copied()))
    }

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("2 fortnights").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_issue_sizes_are_the_defaults() {
        let Command::Storm(storm) = parse(&["storm"]).unwrap().command else {
            panic!("storm")
        };
        assert_eq!((storm.users, storm.rooms, storm.capacity), (10_000, 1, 100));
        storm.validate().unwrap();
        let Command::Compare(compare) = parse(&["compare"]).unwrap().command else {
            panic!("compare")
        };
        assert_eq!(compare.clients, 64);
        assert_eq!(compare.rooms, 1000);
        assert_eq!(compare.guards, ["conditional", "pessimistic", "optimistic"]);
        assert_eq!(compare.permits, [Permits::Memory, Permits::Redis]);
        assert_eq!(
            compare.mysql_url,
            "mysql://roomgate:roomgate@127.0.0.1:3306"
        );
        compare.validate().unwrap();
    }

    #[test]
    fn output_flags_go_anywhere_on_the_line() {
        let cli = parse(&["churn", "--json", "--duration", "2s", "--plot", "x.svg"]).unwrap();
        assert!(cli.output.json);
        assert_eq!(cli.output.plot, Some(PathBuf::from("x.svg")));
        let Command::Churn(churn) = cli.command else {
            panic!("churn")
        };
        assert_eq!(churn.duration, Duration::from_secs(2));
    }

    #[test]
    fn the_target_defaults_to_loopback() {
        let Command::Idle(idle) = parse(&["idle"]).unwrap().command else {
            panic!("idle")
        };
        assert_eq!(idle.target.target().unwrap().http, "http://127.0.0.1:8080");
    }

    #[test]
    fn a_non_loopback_url_is_refused_unless_confirmed() {
        let Command::Storm(storm) = parse(&["storm", "--url", "http://10.1.2.3:8080"])
            .unwrap()
            .command
        else {
            panic!("storm")
        };
        assert!(matches!(
            storm.target.target(),
            Err(TargetError::NotLoopback { .. })
        ));
        let Command::Storm(storm) =
            parse(&["storm", "--url", "http://10.1.2.3:8080", "--allow-remote"])
                .unwrap()
                .command
        else {
            panic!("storm")
        };
        assert!(storm.target.target().is_ok());
    }

    #[test]
    fn out_of_range_sizes_are_refused_by_flag_name() {
        let Command::Storm(mut storm) = parse(&["storm"]).unwrap().command else {
            panic!("storm")
        };
        storm.users = 0;
        assert_eq!(storm.validate().unwrap_err().flag, "users");
        storm.users = MAX_CLIENTS + 1;
        assert_eq!(storm.validate().unwrap_err().flag, "users");
        storm.users = 10;
        storm.rooms = 1000;
        storm.capacity = 1000;
        assert_eq!(storm.validate().unwrap_err().flag, "capacity");

        let Command::Fanout(mut fanout) = parse(&["fanout"]).unwrap().command else {
            panic!("fanout")
        };
        fanout.validate().unwrap();
        fanout.rate = 0.0;
        assert_eq!(fanout.validate().unwrap_err().flag, "rate");
        fanout.rate = f64::INFINITY;
        assert_eq!(fanout.validate().unwrap_err().flag, "rate");
        fanout.rate = 1.0;
        fanout.body_bytes = 4;
        assert_eq!(fanout.validate().unwrap_err().flag, "body-bytes");
    }

    #[test]
    fn every_run_is_bounded_in_time() {
        assert!(parse(&["churn", "--duration", "0s"]).is_ok());
        let Command::Churn(churn) = parse(&["churn", "--duration", "0s"]).unwrap().command else {
            panic!("churn")
        };
        assert_eq!(churn.validate().unwrap_err().flag, "duration");
        let Command::Churn(churn) = parse(&["churn", "--duration", "2h"]).unwrap().command else {
            panic!("churn")
        };
        assert_eq!(churn.validate().unwrap_err().flag, "duration");
        let Command::Churn(churn) = parse(&["churn", "--count", "0"]).unwrap().command else {
            panic!("churn")
        };
        assert_eq!(churn.validate().unwrap_err().flag, "count");
    }

    #[test]
    fn compare_takes_guard_lists_and_refuses_odd_names() {
        let Command::Compare(compare) = parse(&[
            "compare",
            "--guards",
            "conditional,naive",
            "--permits",
            "memory",
        ])
        .unwrap()
        .command
        else {
            panic!("compare")
        };
        assert_eq!(compare.guards, ["conditional", "naive"]);
        assert_eq!(compare.permits, [Permits::Memory]);
        compare.validate().unwrap();

        let Command::Compare(compare) = parse(&["compare", "--guards", "Robert'); DROP"])
            .unwrap()
            .command
        else {
            panic!("compare")
        };
        assert_eq!(compare.validate().unwrap_err().flag, "guards");
        assert!(parse(&["compare", "--permits", "disk"]).is_err());
    }

    #[test]
    fn soak_runs_ten_minutes_of_churn_with_a_cut_every_thirty_seconds_by_default() {
        let Command::Soak(soak) = parse(&["soak"]).unwrap().command else {
            panic!("soak")
        };
        assert_eq!(soak.duration, Duration::from_secs(600));
        assert_eq!(soak.fault_every, Duration::from_secs(30));
        assert_eq!(soak.fault_for, Duration::from_secs(3));
        assert_eq!(soak.warmup, Duration::from_secs(60));
        assert_eq!(soak.sample_every, Duration::from_secs(1));
        assert_eq!(
            (soak.churn.workers, soak.churn.rooms, soak.churn.capacity),
            (64, 100, 50)
        );
        assert_eq!(soak.mysql_url, "mysql://roomgate:roomgate@127.0.0.1:3306");
        soak.validate().unwrap();

        // churn's own options, flattened; soak starts its own server, so no --url.
        let Command::Soak(soak) = parse(&[
            "soak",
            "--workers",
            "8",
            "--rooms",
            "4",
            "--messages",
            "0",
            "--duration",
            "20s",
        ])
        .unwrap()
        .command
        else {
            panic!("soak")
        };
        assert_eq!((soak.churn.workers, soak.churn.rooms), (8, 4));
        assert_eq!(soak.churn.messages, 0);
        assert!(parse(&["soak", "--url", "http://127.0.0.1:8080"]).is_err());
    }

    #[test]
    fn soak_refuses_schedules_that_make_no_sense() {
        let refused = |args: &[&str]| {
            let line: Vec<&str> = std::iter::once("soak")
                .chain(args.iter().copied())
                .collect();
            let Command::Soak(soak) = parse(&line).unwrap().command else {
                panic!("soak")
            };
            soak.validate().unwrap_err().flag
        };
        // A cut as long as the period would never heal.
        assert_eq!(
            refused(&["--fault-every", "3s", "--fault-for", "3s"]),
            "fault-for"
        );
        assert_eq!(refused(&["--duration", "60s", "--warmup", "60s"]), "warmup");
        assert_eq!(
            refused(&["--warmup", "5s", "--sample-every", "10s"]),
            "sample-every"
        );
        assert_eq!(refused(&["--sample-every", "10ms"]), "sample-every");
        assert_eq!(refused(&["--max-rss-growth=-1"]), "max-rss-growth");
        assert_eq!(refused(&["--workers", "0"]), "workers");
        assert_eq!(refused(&["--set", "nonsense"]), "set");
    }

    #[test]
    fn queue_defaults_are_the_issue_sizes_and_odd_values_are_refused() {
        let Command::Queue(queue) = parse(&["queue"]).unwrap().command else {
            panic!("queue")
        };
        assert_eq!((queue.rooms, queue.capacity, queue.waiters), (100, 20, 50));
        assert_eq!(queue.duration, Duration::from_secs(30));
        assert_eq!(queue.sample_every, Duration::from_millis(200));
        queue.validate().unwrap();
        let refused = |args: &[&str]| {
            let line: Vec<&str> = std::iter::once("queue")
                .chain(args.iter().copied())
                .collect();
            let Command::Queue(queue) = parse(&line).unwrap().command else {
                panic!("queue")
            };
            queue.validate().unwrap_err().flag
        };
        assert_eq!(refused(&["--waiters", "0"]), "waiters");
        assert_eq!(refused(&["--stay", "0s"]), "stay");
        assert_eq!(refused(&["--sample-every", "1ms"]), "sample-every");
        assert_eq!(
            refused(&["--rooms", "2000", "--capacity", "50", "--waiters", "50"]),
            "waiters"
        );
    }

    #[test]
    fn server_settings_become_environment_variables() {
        assert_eq!(
            parse_setting("database.max_connections=32").unwrap(),
            ("ROOMGATE__DATABASE__MAX_CONNECTIONS".into(), "32".into())
        );
        assert!(parse_setting("max_connections=32").is_err());
        assert!(parse_setting("database.max_connections").is_err());
        assert!(parse_setting("a.b.c=1").is_err());
        assert!(parse_setting("data base.x=1").is_err());
    }
}
