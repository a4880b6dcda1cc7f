//! `churn`: workers join, chat a little and leave, in a loop, for a fixed time.
//!
//! Each worker rotates through a few users of its own (so that no user nears the per-user
//! request limit) and picks a room at random for each visit. The figures are complete joins
//! (reserve → `joined`) and clean leaves (`leave` → close 1000) per second; at the end every
//! room must be back to zero within `--settle`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Serialize;

use crate::api::Api;
use crate::cli::{ChurnArgs, ChurnWorkload, OutputArgs};
use crate::common::{self, Counts, Drive, VisitStats};
use crate::invariants::{AdmissionCheck, AdmissionFindings, Leak};
use crate::latency::LatencySummary;
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};
use crate::scenario::bare;

/// Users each worker rotates through.
const USERS_PER_WORKER: u32 = 4;

#[derive(Debug, Serialize)]
pub struct ChurnResult {
    workers: u32,
    rooms: u32,
    capacity: u32,
    messages_per_visit: u32,
    seconds: f64,
    /// Visits that got a seat and a `joined` frame.
    pub joins: u64,
    /// Visits that ended with the server's close 1000 after `leave`.
    leaves: u64,
    /// Messages sent and seen echoed.
    messages: u64,
    pub joins_per_second: f64,
    leaves_per_second: f64,
    /// Refused attempts, by code; each was retried.
    retries: u64,
    outcomes: Counts,
    join_latency: LatencySummary,
    echo_latency: LatencySummary,
    leave_latency: LatencySummary,
    admission: AdmissionFindings,
    leaks: Vec<Leak>,
    /// With `--bare-mysql`: the same visits as bare statements (the floor), and churn's share.
    #[serde(skip_serializing_if = "Option::is_none")]
    bare: Option<bare::BareResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    churn_to_bare: Option<f64>,
    /// On MariaDB: the bare statements as the server sends them, and churn's share of those.
    #[serde(skip_serializing_if = "Option::is_none")]
    bare_as_sent: Option<bare::BareResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    churn_to_bare_as_sent: Option<f64>,
}

/// A churn workload ready to run: its rooms open and empty, its users holding tokens.
#[derive(Debug)]
pub struct Churn {
    pub api: Api,
    pub workload: ChurnWorkload,
    pub check: Arc<AdmissionCheck>,
    pub room_ids: Vec<String>,
    users: Arc<Vec<String>>,
    tokens: Arc<Vec<String>>,
}

impl Churn {
    /// Opens the rooms and gets the users' tokens.
    pub async fn prepare(api: Api, workload: &ChurnWorkload, quiet: bool) -> anyhow::Result<Self> {
        let common::Population {
            rooms,
            room_ids,
            users,
            tokens,
        } = common::populate(
            &api,
            quiet,
            "r",
            workload.rooms,
            workload.capacity,
            workload.workers * USERS_PER_WORKER,
        )
        .await?;
        Ok(Self {
            api,
            workload: workload.clone(),
            check: Arc::new(AdmissionCheck::new(rooms)),
            room_ids,
            users: Arc::new(users),
            tokens: Arc::new(tokens),
        })
    }

    /// Churns for `duration` (or `count` joins), adding each complete join to `joins` as it
    /// happens; returns the merged stats and the time it took.
    pub async fn run(
        &self,
        duration: Duration,
        count: Option<u64>,
        progress: &Progress,
        joins: &Arc<AtomicU64>,
    ) -> anyhow::Result<(VisitStats, Duration)> {
        common::drive_counting(
            &self.api,
            &self.check,
            &self.users,
            &self.tokens,
            Drive {
                workers: self.workload.workers,
                users_per_worker: USERS_PER_WORKER,
                duration,
                count,
                messages: self.workload.messages,
                hold: Duration::ZERO,
                backoff: self.workload.backoff,
                room: None,
            },
            progress,
            joins,
        )
        .await
    }

    /// The run's figures, with what the final settle found.
    pub fn result(&self, stats: &VisitStats, elapsed: Duration, leaks: Vec<Leak>) -> ChurnResult {
        let seconds = elapsed.as_secs_f64();
        ChurnResult {
            workers: self.workload.workers,
            rooms: self.workload.rooms,
            capacity: self.workload.capacity,
            messages_per_visit: self.workload.messages,
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
            admission: self.check.findings(),
            leaks,
            bare: None,
            churn_to_bare: None,
            bare_as_sent: None,
            churn_to_bare_as_sent: None,
        }
    }
}

impl ChurnResult {
    /// Over-admission and leaked seats, one line each, for [`Report::violations`].
    pub fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if self.admission.over_admitted > 0 {
            violations.push(format!(
                "over-admission: {} seat(s) beyond capacity in {} room(s)",
                self.admission.over_admitted, self.admission.rooms_over_capacity
            ));
            violations.extend(self.admission.described.iter().cloned());
        }
        violations.extend(self.leaks.iter().map(|leak| format!("leaked seat: {leak}")));
        violations
    }

    /// The churn table and the latency table.
    pub fn tables(&self, title: &str) -> Vec<Table> {
        vec![
            Table::pairs(
                title,
                &[
                    (
                        "workers → rooms × capacity",
                        format!("{} → {} × {}", self.workers, self.rooms, self.capacity),
                    ),
                    ("ran", format!("{:.1} s", self.seconds)),
                    (
                        "complete joins",
                        format!(
                            "{} ({}/s)",
                            report::thousands(self.joins),
                            report::rate(self.joins_per_second)
                        ),
                    ),
                    (
                        "clean leaves",
                        format!(
                            "{} ({}/s)",
                            report::thousands(self.leaves),
                            report::rate(self.leaves_per_second)
                        ),
                    ),
                    ("messages echoed", report::thousands(self.messages)),
                    (
                        "retried attempts",
                        format!(
                            "{} ({})",
                            report::thousands(self.retries),
                            self.outcomes.describe()
                        ),
                    ),
                    ("over-admitted", self.admission.over_admitted.to_string()),
                    (
                        "server reads during the run",
                        report::thousands(self.admission.server_reads),
                    ),
                    ("leaked seats after", self.leaks.len().to_string()),
                ],
            ),
            report::latency_table(
                "",
                &[
                    ("join (reserve → joined)", self.join_latency),
                    ("message echo", self.echo_latency),
                    ("leave (→ close 1000)", self.leave_latency),
                ],
            ),
        ]
    }
}

pub async fn run(args: ChurnArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let bare = match &args.bare_mysql {
        Some(url) => {
            // The same rule as the server's URL: this machine only, unless allowed.
            crate::target::check_service_url(url, args.target.allow_remote)?;
            if !output.quiet {
                eprintln!("bare statements, two runs of {:?}…", args.duration);
            }
            let workload = bare::BareWorkload {
                workers: args.workload.workers,
                rooms: args.workload.rooms,
                capacity: args.workload.capacity,
                duration: args.duration,
            };
            Some(bare::run(url, workload).await?)
        }
        None => None,
    };
    let api = common::connect(&args.target).await?;
    let churn = Churn::prepare(api, &args.workload, output.quiet).await?;

    let progress = Progress::timed(output.quiet, args.duration, "churn");
    let (stats, elapsed) = churn
        .run(
            args.duration,
            args.count,
            &progress,
            &Arc::new(AtomicU64::new(0)),
        )
        .await?;
    progress.finish();

    let leaked = common::settle(&churn.api, &churn.room_ids, args.settle).await?;
    let mut result = churn.result(&stats, elapsed, leaked);

    let mut report = Report::new("churn", churn.api.target().http.clone());
    report.tables.extend(result.tables("churn"));
    for bare in bare.into_iter().flatten() {
        report.tables.push(bare.table(result.joins_per_second));
        let share = (bare.visits_per_second > 0.0)
            .then(|| result.joins_per_second / bare.visits_per_second);
        if bare.as_sent {
            result.churn_to_bare_as_sent = share;
            result.bare_as_sent = Some(bare);
        } else {
            result.churn_to_bare = share;
            result.bare = Some(bare);
        }
    }
    report.chart = Chart::Latency {
        title: format!(
            "churn: {} workers, {} rooms × {}",
            args.workload.workers, args.workload.rooms, args.workload.capacity
        ),
        series: vec![
            ("join".to_owned(), stats.join.curve()),
            ("echo".to_owned(), stats.echo.curve()),
            ("leave".to_owned(), stats.leave.curve()),
        ],
    };
    report.violations = result.violations();
    report.result = report::to_value(&result);
    Ok(report)
}
