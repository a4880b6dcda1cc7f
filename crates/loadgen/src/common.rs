//! What every scenario needs: names that cannot collide with earlier runs, tokens, rooms that
//! are open and empty, server reads while the load runs, and the final "every room back to zero".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use rand::Rng as _;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use roomgate_api::{FrameErrorCode, RoomView, ServerFrame};

use crate::api::{self, Api, Refusal, Ws};
use crate::invariants::{AdmissionCheck, Leak, leaks};
use crate::latency::Latency;
use crate::progress::Progress;

/// How often a rate-limited or otherwise refused setup call is tried before the run gives up.
const SETUP_ATTEMPTS: u32 = 20;

/// A short random prefix for the users and rooms of one run, so that runs against the same
/// server (and database) never meet each other's rows.
pub fn run_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `lg<run>-<tag><i>`: valid both as a user id and as a room id of the contract.
pub fn name(run: &str, tag: &str, i: u32) -> String {
    format!("lg{run}-{tag}{i}")
}

/// Counts by outcome label, merged across tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, label: &str, n: u64) {
        *self.0.entry(label.to_owned()).or_insert(0) += n;
    }

    pub fn merge(&mut self, other: &Counts) {
        for (label, n) in &other.0 {
            self.add(label, *n);
        }
    }

    /// `room_full 12, rate_limited 1` — for tables.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".to_owned();
        }
        self.0
            .iter()
            .map(|(label, n)| format!("{label} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The client for the target named on the command line: refused unless it is loopback (or
/// explicitly allowed), and only once a server answers there.
pub async fn connect(target: &crate::cli::TargetArgs) -> anyhow::Result<Api> {
    let target = target.target()?;
    target.confirm_loopback().await?;
    let api = Api::new(target)?;
    ensure_up(&api).await?;
    Ok(api)
}

/// Open, empty rooms and users with tokens, named for this run: what storm, churn and idle
/// start from.
#[derive(Debug)]
pub struct Population {
    /// `(room id, capacity)`, in order.
    pub rooms: Vec<(String, u32)>,
    pub room_ids: Vec<String>,
    pub users: Vec<String>,
    /// `tokens[i]` is `users[i]`'s.
    pub tokens: Vec<String>,
}

/// Opens `room_count` rooms of `capacity` (tagged `room_tag` in their ids) through a pool of
/// at most 64 creators who leave at once, and gets tokens for `user_count` users.
pub async fn populate(
    api: &Api,
    quiet: bool,
    room_tag: &str,
    room_count: u32,
    capacity: u32,
    user_count: u32,
) -> anyhow::Result<Population> {
    let run = run_id();
    let rooms: Vec<(String, u32)> = (0..room_count)
        .map(|i| (name(&run, room_tag, i), capacity))
        .collect();
    let users: Vec<String> = (0..user_count).map(|i| name(&run, "u", i)).collect();
    let creators: Vec<String> = (0..room_count.min(64))
        .map(|i| name(&run, "c", i))
        .collect();
    let setup = Progress::new(
        quiet,
        (users.len() + creators.len() + rooms.len()) as u64,
        "setup",
    );
    let creator_tokens = tokens(api, &creators, 32, &setup)
        .await
        .context("getting tokens for the room creators")?;
    let user_tokens = tokens(api, &users, 64, &setup)
        .await
        .context("getting tokens for the users")?;
    open_rooms(api, &rooms, &creator_tokens, false, &setup)
        .await
        .context("opening the rooms")?;
    setup.finish();
    let room_ids = rooms.iter().map(|(id, _)| id.clone()).collect();
    Ok(Population {
        rooms,
        room_ids,
        users,
        tokens: user_tokens,
    })
}

/// Fails early, with a sentence, when nothing answers at the target.
pub async fn ensure_up(api: &Api) -> anyhow::Result<()> {
    if !api.healthy().await {
        bail!(
            "no Roomgate answers at {} (GET /healthz); start one with `cargo run --release -p roomgate-server`",
            api.target().http
        );
    }
    Ok(())
}

/// Calls `call` until it succeeds, waiting as long as the server asks on 429 and 409
/// room_pending, and briefly on 503; any other refusal ends the run with `what` as context.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Refusal>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(refusal) if attempt < SETUP_ATTEMPTS => match refusal {
                Refusal::RateLimited { retry_after } | Refusal::RoomPending { retry_after } => {
                    tokio::time::sleep(retry_after.min(Duration::from_secs(5))).await;
                }
                Refusal::Unavailable | Refusal::Transport(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => bail!("{what}: {other}"),
            },
            Err(refusal) => bail!("{what}: {refusal} (after {attempt} attempts)"),
        }
    }
}

/// Bearer tokens for `users`, in order.
pub async fn tokens(
    api: &Api,
    users: &[String],
    concurrency: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    stream::iter(users.iter())
        .map(|user| async move {
            let token = with_retries(&format!("dev token for {user}"), || api.token(user)).await;
            progress.inc(1);
            token
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Creates rooms and confirms each creator's seat, so that every room is open.
///
/// With `keep_creators`, creator `i` creates room `i` and stays in it (its socket is returned
/// at index `i`); otherwise the creators are a pool, each creating its share of the rooms one
/// after the other and leaving each at once, so the rooms end up open and empty.
pub async fn open_rooms(
    api: &Api,
    rooms: &[(String, u32)],
    creators: &[String],
    keep_creators: bool,
    progress: &Progress,
) -> anyhow::Result<Vec<Option<Ws>>> {
    if creators.is_empty() {
        bail!("no creator to open rooms with");
    }
    if keep_creators && creators.len() < rooms.len() {
        bail!("each room needs its own creator to keep");
    }
    let pool = if keep_creators {
        rooms.len()
    } else {
        creators.len().min(rooms.len())
    };
    let shares = (0..pool).map(|worker| async move {
        let mut kept = Vec::new();
        let token = &creators[worker];
        for index in (worker..rooms.len()).step_by(pool.max(1)) {
            let (id, capacity) = &rooms[index];
            let reservation = with_retries(&format!("creating room {id}"), || {
                api.create_room(token, id, *capacity)
            })
            .await?;
            let (mut ws, _) = api
                .join(&reservation)
                .await
                .map_err(|e| anyhow::anyhow!("confirming room {id}: {e}"))?;
            if keep_creators {
                kept.push((index, ws));
            } else {
                let code = api::leave(&mut ws)
                    .await
                    .map_err(|e| anyhow::anyhow!("leaving new room {id}: {e}"))?;
                if !api::left_cleanly(code) {
                    bail!("leaving new room {id}: closed with {code}, expected 1000");
                }
            }
            progress.inc(1);
        }
        anyhow::Ok(kept)
    });
    let mut sockets: Vec<Option<Ws>> = (0..rooms.len()).map(|_| None).collect();
    // Opening a socket per room at once is what `keep_creators` asks for; without it the
    // pool bounds the work in flight.
    let mut stream = stream::iter(shares).buffer_unordered(pool.clamp(1, 256));
    while let Some(kept) = stream.next().await {
        for (index, ws) in kept? {
            sockets[index] = Some(ws);
        }
    }
    Ok(sockets)
}

/// The server's view of every room in `ids`.
pub async fn read_rooms(
    api: &Api,
    ids: &[String],
    concurrency: usize,
) -> anyhow::Result<Vec<RoomView>> {
    stream::iter(ids.iter())
        .map(|id| async move { with_retries(&format!("reading room {id}"), || api.room(id)).await })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Waits up to `within` for every room to be back to `attending == 0 && reserved == 0`;
/// returns the rooms that are not (empty: nothing leaked).
pub async fn settle(api: &Api, ids: &[String], within: Duration) -> anyhow::Result<Vec<Leak>> {
    let deadline = Instant::now() + within;
    loop {
        let views = read_rooms(api, ids, 32).await?;
        let leaked = leaks(&views);
        if leaked.is_empty() || Instant::now() >= deadline {
            return Ok(leaked);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads rooms round-robin while the load runs and hands every answer to the admission check:
/// the server's own counts, sampled under fire.
#[derive(Debug)]
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<u64>,
}

impl Sampler {
    /// Reads one room every `interval`, cycling through `rooms` (indices into `check`).
    pub fn spawn(
        api: Api,
        check: Arc<AdmissionCheck>,
        rooms: Vec<usize>,
        interval: Duration,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut reads = 0_u64;
            if rooms.is_empty() {
                return reads;
            }
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next = 0;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return reads,
                    _ = ticker.tick() => {}
                }
                let room = rooms[next % rooms.len()];
                next += 1;
                if let Ok(view) = api.room(&check.ids()[room]).await {
                    check.observe(&view);
                    reads += 1;
                }
            }
        });
        Self { stop, task }
    }

    /// Stops sampling; returns the number of reads taken.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// What one client saw over many visits (reserve → join → chat → leave).
#[derive(Debug, Clone, Default)]
pub struct VisitStats {
    /// Reserve request sent → `joined` frame received, for visits that got a seat.
    pub join: Latency,
    /// `leave` sent → close frame received.
    pub leave: Latency,
    /// `message` sent → its echo received.
    pub echo: Latency,
    pub joins: u64,
    pub leaves: u64,
    pub messages: u64,
    /// Attempts that did not end in a seat (refused reservation or join): each is retried.
    pub retries: u64,
    pub outcomes: Counts,
}

impl VisitStats {
    pub fn merge(&mut self, other: &VisitStats) {
        self.join.merge(&other.join);
        self.leave.merge(&other.leave);
        self.echo.merge(&other.echo);
        self.joins += other.joins;
        self.leaves += other.leaves;
        self.messages += other.messages;
        self.retries += other.retries;
        self.outcomes.merge(&other.outcomes);
    }
}

/// One visit's plan.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub user: &'a str,
    pub token: &'a str,
    /// Index of the room in `check`.
    pub room: usize,
    pub messages: u32,
    pub hold: Duration,
    /// Mean pause after a refusal that names no `Retry-After`.
    pub backoff: Duration,
}

/// `mean` scaled by a random factor in [0.5, 1.5): clients that were refused together do not
/// come back together.
pub fn jittered(mean: Duration) -> Duration {
    mean.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Reserves a seat, joins, sends `messages` messages waiting for each echo, stays `hold`,
/// and leaves. Returns whether the visit got a seat. Nothing is left behind: a reservation
/// whose join failed without an answer from the server is cancelled.
pub async fn visit(
    api: &Api,
    check: &AdmissionCheck,
    plan: Visit<'_>,
    stats: &mut VisitStats,
) -> bool {
    let room_id = &check.ids()[plan.room];
    let started = Instant::now();
    let reservation = match api.reserve(plan.token, room_id).await {
        Ok(reservation) => reservation,
        Err(refusal) => {
            stats.retries += 1;
            stats.outcomes.add(refusal.label(), 1);
            let pause = refusal
                .retry_after()
                .unwrap_or_else(|| jittered(plan.backoff));
            tokio::time::sleep(pause).await;
            return false;
        }
    };
    let mut ws = match api.join(&reservation).await {
        Ok((ws, _)) => ws,
        Err(failure) => {
            stats.retries += 1;
            stats.outcomes.add(failure.label(), 1);
            tokio::time::sleep(jittered(plan.backoff)).await;
            if matches!(
                failure,
                api::JoinFailure::Transport(_) | api::JoinFailure::Timeout
            ) {
                // The server may never have seen the ticket: give the seat back explicitly.
                let _ = api.cancel(plan.token, room_id).await;
            }
            return false;
        }
    };
    stats.join.record(started.elapsed());
    stats.joins += 1;
    check.enter(plan.room);
    for n in 0..plan.messages {
        let sent = Instant::now();
        let body = format!("churn {n} from {}", plan.user);
        if api::send_message(&mut ws, body).await.is_err() {
            stats.outcomes.add("send_error", 1);
            break;
        }
        match tokio::time::timeout(api::CALL_TIMEOUT, wait_for_echo(&mut ws, plan.user)).await {
            Ok(Ok(())) => {
                stats.echo.record(sent.elapsed());
                stats.messages += 1;
            }
            Ok(Err(EchoFailure::Refused(code))) => {
                // The server said so at once (e.g. `unavailable`: it could not store the
                // message); the session stays, so the visit leaves as usual.
                stats
                    .outcomes
                    .add(&format!("message_refused_{}", code.as_str()), 1);
                break;
            }
            Ok(Err(EchoFailure::Closed(code))) => {
                stats
                    .outcomes
                    .add(&format!("closed_while_chatting_{code}"), 1);
                check.exit(plan.room);
                return true;
            }
            Err(_) => {
                stats.outcomes.add("echo_timeout", 1);
                break;
            }
        }
    }
    if !plan.hold.is_zero() {
        tokio::time::sleep(plan.hold).await;
    }
    // Out of the count before `leave` is sent: after that the server may give the seat away.
    check.exit(plan.room);
    let leaving = Instant::now();
    match api::leave(&mut ws).await {
        Ok(code) if api::left_cleanly(code) => {
            stats.leave.record(leaving.elapsed());
            stats.leaves += 1;
        }
        Ok(code) => stats.outcomes.add(&format!("leave_closed_{code}"), 1),
        Err(_) => stats.outcomes.add("leave_error", 1),
    }
    true
}

/// Why a message sent did not come back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EchoFailure {
    /// The server answered with an `error` frame of this code (an error frame goes only to the
    /// session whose frame it refuses).
    Refused(FrameErrorCode),
    /// The session ended, with this close code ([`api::CLOSED_ABNORMALLY`]: without a close
    /// frame).
    Closed(u16),
}

/// Reads frames until this user's own message comes back, the server refuses it, or the
/// session ends.
async fn wait_for_echo(ws: &mut Ws, user: &str) -> Result<(), EchoFailure> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(ServerFrame::Message(message)) if message.user_id == user => return Ok(()),
                    Ok(ServerFrame::Error(error)) => return Err(EchoFailure::Refused(error.code)),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(close))) => {
                return Err(EchoFailure::Closed(api::close_code(close.as_ref())));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(EchoFailure::Closed(api::CLOSED_ABNORMALLY)),
        }
    }
}

/// A closed loop of visits: `workers` clients, each rotating through `users_per_worker` users
/// of its own, visiting until `duration` has passed or `count` joins were made in all.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    pub workers: u32,
    pub users_per_worker: u32,
    pub duration: Duration,
    pub count: Option<u64>,
    pub messages: u32,
    pub hold: Duration,
    pub backoff: Duration,
    /// `Some(room)`: every visit goes to that room; `None`: a random room of the check.
    pub room: Option<usize>,
}

/// Runs `plan` against the rooms of `check`, with a sampler reading them meanwhile; returns
/// every client's stats merged and the time it took. `users` and `tokens` hold
/// `workers × users_per_worker` entries.
pub async fn drive(
    api: &Api,
    check: &Arc<AdmissionCheck>,
    users: &Arc<Vec<String>>,
    tokens: &Arc<Vec<String>>,
    plan: Drive,
    progress: &Progress,
) -> anyhow::Result<(VisitStats, Duration)> {
    let joins = Arc::new(std::sync::atomic::AtomicU64::new(0));
    drive_counting(api, check, users, tokens, plan, progress, &joins).await
}

/// [`drive`], adding every complete join to `joins` as it happens, so that the caller can
/// watch the rate while the load runs (`soak`).
pub async fn drive_counting(
    api: &Api,
    check: &Arc<AdmissionCheck>,
    users: &Arc<Vec<String>>,
    tokens: &Arc<Vec<String>>,
    plan: Drive,
    progress: &Progress,
    joins: &Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<(VisitStats, Duration)> {
    use rand::SeedableRng as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    let needed = (plan.workers * plan.users_per_worker) as usize;
    if users.len() < needed || tokens.len() < needed {
        bail!(
            "{needed} users are needed to drive {} workers",
            plan.workers
        );
    }
    let sampled: Vec<usize> = match plan.room {
        Some(room) => vec![room],
        None => (0..check.len()).collect(),
    };
    let sampler = Sampler::spawn(
        api.clone(),
        Arc::clone(check),
        sampled,
        Duration::from_millis(10),
    );
    let counted_before = joins.load(Ordering::Acquire);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut workers = Vec::new();
    for worker in 0..plan.workers {
        let api = api.clone();
        let check = Arc::clone(check);
        let users = Arc::clone(users);
        let tokens = Arc::clone(tokens);
        let joins = Arc::clone(joins);
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let mut stats = VisitStats::default();
            let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
            let mut turn = 0_u32;
            while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                let user = (worker * plan.users_per_worker + turn % plan.users_per_worker) as usize;
                turn = turn.wrapping_add(1);
                let visit_plan = Visit {
                    user: &users[user],
                    token: &tokens[user],
                    room: plan
                        .room
                        .unwrap_or_else(|| rng.random_range(0..check.len())),
                    messages: plan.messages,
                    hold: plan.hold,
                    backoff: plan.backoff,
                };
                if visit(&api, &check, visit_plan, &mut stats).await {
                    let total = joins.fetch_add(1, Ordering::AcqRel) + 1 - counted_before;
                    if plan.count.is_some_and(|count| total >= count) {
                        stop.store(true, Ordering::Release);
                    }
                }
            }
            stats
        }));
    }
    while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.elapsed(start.elapsed());
        progress.message(format!(
            "{} joins",
            joins.load(Ordering::Acquire) - counted_before
        ));
    }
    let mut stats = VisitStats::default();
    for worker in workers {
        stats.merge(&worker.await.context("a client task panicked")?);
    }
    let elapsed = start.elapsed();
    sampler.stop().await;
    Ok((stats, elapsed))
}

/// Closes every socket with `leave`, `concurrency` at a time; returns how many got the
/// server's 1000 and the other outcomes.
pub async fn leave_all(sockets: Vec<Ws>, concurrency: usize) -> (u64, Counts) {
    let results: Vec<Result<u16, String>> = stream::iter(sockets)
        .map(|mut ws| async move { api::leave(&mut ws).await })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut clean = 0;
    let mut other = Counts::default();
    for result in results {
        match result {
            Ok(code) if api::left_cleanly(code) => clean += 1,
            Ok(code) => other.add(&format!("leave_closed_{code}"), 1),
            Err(_) => other.add("leave_error", 1),
        }
    }
    (clean, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_ids_of_the_contract() {
        let run = run_id();
        assert_eq!(run.len(), 6);
        let id = name(&run, "s", 99_999);
        assert!(id.len() <= 63, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{id}"
        );
        assert!(id.starts_with("lg"));
    }

    #[test]
    fn runs_get_different_prefixes() {
        let ids: std::collections::HashSet<String> = (0..50).map(|_| run_id()).collect();
        assert!(ids.len() > 45);
    }

    #[test]
    fn pauses_are_spread_around_their_mean() {
        let mean = Duration::from_millis(10);
        for _ in 0..100 {
            let pause = jittered(mean);
            assert!(pause >= Duration::from_millis(5) && pause < Duration::from_millis(15));
        }
    }

    #[test]
    fn counts_merge_and_describe() {
        let mut a = Counts::default();
        a.add("room_full", 2);
        let mut b = Counts::default();
        b.add("room_full", 1);
        b.add("rate_limited", 4);
        a.merge(&b);
        assert_eq!(a.describe(), "rate_limited 4, room_full 3");
        assert_eq!(Counts::default().describe(), "none");
    }
}
