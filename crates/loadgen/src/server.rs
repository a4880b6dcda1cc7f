//! Starting and stopping `roomgate` processes for `compare` and `soak`, and the scratch
//! databases they run on.
//!
//! A server is started on `127.0.0.1:0` (the kernel picks a free port) and the tool waits for
//! the line `Roomgate listening on http://…` that the binary prints once it is bound. Its logs
//! are asked for as JSON at `warn`, and warnings are kept for the report: a server that ignores
//! a setting says so there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to bind (migrations run first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to shut down after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Warnings and errors kept per server.
const KEPT_LINES: usize = 10;
/// Distinct warnings and errors counted per server.
const COUNTED_LINES: usize = 100;

/// The `roomgate` binary next to this one (both are built into the same target folder).
pub fn sibling_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating this program")?;
    let folder = me.parent().context("this program has no parent folder")?;
    Ok(folder.join(format!("roomgate{}", std::env::consts::EXE_SUFFIX)))
}

/// A running server.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
    pub pid: u32,
    /// Warning and error lines from its log, and anything on stderr.
    notices: Arc<Mutex<Notices>>,
}

/// The first warnings and errors as they came, and how often each distinct one came.
#[derive(Debug, Default)]
struct Notices {
    first: Vec<String>,
    counts: BTreeMap<String, u64>,
    total: u64,
}

/// The server exited before it was listening: its configuration was refused, or it could not
/// reach its database.
#[derive(Debug, thiserror::Error)]
#[error("the server exited before listening ({status}): {output}")]
pub struct StartRefused {
    pub status: String,
    pub output: String,
}

impl ServerProcess {
    /// Starts `binary` with `settings` (`ROOMGATE__…` variables) on a free loopback port.
    /// The process environment's own `ROOMGATE…` and `RUST_LOG` variables are not passed on,
    /// so that only the given configuration applies.
    pub async fn start(binary: &Path, settings: &[(String, String)]) -> anyhow::Result<Self> {
        if !binary.is_file() {
            bail!(
                "no server binary at {} (build it with `cargo build --release -p roomgate-server`, or pass --server-bin)",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            // Backtraces would bury a refused configuration's one-line error.
            if name.starts_with("ROOMGATE")
                || matches!(
                    name.as_ref(),
                    "RUST_LOG" | "RUST_BACKTRACE" | "RUST_LIB_BACKTRACE"
                )
            {
                command.env_remove(&key);
            }
        }
        command
            .env("ROOMGATE__SERVER__BIND", "127.0.0.1:0")
            .env("ROOMGATE__LOG__FORMAT", "json")
            .env("ROOMGATE__LOG__FILTER", "warn")
            .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the server has no pid")?;
        let notices = Arc::new(Mutex::new(Notices::default()));

        // The binary reports a refused configuration on stderr.
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr_lines);
        let stderr_reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if !line.trim().is_empty() && kept.len() < KEPT_LINES {
                    kept.push(line);
                }
            }
        });

        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let kept = Arc::clone(&notices);
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = listening_address(&line) {
                    return Some(address);
                }
                if let Some(notice) = log_notice(&line) {
                    keep(&kept, notice);
                }
            }
            None
        })
        .await;
        let address = match listening {
            Ok(Some(address)) => address,
            Ok(None) => {
                let status = child.wait().await?;
                // The process is gone, so its stderr ends; wait for the reader to see it all.
                let _ = tokio::time::timeout(Duration::from_secs(5), stderr_reader).await;
                let stderr_lines = stderr_lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let output = if stderr_lines.is_empty() {
                    notices
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .first
                        .join(" | ")
                } else {
                    stderr_lines.join(" | ")
                };
                return Err(StartRefused {
                    status: status.to_string(),
                    output,
                }
                .into());
            }
            Err(_) => bail!("the server did not listen within {START_TIMEOUT:?}"),
        };
        // Keep reading so that the server never blocks on a full pipe.
        let kept = Arc::clone(&notices);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(notice) = log_notice(&line) {
                    keep(&kept, notice);
                }
            }
        });
        Ok(Self {
            child,
            address,
            pid,
            notices,
        })
    }

    /// What the server warned about so far (the first few lines).
    pub fn notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first
            .clone()
    }

    /// Every warning and error so far: how many in all, and how often each distinct one
    /// came (the first [`COUNTED_LINES`] distinct ones).
    pub fn notice_counts(&self) -> (u64, BTreeMap<String, u64>) {
        let notices = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        (notices.total, notices.counts.clone())
    }

    /// SIGTERM, then wait for a graceful exit; SIGKILL after [`STOP_TIMEOUT`].
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        // `kill` is used rather than a signal crate: this crate has no unsafe code, and the
        // standard library only offers SIGKILL.
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if signalled.is_ok_and(|s| s.success()) {
            if let Ok(status) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
                return Ok(status?);
            }
        }
        self.child.start_kill()?;
        Ok(self.child.wait().await?)
    }
}

fn keep(notices: &Mutex<Notices>, line: String) {
    if line.trim().is_empty() {
        return;
    }
    let mut notices = notices.lock().unwrap_or_else(PoisonError::into_inner);
    notices.total += 1;
    let distinct = notices.counts.len();
    match notices.counts.get_mut(&line) {
        Some(count) => *count += 1,
        None if distinct < COUNTED_LINES => {
            notices.counts.insert(line.clone(), 1);
        }
        None => {}
    }
    if notices.first.len() < KEPT_LINES {
        notices.first.push(line);
    }
}

/// `Roomgate listening on http://127.0.0.1:40123` → the address.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix("Roomgate listening on http://")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// A JSON log line at WARN or ERROR → `LEVEL: message`.
pub fn log_notice(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let level = value.get("level")?.as_str()?;
    if !matches!(level, "WARN" | "ERROR") {
        return None;
    }
    let message = value
        .pointer("/fields/message")
        .and_then(|m| m.as_str())
        .unwrap_or("(no message)");
    Some(format!("{level}: {message}"))
}

/// A database created for one server and dropped after it.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// What the server is given as `database.url`.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates database `name` on the MariaDB/MySQL server of `server_url`.
    pub async fn create(server_url: &str, name: &str) -> anyhow::Result<Self> {
        check_database_name(name)?;
        let mut admin = url::Url::parse(server_url).context("parsing --mysql-url")?;
        admin.set_path("");
        let admin_url = admin.to_string();
        let mut conn = mysql_async::Conn::from_url(admin_url.as_str())
            .await
            .with_context(|| format!("connecting to MariaDB at {}", redact(&admin)))?;
        use mysql_async::prelude::Queryable as _;
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.disconnect().await?;
        let mut url = admin.clone();
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url,
            name: name.to_owned(),
            url: url.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut conn = mysql_async::Conn::from_url(self.admin_url.as_str()).await?;
        use mysql_async::prelude::Queryable as _;
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .await?;
        conn.disconnect().await?;
        Ok(())
    }
}

/// Only names the tool makes itself: lowercase letters, digits and underscores.
pub fn check_database_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("{name:?} is not a scratch database name");
    }
    Ok(())
}

/// A URL for messages, without its password.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        assert_eq!(
            listening_address("Roomgate listening on http://127.0.0.1:40123"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listening_address("something else"), None);
    }

    #[test]
    fn warnings_and_errors_are_kept_from_json_logs() {
        let warn = r#"{"timestamp":"t","level":"WARN","fields":{"message":"redis.url is set, but ..."},"target":"x"}"#;
        assert_eq!(
            log_notice(warn).as_deref(),
            Some("WARN: redis.url is set, but ...")
        );
        let info = r#"{"timestamp":"t","level":"INFO","fields":{"message":"started"}}"#;
        assert_eq!(log_notice(info), None);
        assert_eq!(log_notice("plain text"), None);
    }

    #[test]
    fn scratch_database_names_are_checked() {
        assert!(check_database_name("roomgate_load_abc123_conditional_memory").is_ok());
        assert!(check_database_name("x`; DROP DATABASE mysql; --").is_err());
        assert!(check_database_name("").is_err());
        assert!(check_database_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        let url = url::Url::parse("mysql://roomgate:secret@127.0.0.1:3306").unwrap();
        assert!(!redact(&url).contains("secret"));
    }

    #[test]
    fn the_sibling_binary_is_next_to_this_one() {
        let sibling = sibling_binary().unwrap();
        assert_eq!(sibling.parent(), std::env::current_exe().unwrap().parent());
        assert!(sibling.ends_with(format!("roomgate{}", std::env::consts::EXE_SUFFIX)));
    }
}
