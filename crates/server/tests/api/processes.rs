//! The real `roomgate` binary: `kill -9` then restart leaves no phantom members, and SIGTERM
//! closes every session with 1001, leaves every room and exits 0.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{Backend, Ws, env_name, expect_close, next_json, test_database};
use crate::on_both_databases;

on_both_databases!(
    a_restart_after_kill_9_reclaims_every_member,
    sigterm_closes_sessions_with_1001_and_exits_0,
);

struct Process {
    child: Child,
    address: String,
    client: reqwest::Client,
}

impl Process {
    /// Starts the binary on a free port over `database_url` and waits for its address line.
    async fn start(database_url: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomgate"));
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ROOMGATE")) {
            command.env_remove(key);
        }
        let mut child = command
            .env(env_name("server.bind"), "127.0.0.1:0")
            .env(env_name("server.workers"), "2")
            .env(env_name("database.url"), database_url)
            .env(env_name("ws.heartbeat_interval_ms"), "1000")
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
        Self {
            child,
            address,
            client: reqwest::Client::new(),
        }
    }

    async fn token(&self, user: &str) -> String {
        let body: Value = self
            .client
            .post(format!("{}/api/v1/dev/tokens", self.address))
            .json(&json!({"user_id": user}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn room(&self, id: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/api/v1/rooms/{id}", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn connect(&self, ticket: &str) -> Ws {
        let url = format!(
            "{}/api/v1/ws?ticket={ticket}",
            self.address.replacen("http://", "ws://", 1)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "joined");
        ws
    }

    /// Creates `room` as `creator` and has `others` join it; returns their sockets.
    async fn fill(&self, room: &str, creator: &str, others: &[&str]) -> Vec<Ws> {
        let token = self.token(creator).await;
        let created: Value = self
            .client
            .post(format!("{}/api/v1/rooms", self.address))
            .bearer_auth(&token)
            .json(&json!({"id": room, "title": "T", "capacity": 10}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut sockets = vec![
            self.connect(created["reservation"]["ticket"].as_str().unwrap())
                .await,
        ];
        for user in others {
            let token = self.token(user).await;
            let reservation: Value = self
                .client
                .post(format!("{}/api/v1/rooms/{room}/reservations", self.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            sockets.push(self.connect(reservation["ticket"].as_str().unwrap()).await);
        }
        sockets
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the process is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("roomgate exits in time")
            .unwrap()
    }
}

async fn attending_in_database(database_url: &str, room: &str) -> u32 {
    let settings = roomgate_persistence::DatabaseSettings {
        url: database_url.to_owned(),
        ..Default::default()
    };
    let db = roomgate_persistence::Database::connect(&settings)
        .await
        .unwrap();
    let room = roomgate_domain::RoomId::parse(room).unwrap();
    let record = db
        .get_room(&room)
        .await
        .unwrap()
        .expect("the room row exists");
    assert_eq!(
        db.members(&room).await.unwrap().len() as u32,
        record.attending,
        "attending equals the participant rows"
    );
    record.attending
}

async fn a_restart_after_kill_9_reclaims_every_member(backend: Backend) {
    let database = test_database(backend).await;
    let mut first = Process::start(database.url()).await;
    let sockets = first.fill("survivors", "alice", &["bob", "carol"]).await;
    assert_eq!(first.room("survivors").await["attending"], 3);

    first.signal("KILL");
    assert!(!first.wait().await.success());
    drop(sockets);
    // The dead process could not clean up: its members are still recorded.
    assert_eq!(attending_in_database(database.url(), "survivors").await, 3);

    let second = Process::start(database.url()).await;
    let room = second.room("survivors").await;
    assert_eq!(
        (room["attending"].clone(), room["reserved"].clone()),
        (json!(0), json!(0))
    );
    // And the room works: all ten seats are free.
    let _sockets = second.fill("another", "dave", &[]).await;
    let token = second.token("erin").await;
    let response = second
        .client
        .post(format!(
            "{}/api/v1/rooms/survivors/reservations",
            second.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn sigterm_closes_sessions_with_1001_and_exits_0(backend: Backend) {
    let database = test_database(backend).await;
    let mut server = Process::start(database.url()).await;
    let mut sockets = server.fill("farewell", "alice", &["bob", "carol"]).await;
    server.signal("TERM");
    for ws in &mut sockets {
        let (code, _) = expect_close(ws).await;
        assert_eq!(code, 1001);
    }
    let status = server.wait().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(attending_in_database(database.url(), "farewell").await, 0);
}
