//! The wire contract as a client sees it: REST calls over one pooled HTTP client, and WebSocket
//! sessions. Nothing here knows about scenarios; it turns answers into values and refusals into
//! [`Refusal`]s so that the scenarios can count them.

use std::borrow::Cow;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::target::Target;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one REST call or WebSocket step may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `RoomView` of the contract, with the fields the tool reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomView {
    pub id: String,
    pub capacity: u32,
    pub attending: u32,
    pub reserved: u32,
    pub state: String,
}

/// `ReservationView` of the contract.
#[derive(Debug, Clone, Deserialize)]
pub struct Reservation {
    /// `/api/v1/ws?ticket=…`: the ticket travels inside it.
    pub ws_url: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    reservation: Reservation,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    token: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
}

/// Why a REST call did not do what was asked, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    RoomFull,
    RoomPending {
        retry_after: Duration,
    },
    AlreadyJoined,
    RoomExists,
    RoomNotFound,
    RateLimited {
        retry_after: Duration,
    },
    Unavailable,
    /// Any other status or code (a bug in the server or in this tool).
    Other {
        status: u16,
        code: String,
    },
    /// No answer: connection refused or reset, time-out.
    Transport(String),
}

impl Refusal {
    /// A short label for counting refusals in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::RoomFull => "room_full",
            Refusal::RoomPending { .. } => "room_pending",
            Refusal::AlreadyJoined => "already_joined",
            Refusal::RoomExists => "room_exists",
            Refusal::RoomNotFound => "room_not_found",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Unavailable => "unavailable",
            Refusal::Other { .. } => "other_error",
            Refusal::Transport(_) => "transport_error",
        }
    }

    /// How long the server asked the client to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::RoomPending { retry_after } | Refusal::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Sorts an error answer by its status and the contract's `error.code`.
    pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Self {
        let code = serde_json::from_str::<ErrorBody>(body)
            .map(|b| b.error.code)
            .unwrap_or_default();
        let retry_after = Duration::from_secs(
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1),
        );
        match (status, code.as_str()) {
            (409, "room_full") => Refusal::RoomFull,
            (409, "room_pending") => Refusal::RoomPending { retry_after },
            (409, "already_joined") => Refusal::AlreadyJoined,
            (409, "room_exists") => Refusal::RoomExists,
            (404, "room_not_found") => Refusal::RoomNotFound,
            (429, _) => Refusal::RateLimited { retry_after },
            (503, _) => Refusal::Unavailable,
            _ => Refusal::Other { status, code },
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Other { status, code } => write!(f, "HTTP {status} {code:?}"),
            Refusal::Transport(error) => write!(f, "no answer: {error}"),
            other => f.write_str(other.label()),
        }
    }
}

impl From<reqwest::Error> for Refusal {
    fn from(error: reqwest::Error) -> Self {
        Refusal::Transport(error.to_string())
    }
}

/// How a WebSocket join ended without a `joined` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinFailure {
    /// The server closed with this code (4001, 4002, 4009, 4500…).
    Closed(u16),
    /// A first frame that is not `joined`.
    Protocol(String),
    Transport(String),
    Timeout,
}

impl JoinFailure {
    pub fn label(&self) -> &'static str {
        match self {
            JoinFailure::Closed(4001) => "ws_invalid_ticket",
            JoinFailure::Closed(4002) => "ws_ticket_expired",
            JoinFailure::Closed(4009) => "ws_room_full",
            JoinFailure::Closed(4500) => "ws_join_failed",
            JoinFailure::Closed(_) => "ws_closed",
            JoinFailure::Protocol(_) => "ws_protocol",
            JoinFailure::Transport(_) => "ws_transport",
            JoinFailure::Timeout => "ws_timeout",
        }
    }
}

impl std::fmt::Display for JoinFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinFailure::Closed(code) => write!(f, "closed with {code}"),
            JoinFailure::Protocol(what) => write!(f, "unexpected frame: {what}"),
            JoinFailure::Transport(error) => write!(f, "{error}"),
            JoinFailure::Timeout => f.write_str("no joined frame in time"),
        }
    }
}

/// A frame from the server, with the fields the scenarios read.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub body: Option<Cow<'a, str>>,
    #[serde(default)]
    pub room: Option<RoomView>,
}

/// A client of one Roomgate server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    target: Target,
}

impl Api {
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // A proxy from the environment would send the load somewhere else than the checked
            // target; the tool only ever talks to the target directly.
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(CALL_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { http, target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.http)
    }

    async fn refusal(response: reqwest::Response) -> Refusal {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Refusal::classify(status, retry_after.as_deref(), &body)
    }

    /// `GET /healthz` answered 200.
    pub async fn healthy(&self) -> bool {
        matches!(
            self.http.get(self.url("/healthz")).send().await,
            Ok(r) if r.status() == StatusCode::OK
        )
    }

    /// `POST /api/v1/dev/tokens`: a bearer token for `user`.
    pub async fn token(&self, user: &str) -> Result<String, Refusal> {
        let response = self
            .http
            .post(self.url("/api/v1/dev/tokens"))
            .json(&json!({ "user_id": user }))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<TokenBody>().await?.token)
    }

    /// `POST /api/v1/rooms`: registers a pending room; the creator holds its first seat.
    pub async fn create_room(
        &self,
        token: &str,
        id: &str,
        capacity: u32,
    ) -> Result<Reservation, Refusal> {
        let response = self
            .http
            .post(self.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&json!({ "id": id, "title": format!("load {id}"), "capacity": capacity }))
            .send()
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<Created>().await?.reservation)
    }

    /// `POST /api/v1/rooms/{room}/reservations`: 201 (new) and 200 (the same live one) both
    /// hold a seat.
    pub async fn reserve(&self, token: &str, room: &str) -> Result<Reservation, Refusal> {
        let response = self
            .http
            .post(self.url(&format!("/api/v1/rooms/{room}/reservations")))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => Ok(response.json::<Reservation>().await?),
            _ => Err(Self::refusal(response).await),
        }
    }

    /// `DELETE /api/v1/rooms/{room}/reservations/me`: gives a held seat back.
    pub async fn cancel(&self, token: &str, room: &str) -> Result<(), Refusal> {
        let response = self
            .http
            .delete(self.url(&format!("/api/v1/rooms/{room}/reservations/me")))
            .bearer_auth(token)
            .send()
            .await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(Self::refusal(response).await);
        }
        Ok(())
    }

    /// `GET /api/v1/rooms/{room}`: the server's own count of a room.
    pub async fn room(&self, room: &str) -> Result<RoomView, Refusal> {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/rooms/{room}")))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<RoomView>().await?)
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> Result<String, Refusal> {
        let response = self.http.get(self.url("/metrics")).send().await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.text().await?)
    }

    /// Opens the reservation's WebSocket and waits for the `joined` frame.
    pub async fn join(&self, reservation: &Reservation) -> Result<(Ws, RoomView), JoinFailure> {
        let url = format!("{}{}", self.target.ws, reservation.ws_url);
        let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
        let (mut ws, _) = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .map_err(|_| JoinFailure::Timeout)?
            .map_err(|e| JoinFailure::Transport(e.to_string()))?;
        let first = tokio::time::timeout(CALL_TIMEOUT, first_frame(&mut ws))
            .await
            .map_err(|_| JoinFailure::Timeout)??;
        Ok((ws, first))
    }
}

/// Reads until the first data frame: `joined` (its room) or a close (its code).
async fn first_frame(ws: &mut Ws) -> Result<RoomView, JoinFailure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Frame<'_> = serde_json::from_str(text.as_str())
                    .map_err(|e| JoinFailure::Protocol(e.to_string()))?;
                return match (frame.kind.as_ref(), frame.room) {
                    ("joined", Some(room)) => Ok(room),
                    _ => Err(JoinFailure::Protocol(truncate(text.as_str()))),
                };
            }
            Some(Ok(Message::Close(close))) => {
                return Err(JoinFailure::Closed(
                    close.map_or(1005, |frame| u16::from(frame.code)),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(JoinFailure::Transport(e.to_string())),
            None => return Err(JoinFailure::Transport("connection closed".into())),
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

/// Sends a chat message.
pub async fn send_message(ws: &mut Ws, body: &str) -> Result<(), String> {
    let frame = json!({ "type": "message", "body": body }).to_string();
    ws.send(Message::Text(frame.into()))
        .await
        .map_err(|e| e.to_string())
}

/// Sends `leave` and waits for the server's close; returns its code (1000 expected).
/// Frames that arrive meanwhile (other members' messages and presence) are read and dropped.
pub async fn leave(ws: &mut Ws) -> Result<u16, String> {
    let leave = async {
        ws.send(Message::Text(r#"{"type":"leave"}"#.into()))
            .await
            .map_err(|e| e.to_string())?;
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(close))) => {
                    break close.map_or(1005, |frame| u16::from(frame.code));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed without a close frame".to_owned()),
            }
        };
        // Polling once more sends tungstenite's close reply, completing the handshake.
        let _ = ws.next().await;
        Ok(code)
    };
    tokio::time::timeout(CALL_TIMEOUT, leave)
        .await
        .map_err(|_| "no close frame in time".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> String {
        json!({"error": {"code": code, "message": "m"}}).to_string()
    }

    #[test]
    fn refusals_are_sorted_by_status_and_code() {
        assert_eq!(
            Refusal::classify(409, None, &error("room_full")),
            Refusal::RoomFull
        );
        assert_eq!(
            Refusal::classify(409, None, &error("already_joined")),
            Refusal::AlreadyJoined
        );
        assert_eq!(
            Refusal::classify(409, Some("3"), &error("room_pending")),
            Refusal::RoomPending {
                retry_after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            Refusal::classify(404, None, &error("room_not_found")),
            Refusal::RoomNotFound
        );
        assert_eq!(
            Refusal::classify(503, None, &error("unavailable")),
            Refusal::Unavailable
        );
        assert_eq!(
            Refusal::classify(500, None, &error("internal")),
            Refusal::Other {
                status: 500,
                code: "internal".into()
            }
        );
    }

    #[test]
    fn rate_limits_carry_their_retry_after_defaulting_to_a_second() {
        let limited = Refusal::classify(429, Some("2"), &error("rate_limited"));
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(limited.label(), "rate_limited");
        let limited = Refusal::classify(429, None, "not json");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn an_unparsable_error_body_is_other_with_no_code() {
        assert_eq!(
            Refusal::classify(409, None, "<html>"),
            Refusal::Other {
                status: 409,
                code: String::new()
            }
        );
    }

    #[test]
    fn frames_are_read_with_the_fields_scenarios_need() {
        let text = r#"{"type":"message","id":1,"room_id":"r","user_id":"u1","body":"t:1:2","sent_at":"x"}"#;
        let frame: Frame<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(frame.kind, "message");
        assert_eq!(frame.user_id.as_deref(), Some("u1"));
        assert_eq!(frame.body.as_deref(), Some("t:1:2"));
        // Escaped text is read too (it cannot be borrowed, so it is copied).
        let text = r#"{"type":"message","user_id":"u1","body":"a \"quote\""}"#;
        let frame: Frame<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(frame.body.as_deref(), Some("a \"quote\""));
        let joined = r#"{"type":"joined","room":{"id":"r","title":"t","capacity":3,"attending":1,"reserved":0,"has_password":false,"state":"open","created_at":"x"},"members":["u"],"history":[]}"#;
        let frame: Frame<'_> = serde_json::from_str(joined).unwrap();
        assert_eq!(frame.room.map(|r| r.attending), Some(1));
    }

    #[test]
    fn close_codes_have_labels() {
        assert_eq!(JoinFailure::Closed(4009).label(), "ws_room_full");
        assert_eq!(JoinFailure::Closed(4500).label(), "ws_join_failed");
        assert_eq!(JoinFailure::Closed(4001).label(), "ws_invalid_ticket");
    }
}
