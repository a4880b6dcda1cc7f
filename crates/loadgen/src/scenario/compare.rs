//! `compare`: the design notes' question answered on this machine. One workload — 64 clients
//! on a hot room, then the same clients spread over 1,000 rooms — run against a fresh server
//! for each join guard and permit store, each on its own scratch database.
//!
//! Clients loop reserve → join → (hold) → leave. A refused attempt (room full, or any other
//! refusal) is retried after a short random pause and counted as a retry. The hot room's
//! capacity is below the number of clients, so they contend for its seats and over-admission
//! would show: the clients' own count and the server's reads must both stay within capacity.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;

use crate::api::Api;
use crate::cli::{CompareArgs, OutputArgs, Permits, parse_setting};
use crate::common::{self, Counts, Drive};
use crate::invariants::{AdmissionCheck, AdmissionFindings, Leak};
use crate::latency::LatencySummary;
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};
use crate::server::{ScratchDatabase, ServerProcess, StartRefused};
use crate::target::{Target, check_service_url};

/// Users each client rotates through.
const USERS_PER_CLIENT: u32 = 4;

/// The figures of the original design notes, measured there with a distributed lock in front
/// of a check-then-act join. Shown next to ours; not measured here.
pub const REFERENCES: [(&str, f64); 3] = [
    ("pessimistic lock", 12.4),
    ("Redisson pub/sub lock", 8.3),
    ("spin lock", 5.0),
];

#[derive(Debug, Clone, Serialize)]
struct PhaseResult {
    phase: String,
    rooms: u32,
    capacity: u32,
    seconds: f64,
    joins: u64,
    joins_per_second: f64,
    join_latency: LatencySummary,
    retries: u64,
    refusals: Counts,
    over_admitted: u64,
    admission: AdmissionFindings,
}

#[derive(Debug, Clone, Serialize)]
struct Configuration {
    guard: String,
    permits: &'static str,
    database: &'static str,
    /// `ran`, `skipped` (the server refused the configuration) or `failed`.
    status: &'static str,
    reason: Option<String>,
    phases: Vec<PhaseResult>,
    leaks: Vec<Leak>,
    /// Warnings the server logged (e.g. a setting it does not act on).
    server_notices: Vec<String>,
    server_exit: Option<String>,
}

impl Configuration {
    fn label(&self) -> String {
        format!("{}/{}", self.guard, self.permits)
    }
}

pub async fn run(args: CompareArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    if !args.sqlite {
        check_service_url(&args.mysql_url, args.allow_remote)?;
    }
    if args.permits.contains(&Permits::Redis) {
        check_service_url(&args.redis_url, args.allow_remote)?;
    }
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::server::sibling_binary()?,
    };
    let extra: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|s| parse_setting(s))
        .collect::<Result<_, _>>()?;
    let run = common::run_id();
    let sqlite_dir = if args.sqlite {
        Some(tempfile::tempdir().context("creating a folder for the SQLite databases")?)
    } else {
        None
    };

    let mut configurations = Vec::new();
    for guard in &args.guards {
        for permits in &args.permits {
            let database = match &sqlite_dir {
                Some(dir) => Database::Sqlite(format!(
                    "sqlite://{}/{guard}_{}.db",
                    dir.path().display(),
                    permits.as_str()
                )),
                None => Database::Mysql {
                    server: args.mysql_url.clone(),
                    name: format!("roomgate_load_{run}_{guard}_{}", permits.as_str()),
                },
            };
            let outcome =
                configuration(&args, &binary, &extra, guard, *permits, database, output).await;
            configurations.push(outcome);
        }
    }
    Ok(build_report(&args, &binary, configurations))
}

enum Database {
    Sqlite(String),
    Mysql { server: String, name: String },
}

async fn configuration(
    args: &CompareArgs,
    binary: &Path,
    extra: &[(String, String)],
    guard: &str,
    permits: Permits,
    database: Database,
    output: &OutputArgs,
) -> Configuration {
    let mut config = Configuration {
        guard: guard.to_owned(),
        permits: permits.as_str(),
        database: match database {
            Database::Sqlite(_) => "sqlite",
            Database::Mysql { .. } => "mariadb",
        },
        status: "ran",
        reason: None,
        phases: Vec::new(),
        leaks: Vec::new(),
        server_notices: Vec::new(),
        server_exit: None,
    };
    let (url, scratch) = match database {
        Database::Sqlite(url) => (url, None),
        Database::Mysql { server, name } => match ScratchDatabase::create(&server, &name).await {
            Ok(scratch) => (scratch.url.clone(), Some(scratch)),
            Err(error) => {
                config.status = "failed";
                config.reason = Some(format!("{error:#}"));
                return config;
            }
        },
    };
    let mut settings = vec![
        ("ROOMGATE__DATABASE__URL".to_owned(), url),
        (
            "ROOMGATE__DATABASE__JOIN_GUARD".to_owned(),
            guard.to_owned(),
        ),
        (
            "ROOMGATE__REDIS__URL".to_owned(),
            match permits {
                Permits::Memory => String::new(),
                Permits::Redis => args.redis_url.clone(),
            },
        ),
        ("ROOMGATE__AUTH__DEV_TOKENS".to_owned(), "true".to_owned()),
        // The workload measures the join path, not the per-user request limiter.
        (
            "ROOMGATE__LIMITS__USER_REQUESTS_PER_SECOND".to_owned(),
            "1000000".to_owned(),
        ),
        (
            "ROOMGATE__LIMITS__USER_BURST".to_owned(),
            "1000000".to_owned(),
        ),
    ];
    settings.extend(extra.iter().cloned());

    match ServerProcess::start(binary, &settings).await {
        Ok(server) => {
            let outcome = workload(args, &server, &config.label(), output).await;
            config.server_notices = server.notices();
            match server.stop().await {
                Ok(status) => config.server_exit = Some(status.to_string()),
                Err(error) => config.server_exit = Some(format!("could not stop: {error}")),
            }
            match outcome {
                Ok((phases, leaks)) => {
                    config.phases = phases;
                    config.leaks = leaks;
                }
                Err(error) => {
                    config.status = "failed";
                    config.reason = Some(format!("{error:#}"));
                }
            }
        }
        Err(error) => {
            config.status = if error.is::<StartRefused>() {
                "skipped"
            } else {
                "failed"
            };
            config.reason = Some(format!("{error:#}"));
        }
    }
    if let Some(scratch) = scratch {
        if let Err(error) = scratch.drop_database().await {
            config
                .server_notices
                .push(format!("could not drop the scratch database: {error:#}"));
        }
    }
    config
}

/// Setup, the hot-room phase, the spread phase, and the final check that every seat is back.
async fn workload(
    args: &CompareArgs,
    server: &ServerProcess,
    label: &str,
    output: &OutputArgs,
) -> anyhow::Result<(Vec<PhaseResult>, Vec<Leak>)> {
    let api = Api::new(Target::local(server.address))?;
    let run = common::run_id();
    let hot = vec![(common::name(&run, "hot", 0), args.hot_capacity)];
    let spread: Vec<(String, u32)> = (0..args.rooms)
        .map(|i| (common::name(&run, "r", i), args.room_capacity))
        .collect();
    let users: Vec<String> = (0..args.clients * USERS_PER_CLIENT)
        .map(|i| common::name(&run, "u", i))
        .collect();
    let creators: Vec<String> = (0..64).map(|i| common::name(&run, "c", i)).collect();

    let setup = Progress::new(
        output.quiet,
        (users.len() + creators.len() + spread.len() + 1) as u64,
        "setup",
    );
    let creator_tokens = common::tokens(&api, &creators, 32, &setup).await?;
    let tokens = Arc::new(common::tokens(&api, &users, 64, &setup).await?);
    let all_rooms: Vec<(String, u32)> = hot.iter().chain(&spread).cloned().collect();
    common::open_rooms(&api, &all_rooms, &creator_tokens, false, &setup)
        .await
        .context("opening the rooms")?;
    setup.finish();
    let users = Arc::new(users);

    let mut phases = Vec::new();
    for (name, rooms, room) in [
        ("hot room".to_owned(), &hot, Some(0)),
        (
            format!("{} rooms", report::thousands(u64::from(args.rooms))),
            &spread,
            None,
        ),
    ] {
        let check = Arc::new(AdmissionCheck::new(rooms.iter().cloned()));
        let progress = Progress::timed(output.quiet, args.duration, &format!("{label} {name}"));
        let (stats, elapsed) = common::drive(
            &api,
            &check,
            &users,
            &tokens,
            Drive {
                workers: args.clients,
                users_per_worker: USERS_PER_CLIENT,
                duration: args.duration,
                count: args.count,
                messages: 0,
                hold: args.hold,
                backoff: args.backoff,
                room,
            },
            &progress,
        )
        .await?;
        progress.finish();
        let findings = check.findings();
        phases.push(PhaseResult {
            phase: name,
            rooms: u32::try_from(rooms.len()).unwrap_or(u32::MAX),
            capacity: rooms.first().map_or(0, |r| r.1),
            seconds: elapsed.as_secs_f64(),
            joins: stats.joins,
            joins_per_second: report::per_second(stats.joins, elapsed.as_secs_f64()),
            join_latency: stats.join.summary(),
            retries: stats.retries,
            refusals: stats.outcomes.clone(),
            over_admitted: findings.over_admitted,
            admission: findings,
        });
    }
    let ids: Vec<String> = all_rooms.into_iter().map(|(id, _)| id).collect();
    let leaks = common::settle(&api, &ids, args.settle).await?;
    Ok((phases, leaks))
}

/// Each distinct server notice once, with who said it: `every server`, or
/// `optimistic/memory (×5), optimistic/redis (×3)`.
fn grouped_notices(configurations: &[Configuration]) -> Vec<(String, String)> {
    let mut notices: Vec<(String, Vec<(String, usize)>)> = Vec::new();
    for config in configurations {
        for notice in &config.server_notices {
            let index = match notices.iter().position(|(text, _)| text == notice) {
                Some(index) => index,
                None => {
                    notices.push((notice.clone(), Vec::new()));
                    notices.len() - 1
                }
            };
            let who = &mut notices[index].1;
            match who.iter_mut().find(|(label, _)| *label == config.label()) {
                Some((_, times)) => *times += 1,
                None => who.push((config.label(), 1)),
            }
        }
    }
    notices
        .into_iter()
        .map(|(notice, who)| {
            let text = if who.len() == configurations.len() && who.len() > 1 {
                "every server".to_owned()
            } else {
                who.iter()
                    .map(|(label, times)| match times {
                        1 => label.clone(),
                        n => format!("{label} (×{n})"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (notice, text)
        })
        .collect()
}

fn build_report(args: &CompareArgs, binary: &Path, configurations: Vec<Configuration>) -> Report {
    let mut report = Report::new(
        "compare",
        format!("servers started from {}", binary.display()),
    );
    let mut table = Table::new(
        format!(
            "compare: {} clients; hot room of capacity {}, then {} rooms of capacity {}; {:?} per phase; database {}",
            args.clients,
            args.hot_capacity,
            args.rooms,
            args.room_capacity,
            args.duration,
            if args.sqlite { "SQLite" } else { "MariaDB" },
        ),
        &[
            "configuration",
            "phase",
            "joins/s",
            "p50 ms",
            "p99 ms",
            "retries",
            "over-admitted (clients/reads)",
        ],
    );
    let mut bars = Vec::new();
    for config in &configurations {
        if config.status != "ran" {
            table.row([
                config.label(),
                format!("{} (see below)", config.status),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        }
        for phase in &config.phases {
            table.row([
                config.label(),
                phase.phase.clone(),
                report::rate(phase.joins_per_second),
                report::ms(phase.join_latency.p50_ms),
                report::ms(phase.join_latency.p99_ms),
                report::thousands(phase.retries),
                format!(
                    "{} / {}",
                    phase.admission.over_admitted_by_clients,
                    phase.admission.over_capacity_in_reads
                ),
            ]);
            bars.push((
                format!("{} {}", config.label(), phase.phase),
                phase.joins_per_second,
            ));
        }
    }
    for (what, tps) in REFERENCES {
        table.row([
            format!("design notes: {what}"),
            "reference".into(),
            report::rate(tps),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
        ]);
    }
    report.tables.push(table);
    report.notes.push(
        "design-notes figures are TPS published with the original design, not measured here"
            .to_owned(),
    );
    report.notes.push(
        "retries = attempts refused (room full at reservation or at the database guard, or any other refusal) and tried again"
            .to_owned(),
    );
    report.notes.push(
        "over-admitted: clients = more clients held a joined session at once than the room has seats; \
         reads = a GET of the room showed attending + reserved above capacity"
            .to_owned(),
    );
    for (notice, who) in grouped_notices(&configurations) {
        report.notes.push(format!("{who} said: {notice}"));
    }
    for config in &configurations {
        if config.status == "skipped" {
            report.notes.push(format!(
                "{} skipped: {}",
                config.label(),
                config.reason.as_deref().unwrap_or("unknown")
            ));
        }
        if config.status == "failed" {
            report.errors.push(format!(
                "{} did not complete: {}",
                config.label(),
                config.reason.as_deref().unwrap_or("unknown")
            ));
        }
        for phase in &config.phases {
            if phase.over_admitted > 0 {
                report.violations.push(format!(
                    "{} {}: over-admission of {} seat(s)",
                    config.label(),
                    phase.phase,
                    phase.over_admitted
                ));
                report
                    .violations
                    .extend(phase.admission.described.iter().cloned());
            }
        }
        report.violations.extend(
            config
                .leaks
                .iter()
                .map(|leak| format!("{} leaked seat: {leak}", config.label())),
        );
    }
    report.chart = Chart::Compare {
        title: "complete joins per second by join guard and permit store".to_owned(),
        bars,
        references: REFERENCES
            .iter()
            .map(|(what, tps)| (format!("design notes: {what}"), *tps))
            .collect(),
    };
    report.result = serde_json::json!({
        "clients": args.clients,
        "rooms": args.rooms,
        "hot_capacity": args.hot_capacity,
        "room_capacity": args.room_capacity,
        "phase_seconds": args.duration.as_secs_f64(),
        "database": if args.sqlite { "sqlite" } else { "mariadb" },
        "configurations": report::to_value(&configurations),
        "references": REFERENCES
            .iter()
            .map(|(what, tps)| serde_json::json!({ "what": what, "tps": tps }))
            .collect::<Vec<_>>(),
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(guard: &str, notices: &[&str]) -> Configuration {
        Configuration {
            guard: guard.into(),
            permits: "memory",
            database: "sqlite",
            status: "ran",
            reason: None,
            phases: Vec::new(),
            leaks: Vec::new(),
            server_notices: notices.iter().map(|n| (*n).to_owned()).collect(),
            server_exit: None,
        }
    }

    #[test]
    fn server_notices_are_grouped_by_text_and_counted_by_configuration() {
        let configurations = [
            config("conditional", &["WARN: dev secret"]),
            config(
                "optimistic",
                &["WARN: dev secret", "WARN: gave up", "WARN: gave up"],
            ),
        ];
        assert_eq!(
            grouped_notices(&configurations),
            [
                ("WARN: dev secret".to_owned(), "every server".to_owned()),
                (
                    "WARN: gave up".to_owned(),
                    "optimistic/memory (×2)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_table_puts_measured_rows_next_to_the_reference_figures() {
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(["roomgate-load", "compare"])
            .unwrap();
        let crate::cli::Command::Compare(args) = cli.command else {
            panic!("compare")
        };
        let mut ran = config("conditional", &[]);
        ran.phases.push(PhaseResult {
            phase: "hot room".into(),
            rooms: 1,
            capacity: 32,
            seconds: 10.0,
            joins: 5000,
            joins_per_second: 500.0,
            join_latency: crate::latency::Latency::new().summary(),
            retries: 7,
            refusals: Counts::default(),
            over_admitted: 0,
            admission: AdmissionFindings::default(),
        });
        let mut skipped = config("naive", &[]);
        skipped.status = "skipped";
        skipped.reason = Some("unknown join guard \"naive\"".into());
        let report = build_report(&args, Path::new("/x/roomgate"), vec![ran, skipped]);
        let text = report.human();
        assert!(text.contains("conditional/memory"), "{text}");
        assert!(
            text.contains("naive/memory skipped: unknown join guard"),
            "{text}"
        );
        assert!(text.contains("design notes: pessimistic lock"), "{text}");
        assert!(text.contains("12.4") && text.contains("8.3") && text.contains("5.0"));
        assert!(report.ok(), "a skipped configuration is not a failure");
        let Chart::Compare {
            bars, references, ..
        } = &report.chart
        else {
            panic!("a comparison chart")
        };
        assert_eq!(bars.len(), 1);
        assert_eq!(references.len(), 3);
    }
}
