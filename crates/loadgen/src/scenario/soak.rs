//! `soak`: the churn workload for a long time against a server whose database connection the
//! tool cuts now and then; does the server come back every time, and does it keep nothing?
//!
//! The tool starts its own `roomgate` (as `compare` does) on a scratch MariaDB database, but
//! gives it the address of a relay it owns (`roomgate_faults::Relay`) instead of MariaDB's.
//! After `--warmup`, every `--fault-every` the relay is cut (`Fault::Cut`) for `--fault-for`:
//! every connection of the server's pool is reset and new ones are refused. Meanwhile, every
//! `--sample-every`, the tool records the joins per second since the last sample, the server's
//! resident memory and open descriptors (from `/proc`), and whether a cut was on at some moment
//! since the last sample.
//!
//! At the end — every worker stopped, every cut healed, the server given `--settle` — the
//! contract's invariant 3 must hold (every room `attending == 0 && reserved == 0`, and
//! `roomgate_permits_held 0` in `/metrics`), nothing may have been over-admitted, and the
//! server's resident memory may not exceed what it was at the end of the warm-up by more than
//! `--max-rss-growth` percent. Any of these failing is a violation (exit 3).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use roomgate_faults::{Fault, Relay, RelayStats};
use serde::Serialize;
use tokio::sync::watch;

use crate::api::Api;
use crate::cli::{OutputArgs, SoakArgs, parse_setting};
use crate::common;
use crate::fault::{self, FaultWindow};
use crate::invariants;
use crate::memory;
use crate::progress::Progress;
use crate::report::{self, Chart, Report, Table};
use crate::scenario::churn::{Churn, ChurnResult};
use crate::server::{ScratchDatabase, ServerProcess};
use crate::target::{Target, check_service_url};

const MIB: f64 = 1024.0 * 1024.0;

/// One reading, taken every `--sample-every`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the churn started.
    pub elapsed_s: f64,
    /// Complete joins per second since the previous sample.
    pub joins_per_second: f64,
    /// The server's `VmRSS`.
    pub rss_bytes: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub open_fds: u64,
    /// A cut was on at some moment since the previous sample.
    pub fault: bool,
    /// Server connections the relay held open to the database.
    pub db_connections: u64,
}

/// A stretch of the run: the warm-up, a cut, or the healthy time between.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub what: String,
    pub from_s: f64,
    pub to_s: f64,
    pub samples: usize,
    pub mean_joins_per_second: f64,
    pub min_joins_per_second: f64,
    /// After a cut: seconds from the heal to the end of the first sample back at half the
    /// warm-up's rate (None: never, or not after a cut).
    pub recovered_after_s: Option<f64>,
    pub rss_bytes_at_end: Option<u64>,
    pub open_fds_at_end: Option<u64>,
    pub db_connections_at_end: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Memory {
    /// The first sample at or after the end of the warm-up.
    baseline_at_s: Option<f64>,
    baseline_rss_bytes: Option<u64>,
    /// Read after the settle, once every worker had stopped.
    end_rss_bytes: u64,
    growth_percent: Option<f64>,
    max_growth_percent: f64,
    peak_rss_bytes: u64,
    baseline_open_fds: Option<u64>,
    end_open_fds: u64,
    peak_open_fds: u64,
}

/// What the relay did over the run, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct RelayReport {
    /// Cuts made (the `faults` windows).
    cuts: u64,
    /// Connections accepted from the server.
    accepted: u64,
    /// Connections reset: relayed ones by a cut, new ones accepted during a cut, and any whose
    /// upstream (MariaDB) could not be reached.
    reset: u64,
    /// Relayed connections open at the end.
    open: u64,
}

impl RelayReport {
    fn new(stats: RelayStats, cuts: usize) -> Self {
        Self {
            cuts: cuts as u64,
            accepted: stats.accepted,
            reset: stats.reset,
            open: stats.open,
        }
    }
}

/// The database relay and the cuts begun on it so far, shared by the injector and the sampler
/// (which marks a sample whose interval saw a cut).
#[derive(Debug)]
struct CutRelay {
    relay: Relay,
    cuts: AtomicU64,
}

impl CutRelay {
    async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            relay: Relay::start(upstream).await?,
            cuts: AtomicU64::new(0),
        })
    }

    /// Resets every relayed connection and refuses new ones until [`heal`](Self::heal).
    fn cut(&self) {
        if self.relay.fault() != Fault::Cut {
            self.cuts.fetch_add(1, Ordering::AcqRel);
        }
        self.relay.set(Fault::Cut);
    }

    /// Lets connections pass again.
    fn heal(&self) {
        self.relay.set(Fault::None);
    }

    fn is_cut(&self) -> bool {
        self.relay.fault() == Fault::Cut
    }

    fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Acquire)
    }
}

#[derive(Debug, Serialize)]
struct SoakResult {
    duration_s: f64,
    warmup_s: f64,
    fault_every_s: f64,
    fault_for_s: f64,
    sample_every_s: f64,
    settle_s: f64,
    database: String,
    relay_address: String,
    upstream_address: String,
    server_pid: u32,
    faults: Vec<FaultWindow>,
    relay: RelayReport,
    memory: Memory,
    /// `roomgate_permits_held` after the settle; None when it could not be read.
    permits_held_after: Option<u64>,
    churn: ChurnResult,
    segments: Vec<Segment>,
    samples: Vec<Sample>,
    server_warnings: u64,
    server_warning_counts: BTreeMap<String, u64>,
    server_exit: Option<String>,
}

/// What the run measured, before the server is stopped.
#[derive(Debug)]
struct Measured {
    churn: ChurnResult,
    samples: Vec<Sample>,
    sampling_error: Option<String>,
    faults: Vec<FaultWindow>,
    relay: RelayStats,
    end_rss_bytes: u64,
    end_open_fds: u64,
    permits_held_after: Result<u64, String>,
}

pub async fn run(args: SoakArgs, output: &OutputArgs) -> anyhow::Result<Report> {
    args.validate()?;
    check_service_url(&args.mysql_url, args.allow_remote)?;
    let binary = match &args.server_bin {
        Some(path) => path.clone(),
        None => crate::server::sibling_binary()?,
    };
    let extra: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|s| parse_setting(s))
        .collect::<Result<_, _>>()?;
    let upstream = upstream_address(&args.mysql_url).await?;
    let name = format!("roomgate_soak_{}", common::run_id());
    let scratch = ScratchDatabase::create(&args.mysql_url, &name).await?;
    let outcome = on_database(&args, output, &binary, &extra, upstream, &scratch).await;
    let dropped = scratch.drop_database().await;
    let mut report = outcome?;
    if let Err(error) = dropped {
        report.notes.push(format!(
            "could not drop the scratch database {name}: {error:#}"
        ));
    }
    Ok(report)
}

/// Relay, server, soak; the server is stopped (and then the relay dropped) whatever happened.
async fn on_database(
    args: &SoakArgs,
    output: &OutputArgs,
    binary: &Path,
    extra: &[(String, String)],
    upstream: SocketAddr,
    scratch: &ScratchDatabase,
) -> anyhow::Result<Report> {
    let relay = Arc::new(
        CutRelay::start(upstream)
            .await
            .context("starting the database relay")?,
    );
    let mut settings = vec![
        (
            "ROOMGATE__DATABASE__URL".to_owned(),
            relayed_url(&scratch.url, relay.relay.address())?,
        ),
        ("ROOMGATE__AUTH__DEV_TOKENS".to_owned(), "true".to_owned()),
        ("ROOMGATE__REDIS__URL".to_owned(), String::new()),
    ];
    settings.extend(extra.iter().cloned());
    let server = ServerProcess::start(binary, &settings)
        .await
        .context("starting the server")?;
    let relay_address = relay.relay.address();
    let measured = soak(args, output, &server, &relay).await;
    let (warnings, warning_counts) = server.notice_counts();
    let pid = server.pid;
    let address = server.address;
    let exit = match server.stop().await {
        Ok(status) => status.to_string(),
        Err(error) => format!("could not stop: {error:#}"),
    };
    drop(relay);
    let measured = measured?;
    Ok(build_report(
        args,
        binary,
        Identity {
            address,
            pid,
            database: scratch.name().to_owned(),
            relay: relay_address,
            upstream,
        },
        measured,
        warnings,
        warning_counts,
        exit,
    ))
}

/// What the report says about where the run happened.
#[derive(Debug)]
struct Identity {
    address: SocketAddr,
    pid: u32,
    database: String,
    /// Where the server's database connections go instead of MariaDB.
    relay: SocketAddr,
    upstream: SocketAddr,
}

async fn soak(
    args: &SoakArgs,
    output: &OutputArgs,
    server: &ServerProcess,
    relay: &Arc<CutRelay>,
) -> anyhow::Result<Measured> {
    let api = Api::new(Target::local(server.address))?;
    let churn = Churn::prepare(api, &args.churn, output.quiet).await?;
    let plan = fault::schedule(args.duration, args.warmup, args.fault_every, args.fault_for);

    let joins = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let monitor = tokio::spawn(monitor(
        server.pid,
        start,
        args.duration,
        args.sample_every,
        Arc::clone(&joins),
        Arc::clone(relay),
        stopped.clone(),
    ));
    let injector = tokio::spawn(inject(Arc::clone(relay), start, plan, stopped));
    let progress = Progress::timed(output.quiet, args.duration, "soak");
    let ran = churn.run(args.duration, None, &progress, &joins).await;
    progress.finish();
    let _ = stop.send(true);
    let faults = injector.await.unwrap_or_default();
    // Whatever happened to the injector, the end check runs on a healed relay.
    relay.heal();
    let (samples, sampling_error) = monitor
        .await
        .unwrap_or_else(|e| (Vec::new(), Some(format!("the sampler failed: {e}"))));
    let (stats, elapsed) = ran?;

    let settle_by = Instant::now() + args.settle;
    let leaks = common::settle(&churn.api, &churn.room_ids, args.settle).await?;
    let permits_held_after = permits_settled(&churn.api, settle_by).await;
    let (end_rss_bytes, end_open_fds) = read_process(server.pid)?;
    Ok(Measured {
        churn: churn.result(&stats, elapsed, leaks),
        samples,
        sampling_error,
        faults,
        relay: relay.relay.stats(),
        end_rss_bytes,
        end_open_fds,
        permits_held_after,
    })
}

/// Cuts and heals the relay on `plan` (offsets from `start`); returns when each cut really
/// began and ended. A stop heals a cut in progress at once.
async fn inject(
    relay: Arc<CutRelay>,
    start: Instant,
    plan: Vec<(Duration, Duration)>,
    mut stop: watch::Receiver<bool>,
) -> Vec<FaultWindow> {
    let start = tokio::time::Instant::from_std(start);
    let mut windows = Vec::new();
    for (from, to) in plan {
        tokio::select! {
            () = tokio::time::sleep_until(start + from) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        relay.cut();
        let cut_at = start.elapsed();
        let stopped = tokio::select! {
            () = tokio::time::sleep_until(start + to) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        relay.heal();
        windows.push(FaultWindow {
            start_s: cut_at.as_secs_f64(),
            end_s: start.elapsed().as_secs_f64(),
        });
        if stopped {
            break;
        }
    }
    relay.heal();
    windows
}

/// Takes a [`Sample`] every `every` until `duration` (or a stop); a failed read of the
/// server's `/proc` entry ends the sampling with its error.
async fn monitor(
    pid: u32,
    start: Instant,
    duration: Duration,
    every: Duration,
    joins: Arc<AtomicU64>,
    relay: Arc<CutRelay>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<Sample>, Option<String>) {
    let origin = tokio::time::Instant::from_std(start);
    let mut samples = Vec::new();
    let mut previous = (start, joins.load(Ordering::Acquire), relay.cuts());
    let mut tick = 1_u32;
    loop {
        let at = every * tick;
        if at > duration {
            return (samples, None);
        }
        tokio::select! {
            () = tokio::time::sleep_until(origin + at) => {}
            _ = stop.wait_for(|stop| *stop) => return (samples, None),
        }
        let now = Instant::now();
        let joined = joins.load(Ordering::Acquire);
        let cuts = relay.cuts();
        let fault = relay.is_cut() || cuts != previous.2;
        let (rss_bytes, open_fds) = match read_process(pid) {
            Ok(read) => read,
            Err(error) => return (samples, Some(format!("{error:#}"))),
        };
        samples.push(Sample {
            elapsed_s: now.duration_since(start).as_secs_f64(),
            joins_per_second: report::per_second(
                joined.saturating_sub(previous.1),
                now.duration_since(previous.0).as_secs_f64(),
            ),
            rss_bytes,
            open_fds,
            fault,
            db_connections: relay.relay.stats().open,
        });
        previous = (now, joined, cuts);
        tick += 1;
    }
}

/// The server's resident bytes and open descriptors.
fn read_process(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (did the server exit?)"))?;
    let rss = memory::vm_rss_bytes(&status)
        .with_context(|| format!("/proc/{pid}/status has no VmRSS line"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .count() as u64;
    Ok((rss, fds))
}

/// Reads `roomgate_permits_held` until it is 0 or `deadline` has passed; the last value read.
async fn permits_settled(api: &Api, deadline: Instant) -> Result<u64, String> {
    loop {
        let held = match api.metrics().await {
            Ok(text) => invariants::permits_held(&text)
                .ok_or_else(|| "/metrics has no roomgate_permits_held".to_owned()),
            Err(refusal) => Err(format!("reading /metrics: {refusal}")),
        };
        match held {
            Ok(0) => return Ok(0),
            other if Instant::now() >= deadline => return other,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Where MariaDB listens, from `--mysql-url` (port 3306 when it names none).
async fn upstream_address(mysql_url: &str) -> anyhow::Result<SocketAddr> {
    let url = url::Url::parse(mysql_url).context("parsing --mysql-url")?;
    let host = url
        .host_str()
        .context("--mysql-url names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(3306);
    let mut addresses = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?;
    match addresses.next() {
        Some(address) => Ok(address),
        None => bail!("{host} resolves to no address"),
    }
}

/// The server's database URL: `database_url` with the relay's address instead of MariaDB's,
/// and `prefer_socket=false`, without which mysql_async would move a connection to
/// 127.0.0.1 onto MariaDB's unix socket, around the relay.
pub fn relayed_url(database_url: &str, relay: SocketAddr) -> anyhow::Result<String> {
    let mut url = url::Url::parse(database_url).context("parsing the database URL")?;
    url.set_host(Some(&relay.ip().to_string()))
        .context("setting the relay's host")?;
    url.set_port(Some(relay.port()))
        .map_err(|()| anyhow::anyhow!("{database_url} cannot take a port"))?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "prefer_socket")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("prefer_socket", "false");
    Ok(url.to_string())
}

/// Splits the run into the warm-up, each cut, and the healthy stretches between, with the
/// samples whose interval falls in each (by the interval's midpoint).
pub fn segments(
    samples: &[Sample],
    faults: &[FaultWindow],
    warmup_s: f64,
    end_s: f64,
    every_s: f64,
) -> Vec<Segment> {
    let mut bounds: Vec<(String, f64, f64, bool)> =
        vec![("warm-up".to_owned(), 0.0, warmup_s, false)];
    let mut from = warmup_s;
    for (i, fault) in faults.iter().enumerate() {
        if fault.start_s > from {
            bounds.push(("healthy".to_owned(), from, fault.start_s, i > 0));
        }
        bounds.push((format!("cut {}", i + 1), fault.start_s, fault.end_s, false));
        from = fault.end_s;
    }
    if end_s > from {
        bounds.push(("healthy".to_owned(), from, end_s, !faults.is_empty()));
    }
    let warmup_rate = mean(
        samples
            .iter()
            .filter(|s| s.elapsed_s - every_s / 2.0 < warmup_s)
            .map(|s| s.joins_per_second),
    );
    bounds
        .into_iter()
        .map(|(what, from_s, to_s, after_cut)| {
            let inside: Vec<&Sample> = samples
                .iter()
                .filter(|s| {
                    let middle = s.elapsed_s - every_s / 2.0;
                    middle >= from_s && middle < to_s
                })
                .collect();
            let last = inside.last();
            let recovered_after_s = if after_cut {
                warmup_rate.and_then(|rate| {
                    inside
                        .iter()
                        .find(|s| s.joins_per_second >= rate / 2.0)
                        .map(|s| s.elapsed_s - from_s)
                })
            } else {
                None
            };
            Segment {
                what,
                from_s,
                to_s,
                samples: inside.len(),
                mean_joins_per_second: mean(inside.iter().map(|s| s.joins_per_second))
                    .unwrap_or(0.0),
                min_joins_per_second: inside
                    .iter()
                    .map(|s| s.joins_per_second)
                    .reduce(f64::min)
                    .unwrap_or(0.0),
                recovered_after_s,
                rss_bytes_at_end: last.map(|s| s.rss_bytes),
                open_fds_at_end: last.map(|s| s.open_fds),
                db_connections_at_end: last.map(|s| s.db_connections),
            }
        })
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0_u32), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// What the end of a soak adds to churn's own checks: leaked permits and memory growth
/// (violations), or a check that could not be made (errors).
pub fn end_check(
    permits_held_after: &Result<u64, String>,
    baseline: Option<Sample>,
    end_rss_bytes: u64,
    max_growth_percent: f64,
) -> (Vec<String>, Vec<String>) {
    let mut violations = Vec::new();
    let mut errors = Vec::new();
    match permits_held_after {
        Ok(0) => {}
        Ok(held) => violations.push(format!(
            "leaked permits: /metrics roomgate_permits_held {held} after every client left"
        )),
        Err(error) => errors.push(format!("the permits held could not be checked: {error}")),
    }
    match baseline.and_then(|base| Some((base, growth_percent(base.rss_bytes, end_rss_bytes)?))) {
        Some((base, growth)) if growth > max_growth_percent => violations.push(format!(
            "memory: server RSS {:.1} MiB at the end is {growth:.1} % above the {:.1} MiB at the \
             end of the warm-up ({:.0} s); the limit is {max_growth_percent} %",
            mib(end_rss_bytes),
            mib(base.rss_bytes),
            base.elapsed_s,
        )),
        Some(_) => {}
        None => errors.push(
            "no memory reading at the end of the warm-up: the memory check was not made".to_owned(),
        ),
    }
    (violations, errors)
}

/// Resident bytes as MiB for tables and charts.
#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// Growth from `base` to `end`, in percent.
#[allow(clippy::cast_precision_loss)]
pub fn growth_percent(base: u64, end: u64) -> Option<f64> {
    (base > 0).then(|| (end as f64 - base as f64) / base as f64 * 100.0)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &SoakArgs,
    binary: &Path,
    identity: Identity,
    measured: Measured,
    warnings: u64,
    warning_counts: BTreeMap<String, u64>,
    exit: String,
) -> Report {
    let Measured {
        churn,
        samples,
        sampling_error,
        faults,
        relay: relay_stats,
        end_rss_bytes,
        end_open_fds,
        permits_held_after,
    } = measured;
    let relay_stats = RelayReport::new(relay_stats, faults.len());
    let warmup_s = args.warmup.as_secs_f64();
    let every_s = args.sample_every.as_secs_f64();
    let end_s = samples
        .last()
        .map_or(args.duration.as_secs_f64(), |s| s.elapsed_s);
    let segments = segments(&samples, &faults, warmup_s, end_s, every_s);
    let baseline = samples
        .iter()
        .find(|s| s.elapsed_s + 1e-6 >= warmup_s)
        .copied();
    let growth = baseline.and_then(|b| growth_percent(b.rss_bytes, end_rss_bytes));
    let peak_rss_bytes = samples
        .iter()
        .map(|s| s.rss_bytes)
        .chain([end_rss_bytes])
        .max()
        .unwrap_or(end_rss_bytes);
    let peak_open_fds = samples
        .iter()
        .map(|s| s.open_fds)
        .chain([end_open_fds])
        .max()
        .unwrap_or(end_open_fds);

    let mut report = Report::new(
        "soak",
        format!(
            "http://{} (roomgate pid {}, started from {})",
            identity.address,
            identity.pid,
            binary.display()
        ),
    );
    report.violations = churn.violations();
    let (violations, errors) = end_check(
        &permits_held_after,
        baseline,
        end_rss_bytes,
        args.max_rss_growth,
    );
    report.violations.extend(violations);
    report.errors.extend(errors);
    if let Some(error) = &sampling_error {
        report
            .errors
            .push(format!("sampling stopped early: {error}"));
    }

    let fault_rate = mean(
        segments
            .iter()
            .filter(|s| s.what.starts_with("cut "))
            .flat_map(|s| std::iter::repeat_n(s.mean_joins_per_second, s.samples)),
    );
    let healthy_rate = mean(
        segments
            .iter()
            .filter(|s| s.what == "healthy")
            .flat_map(|s| std::iter::repeat_n(s.mean_joins_per_second, s.samples)),
    );
    let warmup_rate = segments.first().map_or(0.0, |s| s.mean_joins_per_second);
    let recoveries: Vec<f64> = segments
        .iter()
        .filter_map(|s| s.recovered_after_s)
        .collect();
    let slowest_recovery = recoveries.iter().copied().reduce(f64::max);
    let unrecovered = segments
        .iter()
        .filter(|s| s.what == "healthy" && s.from_s > warmup_s && s.recovered_after_s.is_none())
        .count();

    let rss_line = match (baseline, growth) {
        (Some(base), Some(growth)) => format!(
            "{:.1} MiB at the end of the warm-up ({:.0} s) → {:.1} MiB at the end ({growth:+.1} %, limit {} %); peak {:.1} MiB",
            mib(base.rss_bytes),
            base.elapsed_s,
            mib(end_rss_bytes),
            args.max_rss_growth,
            mib(peak_rss_bytes)
        ),
        _ => format!("{:.1} MiB at the end", mib(end_rss_bytes)),
    };
    let fds_line = match baseline {
        Some(base) => format!(
            "{} at the end of the warm-up → {} at the end; peak {}",
            base.open_fds, end_open_fds, peak_open_fds
        ),
        None => format!("{end_open_fds} at the end"),
    };
    let mut pairs = vec![
        (
            "database",
            format!(
                "MariaDB {} at {}, reached through the relay on {} (prefer_socket=false)",
                identity.database, identity.upstream, identity.relay
            ),
        ),
        (
            "ran",
            format!(
                "{:.1} s (warm-up {:.0} s), sampled every {:?}",
                end_s, warmup_s, args.sample_every
            ),
        ),
        (
            "cuts",
            if faults.is_empty() {
                "none (no cut fits between the warm-up and the end)".to_owned()
            } else {
                format!(
                    "{} × {:?}, every {:?} from {:.0} s",
                    faults.len(),
                    args.fault_for,
                    args.fault_every,
                    faults[0].start_s
                )
            },
        ),
        (
            "relay",
            format!(
                "{} connections accepted, {} reset (by cuts, or with MariaDB unreachable)",
                report::thousands(relay_stats.accepted),
                report::thousands(relay_stats.reset)
            ),
        ),
        (
            "joins/s",
            format!(
                "{} warm-up, {} healthy after it, {} during cuts",
                report::rate(warmup_rate),
                healthy_rate.map_or("-".to_owned(), report::rate),
                fault_rate.map_or("-".to_owned(), report::rate)
            ),
        ),
        (
            "back to ½ the warm-up rate",
            match slowest_recovery {
                Some(slowest) => format!(
                    "within {slowest:.1} s of every heal{}",
                    if unrecovered > 0 {
                        format!(" that recovered ({unrecovered} never did)")
                    } else {
                        String::new()
                    }
                ),
                None if faults.is_empty() => "-".to_owned(),
                None => "never".to_owned(),
            },
        ),
        ("server RSS", rss_line),
        ("server open descriptors", fds_line),
        (
            "permits held after",
            match &permits_held_after {
                Ok(held) => held.to_string(),
                Err(_) => "unknown".to_owned(),
            },
        ),
        (
            "server warnings/errors",
            format!(
                "{} ({} distinct)",
                report::thousands(warnings),
                warning_counts.len()
            ),
        ),
    ];
    if exit != "exit status: 0" {
        pairs.push(("server exit", exit.clone()));
    }
    report.tables.push(Table::pairs("soak", &pairs));
    report.tables.extend(churn.tables("churn workload"));

    let mut timeline = Table::new(
        "timeline",
        &[
            "stretch",
            "s",
            "joins/s mean",
            "min",
            "to ½ rate s",
            "RSS MiB",
            "fds",
            "db conns",
        ],
    );
    for segment in &segments {
        timeline.row([
            segment.what.clone(),
            format!("{:.1}–{:.1}", segment.from_s, segment.to_s),
            report::rate(segment.mean_joins_per_second),
            report::rate(segment.min_joins_per_second),
            segment
                .recovered_after_s
                .map_or(String::new(), |s| format!("{s:.1}")),
            segment
                .rss_bytes_at_end
                .map_or("-".to_owned(), |b| format!("{:.1}", mib(b))),
            segment
                .open_fds_at_end
                .map_or("-".to_owned(), |n| n.to_string()),
            segment
                .db_connections_at_end
                .map_or("-".to_owned(), |n| n.to_string()),
        ]);
    }
    report.tables.push(timeline);

    report.notes.push(
        "a cut resets every relayed database connection (RST) and refuses new ones until it heals"
            .to_owned(),
    );
    report.notes.push(
        "memory check: VmRSS after the settle against the first sample at or after the warm-up's end; \
         timeline RSS/fds/db conns are the stretch's last sample"
            .to_owned(),
    );
    for (line, count) in &warning_counts {
        report.notes.push(format!("server said (×{count}): {line}"));
    }

    report.chart = Chart::Timeline {
        title: format!(
            "soak: {} workers, {} rooms × {}, database cut for {:?} every {:?}",
            args.churn.workers,
            args.churn.rooms,
            args.churn.capacity,
            args.fault_for,
            args.fault_every
        ),
        samples: samples
            .iter()
            .map(|s| (s.elapsed_s, mib(s.rss_bytes), s.joins_per_second))
            .collect(),
        faults: faults.iter().map(|f| (f.start_s, f.end_s)).collect(),
        warmup_s,
    };

    let result = SoakResult {
        duration_s: args.duration.as_secs_f64(),
        warmup_s,
        fault_every_s: args.fault_every.as_secs_f64(),
        fault_for_s: args.fault_for.as_secs_f64(),
        sample_every_s: every_s,
        settle_s: args.settle.as_secs_f64(),
        database: identity.database,
        relay_address: identity.relay.to_string(),
        upstream_address: identity.upstream.to_string(),
        server_pid: identity.pid,
        faults,
        relay: relay_stats,
        memory: Memory {
            baseline_at_s: baseline.map(|b| b.elapsed_s),
            baseline_rss_bytes: baseline.map(|b| b.rss_bytes),
            end_rss_bytes,
            growth_percent: growth,
            max_growth_percent: args.max_rss_growth,
            peak_rss_bytes,
            baseline_open_fds: baseline.map(|b| b.open_fds),
            end_open_fds,
            peak_open_fds,
        },
        permits_held_after: permits_held_after.ok(),
        churn,
        segments,
        samples,
        server_warnings: warnings,
        server_warning_counts: warning_counts,
        server_exit: Some(exit),
    };
    report.result = report::to_value(&result);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rate: f64, fault: bool) -> Sample {
        Sample {
            elapsed_s: t,
            joins_per_second: rate,
            rss_bytes: 100 << 20,
            open_fds: 40,
            fault,
            db_connections: 16,
        }
    }

    #[test]
    fn the_relayed_url_points_at_the_relay_and_keeps_tcp() {
        let relay: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(
            relayed_url(
                "mysql://roomgate:roomgate@127.0.0.1:3306/roomgate_soak_x",
                relay
            )
            .unwrap(),
            "mysql://roomgate:roomgate@127.0.0.1:40123/roomgate_soak_x?prefer_socket=false"
        );
        let url = relayed_url(
            "mysql://u:p@localhost/db?prefer_socket=true&pool_min=1",
            relay,
        )
        .unwrap();
        assert_eq!(
            url,
            "mysql://u:p@127.0.0.1:40123/db?pool_min=1&prefer_socket=false"
        );
    }

    #[tokio::test]
    async fn the_upstream_defaults_to_port_3306() {
        assert_eq!(
            upstream_address("mysql://roomgate:roomgate@127.0.0.1")
                .await
                .unwrap(),
            "127.0.0.1:3306".parse().unwrap()
        );
        assert_eq!(
            upstream_address("mysql://u@127.0.0.1:3307/x")
                .await
                .unwrap(),
            "127.0.0.1:3307".parse().unwrap()
        );
    }

    #[test]
    fn memory_growth_is_a_percentage_of_the_baseline() {
        assert_eq!(growth_percent(100, 110), Some(10.0));
        assert_eq!(growth_percent(100, 90), Some(-10.0));
        assert_eq!(growth_percent(0, 90), None);
    }

    #[test]
    fn the_run_splits_into_warm_up_cuts_and_healthy_stretches() {
        // 1 s samples over 20 s; warm-up 5 s; cuts 8–10 s and 14–16 s.
        let faults = [
            FaultWindow {
                start_s: 8.0,
                end_s: 10.0,
            },
            FaultWindow {
                start_s: 14.0,
                end_s: 16.0,
            },
        ];
        let samples: Vec<Sample> = (1..=20)
            .map(|t| {
                let t = f64::from(t);
                let cut = faults.iter().any(|f| t > f.start_s && t <= f.end_s);
                // Slow for the first second after each heal.
                let rate = if cut {
                    0.0
                } else if t == 11.0 || t == 17.0 {
                    20.0
                } else {
                    100.0
                };
                sample(t, rate, cut)
            })
            .collect();
        let segments = segments(&samples, &faults, 5.0, 20.0, 1.0);
        let names: Vec<&str> = segments.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            names,
            ["warm-up", "healthy", "cut 1", "healthy", "cut 2", "healthy"]
        );
        let counts: Vec<usize> = segments.iter().map(|s| s.samples).collect();
        assert_eq!(counts, [5, 3, 2, 4, 2, 4]);
        assert_eq!(segments[0].mean_joins_per_second, 100.0);
        assert_eq!(segments[2].mean_joins_per_second, 0.0);
        assert_eq!(segments[3].min_joins_per_second, 20.0);
        // Back to half the warm-up's rate at the end of the second sample after the heal.
        assert_eq!(segments[3].recovered_after_s, Some(2.0));
        assert_eq!(segments[5].recovered_after_s, Some(2.0));
        // The stretch before the first cut follows no cut.
        assert_eq!(segments[1].recovered_after_s, None);
        assert_eq!(segments[0].rss_bytes_at_end, Some(100 << 20));
    }

    #[test]
    fn leaked_permits_and_memory_growth_are_violations() {
        let base = sample(10.0, 100.0, false); // 100 MiB
        let (violations, errors) = end_check(&Ok(0), Some(base), 105 << 20, 10.0);
        assert!(violations.is_empty() && errors.is_empty(), "{violations:?}");

        let (violations, _) = end_check(&Ok(2), Some(base), 100 << 20, 10.0);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0].contains("roomgate_permits_held 2"),
            "{violations:?}"
        );

        let (violations, _) = end_check(&Ok(0), Some(base), 111 << 20, 10.0);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].contains("11.0 %"), "{violations:?}");
        assert!(
            violations[0].contains("the limit is 10 %"),
            "{violations:?}"
        );

        // A check that could not be made is an error (exit 1), not a pass.
        let (violations, errors) = end_check(&Err("no answer".into()), None, 1, 10.0);
        assert!(violations.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn a_run_without_cuts_is_warm_up_then_healthy() {
        let samples: Vec<Sample> = (1..=4).map(|t| sample(f64::from(t), 50.0, false)).collect();
        let segments = segments(&samples, &[], 2.0, 4.0, 1.0);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].what, "healthy");
        assert_eq!(segments[1].recovered_after_s, None);
    }
}
