//! The server's resident memory: from `/proc/<pid>/status` when its pid is known (it runs on
//! this machine, the target being loopback), or from a Prometheus process collector's
//! `process_resident_memory_bytes` when the server exports one.

use anyhow::Context as _;

use crate::api::Api;

/// Where the figure came from, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Proc(u32),
    Metrics,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Proc(pid) => write!(f, "/proc/{pid}/status VmRSS"),
            Source::Metrics => f.write_str("/metrics process_resident_memory_bytes"),
        }
    }
}

/// Resident bytes of the server, and where they were read.
pub async fn resident_bytes(api: &Api, pid: Option<u32>) -> anyhow::Result<Option<(u64, Source)>> {
    if let Some(pid) = pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status (is --server-pid right?)"))?;
        let bytes = vm_rss_bytes(&status)
            .with_context(|| format!("/proc/{pid}/status has no VmRSS line"))?;
        return Ok(Some((bytes, Source::Proc(pid))));
    }
    let Ok(metrics) = api.metrics().await else {
        return Ok(None);
    };
    Ok(metric_rss_bytes(&metrics).map(|bytes| (bytes, Source::Metrics)))
}

/// `VmRSS:    123456 kB` → bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// `process_resident_memory_bytes 1.2345e+07` → bytes.
pub fn metric_rss_bytes(metrics: &str) -> Option<u64> {
    let line = metrics.lines().find(|l| {
        l.starts_with("process_resident_memory_bytes ")
            || l.starts_with("process_resident_memory_bytes{")
    })?;
    let value: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    if !(value.is_finite() && value >= 0.0) {
        return None;
    }
    // Resident memory is far below 2^53 bytes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = value as u64;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kilobytes() {
        let status = "Name:\troomgate\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(12345 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn the_process_collector_metric_is_read() {
        let text = "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 1.2345e+07\n\
                    roomgate_ws_sessions 3\n";
        assert_eq!(metric_rss_bytes(text), Some(12_345_000));
        assert_eq!(metric_rss_bytes("roomgate_ws_sessions 3\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_rss_bytes(&status).unwrap() > 1024 * 1024);
    }
}
