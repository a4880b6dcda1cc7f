//! Test harness: a real server on port 0 over a fresh database, with HTTP and WebSocket clients.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use roomgate_admission::{Clock as _, ManualClock, SystemClock};
use roomgate_api::client::{Client, Received, Session};
use roomgate_api::{
    ClientFrame, CreateRoomRequest, CreatedRoom, ErrorBody, ErrorCode, ErrorFrame, JoinedFrame,
    Message, PresenceFrame, ReservationView, RoomView, ServerFrame,
};
use roomgate_persistence::testing::TestDatabase;
use roomgate_server::{Application, Settings, telemetry};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

/// The raw socket, for tests that need it (abrupt aborts, non-contract bytes).
pub type Ws = roomgate_api::client::WebSocket;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

/// Logs stay quiet unless `TEST_LOG` is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let settings = roomgate_server::config::LogSettings {
            filter: "info".into(),
            format: roomgate_server::config::LogFormat::Text,
        };
        telemetry::init(&settings, std::io::stdout);
    }
});

/// A fresh database of the given kind. A missing MariaDB fails the test loudly.
pub async fn test_database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Mysql => TestDatabase::mysql().await,
    }
}

/// Configuration for one test server: the database and any `section.key` overrides.
#[derive(Debug)]
pub struct AppOptions {
    pub backend: Backend,
    pub overrides: Vec<(String, String)>,
    /// Time for every TTL moves only through `TestApp::advance`.
    pub manual_clock: bool,
}

impl AppOptions {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            overrides: Vec::new(),
            manual_clock: false,
        }
    }

    /// Runs the server on a `ManualClock` (starting at the wall clock's now), so that a test
    /// moves TTLs along with `TestApp::advance` instead of sleeping them out.
    pub fn with_manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }

    /// Overrides `key` (`section.key`), as `ROOMGATE__SECTION__KEY` would.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.overrides.push((key.to_owned(), value.to_string()));
        self
    }
}

/// Builds settings the way the binary does: embedded defaults plus environment-style overrides.
pub fn settings_for(database_url: &str, overrides: &[(String, String)]) -> Settings {
    let mut env = vec![
        ("server.bind", "127.0.0.1:0".to_owned()),
        ("server.workers", "2".to_owned()),
        ("database.url", database_url.to_owned()),
        ("database.max_connections", "8".to_owned()),
        ("ws.heartbeat_interval_ms", "1000".to_owned()),
        ("ws.client_timeout_ms", "10000".to_owned()),
        // Tests fire many requests as one user; they raise the limit unless they test it.
        ("limits.user_requests_per_second", "10000".to_owned()),
        ("limits.user_burst", "10000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect::<Vec<_>>();
    env.extend(overrides.iter().cloned());
    let env = env.into_iter().map(|(key, value)| (env_name(&key), value));
    Settings::load_from(None, env).expect("test settings load")
}

/// `section.key` → `ROOMGATE__SECTION__KEY`.
pub fn env_name(key: &str) -> String {
    format!("ROOMGATE__{}", key.replace('.', "__").to_uppercase())
}

pub struct TestApp {
    /// e.g. `http://127.0.0.1:40123`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// The contract's typed client, over `client`.
    pub api: Client,
    /// The server's clock, when the test asked for a manual one.
    pub clock: Option<Arc<ManualClock>>,
    /// Kept so that the database lives as long as the server.
    pub database: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A server on SQLite with the default configuration (dev tokens on).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::new(Backend::Sqlite)).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    LazyLock::force(&TRACING);
    let database = test_database(options.backend).await;
    let settings = settings_for(database.url(), &options.overrides);
    let clock = options
        .manual_clock
        .then(|| Arc::new(ManualClock::new(SystemClock.now())));
    let app = match &clock {
        Some(clock) => {
            let clock: Arc<dyn roomgate_admission::Clock> = clock.clone();
            Application::build_with_clock(settings, clock).await
        }
        None => Application::build(settings).await,
    }
    .expect("the app builds");
    let port = app.local_addr().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let address = format!("http://127.0.0.1:{port}");
    let client = test_http_client(Duration::from_secs(30));
    TestApp {
        api: Client::with_http(client.clone(), address.clone()),
        address,
        port,
        client,
        clock,
        database,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// A bearer token for `user` from the dev-token endpoint.
    pub async fn token(&self, user: &str) -> String {
        let issued = self.api.dev_token(user).await.expect("a dev token");
        assert_eq!(issued.user_id, user);
        issued.token
    }

    /// Moves the server's manual clock on (see `AppOptions::with_manual_clock`).
    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("the app runs on a manual clock")
            .advance(by);
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `POST /api/v1/rooms`; returns the raw response.
    pub async fn create_room_raw(&self, token: &str, body: &Value) -> reqwest::Response {
        self.post("/api/v1/rooms", Some(token), body).await
    }

    /// Creates a room (202) and returns the pending room and the creator's reservation.
    pub async fn create_room(&self, token: &str, id: &str, capacity: u32) -> CreatedRoom {
        let request = CreateRoomRequest {
            id: id.to_owned(),
            title: format!("Room {id}"),
            capacity,
            password: None,
        };
        self.api
            .create_room(token, &request)
            .await
            .expect("the room is created (202)")
    }

    /// Creates a room and confirms the creator's seat over WebSocket, so that it is open.
    /// Returns the creator's socket (already past its `joined` frame).
    pub async fn open_room(&self, creator: &str, id: &str, capacity: u32) -> Ws {
        let token = self.token(creator).await;
        let created = self.create_room(&token, id, capacity).await;
        let mut ws = self.ws(&created.reservation.ticket).await;
        next_joined(&mut ws).await;
        ws
    }

    /// `POST /api/v1/rooms/{room}/reservations` with an optional body.
    pub async fn reserve_raw(
        &self,
        token: &str,
        room: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/api/v1/rooms/{room}/reservations")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// Reserves a seat (201) and returns the reservation.
    pub async fn reserve(&self, token: &str, room: &str) -> ReservationView {
        let reserved = self
            .api
            .reserve(token, room, &Default::default())
            .await
            .expect("a seat is reserved");
        assert!(
            reserved.fresh,
            "a fresh reservation (201), not a live one again"
        );
        reserved.reservation
    }

    pub async fn cancel(&self, token: &str, room: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/v1/rooms/{room}/reservations/me")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `GET /api/v1/rooms/{room}`, expecting 200.
    pub async fn room(&self, room: &str) -> RoomView {
        self.api.room(room).await.expect("the room is found (200)")
    }

    /// Reserves as `user` and joins over WebSocket; returns the socket past its `joined` frame.
    pub async fn join(&self, user: &str, room: &str) -> (Ws, JoinedFrame) {
        let token = self.token(user).await;
        let reservation = self.reserve(&token, room).await;
        let mut ws = self.ws(&reservation.ticket).await;
        let joined = next_joined(&mut ws).await;
        (ws, joined)
    }

    /// Opens the WebSocket for a ticket.
    pub async fn ws(&self, ticket: &str) -> Ws {
        self.ws_path(&format!("/api/v1/ws?ticket={ticket}")).await
    }

    /// Opens the WebSocket for a ticket as the contract's typed `Session`.
    pub async fn session(&self, ticket: &str) -> Session {
        self.api
            .connect(ticket)
            .await
            .expect("the WebSocket upgrades")
    }

    pub async fn ws_path(&self, path: &str) -> Ws {
        let (ws, response) = tokio_tungstenite::connect_async(self.ws_url(path))
            .await
            .expect("the WebSocket upgrades");
        assert_eq!(response.status().as_u16(), 101);
        ws
    }

    /// Polls `GET /api/v1/rooms/{room}` until `check` holds, or fails after `within`.
    pub async fn wait_for_room(
        &self,
        room: &str,
        within: Duration,
        check: impl Fn(&RoomView) -> bool,
    ) -> RoomView {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let view = self.room(room).await;
            if check(&view) {
                return view;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("room {room} never reached the expected state; last seen {view:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Graceful shutdown, as on SIGTERM; waits until the server has finished.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// The same, keeping this value (and so its database) alive, e.g. to start another server
    /// on the same database.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The next text frame as raw JSON, skipping pings; fails after 10 s. Only for tests that
/// inspect bytes beyond the contract; everything else reads `next_frame`.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the socket is open")
            .expect("the frame is readable");
        match message {
            WsMessage::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next frame, read as the contract's `ServerFrame` (a frame it does not describe fails the
/// test), skipping pings; fails after 10 s.
pub async fn next_frame(ws: &mut Ws) -> ServerFrame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the socket is open")
            .expect("the frame is readable");
        match message {
            WsMessage::Text(text) => {
                return serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                    panic!("a frame the contract does not describe: {e}: {text}")
                });
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next frame, which must be `joined`.
pub async fn next_joined(ws: &mut Ws) -> JoinedFrame {
    match next_frame(ws).await {
        ServerFrame::Joined(joined) => joined,
        other => panic!("expected a joined frame, got {other:?}"),
    }
}

/// The next frame `pick` takes, skipping others (e.g. presence while waiting for a message).
pub async fn next_where<T>(ws: &mut Ws, pick: impl Fn(ServerFrame) -> Option<T>) -> T {
    loop {
        if let Some(frame) = pick(next_frame(ws).await) {
            return frame;
        }
    }
}

/// The next chat message, skipping other frames.
pub async fn next_message(ws: &mut Ws) -> Message {
    next_where(ws, |frame| match frame {
        ServerFrame::Message(message) => Some(message),
        _ => None,
    })
    .await
}

/// The next presence frame, skipping other frames.
pub async fn next_presence(ws: &mut Ws) -> PresenceFrame {
    next_where(ws, |frame| match frame {
        ServerFrame::Presence(presence) => Some(presence),
        _ => None,
    })
    .await
}

/// The next error frame, skipping other frames.
pub async fn next_error_frame(ws: &mut Ws) -> ErrorFrame {
    next_where(ws, |frame| match frame {
        ServerFrame::Error(error) => Some(error),
        _ => None,
    })
    .await
}

/// The next thing a typed `Session` reads, within 10 s.
pub async fn next_received(session: &mut Session) -> Received {
    tokio::time::timeout(Duration::from_secs(10), session.next())
        .await
        .expect("a frame or close arrives in time")
        .expect("the session reads a contract frame")
}

/// Reads until the server closes; returns the close code and reason. Text frames on the way
/// are skipped. Fails after 10 s.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server closes in time");
        match message {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(WsMessage::Close(None))) => {
                return (u16::from(WsCloseCode::Status), String::new());
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("the socket failed before a close frame: {error}"),
            None => panic!("the socket ended without a close frame"),
        }
    }
}

/// Sends one of the contract's client frames.
pub async fn send_frame(ws: &mut Ws, frame: &ClientFrame) {
    let text = serde_json::to_string(frame).unwrap();
    ws.send(WsMessage::text(text)).await.unwrap();
}

/// A chat message frame.
pub fn say(body: &str) -> ClientFrame {
    ClientFrame::Message {
        body: body.to_owned(),
    }
}

/// The contract's error body, read as `ErrorBody` (so the code is one the contract lists and
/// the message is a string): returns `(status, code, details)`, with `details` null when absent.
pub async fn error_of(response: reqwest::Response) -> (StatusCode, ErrorCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("errors have a body");
    let body: ErrorBody = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not the contract's error body ({e}): {text}"));
    assert_eq!(
        body.error.code.status(),
        status.as_u16(),
        "{} comes with its own status",
        body.error.code
    );
    (
        status,
        body.error.code,
        body.error.details.unwrap_or(Value::Null),
    )
}

/// The HTTP client of every test. Idle connections are dropped after 1 s, well before the
/// server's keep-alive (5 s) closes them: otherwise a request sent on a connection at the instant
/// the server closes it fails with "error sending request", a race of the client's, not a
/// server's answer.
pub fn test_http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// `roomgate_permits_held` from a `/metrics` page.
pub fn permits_held(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("roomgate_permits_held "))
        .and_then(|value| value.trim().parse().ok())
        .expect("roomgate_permits_held is exported")
}

/// Participant rows in the MariaDB test database at `url`, counted behind the server's back.
pub async fn count_participants(url: &str) -> i64 {
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let mut conn = diesel_async::AsyncMysqlConnection::establish(url)
        .await
        .unwrap();
    let count: Count = diesel::sql_query("SELECT COUNT(*) AS `rows` FROM participants")
        .get_result(&mut conn)
        .await
        .unwrap();
    count.rows
}

/// The node id (as stored) through which `user` holds a seat, read behind the server's back.
pub async fn node_of(url: &str, user: &str) -> i64 {
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};

    #[derive(diesel::QueryableByName)]
    struct Node {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        node_id: i64,
    }
    let mut conn = diesel_async::AsyncMysqlConnection::establish(url)
        .await
        .unwrap();
    let node: Node = diesel::sql_query("SELECT node_id FROM participants WHERE user_id = ?")
        .bind::<diesel::sql_types::Text, _>(user)
        .get_result(&mut conn)
        .await
        .unwrap();
    node.node_id
}

/// Generates one `#[tokio::test]` per database for each scenario `async fn name(backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Mysql).await;
                }
            )*
        }
    };
}
