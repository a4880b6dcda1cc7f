//! `fanout`: R rooms × K members, every member sending at a steady rate; how many messages the
//! server delivers per second and how long each delivery takes.
//!
//! Every message body starts with its send time (microseconds since this process's epoch), so
//! each receipt yields one delivery latency without any clock shared with the server. Every
//! member receives every message of its room, its own included, so a room of K members that
//! sent S messages owes S × K deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use rand::Rng as _;
use roomgate_api::ServerFrame;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{self, Ws};
use crate::cli::{FanoutArgs, OutputArgs};
use crate::common::{self, Counts};
use crate::invariants::Leak;
use crate::latency::{Latency, LatencySummary};
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};

/// The smallest body: room for the send time and the sender's sequence number.
pub const MIN_BODY: u32 = 24;

#[derive(Debug, Serialize)]
struct FanoutResult {
    rooms: u32,
    members_per_room: u32,
    members_joined: u64,
    rate_per_member: f64,
    send_seconds: f64,
    /// Messages the members sent.
    sent: u64,
    /// Σ per room of sent × members: what a lossless server delivers.
    expected_deliveries: u64,
    delivered: u64,
    missing: u64,
    /// First send → last receipt.
    delivery_seconds: f64,
    delivered_per_second: f64,
    sent_per_second: f64,
    delivery_latency: LatencySummary,
    /// Sessions the server closed while the load ran, by close code (1008: rate limited).
    closed_by_server: Counts,
    error_frames: u64,
    leaks: Vec<Leak>,
}

/// What the coordinator tells the members.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Wait,
    Send { from: Instant, until: Instant },
    Stop,
}

#[derive(Debug, Default)]
struct MemberStats {
    sent: u64,
    delivered: u64,
    latency: Latency,
    last_receipt: Option<Instant>,
    closed_with: Option<u16>,
    error_frames: u64,
    left_cleanly: bool,
}

/// Shared by every member task: totals for the progress bar and the drain decision.
#[derive(Debug, Default)]
struct Totals {
    delivered: AtomicU64,
    sent_per_room: Vec<AtomicU64>,
}

pub async fn run(args: FanoutArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let api = common::connect(&args.target).await?;

    let run = common::run_id();
    let rooms: Vec<(String, u32)> = (0..args.rooms)
        .map(|i| (common::name(&run, "f", i), args.members))
        .collect();
    let room_ids: Vec<String> = rooms.iter().map(|(id, _)| id.clone()).collect();
    // Member 0 of each room is its creator and stays; members 1.. reserve and join.
    let member_names: Vec<Vec<String>> = (0..args.rooms)
        .map(|room| {
            (0..args.members)
                .map(|m| common::name(&run, &format!("f{room}m"), m))
                .collect()
        })
        .collect();
    let all: Vec<String> = member_names.iter().flatten().cloned().collect();
    let setup = Progress::new(output.quiet, (all.len() * 2) as u64, "setup");
    let tokens = common::tokens(&api, &all, 64, &setup)
        .await
        .context("getting tokens for the members")?;
    let members = args.members as usize;
    let creator_tokens: Vec<String> = (0..rooms.len())
        .map(|room| tokens[room * members].clone())
        .collect();
    let creator_sockets = common::open_rooms(&api, &rooms, &creator_tokens, true, &setup)
        .await
        .context("opening the rooms")?;

    let totals = Arc::new(Totals {
        delivered: AtomicU64::new(0),
        sent_per_room: (0..rooms.len()).map(|_| AtomicU64::new(0)).collect(),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Wait);
    let epoch = Instant::now();
    let mut joined_per_room = vec![0_u64; rooms.len()];
    let mut tasks = Vec::new();
    let spawn_member = |ws: Ws, room: usize, member: u32, tasks: &mut Vec<_>| {
        let phase = phase_rx.clone();
        let totals = Arc::clone(&totals);
        let config = MemberConfig {
            room,
            member,
            rate: args.rate,
            count: args.count,
            body_bytes: args.body_bytes as usize,
            epoch,
        };
        tasks.push(tokio::spawn(member_loop(ws, config, phase, totals)));
    };
    for (room, socket) in creator_sockets.into_iter().enumerate() {
        if let Some(ws) = socket {
            joined_per_room[room] += 1;
            spawn_member(ws, room, 0, &mut tasks);
        }
    }
    // The other members join 64 at a time; each starts reading as soon as it is in, so that
    // presence frames never pile up behind an idle socket.
    let joins = futures_util::stream::iter(
        (0..rooms.len()).flat_map(|room| (1..members).map(move |member| (room, member))),
    )
    .map(|(room, member)| {
        let api = &api;
        let token = &tokens[room * members + member];
        let room_id = &room_ids[room];
        async move {
            let reservation = common::with_retries(&format!("reserving in {room_id}"), || {
                api.reserve(token, room_id)
            })
            .await?;
            let (ws, _) = api
                .join(&reservation)
                .await
                .map_err(|e| anyhow::anyhow!("joining {room_id}: {e}"))?;
            anyhow::Ok((room, member, ws))
        }
    })
    .buffer_unordered(64);
    futures_util::pin_mut!(joins);
    while let Some(joined) = joins.next().await {
        let (room, member, ws) = joined?;
        joined_per_room[room] += 1;
        setup.inc(1);
        spawn_member(
            ws,
            room,
            u32::try_from(member).unwrap_or(u32::MAX),
            &mut tasks,
        );
    }
    setup.finish();
    // Let the presence frames of the last joins arrive before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let progress = Progress::timed(output.quiet, args.duration, "fanout");
    let from = Instant::now();
    let until = from + args.duration;
    let _ = phase_tx.send(Phase::Send { from, until });
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.elapsed(from.elapsed());
        progress.message(format!(
            "{} delivered",
            report::thousands(totals.delivered.load(Ordering::Acquire))
        ));
    }
    // Senders stop on their own at `until` (or at --count); wait for what is still in flight.
    let expected = |totals: &Totals| -> u64 {
        totals
            .sent_per_room
            .iter()
            .zip(&joined_per_room)
            .map(|(sent, members)| sent.load(Ordering::Acquire) * members)
            .sum()
    };
    let drain_deadline = Instant::now() + args.drain;
    tokio::time::sleep(Duration::from_millis(50)).await;
    while Instant::now() < drain_deadline
        && totals.delivered.load(Ordering::Acquire) < expected(&totals)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    let _ = phase_tx.send(Phase::Stop);

    let mut latency = Latency::new();
    let mut sent = 0;
    let mut delivered = 0;
    let mut last_receipt = from;
    let mut closed_by_server = Counts::default();
    let mut error_frames = 0;
    let mut left = 0_u64;
    for task in tasks {
        let stats = task.await.context("a fanout member panicked")?;
        latency.merge(&stats.latency);
        sent += stats.sent;
        delivered += stats.delivered;
        error_frames += stats.error_frames;
        if let Some(at) = stats.last_receipt {
            last_receipt = last_receipt.max(at);
        }
        if let Some(code) = stats.closed_with {
            closed_by_server.add(&code.to_string(), 1);
        }
        if stats.left_cleanly {
            left += 1;
        }
    }
    let expected_deliveries = expected(&totals);
    let leaked = common::settle(&api, &room_ids, Duration::from_secs(10)).await?;
    let violations: Vec<String> = leaked
        .iter()
        .map(|leak| format!("leaked seat: {leak}"))
        .collect();

    let delivery_seconds = last_receipt.saturating_duration_since(from).as_secs_f64();
    let send_seconds = args.duration.as_secs_f64();
    let members_joined: u64 = joined_per_room.iter().sum();
    let result = FanoutResult {
        rooms: args.rooms,
        members_per_room: args.members,
        members_joined,
        rate_per_member: args.rate,
        send_seconds,
        sent,
        expected_deliveries,
        delivered,
        missing: expected_deliveries.saturating_sub(delivered),
        delivery_seconds,
        delivered_per_second: report::per_second(delivered, delivery_seconds),
        sent_per_second: report::per_second(sent, send_seconds),
        delivery_latency: latency.summary(),
        closed_by_server: closed_by_server.clone(),
        error_frames,
        leaks: leaked,
    };

    let mut report = Report::new("fanout", api.target().http.clone());
    report.tables.push(Table::pairs(
        "fanout",
        &[
            (
                "rooms × members",
                format!(
                    "{} × {} ({members_joined} joined)",
                    args.rooms, args.members
                ),
            ),
            ("rate per member", format!("{}/s", args.rate)),
            (
                "sent",
                format!(
                    "{} ({}/s)",
                    report::thousands(sent),
                    report::rate(result.sent_per_second)
                ),
            ),
            (
                "delivered",
                format!(
                    "{} of {} owed ({}/s over {delivery_seconds:.2} s)",
                    report::thousands(delivered),
                    report::thousands(expected_deliveries),
                    report::rate(result.delivered_per_second)
                ),
            ),
            ("missing", report::thousands(result.missing)),
            ("closed by the server", closed_by_server.describe()),
            ("error frames", error_frames.to_string()),
            ("left cleanly", report::thousands(left)),
            ("leaked seats after", result.leaks.len().to_string()),
        ],
    ));
    report.tables.push(report::latency_table(
        "",
        &[("delivery (send → receipt)", result.delivery_latency)],
    ));
    if result.missing > 0 {
        report.notes.push(format!(
            "{} deliveries missing after a {:?} drain: the server dropped or closed slow readers, or the drain was too short",
            result.missing, args.drain
        ));
    }
    report.chart = Chart::Latency {
        title: format!(
            "fanout: {} rooms × {} members at {}/s each",
            args.rooms, args.members, args.rate
        ),
        series: vec![("delivery".to_owned(), latency.curve())],
    };
    report.result = report::to_value(&result);
    report.violations = violations;
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
struct MemberConfig {
    room: usize,
    member: u32,
    rate: f64,
    count: Option<u64>,
    body_bytes: usize,
    epoch: Instant,
}

/// One member: reads every frame from the moment it joined, sends at its rate while the phase
/// says so, and leaves when told to stop.
async fn member_loop(
    mut ws: Ws,
    config: MemberConfig,
    mut phase: watch::Receiver<Phase>,
    totals: Arc<Totals>,
) -> MemberStats {
    let mut stats = MemberStats::default();
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut until = Instant::now();
    loop {
        let current = *phase.borrow_and_update();
        match current {
            Phase::Stop => break,
            Phase::Send { from, until: end } if ticker.is_none() => {
                let period = Duration::from_secs_f64(1.0 / config.rate);
                // A random phase within the period spreads the members' sends evenly.
                let offset = period.mul_f64(rand::rng().random_range(0.0..1.0));
                let mut interval = tokio::time::interval_at((from + offset).into(), period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                ticker = Some(interval);
                until = end;
            }
            _ => {}
        }
        let sending = ticker.is_some()
            && Instant::now() < until
            && config.count.is_none_or(|count| stats.sent < count);
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if receive(text.as_str(), &config, &mut stats) {
                        // Counted at once: the drain waits for the last delivery.
                        totals.delivered.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    stats.closed_with = Some(api::close_code(close.as_ref()));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    stats.closed_with.get_or_insert(api::CLOSED_ABNORMALLY);
                    break;
                }
            },
            _ = async { if let Some(t) = ticker.as_mut() { t.tick().await; } }, if sending => {
                if Instant::now() >= until {
                    continue;
                }
                let body = message_body(config.epoch.elapsed(), config.member, stats.sent, config.body_bytes);
                if api::send_message(&mut ws, body).await.is_err() {
                    stats.closed_with.get_or_insert(api::CLOSED_ABNORMALLY);
                    break;
                }
                stats.sent += 1;
                totals.sent_per_room[config.room].fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    if stats.closed_with.is_none() {
        stats.left_cleanly = api::leave(&mut ws).await.is_ok_and(api::left_cleanly);
    }
    stats
}

/// Handles one text frame: a chat message counts as a delivery and yields a latency.
/// Returns whether it was a delivery.
fn receive(text: &str, config: &MemberConfig, stats: &mut MemberStats) -> bool {
    // Most frames are chat messages: read their send time without a full JSON parse, which
    // would otherwise be most of this tool's CPU at hundreds of thousands of frames a second.
    if let Some(sent) = quick_sent_micros(text) {
        delivered(config, stats, Some(sent));
        return true;
    }
    match serde_json::from_str::<ServerFrame>(text) {
        Ok(ServerFrame::Message(message)) => {
            delivered(config, stats, sent_micros(&message.body));
            true
        }
        Ok(ServerFrame::Error(_)) => {
            stats.error_frames += 1;
            false
        }
        _ => false,
    }
}

fn delivered(config: &MemberConfig, stats: &mut MemberStats, sent: Option<u64>) {
    let now = Instant::now();
    stats.delivered += 1;
    stats.last_receipt = Some(now);
    if let Some(sent) = sent {
        let now_micros =
            u64::try_from(now.duration_since(config.epoch).as_micros()).unwrap_or(u64::MAX);
        stats.latency.record_micros(now_micros.saturating_sub(sent));
    }
}

/// The send time of a `message` frame whose body is one of ours, found by scanning: in JSON
/// text an unescaped `"type":"message"` or `"body":"` can only be a key and its value (a quote
/// inside a string is always escaped), and the contract's ids cannot contain quotes. The keys
/// are `roomgate_api::Message`'s, as the server writes them (compact JSON,
/// `ServerFrame::to_text`); the tests check the scan against that encoding. Anything else
/// returns `None` and gets the full parse into `ServerFrame`.
pub fn quick_sent_micros(text: &str) -> Option<u64> {
    if !text.contains(r#""type":"message""#) {
        return None;
    }
    let start = text.find(r#""body":""#)? + r#""body":""#.len();
    let rest = &text[start..];
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 || !rest[digits..].starts_with(':') {
        return None;
    }
    rest[..digits].parse().ok()
}

/// `"<send µs>:<member>:<seq>:xxxx…"`, padded to `bytes`.
pub fn message_body(since_epoch: Duration, member: u32, seq: u64, bytes: usize) -> String {
    let mut body = format!("{}:{member}:{seq}:", since_epoch.as_micros());
    while body.len() < bytes {
        body.push('x');
    }
    body
}

/// The send time a body carries, if it is one of ours.
pub fn sent_micros(body: &str) -> Option<u64> {
    body.split(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use roomgate_api::{ErrorFrame, FrameErrorCode, Message, PresenceEvent, PresenceFrame};

    use super::*;

    /// A `message` frame as the server sends it (`ServerFrame::to_text`).
    fn message_frame(user: &str, body: String) -> String {
        ServerFrame::Message(Message {
            id: 9,
            room_id: "r".into(),
            user_id: user.into(),
            body,
            sent_at: "2026-01-01T00:00:00.000Z".into(),
        })
        .to_text()
    }

    fn presence_frame() -> String {
        ServerFrame::Presence(PresenceFrame {
            event: PresenceEvent::Joined,
            user_id: "u".into(),
            attending: 2,
        })
        .to_text()
    }

    fn error_frame(message: &str) -> String {
        ServerFrame::Error(ErrorFrame {
            code: FrameErrorCode::InvalidMessage,
            message: message.into(),
        })
        .to_text()
    }

    #[test]
    fn bodies_carry_their_send_time_and_are_padded() {
        let body = message_body(Duration::from_micros(1_234_567), 7, 42, 64);
        assert_eq!(body.len(), 64);
        assert!(body.starts_with("1234567:7:42:"));
        assert_eq!(sent_micros(&body), Some(1_234_567));
        // A body longer than asked is never cut: the timestamp matters more.
        let body = message_body(Duration::from_secs(100_000), 1, 1, 4);
        assert_eq!(sent_micros(&body), Some(100_000_000_000));
        assert!(MIN_BODY as usize >= "100000000000:100000:1000000:".len() - 4);
    }

    #[test]
    fn the_quick_scan_agrees_with_the_full_parse() {
        let ours = message_frame("u", message_body(Duration::from_micros(987_654), 1, 2, 40));
        assert_eq!(quick_sent_micros(&ours), Some(987_654));
        let Ok(ServerFrame::Message(message)) = serde_json::from_str(&ours) else {
            panic!("not a message: {ours}");
        };
        assert_eq!(sent_micros(&message.body), Some(987_654));
        // Not a message, not our body, or a body that only quotes the key: no quick answer.
        for text in [
            presence_frame(),
            message_frame("u", "hello".into()),
            message_frame("u", "12x".into()),
            message_frame("u", r#""type":"message" "body":"1:"#.into()),
            error_frame(r#""type":"message" "body":"1:"#),
        ] {
            assert_eq!(quick_sent_micros(&text), None, "{text}");
        }
    }

    #[test]
    fn foreign_bodies_yield_no_latency() {
        assert_eq!(sent_micros("hello"), None);
        assert_eq!(sent_micros(""), None);
    }

    #[test]
    fn a_message_frame_is_a_delivery_with_a_latency() {
        let epoch = Instant::now() - Duration::from_millis(50);
        let config = MemberConfig {
            room: 0,
            member: 0,
            rate: 1.0,
            count: None,
            body_bytes: 64,
            epoch,
        };
        let mut stats = MemberStats::default();
        let sent = message_body(Duration::from_millis(40), 3, 0, 32);
        assert!(receive(&message_frame("u", sent), &config, &mut stats));
        // A message that is not one of ours is a delivery without a latency.
        assert!(receive(
            &message_frame("u", "hello".into()),
            &config,
            &mut stats
        ));
        assert!(!receive(&presence_frame(), &config, &mut stats));
        assert!(!receive(&error_frame("m"), &config, &mut stats));
        assert_eq!(stats.delivered, 2);
        assert_eq!(stats.error_frames, 1);
        let summary = stats.latency.summary();
        assert_eq!(summary.count, 1);
        // Sent at 40 ms, received at ≥ 50 ms after the epoch.
        assert!(summary.max_ms >= 9.9, "{summary:?}");
    }
}
