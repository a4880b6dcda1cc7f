//! `storm`: N users race for R rooms of capacity C, all at once.
//!
//! Setup (not timed): a token per user, the rooms opened and emptied. Then every user reserves
//! (phase 1) and, if it got a seat, confirms over its WebSocket (phase 2) and stays. A sampler
//! reads the rooms while this happens. At the end the server's rooms must hold exactly the
//! clients that hold a joined session, never more than capacity; then everyone leaves and every
//! room must be back to zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Api, JoinFailure, Refusal, Ws};
use crate::cli::{OutputArgs, StormArgs};
use crate::common::{self, Counts, Sampler};
use crate::invariants::{AdmissionCheck, AdmissionFindings, Leak};
use crate::latency::{Latency, LatencySummary};
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};

#[derive(Debug, Serialize)]
struct StormResult {
    users: u32,
    rooms: u32,
    capacity: u32,
    concurrency: u32,
    /// Reservations answered 201/200 (a seat held).
    reserved: u64,
    /// Reservations refused, by code (`room_full` expected once the rooms are full).
    refused: Counts,
    /// Users whose reservation had no answer before `--duration`.
    timed_out: u64,
    /// Joined frames received: the users admitted.
    admitted: u64,
    /// Held seats whose WebSocket confirmation failed, by close code or error.
    confirm_failed: Counts,
    /// Σ min(users of the room, capacity): what a correct server admits.
    expected_admitted: u64,
    /// Seats that stayed free although a user asked for them (should be 0).
    unfilled_seats: u64,
    /// Members the server reports after the storm (Σ attending).
    server_attending: u64,
    /// First reservation sent → last reservation answered.
    reserve_phase_seconds: f64,
    /// First reservation sent → last joined frame (or failure).
    storm_seconds: f64,
    reservations_per_second: f64,
    reserve_latency: LatencySummary,
    confirm_latency: LatencySummary,
    admission: AdmissionFindings,
    leaks: Vec<Leak>,
}

/// What one user's race produced.
struct Outcome {
    room: usize,
    reserve: Option<Duration>,
    reserve_done: Duration,
    refused: Option<&'static str>,
    confirm: Result<(Duration, Ws), &'static str>,
}

pub async fn run(args: StormArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let api = common::connect(&args.target).await?;
    let common::Population {
        rooms,
        room_ids,
        tokens,
        ..
    } = common::populate(
        &api,
        output.quiet,
        "s",
        args.rooms,
        args.capacity,
        args.users,
    )
    .await?;

    let check = Arc::new(AdmissionCheck::new(rooms.iter().cloned()));
    let before = common::settle(&api, &room_ids, Duration::from_secs(5)).await?;
    if !before.is_empty() {
        anyhow::bail!(
            "the new rooms are not empty before the storm: {}",
            before[0]
        );
    }

    let progress = Progress::new(output.quiet, u64::from(args.users), "storm");
    let sampler = Sampler::spawn(
        api.clone(),
        Arc::clone(&check),
        (0..rooms.len()).collect(),
        Duration::from_millis(5),
    );
    let gate = Arc::new(Semaphore::new(args.concurrency as usize));
    let tokens = Arc::new(tokens);
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + args.duration);
    let mut tasks = JoinSet::new();
    for user in 0..args.users as usize {
        let api = api.clone();
        let gate = Arc::clone(&gate);
        let tokens = Arc::clone(&tokens);
        let check = Arc::clone(&check);
        let room = user % rooms.len();
        tasks.spawn(async move {
            let race = race(&api, &check, &tokens[user], room, &gate, start);
            tokio::time::timeout_at(deadline, race).await.ok()
        });
    }

    let mut reserve = Latency::new();
    let mut confirm = Latency::new();
    let mut refused = Counts::default();
    let mut confirm_failed = Counts::default();
    let mut sockets: Vec<Ws> = Vec::new();
    let mut admitted_per_room = vec![0_u64; rooms.len()];
    let mut timed_out = 0_u64;
    let mut reserved = 0_u64;
    let mut reserve_phase = Duration::ZERO;
    while let Some(joined) = tasks.join_next().await {
        progress.inc(1);
        let Some(outcome) = joined.context("a storm task panicked")? else {
            timed_out += 1;
            continue;
        };
        reserve_phase = reserve_phase.max(outcome.reserve_done);
        if let Some(label) = outcome.refused {
            refused.add(label, 1);
        }
        if let Some(latency) = outcome.reserve {
            reserve.record(latency);
        }
        if outcome.refused.is_none() {
            reserved += 1;
            match outcome.confirm {
                Ok((latency, ws)) => {
                    confirm.record(latency);
                    admitted_per_room[outcome.room] += 1;
                    sockets.push(ws);
                }
                Err(label) => confirm_failed.add(label, 1),
            }
        }
    }
    let storm = start.elapsed();
    progress.finish();
    let sampled = sampler.stop().await;

    // The server's count with every admitted client still inside.
    let views = common::read_rooms(&api, &room_ids, 32).await?;
    let mut violations = Vec::new();
    let mut server_attending = 0_u64;
    for (index, view) in views.iter().enumerate() {
        check.observe(view);
        server_attending += u64::from(view.attending);
        if u64::from(view.attending) != admitted_per_room[index] {
            violations.push(format!(
                "room {}: the server counts {} attending but {} clients hold a joined session",
                view.id, view.attending, admitted_per_room[index]
            ));
        }
    }
    let admitted: u64 = admitted_per_room.iter().sum();
    let expected_admitted: u64 = (0..rooms.len())
        .map(|room| {
            let users_of_room = (args.users as usize)
                .saturating_sub(room)
                .div_ceil(rooms.len());
            (users_of_room as u64).min(u64::from(args.capacity))
        })
        .sum();

    let (left, leave_trouble) = common::leave_all(sockets, 256).await;
    let leaked = common::settle(&api, &room_ids, Duration::from_secs(10)).await?;
    let findings = check.findings();
    if findings.over_admitted > 0 {
        violations.push(format!(
            "over-admission: {} seat(s) beyond capacity in {} room(s)",
            findings.over_admitted, findings.rooms_over_capacity
        ));
        violations.extend(findings.described.iter().cloned());
    }
    violations.extend(leaked.iter().map(|leak| format!("leaked seat: {leak}")));

    let result = StormResult {
        users: args.users,
        rooms: args.rooms,
        capacity: args.capacity,
        concurrency: args.concurrency,
        reserved,
        refused: refused.clone(),
        timed_out,
        admitted,
        confirm_failed: confirm_failed.clone(),
        expected_admitted,
        unfilled_seats: expected_admitted.saturating_sub(admitted),
        server_attending,
        reserve_phase_seconds: reserve_phase.as_secs_f64(),
        storm_seconds: storm.as_secs_f64(),
        reservations_per_second: report::per_second(
            u64::from(args.users) - timed_out,
            reserve_phase.as_secs_f64(),
        ),
        reserve_latency: reserve.summary(),
        confirm_latency: confirm.summary(),
        admission: findings.clone(),
        leaks: leaked,
    };

    let mut report = Report::new("storm", api.target().http.clone());
    report.tables.push(Table::pairs(
        "storm",
        &[
            (
                "users → rooms × capacity",
                format!("{} → {} × {}", args.users, args.rooms, args.capacity),
            ),
            ("reservations in flight", args.concurrency.to_string()),
            ("seats held (201/200)", report::thousands(reserved)),
            ("refused", refused.describe()),
            ("timed out", report::thousands(timed_out)),
            (
                "admitted (joined frames)",
                format!(
                    "{} of {} expected",
                    report::thousands(admitted),
                    report::thousands(expected_admitted)
                ),
            ),
            ("confirmations failed", confirm_failed.describe()),
            (
                "server attending after",
                report::thousands(server_attending),
            ),
            (
                "reservation phase",
                format!(
                    "{:.3} s ({} reservations/s)",
                    reserve_phase.as_secs_f64(),
                    report::rate(result.reservations_per_second)
                ),
            ),
            ("whole storm", format!("{:.3} s", storm.as_secs_f64())),
            ("over-admitted", findings.over_admitted.to_string()),
            ("server reads during the storm", report::thousands(sampled)),
            (
                "left cleanly",
                format!("{} ({})", report::thousands(left), leave_trouble.describe()),
            ),
            ("leaked seats after", result.leaks.len().to_string()),
        ],
    ));
    report.tables.push(report::latency_table(
        "",
        &[
            ("reserve (phase 1)", result.reserve_latency),
            ("confirm (phase 2)", result.confirm_latency),
        ],
    ));
    if timed_out > 0 {
        report.notes.push(format!(
            "{timed_out} user(s) got no answer within --duration {:?}",
            args.duration
        ));
    }
    report.chart = Chart::Latency {
        title: format!(
            "storm: {} users on {} room(s) of capacity {}",
            args.users, args.rooms, args.capacity
        ),
        series: vec![
            ("reserve".to_owned(), reserve.curve()),
            ("confirm".to_owned(), confirm.curve()),
        ],
    };
    report.result = report::to_value(&result);
    report.violations = violations;
    Ok(report)
}

/// One user: wait for a slot, reserve, and on a held seat confirm over the WebSocket.
async fn race(
    api: &Api,
    check: &AdmissionCheck,
    token: &str,
    room: usize,
    gate: &Semaphore,
    start: Instant,
) -> Outcome {
    let room_id = &check.ids()[room];
    let reservation = {
        // The gate bounds the reservations in flight, not the sessions that follow.
        let _slot = gate.acquire().await;
        let sent = Instant::now();
        let answer = api.reserve(token, room_id).await;
        (answer, sent.elapsed())
    };
    let reserve_done = start.elapsed();
    let (answer, latency) = reservation;
    let reservation = match answer {
        Ok(reservation) => reservation,
        Err(refusal) => {
            let label = refusal.label();
            // A transport error is not an answer: its latency says nothing about the server.
            let reserve = (!matches!(refusal, Refusal::Transport(_))).then_some(latency);
            return Outcome {
                room,
                reserve,
                reserve_done,
                refused: Some(label),
                confirm: Err("not reserved"),
            };
        }
    };
    let connecting = Instant::now();
    let confirm = match api.join(&reservation).await {
        Ok((ws, _)) => {
            check.enter(room);
            Ok((connecting.elapsed(), ws))
        }
        Err(failure) => {
            if matches!(failure, JoinFailure::Transport(_) | JoinFailure::Timeout) {
                let _ = api.cancel(token, room_id).await;
            }
            Err(failure.label())
        }
    };
    Outcome {
        room,
        reserve: Some(latency),
        reserve_done,
        refused: None,
        confirm,
    }
}
