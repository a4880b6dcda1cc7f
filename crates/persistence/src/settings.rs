//! Configuration: where the database is, how many connections to keep, how long to wait, and
//! which join guard refuses the (capacity + 1)-th member.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The `[database]` section of the server's configuration.
///
/// Durations are written in milliseconds in configuration files (`connect_timeout_ms`,
/// `acquire_timeout_ms`) and held as [`Duration`]s in code.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `mysql://user:password@host:port/database` or `sqlite://path/to/file.db`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long establishing one connection may take.
    #[serde(rename = "connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout: Duration,
    /// How long an operation may wait for a connection before answering `Unavailable`.
    #[serde(rename = "acquire_timeout_ms", deserialize_with = "millis")]
    pub acquire_timeout: Duration,
    /// How a join is checked against the room's capacity.
    pub join_guard: JoinGuard,
}

impl Default for DatabaseSettings {
    /// The embedded default: a SQLite file under `data/`, so `cargo run` needs no database server.
    fn default() -> Self {
        Self {
            url: "sqlite://data/roomgate.db".to_owned(),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            join_guard: JoinGuard::default(),
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    // The URL may carry a password; configuration dumps and logs must never show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("join_guard", &self.join_guard)
            .finish()
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`; other URLs are returned as is.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How `join` makes sure a room never holds more members than its capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinGuard {
    /// One conditional `UPDATE … WHERE attending < capacity`; no lock is held across a round trip
    /// before the seat is taken.
    #[default]
    Conditional,
    /// `SELECT … FOR UPDATE`, check, update. MySQL/MariaDB only.
    Pessimistic,
    /// Read the room's `version`, update only if it is unchanged, retry a bounded number of times.
    Optimistic,
    /// No guard at all: read, check, then write, as the original design did before it knew
    /// better. It over-admits under concurrency; it exists only to show what the guards prevent,
    /// and only in builds with the `demo-unsafe` feature.
    #[cfg(feature = "demo-unsafe")]
    Naive,
}

impl JoinGuard {
    /// Every guard that keeps capacity (the demonstration-only `naive` is never listed).
    pub const ALL: [JoinGuard; 3] = [
        JoinGuard::Conditional,
        JoinGuard::Pessimistic,
        JoinGuard::Optimistic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinGuard::Conditional => "conditional",
            JoinGuard::Pessimistic => "pessimistic",
            JoinGuard::Optimistic => "optimistic",
            #[cfg(feature = "demo-unsafe")]
            JoinGuard::Naive => "naive",
        }
    }
}

impl fmt::Display for JoinGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value given for `database.join_guard` is none of `conditional`, `pessimistic`, `optimistic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown join guard {0:?}: expected conditional, pessimistic or optimistic")]
pub struct UnknownJoinGuard(pub String);

impl FromStr for JoinGuard {
    type Err = UnknownJoinGuard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        #[cfg(feature = "demo-unsafe")]
        if s == "naive" {
            return Ok(JoinGuard::Naive);
        }
        JoinGuard::ALL
            .into_iter()
            .find(|guard| guard.as_str() == s)
            .ok_or_else(|| UnknownJoinGuard(s.to_owned()))
    }
}

/// Which database server a [`Database`](crate::Database) talks to, chosen by the URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Mysql,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_guard_round_trips_through_text() {
        for guard in JoinGuard::ALL {
            assert_eq!(guard.to_string().parse::<JoinGuard>().unwrap(), guard);
        }
        assert!("Conditional".parse::<JoinGuard>().is_err());
        assert_eq!(JoinGuard::default(), JoinGuard::Conditional);
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let settings = DatabaseSettings {
            url: "mysql://roomgate:hunter2@db:3306/roomgate".to_owned(),
            ..DatabaseSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("mysql://roomgate:***@db:3306/roomgate"),
            "{shown}"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
