//! Moving parts that several test modules drive: the real `roomgate` binary as a child process,
//! and where the relay (`roomgate_faults::Relay`) that makes MariaDB or Redis vanish should point.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use roomgate_api::client::Client;
use roomgate_api::{CreateRoomRequest, RoomView};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use roomgate_faults::Relay;

use crate::helpers::{Ws, env_name, next_joined};

pub struct Process {
    pub child: Child,
    pub address: String,
    pub client: reqwest::Client,
    /// The contract's typed client, over `client`.
    pub api: Client,
}

impl Process {
    /// Starts the binary on a free port over `database_url` and waits for its address line.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[]).await
    }

    /// Same, with extra `section.key` settings.
    pub async fn start_with(database_url: &str, settings: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomgate"));
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOMGATE")) {
            command.env_remove(key);
        }
        let mut child = command
            .env(env_name("server.bind"), "127.0.0.1:0")
            .env(env_name("server.workers"), "2")
            .env(env_name("database.url"), database_url)
            .env(env_name("ws.heartbeat_interval_ms"), "1000")
            .envs(settings.iter().map(|(key, value)| (env_name(key), value)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the roomgate binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(address) = line.strip_prefix("Roomgate listening on ") {
                    return address.trim().to_owned();
                }
            }
            panic!("roomgate exited before listening");
        })
        .await
        .expect("roomgate prints its address");
        // Keep reading so that the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = crate::helpers::test_http_client(Duration::from_secs(30));
        Self {
            child,
            api: Client::with_http(client.clone(), address.clone()),
            address,
            client,
        }
    }

    pub async fn token(&self, user: &str) -> String {
        self.api.dev_token(user).await.expect("a dev token").token
    }

    pub async fn room(&self, id: &str) -> RoomView {
        self.api.room(id).await.expect("the room is found (200)")
    }

    /// Opens the WebSocket for a ticket; returns it past its `joined` frame.
    pub async fn connect(&self, ticket: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.api.ws_url(ticket))
            .await
            .unwrap();
        next_joined(&mut ws).await;
        ws
    }

    /// Creates `room` as `creator` and has `others` join it; returns their sockets.
    pub async fn fill(&self, room: &str, creator: &str, others: &[&str]) -> Vec<Ws> {
        let token = self.token(creator).await;
        let request = CreateRoomRequest {
            id: room.to_owned(),
            title: "T".to_owned(),
            capacity: 10,
            password: None,
        };
        let created = self.api.create_room(&token, &request).await.unwrap();
        let mut sockets = vec![self.connect(&created.reservation.ticket).await];
        for user in others {
            let token = self.token(user).await;
            let reserved = self
                .api
                .reserve(&token, room, &Default::default())
                .await
                .unwrap();
            sockets.push(self.connect(&reserved.reservation.ticket).await);
        }
        sockets
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the process is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("roomgate exits in time")
            .unwrap()
    }
}

/// The MariaDB server a `mysql://user:password@host:port/name` URL names.
pub async fn mysql_upstream(url: &str) -> SocketAddr {
    let (_, rest) = url.trim_start_matches("mysql://").split_once('@').unwrap();
    let (host, _) = rest.split_once('/').unwrap();
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

/// `url` with its host replaced by the relay's. The driver would otherwise switch a loopback
/// connection to the server's Unix socket, going around the relay.
pub fn relayed_mysql_url(url: &str, relay: &Relay) -> String {
    let (credentials, rest) = url.trim_start_matches("mysql://").split_once('@').unwrap();
    let (_, name) = rest.split_once('/').unwrap();
    format!(
        "mysql://{credentials}@{}/{name}?prefer_socket=false",
        relay.address()
    )
}

/// The test Redis server's address.
pub async fn redis_upstream() -> SocketAddr {
    let url = crate::multinode::redis_url();
    let host = url.trim_start_matches("redis://").trim_end_matches('/');
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}
