//! Settings in layers: the embedded `config/default.toml` → an optional file named by
//! `ROOMGATE_CONFIG` → `ROOMGATE__SECTION__KEY` environment variables.
//!
//! Every struct denies unknown fields, so a misspelt key stops the server with an error that
//! names it instead of being silently ignored. Secrets are wrapped in [`Secret`], whose `Debug`
//! never shows them.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use roomgate_persistence::DatabaseSettings;
use serde::Deserialize;

/// The defaults, compiled in so that the binary runs with no file at all.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// Environment variable naming an optional extra TOML file.
pub const CONFIG_FILE_VAR: &str = "ROOMGATE_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    /// The persistence crate's own type: it refuses unknown keys, parses `join_guard` and
    /// keeps the URL's password out of `Debug` output.
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub admission: AdmissionSettings,
    pub rooms: RoomSettings,
    pub chat: ChatSettings,
    pub ws: WsSettings,
    pub limits: LimitSettings,
    pub node: NodeSettings,
    pub redis: RedisSettings,
    pub events: EventSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub workers: usize,
    pub shutdown_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: Secret,
    pub dev_tokens: bool,
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSettings {
    pub reservation_ttl_ms: u64,
    pub pending_room_ttl_ms: u64,
    pub reaper_interval_ms: u64,
}

impl AdmissionSettings {
    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_millis(self.reservation_ttl_ms)
    }

    pub fn pending_room_ttl(&self) -> Duration {
        Duration::from_millis(self.pending_room_ttl_ms)
    }

    pub fn reaper_interval(&self) -> Duration {
        Duration::from_millis(self.reaper_interval_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub max_capacity: u32,
    /// The longest a room's waiting line may grow.
    pub max_waiting: u32,
}

/// Room events: their relay to Redis streams (with `redis.url`) and their retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub relay_interval_ms: u64,
    pub relay_batch: u32,
    pub stream_max_len: u64,
    pub retention_ms: u64,
    pub prune_interval_ms: u64,
}

impl EventSettings {
    pub fn relay_interval(&self) -> Duration {
        Duration::from_millis(self.relay_interval_ms.max(1))
    }

    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms)
    }

    pub fn prune_interval(&self) -> Duration {
        Duration::from_millis(self.prune_interval_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    pub history_on_join: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    pub heartbeat_interval_ms: u64,
    pub client_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub outbound_queue_frames: usize,
}

impl WsSettings {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }

    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub user_requests_per_second: u32,
    pub user_burst: u32,
    pub ip_requests_per_second: u32,
    pub max_body_bytes: usize,
    pub ws_messages_per_second: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    pub heartbeat_interval_ms: u64,
    /// With Redis: how long a node's seats and memberships outlive its last heartbeat.
    pub lease_ms: u64,
    /// How often this node's participant rows are compared with the seats its sessions hold.
    pub reconcile_interval_ms: u64,
}

impl NodeSettings {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1))
    }

    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Secret,
    pub key_prefix: String,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
}

impl RedisSettings {
    pub fn is_enabled(&self) -> bool {
        !self.url.expose().is_empty()
    }
}

/// A configuration value that must never reach a log line.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Settings {
    /// Loads the three layers from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os(CONFIG_FILE_VAR).map(std::path::PathBuf::from);
        Self::load_from(file.as_deref(), std::env::vars())
    }

    /// Loads the layers from explicit inputs, so that tests need not touch the process environment.
    pub fn load_from(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env_source: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with("ROOMGATE__"))
            .collect();
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_CONFIG,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("ROOMGATE")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env_source)),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values no type can express.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.rooms.max_capacity == 0
            || self.rooms.max_capacity > roomgate_domain::CAPACITY_HARD_LIMIT
        {
            return invalid("rooms.max_capacity", "must be between 1 and 1000000");
        }
        if self.limits.user_requests_per_second == 0 || self.limits.user_burst == 0 {
            return invalid(
                "limits.user_requests_per_second",
                "the per-user rate and limits.user_burst must be at least 1",
            );
        }
        if self.limits.ws_messages_per_second == 0 {
            return invalid("limits.ws_messages_per_second", "must be at least 1");
        }
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes", "must be at least 1");
        }
        if self.ws.max_frame_bytes == 0 {
            return invalid("ws.max_frame_bytes", "must be at least 1");
        }
        if self.ws.outbound_queue_frames == 0 {
            return invalid("ws.outbound_queue_frames", "must be at least 1");
        }
        if self.ws.client_timeout_ms < self.ws.heartbeat_interval_ms {
            return invalid(
                "ws.client_timeout_ms",
                "must not be shorter than ws.heartbeat_interval_ms",
            );
        }
        if self.admission.reservation_ttl_ms == 0 || self.admission.pending_room_ttl_ms == 0 {
            return invalid(
                "admission.reservation_ttl_ms",
                "reservation and pending-room TTLs must be at least 1 ms",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        let redis = self.redis.url.expose();
        if !redis.is_empty() && !redis.starts_with("redis://") && !redis.starts_with("rediss://") {
            return invalid("redis.url", "must be empty or a redis:// or rediss:// URL");
        }
        if let Some(problem) = roomgate_admission::key_prefix_problem(&self.redis.key_prefix) {
            return invalid("redis.key_prefix", problem);
        }
        if self.node.lease_ms < 2 * self.node.heartbeat_interval_ms {
            return invalid(
                "node.lease_ms",
                "must be at least twice node.heartbeat_interval_ms, or a live node loses its seats",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use roomgate_persistence::JoinGuard;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://data/roomgate.db");
        assert_eq!(s.database.join_guard, JoinGuard::Conditional);
        assert_eq!(s.database.connect_timeout, Duration::from_millis(5000));
        assert!(s.auth.dev_tokens);
        assert_eq!(s.admission.reservation_ttl_ms, 30_000);
        assert_eq!(s.rooms.max_capacity, 10_000);
        assert_eq!(s.chat.history_on_join, 50);
        assert_eq!(s.ws.max_frame_bytes, 65_536);
        assert_eq!(s.limits.user_requests_per_second, 50);
        assert_eq!(s.limits.user_burst, 100);
        assert_eq!(s.limits.ip_requests_per_second, 0);
        assert_eq!(s.limits.max_body_bytes, 16_384);
    }

    #[test]
    fn environment_overrides_defaults() {
        let s = Settings::load_from(
            None,
            env(&[
                ("ROOMGATE__SERVER__BIND", "0.0.0.0:9000"),
                ("ROOMGATE__AUTH__DEV_TOKENS", "false"),
                (
                    "ROOMGATE__AUTH__JWT_SECRET",
                    "12345678901234567890123456789012",
                ),
                ("ROOMGATE__ADMISSION__RESERVATION_TTL_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.bind.port(), 9000);
        assert!(!s.auth.dev_tokens);
        assert_eq!(
            s.auth.jwt_secret.expose(),
            "12345678901234567890123456789012"
        );
        assert_eq!(s.admission.reservation_ttl_ms, 250);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Settings::load_from(None, env(&[("ROOMGATE__SERVER__BINDD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
        let err = Settings::load_from(None, env(&[("ROOMGATE__NOPE__KEY", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn the_database_section_is_the_persistence_crates_settings() {
        let s = Settings::load_from(
            None,
            env(&[
                ("ROOMGATE__DATABASE__JOIN_GUARD", "optimistic"),
                ("ROOMGATE__DATABASE__ACQUIRE_TIMEOUT_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.join_guard, JoinGuard::Optimistic);
        assert_eq!(s.database.acquire_timeout, Duration::from_millis(250));

        let err = Settings::load_from(None, env(&[("ROOMGATE__DATABASE__JOIN_GAURD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("join_gaurd"), "{err}");
        let err = Settings::load_from(None, env(&[("ROOMGATE__DATABASE__JOIN_GUARD", "eager")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("eager") && err.contains("join_guard"), "{err}");
        let err = Settings::load_from(None, env(&[("ROOMGATE__DATABASE__MAX_CONNECTIONS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.max_connections"), "{err}");
    }

    #[test]
    fn a_file_layer_overrides_defaults_and_is_checked_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roomgate.toml");
        std::fs::write(&path, "[chat]\nhistory_on_join = 7\n").unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.chat.history_on_join, 7);

        std::fs::write(&path, "[chat]\nhistory = 7\n").unwrap();
        let err = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("history"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "ROOMGATE__AUTH__JWT_SECRET",
                    "hunter2-hunter2-hunter2-hunter2",
                ),
                ("ROOMGATE__DATABASE__URL", "mysql://u:pw-not-shown@h/db"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("pw-not-shown"));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let err = Settings::load_from(None, env(&[("ROOMGATE__ROOMS__MAX_CAPACITY", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rooms.max_capacity"), "{err}");
    }
}
