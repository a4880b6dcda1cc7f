//! `churn`: workers join, chat a little and leave, in a loop, for a fixed time.
//!
//! Each worker rotates through a few users of its own (so that no user nears the per-user
//! request limit) and picks a room at random for each visit. The figures are complete joins
//! (reserve → `joined`) and clean leaves (`leave` → close 1000) per second; at the end every
//! room must be back to zero within `--settle`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{ChurnArgs, OutputArgs};
use crate::common::{self, Counts, Drive};
use crate::invariants::{AdmissionCheck, AdmissionFindings, Leak};
use crate::latency::LatencySummary;
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};

/// Users each worker rotates through.
const USERS_PER_WORKER: u32 = 4;

#[derive(Debug, Serialize)]
struct ChurnResult {
    workers: u32,
    rooms: u32,
    capacity: u32,
    messages_per_visit: u32,
    seconds: f64,
    /// Visits that got a seat and a `joined` frame.
    joins: u64,
    /// Visits that ended with the server's close 1000 after `leave`.
    leaves: u64,
    /// Messages sent and seen echoed.
    messages: u64,
    joins_per_second: f64,
    leaves_per_second: f64,
    /// Refused attempts, by code; each was retried.
    retries: u64,
    outcomes: Counts,
    join_latency: LatencySummary,
    echo_latency: LatencySummary,
    leave_latency: LatencySummary,
    admission: AdmissionFindings,
    leaks: Vec<Leak>,
}

pub async fn run(args: ChurnArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let api = common::connect(&args.target).await?;
    let common::Population {
        rooms,
        room_ids,
        users,
        tokens,
    } = common::populate(
        &api,
        output.quiet,
        "r",
        args.rooms,
        args.capacity,
        args.workers * USERS_PER_WORKER,
    )
    .await?;

    let check = Arc::new(AdmissionCheck::new(rooms.iter().cloned()));
    let progress = Progress::timed(output.quiet, args.duration, "churn");
    let (stats, elapsed) = common::drive(
        &api,
        &check,
        &Arc::new(users),
        &Arc::new(tokens),
        Drive {
            workers: args.workers,
            users_per_worker: USERS_PER_WORKER,
            duration: args.duration,
            count: args.count,
            messages: args.messages,
            hold: Duration::ZERO,
            backoff: args.backoff,
            room: None,
        },
        &progress,
    )
    .await?;
    progress.finish();

    let leaked = common::settle(&api, &room_ids, args.settle).await?;
    let findings = check.findings();
    let mut violations = Vec::new();
    if findings.over_admitted > 0 {
        violations.push(format!(
            "over-admission: {} seat(s) beyond capacity in {} room(s)",
            findings.over_admitted, findings.rooms_over_capacity
        ));
        violations.extend(findings.described.iter().cloned());
    }
    violations.extend(leaked.iter().map(|leak| format!("leaked seat: {leak}")));

    let seconds = elapsed.as_secs_f64();
    let result = ChurnResult {
        workers: args.workers,
        rooms: args.rooms,
        capacity: args.capacity,
        messages_per_visit: args.messages,
        seconds,
        joins: stats.joins,
        leaves: stats.leaves,
        messages: stats.messages,
        joins_per_second: report::per_second(stats.joins, seconds),
        leaves_per_second: report::per_second(stats.leaves, seconds),
        retries: stats.retries,
        outcomes: stats.outcomes.clone(),
        join_latency: stats.join.summary(),
        echo_latency: stats.echo.summary(),
        leave_latency: stats.leave.summary(),
        admission: findings.clone(),
        leaks: leaked,
    };

    let mut report = Report::new("churn", api.target().http.clone());
    report.tables.push(Table::pairs(
        "churn",
        &[
            (
                "workers → rooms × capacity",
                format!("{} → {} × {}", args.workers, args.rooms, args.capacity),
            ),
            ("ran", format!("{seconds:.1} s")),
            (
                "complete joins",
                format!(
                    "{} ({}/s)",
                    report::thousands(stats.joins),
                    report::rate(result.joins_per_second)
                ),
            ),
            (
                "clean leaves",
                format!(
                    "{} ({}/s)",
                    report::thousands(stats.leaves),
                    report::rate(result.leaves_per_second)
                ),
            ),
            ("messages echoed", report::thousands(stats.messages)),
            (
                "retried attempts",
                format!("{} ({})", stats.retries, stats.outcomes.describe()),
            ),
            ("over-admitted", findings.over_admitted.to_string()),
            (
                "server reads during the run",
                report::thousands(findings.server_reads),
            ),
            ("leaked seats after", result.leaks.len().to_string()),
        ],
    ));
    report.tables.push(report::latency_table(
        "",
        &[
            ("join (reserve → joined)", result.join_latency),
            ("message echo", result.echo_latency),
            ("leave (→ close 1000)", result.leave_latency),
        ],
    ));
    report.chart = Chart::Latency {
        title: format!(
            "churn: {} workers, {} rooms × {}",
            args.workers, args.rooms, args.capacity
        ),
        series: vec![
            ("join".to_owned(), stats.join.curve()),
            ("echo".to_owned(), stats.echo.curve()),
            ("leave".to_owned(), stats.leave.curve()),
        ],
    };
    report.result = report::to_value(&result);
    report.violations = violations;
    Ok(report)
}
