//! Every scenario, briefly, against the real `roomgate` binary on its embedded SQLite default
//! (a temporary data folder, dev tokens on): the reports must be consistent — nothing
//! over-admitted, counts that add up, no seat leaked — and the exit codes must say so.
//!
//! The server binary lives next to `roomgate-load` in the target folder. It is built (or found
//! up to date) once per test run with the same cargo and profile, so that
//! `cargo test -p roomgate-loadgen` works on its own and never tests a stale server.

// Test helpers panic on failure: that is how a test reports one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const LOAD: &str = env!("CARGO_BIN_EXE_roomgate-load");

/// `target/<profile>/roomgate`, built on first use.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let folder = Path::new(LOAD)
            .parent()
            .expect("roomgate-load has a folder");
        let binary = folder.join(format!("roomgate{}", std::env::consts::EXE_SUFFIX));
        let profile = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a profile folder");
        let target_dir = folder.parent().expect("a target folder");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "roomgate-server",
                "--bin",
                "roomgate",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building roomgate failed: {status}");
        assert!(binary.is_file(), "no server at {}", binary.display());
        binary
    })
}

/// A `roomgate` process on a free loopback port over a fresh SQLite file; killed on drop.
struct Server {
    child: Child,
    url: String,
    pid: u32,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/roomgate.db", data.path().display());
        Self::start_on(&url, data)
    }

    /// A server on `database_url` (`data` is kept until the server is dropped).
    fn start_on(database_url: &str, data: tempfile::TempDir) -> Self {
        let mut command = Command::new(server_binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("ROOMGATE") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let mut child = command
            .env("ROOMGATE__SERVER__BIND", "127.0.0.1:0")
            .env("ROOMGATE__DATABASE__URL", database_url)
            .env("ROOMGATE__AUTH__DEV_TOKENS", "true")
            .env("ROOMGATE__LOG__FILTER", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roomgate starts");
        let pid = child.id();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("roomgate exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("Roomgate listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url,
            pid,
            _data: data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `roomgate-load` and returns its exit code, its JSON report (if any) and its stderr.
fn load(args: &[&str]) -> (i32, Value, String) {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(LOAD)
        .args(args)
        .output()
        .expect("roomgate-load runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let report = serde_json::from_slice(&stdout).unwrap_or(Value::Null);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{args:?} took {:?}",
        started.elapsed()
    );
    (status.code().unwrap_or(-1), report, stderr)
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

#[test]
fn storm_admits_exactly_the_free_seats_and_nothing_leaks() {
    let server = Server::start();
    let (code, report, stderr) = load(&[
        "storm",
        "--url",
        &server.url,
        "--users",
        "300",
        "--rooms",
        "2",
        "--capacity",
        "10",
        "--json",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["ok"], true);
    let r = &report["result"];
    assert_eq!(u(&r["expected_admitted"]), 20);
    assert_eq!(u(&r["admitted"]), 20, "{r:#}");
    assert_eq!(u(&r["reserved"]), 20);
    assert_eq!(u(&r["server_attending"]), 20);
    assert_eq!(u(&r["unfilled_seats"]), 0);
    assert_eq!(u(&r["refused"]["room_full"]), 280);
    // Every user has exactly one outcome.
    let refused: u64 = r["refused"].as_object().unwrap().values().map(u).sum();
    assert_eq!(u(&r["reserved"]) + refused + u(&r["timed_out"]), 300);
    assert_eq!(u(&r["reserve_latency"]["count"]), 300);
    assert_eq!(u(&r["confirm_latency"]["count"]), 20);
    assert_eq!(u(&r["admission"]["over_admitted"]), 0);
    assert!(u(&r["admission"]["server_reads"]) > 0, "{r:#}");
    assert_eq!(r["leaks"], serde_json::json!([]));
}

#[test]
fn churn_counts_add_up_and_every_room_is_back_to_zero() {
    let server = Server::start();
    // Capacity ≥ workers: a room can only be full with every worker inside, so no seat is
    // ever freed and retaken between the two halves of a room read (see the report: the
    // server reads `attending` and `reserved` at two moments).
    let (code, report, stderr) = load(&[
        "churn",
        "--url",
        &server.url,
        "--workers",
        "8",
        "--rooms",
        "4",
        "--capacity",
        "8",
        "--messages",
        "1",
        "--duration",
        "2s",
        "--json",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = &report["result"];
    let joins = u(&r["joins"]);
    assert!(joins > 10, "{r:#}");
    assert_eq!(
        u(&r["leaves"]),
        joins,
        "every visit leaves with 1000: {r:#}"
    );
    assert_eq!(
        u(&r["messages"]),
        joins,
        "one echoed message per visit: {r:#}"
    );
    assert_eq!(u(&r["join_latency"]["count"]), joins);
    assert_eq!(u(&r["retries"]), 0, "no room was ever full: {r:#}");
    assert!(r["joins_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(u(&r["admission"]["over_admitted"]), 0);
    assert!(u(&r["admission"]["peak_inside"]) >= 1);
    assert_eq!(r["leaks"], serde_json::json!([]));
}

#[test]
fn fanout_delivers_every_message_to_every_member() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("fanout.svg");
    let (code, report, stderr) = load(&[
        "fanout",
        "--url",
        &server.url,
        "--rooms",
        "2",
        "--members",
        "5",
        "--rate",
        "5",
        "--duration",
        "2s",
        "--json",
        "--quiet",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = &report["result"];
    assert_eq!(u(&r["members_joined"]), 10);
    let sent = u(&r["sent"]);
    // 10 members at 5/s for 2 s: about 100 messages.
    assert!((60..=120).contains(&sent), "{r:#}");
    assert_eq!(u(&r["expected_deliveries"]), sent * 5);
    assert_eq!(u(&r["delivered"]), sent * 5, "{r:#}");
    assert_eq!(u(&r["missing"]), 0);
    assert_eq!(u(&r["delivery_latency"]["count"]), sent * 5);
    assert_eq!(r["closed_by_server"], serde_json::json!({}));
    assert_eq!(r["leaks"], serde_json::json!([]));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("delivery"));
}

#[test]
fn idle_reads_the_servers_memory_per_member() {
    let server = Server::start();
    let pid = server.pid.to_string();
    let (code, report, stderr) = load(&[
        "idle",
        "--url",
        &server.url,
        "--members",
        "40",
        "--room-capacity",
        "10",
        "--duration",
        "1s",
        "--server-pid",
        &pid,
        "--json",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = &report["result"];
    assert_eq!(u(&r["rooms"]), 4);
    assert_eq!(u(&r["joined"]), 40, "{r:#}");
    assert_eq!(u(&r["server_attending"]), 40);
    assert_eq!(u(&r["left_cleanly"]), 40);
    assert!(u(&r["rss_before_bytes"]) > 1 << 20, "{r:#}");
    assert!(u(&r["rss_after_bytes"]) > 1 << 20);
    assert!(r["bytes_per_member"].is_u64(), "{r:#}");
    assert!(r["memory_source"].as_str().unwrap().contains(&pid));
    assert_eq!(r["leaks"], serde_json::json!([]));
}

#[test]
fn compare_starts_a_server_per_guard_and_skips_what_the_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("compare.svg");
    let (code, report, stderr) = load(&[
        "compare",
        "--sqlite",
        "--server-bin",
        server_binary().to_str().unwrap(),
        // `bogus` stands for a guard this build does not have (as `naive` without the
        // demo-unsafe feature): the server refuses it and the row says so.
        "--guards",
        "conditional,optimistic,bogus",
        "--permits",
        "memory",
        "--clients",
        "8",
        "--rooms",
        "20",
        "--hot-capacity",
        "8",
        "--room-capacity",
        "4",
        "--duration",
        "1s",
        "--json",
        "--quiet",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let configurations = report["result"]["configurations"].as_array().unwrap();
    assert_eq!(configurations.len(), 3);
    for config in &configurations[..2] {
        assert_eq!(config["status"], "ran", "{config:#}");
        assert_eq!(config["database"], "sqlite");
        // SIGTERM ends the server gracefully.
        assert_eq!(config["server_exit"], "exit status: 0", "{config:#}");
        assert_eq!(config["leaks"], serde_json::json!([]));
        let phases = config["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0]["phase"], "hot room");
        assert_eq!(u(&phases[0]["rooms"]), 1);
        assert_eq!(phases[1]["phase"], "20 rooms");
        for phase in phases {
            assert!(u(&phase["joins"]) > 0, "{phase:#}");
            assert_eq!(u(&phase["join_latency"]["count"]), u(&phase["joins"]));
            assert_eq!(u(&phase["over_admitted"]), 0, "{phase:#}");
        }
    }
    assert_eq!(configurations[0]["guard"], "conditional");
    assert_eq!(configurations[1]["guard"], "optimistic");
    assert_eq!(configurations[2]["status"], "skipped");
    assert!(
        configurations[2]["reason"]
            .as_str()
            .unwrap()
            .contains("bogus"),
        "{:#}",
        configurations[2]
    );
    let references = report["result"]["references"].as_array().unwrap();
    assert_eq!(references.len(), 3);
    assert_eq!(references[0]["tps"], 12.4);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("conditional/memory hot room") && chart.contains("spin lock"));
}

/// Runs `sql` on the MariaDB server, returning the first column of every row.
fn mysql(sql: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(common::mysql_server_url())
            .await
            .unwrap();
        let rows: Vec<String> = conn.query(sql).await.unwrap();
        conn.disconnect().await.unwrap();
        rows
    })
}

#[test]
fn churn_beside_bare_statements_reports_both_and_leaves_no_scratch_database() {
    let database = format!("roomgate_load_bare_test_{}", std::process::id());
    mysql(&format!("CREATE DATABASE {database}"));
    let database_url = format!(
        "{}/{database}",
        common::mysql_server_url().trim_end_matches('/')
    );
    let server = Server::start_on(&database_url, tempfile::tempdir().unwrap());
    let (code, report, stderr) = load(&[
        "churn",
        "--url",
        &server.url,
        "--workers",
        "8",
        "--rooms",
        "4",
        "--capacity",
        "8",
        "--messages",
        "0",
        "--duration",
        "2s",
        "--bare-mysql",
        &database_url,
        "--json",
        "--quiet",
    ]);
    drop(server);
    let scratch_left = mysql("SHOW DATABASES LIKE 'roomgate\\_bare\\_%'");
    mysql(&format!("DROP DATABASE {database}"));
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = &report["result"];
    // The floor, then (MariaDB) the statements as the server sends them.
    for (key, as_sent) in [("bare", false), ("bare_as_sent", true)] {
        let bare = &r[key];
        assert_eq!(bare["as_sent"], as_sent, "{r:#}");
        assert!(u(&bare["visits"]) > 10, "{bare:#}");
        assert_eq!(u(&bare["full"]), 0, "capacity ≥ workers: {bare:#}");
        assert_eq!(u(&bare["join_latency"]["count"]), u(&bare["visits"]));
    }
    let bare = &r["bare"];
    let share = r["churn_to_bare"].as_f64().unwrap();
    let expected =
        r["joins_per_second"].as_f64().unwrap() / bare["visits_per_second"].as_f64().unwrap();
    assert!((share - expected).abs() < 1e-9 && share > 0.0, "{r:#}");
    assert_eq!(r["leaks"], serde_json::json!([]));
    assert!(
        scratch_left.is_empty(),
        "scratch databases left: {scratch_left:?}"
    );
}

#[test]
fn a_target_off_this_machine_is_refused_before_any_traffic() {
    let (code, report, stderr) = load(&["storm", "--url", "http://10.20.30.40:8080", "--json"]);
    assert_eq!(code, 2);
    assert_eq!(report, Value::Null);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    let (code, _, stderr) = load(&["compare", "--mysql-url", "mysql://u:p@db.example.com:3306"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    let (code, _, stderr) = load(&[
        "churn",
        "--messages",
        "0",
        "--bare-mysql",
        "mysql://u:p@db.example.com:3306/roomgate",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn a_missing_server_is_an_error_not_a_report() {
    // Port 1 on loopback: nothing listens there.
    let (code, report, stderr) = load(&["churn", "--url", "http://127.0.0.1:1", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(report, Value::Null);
    assert!(stderr.contains("no Roomgate answers"), "{stderr}");
}

#[test]
fn bare_statements_are_refused_beside_visits_that_send_messages() {
    let url = "mysql://roomgate:roomgate@127.0.0.1:3306/roomgate";
    let (code, report, stderr) = load(&["churn", "--bare-mysql", url, "--json"]);
    assert_eq!(code, 2);
    assert_eq!(report, Value::Null);
    assert!(
        stderr.contains("--bare-mysql") && stderr.contains("--messages 0"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_exit_2_and_name_their_flag() {
    let (code, _, stderr) = load(&["storm", "--users", "many"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--users"), "{stderr}");
    let (code, _, stderr) = load(&["churn", "--duration", "0s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--duration"), "{stderr}");
}

#[test]
fn queue_seats_waiters_in_order_with_no_idle_seat_and_nothing_left() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("queue.svg");
    // 3 rooms of 3 seats, 4 waiting each; members stay 300 ms on average, so each room frees
    // about 10 seats a second and the line moves all the time.
    let (code, report, stderr) = load(&[
        "queue",
        "--url",
        &server.url,
        "--rooms",
        "3",
        "--capacity",
        "3",
        "--waiters",
        "4",
        "--stay",
        "300ms",
        "--duration",
        "4s",
        "--sample-every",
        "100ms",
        "--settle",
        "10s",
        "--json",
        "--quiet",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["ok"], true);
    let r = &report["result"];
    // Every room was full at first (its 3 members seated directly), then the line moved.
    assert!(u(&r["direct_seats"]) >= 9, "{r:#}");
    let handovers = u(&r["handovers"]);
    assert!(handovers >= 20, "{r:#}");
    assert!(u(&r["places"]) >= handovers);
    assert_eq!(u(&r["waiting_time"]["count"]), handovers);
    // Every hand-over but those of the rooms' initial seats has a freed seat to pair with.
    let latency = u(&r["handover_latency"]["count"]);
    assert_eq!(latency + u(&r["handovers_unmatched"]), handovers, "{r:#}");
    assert!(latency > 0, "{r:#}");
    // The contract's rule 7: the head is seated within 1 s of a seat freeing.
    assert!(
        r["handover_latency"]["p99_ms"].as_f64().unwrap() < 1000.0,
        "{r:#}"
    );
    assert_eq!(u(&r["order"]["inversions"]), 0, "{r:#}");
    assert_eq!(u(&r["order"]["position_rises"]), 0, "{r:#}");
    assert!(u(&r["order"]["admissions_checked"]) >= handovers);
    assert_eq!(u(&r["idle"]["idle_seats"]), 0, "{r:#}");
    assert!(u(&r["idle"]["sweeps"]) >= 10, "{r:#}");
    assert!(u(&r["idle"]["peak_waiting"]) >= 1, "{r:#}");
    assert_eq!(u(&r["admission"]["over_admitted"]), 0);
    assert!(u(&r["admission"]["peak_inside"]) <= 3);
    assert_eq!(r["leaks"], serde_json::json!([]));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("hand-over"));
}
