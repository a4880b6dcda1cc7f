//! `queue`: full rooms with a waiting line (contract v1.1, "Waiting line").
//!
//! Each of R rooms of capacity C has C + W people of its own. The first C reserve a seat and
//! join, a few dozen at a time and before the clock starts; once every room is full, everyone
//! starts: the other W ask with `"wait": true`, get a place (202), open
//! the place's WebSocket and read its `waiting` frames until `joined` arrives on the same
//! socket. Everyone who holds a seat behaves alike: stays an exponentially distributed time
//! (mean `--stay`), reading its frames, then sends `leave` and asks again with `"wait": true`,
//! so the line stays populated for `--duration`. Then members leave and waiters close their
//! sockets (giving their places up), and every room must be back to 0/0/0 within `--settle`.
//!
//! What is measured, all with one clock (this process):
//! - **hand-over latency**: a seat freed → the `joined` frame of the waiter it went to. Per
//!   room the tool keeps the seats freed and not yet taken, oldest first; a seat is freed at the
//!   instant just before its member sends `leave` (or when the tool sees its session end
//!   otherwise), and each admission (a hand-over, or a direct 201 when the line was empty) takes
//!   the oldest. The room's initial seats carry no time and give no sample. So a sample is
//!   `leave` sent → the next `joined` of a hand-over in that room, the leave's commit included.
//! - **waiting time**: the 202's arrival → `joined`.
//! - **order inversions**: when someone is admitted in a room (a hand-over, or a direct seat),
//!   every place of that room that the tool still holds as waiting and whose 202 arrived
//!   *before this admission's request was sent* (places whose requests overlapped are not
//!   ordered) must already be seated: its user is in the `joined` frame's `members`, or its own
//!   `joined` arrives within `--order-grace` (two hand-overs committed concurrently may confirm
//!   out of order). Otherwise it is an inversion. A waiter whose `position` ever goes up (someone
//!   got in front) is counted too.
//! - **idle seats**: every `--sample-every` all rooms are read (`GET /api/v1/rooms` pages); a
//!   read with `attending + reserved < capacity` and `waiting > 0` is a sighting, and a room
//!   whose reads showed that without a break for at least `--idle-grace` is an idle seat.
//! - **over-admission**: those reads must keep `attending + reserved <= capacity`, and the
//!   tool's own count of members between `joined` and `leave` must stay within capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use roomgate_api::client::Admitted;
use roomgate_api::{JoinedFrame, QueueView, RoomView, ServerFrame};

use crate::api::{self, Api, JoinFailure, Ws};
use crate::cli::{OutputArgs, QueueArgs};
use crate::common::{self, Counts};
use crate::invariants::{AdmissionCheck, AdmissionFindings, Leak};
use crate::latency::{Latency, LatencySummary};
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};

/// At most this many inversions and idle seats are described; all are counted.
const MAX_DESCRIBED: usize = 20;
/// How long filling the rooms may take before the run goes on with the rooms as they are.
const FILL_TIMEOUT: Duration = Duration::from_secs(60);
/// Initial members reserving and joining at once while the rooms fill: a database takes
/// thousands of joins at once badly, and the fill is not what is measured.
const FILL_CONCURRENCY: usize = 32;
/// The longest pause between two tries of one person.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A stay is drawn from an exponential distribution cut at this many means, so that one
/// unlucky draw does not hold a seat for the whole run.
const MAX_STAY_MEANS: f64 = 10.0;

#[derive(Debug, Serialize)]
struct QueueResult {
    rooms: u32,
    capacity: u32,
    waiters_per_room: u32,
    mean_stay_ms: f64,
    seconds: f64,
    /// Seats got by a direct reservation (201/200): the initial members, and re-queues that
    /// found the line empty.
    direct_seats: u64,
    /// Places taken in a line (202).
    places: u64,
    /// `joined` frames received on a place's socket.
    handovers: u64,
    handovers_per_second: f64,
    /// Members who left with the server's 1000.
    leaves: u64,
    /// Places given up at the end of the run (socket closed while waiting).
    places_given_up: u64,
    /// Hand-overs for which no freed seat with a time was pending (the room's initial seats,
    /// or a seat freed by something the tool did not see); they give no latency sample.
    handovers_unmatched: u64,
    /// Refused reservations and sessions or places that ended otherwise, by code.
    outcomes: Counts,
    handover_latency: LatencySummary,
    waiting_time: LatencySummary,
    /// |actual wait − first `eta_ms`| of each place that got an estimate and was seated.
    eta_error: LatencySummary,
    /// Places whose socket never carried a non-null `eta_ms` before `joined`.
    eta_never_given: u64,
    order: OrderFindings,
    idle: IdleFindings,
    admission: AdmissionFindings,
    leaks: Vec<Leak>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct OrderFindings {
    /// Admissions that passed someone who took a place earlier and was still waiting.
    inversions: u64,
    /// Waiting frames whose `position` was higher than the one before (or than the 202's).
    position_rises: u64,
    /// Earlier places seated after a later one but within `--order-grace` (not inversions).
    reordered_within_grace: u64,
    /// Admissions checked against the line.
    admissions_checked: u64,
    described: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct IdleFindings {
    sweeps: u64,
    room_reads: u64,
    /// Reads with `attending + reserved < capacity` while `waiting > 0`.
    sightings: u64,
    /// Rooms seen so without a break for at least `--idle-grace` (each stretch counted once).
    idle_seats: u64,
    idle_grace_ms: f64,
    /// Largest `waiting` read in one room.
    peak_waiting: u32,
    described: Vec<String>,
}

/// A place the tool holds in a room's line.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// Its 202 arrived.
    placed: Instant,
}

/// An earlier place found still waiting when a later one was admitted.
#[derive(Debug, Clone)]
struct Suspect {
    earlier: usize,
    later: usize,
    at: Instant,
}

#[derive(Debug)]
struct RoomLine {
    /// Seats freed and not yet taken, oldest first; `None` for the room's initial seats.
    free: VecDeque<Option<Instant>>,
    /// Places held in this room's line, by person.
    waiting: HashMap<usize, Place>,
    suspects: Vec<Suspect>,
}

/// What every person task shares.
struct Shared {
    /// One per node; person i talks to `apis[i % len]`.
    apis: Vec<Api>,
    check: Arc<AdmissionCheck>,
    lines: Vec<Mutex<RoomLine>>,
    users: Vec<String>,
    tokens: Vec<String>,
    people_per_room: u32,
    stay: Duration,
    backoff: Duration,
    order_grace: Duration,
    /// The clock started, before any place was taken: the request time of the seats taken
    /// while the rooms filled, which therefore pass no one.
    started: Instant,
    deadline: Instant,
    /// Set at the deadline: from then on places are given up, so the line is no longer checked.
    stopping: AtomicBool,
    handovers: AtomicU64,
    order: Mutex<OrderFindings>,
}

impl Shared {
    fn api_of(&self, person: usize) -> &Api {
        &self.apis[person % self.apis.len()]
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn room_of(&self, person: usize) -> usize {
        person / self.people_per_room as usize
    }

    fn line(&self, room: usize) -> MutexGuard<'_, RoomLine> {
        lock(&self.lines[room])
    }

    fn describe(&self, order: &mut OrderFindings, text: String) {
        if order.described.len() < MAX_DESCRIBED {
            order.described.push(text);
        }
    }

    /// A place was taken (202 arrived).
    fn placed(&self, person: usize, place: Place) {
        self.line(self.room_of(person))
            .waiting
            .insert(person, place);
    }

    /// A place ended without a seat (given up, or closed by the server).
    fn place_gone(&self, person: usize) {
        let room = self.room_of(person);
        let mut line = self.line(room);
        line.waiting.remove(&person);
        // An earlier place that leaves the line unseated settles nothing about the later one
        // it was compared with; while stopping, places are given up on purpose.
        let stopping = self.stopping.load(Ordering::Acquire);
        let mut gone = Vec::new();
        line.suspects.retain(|s| {
            if s.earlier == person {
                gone.push(s.clone());
                false
            } else {
                true
            }
        });
        drop(line);
        if !stopping {
            for suspect in gone {
                self.inversion(room, &suspect, "left the line unseated");
            }
        }
    }

    /// A seat was freed: the member is about to send `leave`, or its session ended.
    fn freed(&self, room: usize) {
        self.line(room).free.push_back(Some(Instant::now()));
    }

    fn inversion(&self, room: usize, suspect: &Suspect, how: &str) {
        let mut order = lock(&self.order);
        order.inversions += 1;
        let text = format!(
            "room {}: {} was seated while {}, who took a place earlier, was still waiting ({how})",
            self.check.ids()[room],
            self.users[suspect.later],
            self.users[suspect.earlier],
        );
        self.describe(&mut order, text);
    }

    /// `person` got a seat (its `joined` frame is `joined`); returns the hand-over latency
    /// when the seat it took had been freed by a member the tool saw leave.
    fn admitted(
        &self,
        person: usize,
        requested: Instant,
        joined: &JoinedFrame,
        handover: bool,
    ) -> Option<Duration> {
        let now = Instant::now();
        let room = self.room_of(person);
        let stopping = self.stopping.load(Ordering::Acquire);
        let mut line = self.line(room);
        line.waiting.remove(&person);
        let mut settled = Vec::new();
        line.suspects.retain(|s| {
            if s.earlier == person {
                settled.push(s.clone());
                false
            } else {
                true
            }
        });
        let mut fresh = Vec::new();
        if !stopping {
            for (&other, place) in &line.waiting {
                if place.placed < requested && !joined.members.contains(&self.users[other]) {
                    fresh.push(Suspect {
                        earlier: other,
                        later: person,
                        at: now,
                    });
                }
            }
        }
        line.suspects.extend(fresh);
        let freed = line.free.pop_front();
        drop(line);

        let mut order = lock(&self.order);
        if !stopping {
            order.admissions_checked += 1;
        }
        drop(order);
        for suspect in settled {
            if now.duration_since(suspect.at) <= self.order_grace {
                lock(&self.order).reordered_within_grace += 1;
            } else {
                self.inversion(room, &suspect, "seated later than the grace");
            }
        }
        match freed {
            Some(Some(at)) if handover => Some(now.duration_since(at)),
            _ => None,
        }
    }

    /// Suspicions older than the grace whose earlier place is still waiting are inversions.
    fn expire_suspects(&self, everything: bool) {
        for room in 0..self.lines.len() {
            let now = Instant::now();
            let mut line = self.line(room);
            let mut due = Vec::new();
            line.suspects.retain(|s| {
                if everything || now.duration_since(s.at) > self.order_grace {
                    due.push(s.clone());
                    false
                } else {
                    true
                }
            });
            drop(line);
            for suspect in due {
                // Once the run stops, a suspicion younger than the grace cannot be settled.
                if everything && now.duration_since(suspect.at) <= self.order_grace {
                    continue;
                }
                self.inversion(room, &suspect, "not seated within the grace");
            }
        }
    }

    fn position_rise(&self, person: usize, from: u32, to: u32) {
        let mut order = lock(&self.order);
        order.position_rises += 1;
        let text = format!(
            "room {}: {}'s position went from {from} up to {to}",
            self.check.ids()[self.room_of(person)],
            self.users[person]
        );
        self.describe(&mut order, text);
    }
}

/// What one person saw over the run.
#[derive(Debug, Default)]
struct PersonStats {
    handover: Latency,
    waiting: Latency,
    eta_error: Latency,
    eta_never_given: u64,
    direct: u64,
    places: u64,
    handovers: u64,
    unmatched: u64,
    leaves: u64,
    given_up: u64,
    outcomes: Counts,
}

impl PersonStats {
    fn merge(&mut self, other: &PersonStats) {
        self.handover.merge(&other.handover);
        self.waiting.merge(&other.waiting);
        self.eta_error.merge(&other.eta_error);
        self.eta_never_given += other.eta_never_given;
        self.direct += other.direct;
        self.places += other.places;
        self.handovers += other.handovers;
        self.unmatched += other.unmatched;
        self.leaves += other.leaves;
        self.given_up += other.given_up;
        self.outcomes.merge(&other.outcomes);
    }
}

/// How a wait in line ended without a seat.
enum LineEnd {
    /// The run is over; the socket is still open, to be closed by the caller.
    Deadline(Box<Ws>),
    /// The place's socket could not be opened or ended, with this label.
    Failed(String),
}

/// A place's `waiting` frames, as one waiter saw them.
struct Waited {
    ws: Ws,
    joined: JoinedFrame,
    /// The first non-null `eta_ms` and when it arrived.
    first_eta: Option<(u64, Instant)>,
}

/// Opens a place's socket and reads its `waiting` frames until `joined`, the socket's end or
/// the deadline.
async fn wait_in_line(
    shared: &Shared,
    person: usize,
    place: &QueueView,
) -> Result<Waited, LineEnd> {
    let mut ws = shared
        .api_of(person)
        .open_place(place)
        .await
        .map_err(|failure| LineEnd::Failed(failure.label().to_owned()))?;
    let mut position = place.position;
    let mut first_eta = None;
    let deadline = tokio::time::Instant::from_std(shared.deadline);
    loop {
        let next = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Err(LineEnd::Deadline(Box::new(ws))),
            next = ws.next() => next,
        };
        match next {
            Some(Ok(WsMessage::Text(text))) => {
                match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(ServerFrame::Waiting(waiting)) => {
                        if waiting.position > position {
                            shared.position_rise(person, position, waiting.position);
                        }
                        position = waiting.position;
                        if first_eta.is_none() {
                            first_eta = waiting.eta_ms.map(|eta| (eta, Instant::now()));
                        }
                    }
                    Ok(ServerFrame::Joined(joined)) => {
                        return Ok(Waited {
                            ws,
                            joined,
                            first_eta,
                        });
                    }
                    Ok(_) => return Err(LineEnd::Failed("line_unexpected_frame".to_owned())),
                    Err(_) => return Err(LineEnd::Failed("line_bad_frame".to_owned())),
                }
            }
            Some(Ok(WsMessage::Close(close))) => {
                let failure = JoinFailure::Closed(api::close_code(close.as_ref()));
                return Err(LineEnd::Failed(format!("line_{}", failure.label())));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(LineEnd::Failed("line_transport".to_owned())),
        }
    }
}

/// `mean` doubled for each refusal in a row after the first, jittered, at most [`MAX_BACKOFF`].
fn backoff(mean: Duration, strikes: u32) -> Duration {
    let doubled = mean.saturating_mul(1 << strikes.saturating_sub(1).min(10));
    common::jittered(doubled.min(MAX_BACKOFF))
}

/// The refusal's label; for one the contract does not name, its status and code, so that a
/// report says what the server answered.
fn outcome_label(refusal: &api::Refusal) -> String {
    match refusal {
        api::Refusal::Other { status, code } => format!(
            "http_{status}_{}",
            code.map_or("no_code", roomgate_api::ErrorCode::as_str)
        ),
        other => other.label().to_owned(),
    }
}

/// An exponentially distributed stay of mean `mean`, cut at [`MAX_STAY_MEANS`] means.
fn stay(mean: Duration) -> Duration {
    let uniform: f64 = rand::rng().random_range(f64::MIN_POSITIVE..1.0);
    mean.mul_f64((-uniform.ln()).min(MAX_STAY_MEANS))
}

/// Stays in the room until `until`, reading (and dropping) what the room sends. Returns the
/// close code if the session ended meanwhile.
async fn stay_in(ws: &mut Ws, until: Instant) -> Option<u16> {
    let until = tokio::time::Instant::from_std(until);
    loop {
        let next = tokio::select! {
            () = tokio::time::sleep_until(until) => return None,
            next = ws.next() => next,
        };
        match next {
            Some(Ok(WsMessage::Close(close))) => return Some(api::close_code(close.as_ref())),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Some(api::CLOSED_ABNORMALLY),
        }
    }
}

/// One person's loop: a seat (directly or through the line), a stay, `leave`, again.
async fn person(
    shared: Arc<Shared>,
    person: usize,
    seated: Option<(Ws, JoinedFrame)>,
) -> PersonStats {
    let mut stats = PersonStats::default();
    let room = shared.room_of(person);
    let room_id = shared.check.ids()[room].clone();
    let token = shared.tokens[person].clone();
    let mut seated = seated;
    // Refusals in a row: each doubles the pause before the next try, so that a person the
    // server keeps refusing (e.g. `already_joined` while its last leave is still being
    // committed) does not hammer it.
    let mut strikes = 0_u32;
    while Instant::now() < shared.deadline {
        let mut requested = Instant::now();
        let (mut ws, joined, handover) = if let Some((ws, joined)) = seated.take() {
            stats.direct += 1;
            // Seated while the rooms filled, before anyone took a place.
            requested = shared.started;
            (ws, joined, false)
        } else {
            let admitted = match shared
                .api_of(person)
                .reserve_or_wait(&token, &room_id)
                .await
            {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    stats.outcomes.add(&outcome_label(&refusal), 1);
                    strikes += 1;
                    let pause = refusal
                        .retry_after()
                        .unwrap_or_else(|| backoff(shared.backoff, strikes));
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            match admitted {
                Admitted::Seat(reserved) => {
                    match shared
                        .api_of(person)
                        .join_frame(&reserved.reservation)
                        .await
                    {
                        Ok((ws, joined)) => {
                            stats.direct += 1;
                            (ws, joined, false)
                        }
                        Err(failure) => {
                            stats.outcomes.add(failure.label(), 1);
                            if matches!(failure, JoinFailure::Transport(_) | JoinFailure::Timeout) {
                                // The server may never have seen the ticket: give the seat back.
                                let _ = shared.api_of(person).cancel(&token, &room_id).await;
                            }
                            strikes += 1;
                            tokio::time::sleep(backoff(shared.backoff, strikes)).await;
                            continue;
                        }
                    }
                }
                Admitted::InLine(place) => {
                    let placed = Instant::now();
                    stats.places += 1;
                    shared.placed(person, Place { placed });
                    match wait_in_line(&shared, person, &place).await {
                        Ok(waited) => {
                            let seated = Instant::now();
                            stats.waiting.record(seated.duration_since(placed));
                            match waited.first_eta {
                                Some((eta, at)) => {
                                    let actual = seated.duration_since(at).as_millis();
                                    let actual = u64::try_from(actual).unwrap_or(u64::MAX);
                                    stats
                                        .eta_error
                                        .record_micros(actual.abs_diff(eta).saturating_mul(1000));
                                }
                                None => stats.eta_never_given += 1,
                            }
                            stats.handovers += 1;
                            shared.handovers.fetch_add(1, Ordering::Relaxed);
                            (waited.ws, waited.joined, true)
                        }
                        Err(LineEnd::Deadline(mut ws)) => {
                            shared.place_gone(person);
                            stats.given_up += 1;
                            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                                let _ = ws.send(WsMessage::Close(None)).await;
                                while let Some(Ok(_)) = ws.next().await {}
                            })
                            .await;
                            break;
                        }
                        Err(LineEnd::Failed(label)) => {
                            shared.place_gone(person);
                            stats.outcomes.add(&label, 1);
                            // A place whose socket failed may still be held until its ticket
                            // expires; give it up explicitly.
                            let _ = shared.api_of(person).cancel(&token, &room_id).await;
                            strikes += 1;
                            tokio::time::sleep(backoff(shared.backoff, strikes)).await;
                            continue;
                        }
                    }
                }
            }
        };
        strikes = 0;
        match shared.admitted(person, requested, &joined, handover) {
            Some(latency) => stats.handover.record(latency),
            None if handover => stats.unmatched += 1,
            None => {}
        }
        shared.check.enter(room);
        let until = (Instant::now() + stay(shared.stay)).min(shared.deadline);
        if let Some(code) = stay_in(&mut ws, until).await {
            // The server ended the session: the seat is free from now on, as far as the tool
            // can tell.
            shared.check.exit(room);
            shared.freed(room);
            stats.outcomes.add(&format!("session_closed_{code}"), 1);
            continue;
        }
        // Out of the count and the seat marked free before `leave` is sent: after that the
        // server may hand the seat to the head at once.
        shared.check.exit(room);
        shared.freed(room);
        match api::leave(&mut ws).await {
            Ok(code) if api::left_cleanly(code) => stats.leaves += 1,
            Ok(code) => stats.outcomes.add(&format!("leave_closed_{code}"), 1),
            Err(_) => stats.outcomes.add("leave_error", 1),
        }
        let _ = ws.send(WsMessage::Close(None)).await;
    }
    stats
}

/// Seats the first `capacity` people of every room (a reservation and its join each,
/// [`FILL_CONCURRENCY`] at a time); returns their sessions by person. One who could not be
/// seated within [`FILL_TIMEOUT`] starts without a seat and asks like everyone else.
async fn fill_rooms(
    apis: &[Api],
    room_ids: &[String],
    tokens: &[String],
    capacity: u32,
    people_per_room: u32,
    progress: &Progress,
) -> HashMap<usize, (Ws, JoinedFrame)> {
    let until = Instant::now() + FILL_TIMEOUT;
    let members = (0..room_ids.len()).flat_map(|room| {
        (0..capacity as usize).map(move |seat| (room, room * people_per_room as usize + seat))
    });
    futures_util::stream::iter(members)
        .map(|(room, person)| async move {
            let api = &apis[person % apis.len()];
            let mut strikes = 0;
            while Instant::now() < until {
                let joined = match api.reserve(&tokens[person], &room_ids[room]).await {
                    Ok(reservation) => match api.join_frame(&reservation).await {
                        Ok(seat) => Some(seat),
                        Err(_) => {
                            // Whatever the server made of the ticket, the seat is given back.
                            let _ = api.cancel(&tokens[person], &room_ids[room]).await;
                            None
                        }
                    },
                    Err(_) => None,
                };
                if let Some(seat) = joined {
                    progress.inc(1);
                    return Some((person, seat));
                }
                strikes += 1;
                tokio::time::sleep(backoff(Duration::from_millis(50), strikes)).await;
            }
            None
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .filter_map(|seat| async move { seat })
        .collect()
        .await
}

/// Reads every room of the run each `every` until `deadline`: over-admission through the
/// admission check, and idle seats.
async fn sample(
    api: Api,
    check: Arc<AdmissionCheck>,
    prefix: String,
    every: Duration,
    grace: Duration,
    deadline: Instant,
) -> IdleFindings {
    let mut findings = IdleFindings {
        idle_grace_ms: grace.as_secs_f64() * 1000.0,
        ..IdleFindings::default()
    };
    // Per room: since when every read showed an idle seat, and whether that stretch counted.
    let mut idle_since: HashMap<String, (Instant, bool)> = HashMap::new();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wanted = check.len();
    while Instant::now() < deadline {
        ticker.tick().await;
        let Ok(views) = sweep(&api, &prefix, wanted).await else {
            continue;
        };
        let now = Instant::now();
        findings.sweeps += 1;
        for view in &views {
            findings.room_reads += 1;
            check.observe(view);
            findings.peak_waiting = findings.peak_waiting.max(view.waiting);
            let idle =
                view.waiting > 0 && view.attending.saturating_add(view.reserved) < view.capacity;
            if !idle {
                idle_since.remove(&view.id);
                continue;
            }
            findings.sightings += 1;
            let (since, counted) = idle_since.entry(view.id.clone()).or_insert((now, false));
            if !*counted && now.duration_since(*since) >= grace {
                *counted = true;
                findings.idle_seats += 1;
                if findings.described.len() < MAX_DESCRIBED {
                    findings.described.push(format!(
                        "room {}: attending {} + reserved {} < capacity {} with {} waiting, for {} ms",
                        view.id,
                        view.attending,
                        view.reserved,
                        view.capacity,
                        view.waiting,
                        now.duration_since(*since).as_millis()
                    ));
                }
            }
        }
    }
    findings
}

/// The run's rooms, read through `GET /api/v1/rooms` pages (one request per 100 rooms):
/// their ids share `prefix` and sort together.
async fn sweep(api: &Api, prefix: &str, wanted: usize) -> Result<Vec<RoomView>, api::Refusal> {
    let mut views = Vec::with_capacity(wanted);
    // Every id of the run sorts after the bare prefix.
    let mut after = prefix.to_owned();
    loop {
        let page = api
            .rooms_page(roomgate_api::rules::ROOM_PAGE_MAX, &after)
            .await?;
        let mut past = false;
        for view in page.rooms {
            if view.id.starts_with(prefix) {
                views.push(view);
            } else {
                past = true;
            }
        }
        match page.next {
            Some(next) if !past && views.len() < wanted => after = next,
            _ => return Ok(views),
        }
    }
}

pub async fn run(args: QueueArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let api = common::connect(&args.target).await?;
    let mut apis = vec![api.clone()];
    for url in &args.also_urls {
        let node = crate::cli::TargetArgs {
            url: Some(url.clone()),
            allow_remote: args.target.allow_remote,
        };
        apis.push(common::connect(&node).await?);
    }
    let people_per_room = args.capacity + args.waiters;
    let common::Population {
        rooms,
        room_ids,
        users,
        tokens,
    } = common::populate(
        &api,
        output.quiet,
        "q",
        args.rooms,
        args.capacity,
        args.rooms * people_per_room,
    )
    .await?;
    // `lg<run>-q<i>`: the run's rooms share everything up to the `q`.
    let prefix = room_ids
        .first()
        .and_then(|id| id.rfind('q').map(|at| id[..=at].to_owned()))
        .context("the run has no room")?;
    let check = Arc::new(AdmissionCheck::new(rooms));
    let lines = (0..args.rooms)
        .map(|_| {
            Mutex::new(RoomLine {
                free: std::iter::repeat_n(None, args.capacity as usize).collect(),
                waiting: HashMap::new(),
                suspects: Vec::new(),
            })
        })
        .collect();
    // The rooms are filled first (not timed), so that the line forms behind full rooms.
    let fill = Progress::new(
        output.quiet,
        u64::from(args.rooms) * u64::from(args.capacity),
        "filling the rooms",
    );
    let mut seated = fill_rooms(
        &apis,
        &room_ids,
        &tokens,
        args.capacity,
        people_per_room,
        &fill,
    )
    .await;
    fill.finish();
    let start = Instant::now();
    let deadline = start + args.duration;
    let shared = Arc::new(Shared {
        apis,
        check: Arc::clone(&check),
        lines,
        users,
        tokens,
        people_per_room,
        stay: args.stay,
        backoff: args.backoff,
        order_grace: args.order_grace,
        started: start,
        deadline,
        stopping: AtomicBool::new(false),
        handovers: AtomicU64::new(0),
        order: Mutex::new(OrderFindings::default()),
    });

    let sampler = tokio::spawn(sample(
        api.clone(),
        Arc::clone(&check),
        prefix,
        args.sample_every,
        args.idle_grace,
        deadline,
    ));
    let progress = Progress::timed(output.quiet, args.duration, "queue");
    let mut tasks = Vec::new();
    for index in 0..(args.rooms * people_per_room) as usize {
        tasks.push(tokio::spawn(person(
            Arc::clone(&shared),
            index,
            seated.remove(&index),
        )));
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shared.expire_suspects(false);
        progress.elapsed(start.elapsed());
        progress.message(format!(
            "{} hand-overs",
            shared.handovers.load(Ordering::Relaxed)
        ));
    }
    shared.stopping.store(true, Ordering::Release);
    progress.finish();
    let mut stats = PersonStats::default();
    for task in tasks {
        stats.merge(&task.await.context("a person task panicked")?);
    }
    let elapsed = start.elapsed();
    shared.expire_suspects(true);
    let idle = sampler.await.context("the sampler panicked")?;
    let leaks = common::settle(&api, &room_ids, args.settle).await?;

    let seconds = elapsed.as_secs_f64();
    let result = QueueResult {
        rooms: args.rooms,
        capacity: args.capacity,
        waiters_per_room: args.waiters,
        mean_stay_ms: args.stay.as_secs_f64() * 1000.0,
        seconds,
        direct_seats: stats.direct,
        places: stats.places,
        handovers: stats.handovers,
        handovers_per_second: report::per_second(stats.handovers, seconds),
        leaves: stats.leaves,
        places_given_up: stats.given_up,
        handovers_unmatched: stats.unmatched,
        outcomes: stats.outcomes.clone(),
        handover_latency: stats.handover.summary(),
        waiting_time: stats.waiting.summary(),
        eta_error: stats.eta_error.summary(),
        eta_never_given: stats.eta_never_given,
        order: lock(&shared.order).clone(),
        idle,
        admission: check.findings(),
        leaks,
    };

    let mut report = Report::new("queue", api.target().http.clone());
    report.tables.extend(result.tables());
    report.chart = Chart::Latency {
        title: format!(
            "queue hand-over (leave → joined): {} rooms × {} seats, {} waiting each, stay {:?}",
            args.rooms, args.capacity, args.waiters, args.stay
        ),
        // Waiting times are seconds and hand-overs milliseconds: on one axis the hand-over
        // curve would be a flat line, so only it is drawn (the table has both).
        series: vec![("hand-over".to_owned(), stats.handover.curve())],
    };
    report.notes.push(format!(
        "hand-over latency: a member's `leave` sent → the next hand-over `joined` in its room; \
         idle seat: every read for ≥ {} ms showed attending + reserved < capacity with someone \
         waiting; order: earlier places not seated within {} ms of a later one",
        args.idle_grace.as_millis(),
        args.order_grace.as_millis()
    ));
    if result.handovers == 0 {
        report
            .errors
            .push("no one was seated from the line: nothing was measured".to_owned());
    }
    report.violations = result.violations();
    report.result = report::to_value(&result);
    Ok(report)
}

impl QueueResult {
    fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if self.order.inversions > 0 || self.order.position_rises > 0 {
            violations.push(format!(
                "order: {} inversion(s), {} position rise(s)",
                self.order.inversions, self.order.position_rises
            ));
            violations.extend(self.order.described.iter().cloned());
        }
        if self.idle.idle_seats > 0 {
            violations.push(format!(
                "idle seats: {} room stretch(es) with a free seat while someone waited",
                self.idle.idle_seats
            ));
            violations.extend(self.idle.described.iter().cloned());
        }
        if self.admission.over_admitted > 0 {
            violations.push(format!(
                "over-admission: {} seat(s) beyond capacity in {} room(s)",
                self.admission.over_admitted, self.admission.rooms_over_capacity
            ));
            violations.extend(self.admission.described.iter().cloned());
        }
        violations.extend(self.leaks.iter().map(|leak| format!("leaked: {leak}")));
        violations
    }

    fn tables(&self) -> Vec<Table> {
        vec![
            Table::pairs(
                "queue",
                &[
                    (
                        "rooms × capacity + waiters",
                        format!(
                            "{} × {} + {}",
                            self.rooms, self.capacity, self.waiters_per_room
                        ),
                    ),
                    ("mean stay", format!("{:.0} ms", self.mean_stay_ms)),
                    ("ran", format!("{:.1} s", self.seconds)),
                    (
                        "seated from the line",
                        format!(
                            "{} ({}/s)",
                            report::thousands(self.handovers),
                            report::rate(self.handovers_per_second)
                        ),
                    ),
                    (
                        "direct seats / places taken",
                        format!(
                            "{} / {}",
                            report::thousands(self.direct_seats),
                            report::thousands(self.places)
                        ),
                    ),
                    ("clean leaves", report::thousands(self.leaves)),
                    (
                        "places given up at the end",
                        report::thousands(self.places_given_up),
                    ),
                    ("other outcomes", self.outcomes.describe()),
                    (
                        "order inversions",
                        format!(
                            "{} (checked {}, reordered within grace {})",
                            self.order.inversions,
                            report::thousands(self.order.admissions_checked),
                            self.order.reordered_within_grace
                        ),
                    ),
                    ("position rises", self.order.position_rises.to_string()),
                    (
                        "idle seats",
                        format!(
                            "{} ({} sighting(s) in {} reads, {} sweeps)",
                            self.idle.idle_seats,
                            self.idle.sightings,
                            report::thousands(self.idle.room_reads),
                            report::thousands(self.idle.sweeps)
                        ),
                    ),
                    ("peak waiting in a room", self.idle.peak_waiting.to_string()),
                    ("over-admitted", self.admission.over_admitted.to_string()),
                    ("leaked rooms after", self.leaks.len().to_string()),
                ],
            ),
            report::latency_table(
                "",
                &[
                    ("hand-over (leave → joined)", self.handover_latency),
                    ("waiting (202 → joined)", self.waiting_time),
                    ("|wait − first eta_ms|", self.eta_error),
                ],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One room of capacity 1 with people 0..4, its one seat taken by person 0 already;
    /// nothing is sent anywhere.
    fn one_room(order_grace: Duration) -> Shared {
        let target = crate::target::Target::parse("http://127.0.0.1:1", true, false).unwrap();
        let users: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
        Shared {
            apis: vec![Api::new(target).unwrap()],
            check: Arc::new(AdmissionCheck::new([("r".to_owned(), 1)])),
            lines: vec![Mutex::new(RoomLine {
                free: VecDeque::new(),
                waiting: HashMap::new(),
                suspects: Vec::new(),
            })],
            tokens: users.clone(),
            users,
            people_per_room: 4,
            stay: Duration::from_millis(1),
            backoff: Duration::from_millis(1),
            order_grace,
            started: Instant::now(),
            deadline: Instant::now() + Duration::from_secs(60),
            stopping: AtomicBool::new(false),
            handovers: AtomicU64::new(0),
            order: Mutex::new(OrderFindings::default()),
        }
    }

    fn joined(members: &[&str]) -> JoinedFrame {
        JoinedFrame {
            room: RoomView {
                id: "r".into(),
                title: "r".into(),
                capacity: 1,
                attending: 1,
                reserved: 0,
                waiting: 0,
                has_password: false,
                state: roomgate_api::RoomState::Open,
                created_at: "2026-01-01T00:00:00.000Z".into(),
            },
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            history: Vec::new(),
        }
    }

    /// Person 1 takes a place, then person 2 (whose request is sent after 1's 202).
    fn two_in_line(shared: &Shared) -> Instant {
        shared.placed(
            1,
            Place {
                placed: Instant::now(),
            },
        );
        std::thread::sleep(Duration::from_millis(2));
        let requested = Instant::now();
        shared.placed(
            2,
            Place {
                placed: Instant::now(),
            },
        );
        requested
    }

    #[test]
    fn seats_in_the_order_of_places_are_no_inversion_and_pair_with_the_freed_seat() {
        let shared = one_room(Duration::ZERO);
        let first = Instant::now();
        let _ = two_in_line(&shared);
        shared.freed(0);
        let latency = shared.admitted(1, first, &joined(&["u1"]), true);
        assert!(latency.is_some(), "the seat freed by the leave is paired");
        shared.freed(0);
        assert!(shared.admitted(2, first, &joined(&["u2"]), true).is_some());
        shared.expire_suspects(true);
        let order = lock(&shared.order).clone();
        assert_eq!(order.inversions, 0, "{order:?}");
        assert_eq!(order.admissions_checked, 2);
    }

    #[test]
    fn a_later_place_seated_while_an_earlier_one_waits_is_an_inversion() {
        let shared = one_room(Duration::ZERO);
        let requested = two_in_line(&shared);
        // 2 is seated first, and 1 is neither seated nor among the members.
        let _ = shared.admitted(2, requested, &joined(&["u2"]), true);
        std::thread::sleep(Duration::from_millis(2));
        shared.expire_suspects(false);
        let order = lock(&shared.order).clone();
        assert_eq!(order.inversions, 1, "{order:?}");
        assert!(
            order.described[0].contains("u2 was seated while u1"),
            "{order:?}"
        );
    }

    #[test]
    fn an_earlier_place_already_among_the_members_or_seated_within_the_grace_is_fine() {
        let shared = one_room(Duration::ZERO);
        let requested = two_in_line(&shared);
        // 1's own frame is not processed yet, but the server lists it as a member.
        let _ = shared.admitted(2, requested, &joined(&["u1", "u2"]), true);
        shared.expire_suspects(true);
        assert_eq!(lock(&shared.order).inversions, 0);

        let shared = one_room(Duration::from_secs(5));
        let requested = two_in_line(&shared);
        let _ = shared.admitted(2, requested, &joined(&["u2"]), true);
        let _ = shared.admitted(1, requested, &joined(&["u1", "u2"]), true);
        shared.expire_suspects(true);
        let order = lock(&shared.order).clone();
        assert_eq!(order.inversions, 0, "{order:?}");
        assert_eq!(order.reordered_within_grace, 1);
    }

    #[test]
    fn a_direct_seat_while_someone_waits_is_barging() {
        let shared = one_room(Duration::ZERO);
        shared.placed(
            1,
            Place {
                placed: Instant::now(),
            },
        );
        std::thread::sleep(Duration::from_millis(2));
        let _ = shared.admitted(3, Instant::now(), &joined(&["u3"]), false);
        std::thread::sleep(Duration::from_millis(2));
        shared.expire_suspects(false);
        assert_eq!(lock(&shared.order).inversions, 1);
    }

    #[test]
    fn overlapping_requests_and_places_given_up_while_stopping_are_not_ordered() {
        let shared = one_room(Duration::ZERO);
        // 2's request went out before 1's 202 arrived: the two are not ordered.
        let requested = Instant::now();
        shared.placed(
            1,
            Place {
                placed: Instant::now(),
            },
        );
        shared.placed(
            2,
            Place {
                placed: Instant::now(),
            },
        );
        let _ = shared.admitted(2, requested, &joined(&["u2"]), true);
        shared.stopping.store(true, Ordering::Release);
        shared.place_gone(1);
        shared.expire_suspects(true);
        assert_eq!(lock(&shared.order).inversions, 0);
    }

    #[test]
    fn stays_are_exponential_and_bounded() {
        let mean = Duration::from_millis(100);
        let stays: Vec<Duration> = (0..2000).map(|_| stay(mean)).collect();
        assert!(stays.iter().all(|s| *s <= mean.mul_f64(MAX_STAY_MEANS)));
        let average = stays.iter().sum::<Duration>() / 2000;
        assert!(
            (Duration::from_millis(80)..Duration::from_millis(120)).contains(&average),
            "{average:?}"
        );
    }
}
