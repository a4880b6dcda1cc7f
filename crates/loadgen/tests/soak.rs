//! `soak`, briefly: 20 s of churn against a `roomgate` the tool starts on a scratch MariaDB
//! database behind its relay, with two 1 s cuts. The report must show the cuts (connections
//! reset, no joins while cut), the recovery after each, a sample every second, and every seat
//! and permit back at the end.
//!
//! Needs MariaDB at 127.0.0.1:3306 with the `roomgate` user (`bash .ci/ensure-services`), or
//! `ROOMGATE_TEST_MYSQL_URL`. The server binary is built (or found up to date) next to
//! `roomgate-load`, as in `scenarios.rs`.

// Test helpers panic on failure: that is how a test reports one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const LOAD: &str = env!("CARGO_BIN_EXE_roomgate-load");

/// `target/<profile>/roomgate`, built with the same cargo and profile as this test.
fn server_binary() -> PathBuf {
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
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

#[test]
fn a_short_soak_survives_two_database_cuts_and_leaves_nothing_behind() {
    let server = server_binary();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("soak.svg");
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(LOAD)
        .args([
            "soak",
            "--server-bin",
            server.to_str().unwrap(),
            "--mysql-url",
            &common::mysql_server_url(),
            "--duration",
            "20s",
            "--warmup",
            "4s",
            // Cuts from 10 s to 11 s and from 16 s to 17 s.
            "--fault-every",
            "6s",
            "--fault-for",
            "1s",
            "--workers",
            "8",
            "--rooms",
            "4",
            "--capacity",
            "8",
            "--messages",
            "1",
            // The memory check is the 10-minute run's business; a process 4 s old still grows.
            "--max-rss-growth",
            "100",
            "--json",
            "--quiet",
            "--plot",
            svg.to_str().unwrap(),
        ])
        .output()
        .expect("roomgate-load runs");
    let stderr = String::from_utf8_lossy(&stderr);
    let report: Value = serde_json::from_slice(&stdout).unwrap_or(Value::Null);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr}\n{report:#}");
    assert_eq!(report["ok"], true);
    let r = &report["result"];

    let faults = r["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{r:#}");
    assert!((f(&faults[0]["start_s"]) - 10.0).abs() < 0.5, "{faults:?}");
    assert!((f(&faults[1]["end_s"]) - 17.0).abs() < 0.5, "{faults:?}");
    // The server's pool was relayed, and the cuts reset it.
    let relay = &r["relay"];
    assert_eq!(u(&relay["cuts"]), 2);
    assert!(u(&relay["accepted"]) > 0, "{relay:#}");
    assert!(u(&relay["reset"]) > 0, "{relay:#}");

    let samples = r["samples"].as_array().unwrap();
    assert!((18..=20).contains(&samples.len()), "{}", samples.len());
    assert!(samples.iter().all(|s| u(&s["rss_bytes"]) > 1 << 20));
    assert!(samples.iter().all(|s| u(&s["open_fds"]) > 0));
    assert!(samples.iter().any(|s| s["fault"] == true));
    // Nothing joins while the database is cut, and the server comes back after each cut.
    let segments = r["segments"].as_array().unwrap();
    let named =
        |what: &str| -> Vec<&Value> { segments.iter().filter(|s| s["what"] == what).collect() };
    assert_eq!(named("warm-up").len(), 1);
    let warm = f(&named("warm-up")[0]["mean_joins_per_second"]);
    assert!(warm > 0.0);
    for cut in ["cut 1", "cut 2"] {
        let cut = named(cut);
        assert_eq!(cut.len(), 1, "{segments:#?}");
        // A visit whose join committed just before the cut may still finish in it.
        assert!(
            f(&cut[0]["mean_joins_per_second"]) < warm / 10.0,
            "{cut:#?}"
        );
    }
    let healthy = named("healthy");
    assert_eq!(healthy.len(), 3, "{segments:#?}");
    for after_cut in &healthy[1..] {
        assert!(after_cut["recovered_after_s"].is_number(), "{after_cut:#}");
    }

    // Invariant 3 at the end, from the wire contract.
    let churn = &r["churn"];
    assert!(u(&churn["joins"]) > 100, "{churn:#}");
    assert_eq!(u(&churn["admission"]["over_admitted"]), 0);
    assert_eq!(churn["leaks"], serde_json::json!([]));
    assert_eq!(u(&r["permits_held_after"]), 0);
    assert!(r["memory"]["baseline_rss_bytes"].is_u64(), "{r:#}");
    assert_eq!(r["server_exit"], "exit status: 0");

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("database cut"));
}
