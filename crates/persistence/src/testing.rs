//! Test fixtures (cargo feature `testing`): every test gets a database of its own, created
//! fresh (with a random name on MySQL/MariaDB, as a temporary file on SQLite) and removed when
//! the fixture is dropped or [`TestDatabase::cleanup`] is awaited.
//!
//! ```toml
//! [dev-dependencies]
//! roomgate-persistence = { workspace = true, features = ["testing"] }
//! ```
//!
//! MySQL tests never skip: when no server answers at `ROOMGATE_TEST_MYSQL_URL` (default
//! `mysql://roomgate:roomgate@127.0.0.1:3306`) they fail and say how to start one.

// Fixtures run only in tests, where a panic is the right way to fail.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use crate::settings::{DatabaseSettings, JoinGuard};

/// Where MySQL tests create their databases, unless `ROOMGATE_TEST_MYSQL_URL` says otherwise.
/// The user needs the right to create and drop databases (`.ci/ensure-services` creates it).
pub const DEFAULT_MYSQL_URL: &str = "mysql://roomgate:roomgate@127.0.0.1:3306";

/// A fresh, empty database (migrations run on the first `Database::connect`).
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Mysql { server_url: String, name: String },
    // Held for its `Drop`, which deletes the directory and the database file in it.
    Sqlite { _dir: tempfile::TempDir },
    Removed,
}

impl TestDatabase {
    /// Creates `roomgate_test_<random>` on the MySQL/MariaDB server. Panics, with instructions,
    /// if the server cannot be reached.
    pub async fn mysql() -> TestDatabase {
        let server_url = mysql_server_url();
        let name = format!("roomgate_test_{:016x}", rand::random::<u64>());
        let mut admin = admin_connection(&server_url).await;
        diesel::sql_query(format!("CREATE DATABASE `{name}`"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        TestDatabase {
            url: format!("{server_url}/{name}"),
            kind: Kind::Mysql { server_url, name },
        }
    }

    /// A database file in a new temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("roomgate-test-")
            .tempdir()
            .expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("roomgate.db").display());
        TestDatabase {
            url,
            kind: Kind::Sqlite { _dir: dir },
        }
    }

    /// Settings for this database: 16 connections, 5 s timeouts, the given guard.
    pub fn settings(&self, guard: JoinGuard) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            join_guard: guard,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Removes the database now. Dropping the fixture does the same, on a helper thread.
    pub async fn cleanup(mut self) {
        if let Kind::Mysql { server_url, name } = std::mem::replace(&mut self.kind, Kind::Removed) {
            drop_database(&server_url, &name).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Kind::Mysql { server_url, name } = std::mem::replace(&mut self.kind, Kind::Removed)
        else {
            return;
        };
        // `Drop` cannot await, and blocking on the test's own runtime could deadlock it, so a
        // short-lived thread with its own runtime drops the database; joining it makes sure the
        // database is gone before the test process can exit.
        let dropper =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(drop_database(&server_url, &name)),
                    Err(e) => eprintln!("could not drop test database {name}: {e}"),
                }
            });
        let _ = dropper.join();
    }
}

fn mysql_server_url() -> String {
    let url =
        std::env::var("ROOMGATE_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned());
    // Keep scheme and authority only: the fixture chooses the database.
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url,
    }
}

async fn admin_connection(server_url: &str) -> AsyncMysqlConnection {
    let connect = AsyncMysqlConnection::establish(server_url);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("{}", unreachable_help(server_url, &e.to_string())),
        Err(_) => panic!("{}", unreachable_help(server_url, "timed out after 10 s")),
    }
}

fn unreachable_help(server_url: &str, cause: &str) -> String {
    format!(
        "cannot reach the MySQL/MariaDB server for tests at {} ({cause}).\n\
         Start MariaDB and create the test user with `bash .ci/ensure-services` (as root), or \
         point ROOMGATE_TEST_MYSQL_URL at a server where the user may create databases, e.g. \
         mysql://roomgate:roomgate@127.0.0.1:3306. These tests never skip.",
        crate::settings::redact_url(server_url)
    )
}

async fn drop_database(server_url: &str, name: &str) {
    let connect = AsyncMysqlConnection::establish(server_url);
    let result = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(mut conn)) => diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out connecting".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// One statement a connection sent, as diesel shows it (the SQL, then `-- binds: [...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Which connection sent it: statements of one connection are in the order sent, and a
    /// connection runs one operation at a time, so a transaction is a run of one connection's
    /// statements from `BEGIN` to `COMMIT` or `ROLLBACK`.
    pub connection: u64,
    pub sql: String,
}

impl Statement {
    /// The statement's first word, upper-cased: `BEGIN`, `SELECT`, `INSERT`, `COMMIT`, ….
    pub fn kind(&self) -> String {
        self.sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

/// Statements sent, by the URL their connection was opened with.
static STATEMENTS: LazyLock<Mutex<HashMap<String, Vec<Statement>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);

/// Counts statements as the database sees them, without asking the database: diesel reports
/// every statement a connection sends (text queries such as `BEGIN` and `COMMIT`, and executions
/// of prepared statements) to the connection's instrumentation. Server-wide counters
/// (`SHOW GLOBAL STATUS`) would include every other test running at the same time, and MariaDB's
/// per-connection counters (`performance_schema`) are off by default; these are per database,
/// so tests running in parallel on other databases do not disturb the count.
pub mod statements {
    use super::*;

    /// Starts recording the statements of every connection opened from now on, in this
    /// process. Idempotent.
    pub fn record() {
        diesel::connection::set_default_instrumentation(recorder)
            .expect("installing the statement recorder");
    }

    /// The statements sent so far on connections to `url` (a database URL as given to
    /// [`crate::Database::connect`]; for SQLite, with or without its `sqlite://` scheme).
    pub fn sent_to(url: &str) -> Vec<Statement> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        let log = STATEMENTS.lock().unwrap_or_else(|e| e.into_inner());
        [Some(url), path]
            .into_iter()
            .flatten()
            .filter_map(|key| log.get(key))
            .flatten()
            .cloned()
            .collect()
    }

    fn recorder() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(Recorder {
            connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            url: None,
        }))
    }

    struct Recorder {
        connection: u64,
        url: Option<String>,
    }

    impl Instrumentation for Recorder {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            match event {
                InstrumentationEvent::StartEstablishConnection { url, .. } => {
                    self.url = Some(url.to_owned());
                }
                InstrumentationEvent::StartQuery { query, .. } => {
                    if let Some(url) = &self.url {
                        let statement = Statement {
                            connection: self.connection,
                            sql: query.to_string(),
                        };
                        STATEMENTS
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(url.clone())
                            .or_default()
                            .push(statement);
                    }
                }
                _ => {}
            }
        }
    }
}
