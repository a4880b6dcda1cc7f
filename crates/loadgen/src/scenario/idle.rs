//! `idle`: N members that join and then say nothing; what each costs the server in memory.
//!
//! The server's resident memory is read once the rooms exist and before any member joins, and
//! again after the members have idled for `--duration`; the difference divided by N is the
//! cost of one idle member (its socket, session task, queue and membership). Each member
//! keeps reading its socket, so that it answers pings like a real client and is never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{self, Ws};
use crate::cli::{IdleArgs, OutputArgs};
use crate::common::{self, Counts};
use crate::invariants::Leak;
use crate::latency::{Latency, LatencySummary};
use crate::memory;
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};

#[derive(Debug, Serialize)]
struct IdleResult {
    members: u32,
    rooms: u32,
    room_capacity: u32,
    joined: u64,
    join_failed: Counts,
    open_seconds: f64,
    joins_per_second: f64,
    join_latency: LatencySummary,
    /// Σ attending the server reports with every member in.
    server_attending: u64,
    /// Sessions the server closed while they idled, by close code.
    dropped: Counts,
    memory_source: Option<String>,
    rss_before_bytes: Option<u64>,
    rss_after_bytes: Option<u64>,
    bytes_per_member: Option<u64>,
    left_cleanly: u64,
    leaks: Vec<Leak>,
}

pub async fn run(args: IdleArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let api = common::connect(&args.target).await?;
    let room_count = args.members.div_ceil(args.room_capacity);
    let common::Population {
        room_ids, tokens, ..
    } = common::populate(
        &api,
        output.quiet,
        "i",
        room_count,
        args.room_capacity,
        args.members,
    )
    .await?;

    let before = memory::resident_bytes(&api, args.server_pid).await?;

    let progress = Progress::new(output.quiet, u64::from(args.members), "joining");
    let (stop_tx, stop_rx) = watch::channel(false);
    let dropped_now = Arc::new(AtomicU64::new(0));
    let mut join_latency = Latency::new();
    let mut join_failed = Counts::default();
    let mut members = Vec::new();
    let start = Instant::now();
    let joins = futures_util::stream::iter(0..args.members as usize)
        .map(|member| {
            let api = &api;
            let token = &tokens[member];
            let room_id = &room_ids[member / args.room_capacity as usize];
            async move {
                let started = Instant::now();
                let reservation = api.reserve(token, room_id).await.map_err(|r| r.label())?;
                let (ws, _) = api.join(&reservation).await.map_err(|f| f.label())?;
                Ok::<_, &'static str>((ws, started.elapsed()))
            }
        })
        .buffer_unordered(args.concurrency as usize);
    futures_util::pin_mut!(joins);
    while let Some(joined) = joins.next().await {
        progress.inc(1);
        match joined {
            Ok((ws, latency)) => {
                join_latency.record(latency);
                members.push(tokio::spawn(idle_member(
                    ws,
                    stop_rx.clone(),
                    Arc::clone(&dropped_now),
                )));
            }
            Err(label) => join_failed.add(label, 1),
        }
    }
    let opened = start.elapsed();
    progress.finish();
    let joined = members.len() as u64;

    let hold = Progress::timed(output.quiet, args.duration, "idle");
    let idle_start = Instant::now();
    while idle_start.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        hold.elapsed(idle_start.elapsed());
        hold.message(format!(
            "{joined} members, {} dropped",
            dropped_now.load(Ordering::Acquire)
        ));
    }
    hold.finish();
    let after = memory::resident_bytes(&api, args.server_pid).await?;
    let views = common::read_rooms(&api, &room_ids, 32).await?;
    let server_attending: u64 = views.iter().map(|v| u64::from(v.attending)).sum();

    let _ = stop_tx.send(true);
    let mut dropped = Counts::default();
    let mut left_cleanly = 0;
    for member in members {
        match member.await.context("an idle member panicked")? {
            MemberEnd::Left => left_cleanly += 1,
            MemberEnd::LeaveFailed => dropped.add("leave_failed", 1),
            MemberEnd::Dropped(code) => dropped.add(&code.to_string(), 1),
        }
    }
    let leaked = common::settle(&api, &room_ids, args.settle).await?;

    let mut violations: Vec<String> = leaked
        .iter()
        .map(|leak| format!("leaked seat: {leak}"))
        .collect();
    let still_in = joined - dropped_now.load(Ordering::Acquire);
    if server_attending != still_in {
        violations.push(format!(
            "the server counts {server_attending} attending, but {still_in} members held a session"
        ));
    }
    let per_member = match (before, after) {
        (Some((b, _)), Some((a, _))) if joined > 0 => Some(a.saturating_sub(b) / joined),
        _ => None,
    };
    let result = IdleResult {
        members: args.members,
        rooms: room_count,
        room_capacity: args.room_capacity,
        joined,
        join_failed: join_failed.clone(),
        open_seconds: opened.as_secs_f64(),
        joins_per_second: report::per_second(joined, opened.as_secs_f64()),
        join_latency: join_latency.summary(),
        server_attending,
        dropped: dropped.clone(),
        memory_source: before.map(|(_, source)| source.to_string()),
        rss_before_bytes: before.map(|(b, _)| b),
        rss_after_bytes: after.map(|(a, _)| a),
        bytes_per_member: per_member,
        left_cleanly,
        leaks: leaked,
    };

    let mib = |bytes: Option<u64>| {
        bytes.map_or("unknown".to_owned(), |b| {
            // Display only.
            #[allow(clippy::cast_precision_loss)]
            let mib = b as f64 / 1_048_576.0;
            format!("{mib:.1} MiB")
        })
    };
    let mut report = Report::new("idle", api.target().http.clone());
    report.tables.push(Table::pairs(
        "idle",
        &[
            (
                "members → rooms × capacity",
                format!("{} → {room_count} × {}", args.members, args.room_capacity),
            ),
            (
                "joined",
                format!(
                    "{} in {:.2} s ({}/s); failed: {}",
                    report::thousands(joined),
                    opened.as_secs_f64(),
                    report::rate(result.joins_per_second),
                    join_failed.describe()
                ),
            ),
            ("server attending", report::thousands(server_attending)),
            ("server RSS before", mib(result.rss_before_bytes)),
            ("server RSS after", mib(result.rss_after_bytes)),
            (
                "per idle member",
                per_member.map_or("unknown".to_owned(), |b| {
                    // Display only.
                    #[allow(clippy::cast_precision_loss)]
                    let kib = b as f64 / 1024.0;
                    format!("{kib:.1} KiB")
                }),
            ),
            (
                "memory read from",
                result
                    .memory_source
                    .clone()
                    .unwrap_or_else(|| "nowhere: pass --server-pid".to_owned()),
            ),
            ("dropped or failed to leave", dropped.describe()),
            ("left cleanly", report::thousands(left_cleanly)),
            ("leaked seats after", result.leaks.len().to_string()),
        ],
    ));
    report.tables.push(report::latency_table(
        "",
        &[("join (reserve → joined)", result.join_latency)],
    ));
    if before.is_none() {
        report.notes.push(
            "no memory figure: give --server-pid (the server exports no process_resident_memory_bytes)"
                .to_owned(),
        );
    }
    report.chart = Chart::Latency {
        title: format!("idle: joining {} members", args.members),
        series: vec![("join".to_owned(), join_latency.curve())],
    };
    report.result = report::to_value(&result);
    report.violations = violations;
    Ok(report)
}

enum MemberEnd {
    Left,
    LeaveFailed,
    Dropped(u16),
}

/// Reads (and answers pings) until told to stop, then leaves.
async fn idle_member(
    mut ws: Ws,
    mut stop: watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
) -> MemberEnd {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(close))) => {
                    dropped.fetch_add(1, Ordering::AcqRel);
                    return MemberEnd::Dropped(api::close_code(close.as_ref()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::AcqRel);
                    return MemberEnd::Dropped(api::CLOSED_ABNORMALLY);
                }
            },
        }
    }
    match api::leave(&mut ws).await {
        Ok(code) if api::left_cleanly(code) => MemberEnd::Left,
        _ => MemberEnd::LeaveFailed,
    }
}
