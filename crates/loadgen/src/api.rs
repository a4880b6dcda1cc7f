//! The wire contract as a client sees it: REST calls over one pooled HTTP client, and WebSocket
//! sessions. Every body, frame, error code and close code is `roomgate-api`'s type; nothing here
//! restates a JSON shape. Nothing here knows about scenarios either: it turns answers into values
//! and refusals into [`Refusal`]s so that the scenarios can count them.
//!
//! The typed [`Client`] makes the calls where it does all the tool needs (cancelling a
//! reservation). The other calls keep their own transport, for what the client does not offer:
//! - every refusal the tool waits out (429 `rate_limited`, 409 `room_pending`) carries its wait
//!   in the `Retry-After` header, which [`ClientError`] does not keep;
//! - a load tool's sockets disable Nagle's algorithm (as its HTTP client does), which
//!   `Client::connect` does not, and a `Session` cannot be made from a socket opened otherwise;
//! - `GET /healthz` and `GET /metrics` are not the client's business.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use roomgate_api::client::{Admitted, Client, ClientError, WebSocket};
use roomgate_api::{
    ClientFrame, CloseCode, CreateRoomRequest, CreatedRoom, DevTokenRequest, DevTokenResponse,
    ErrorBody, ErrorCode, JoinedFrame, QueueView, ReservationView, ReserveRequest, RoomPage,
    RoomView, ServerFrame,
};
use tokio_tungstenite::tungstenite::Message;

use crate::target::Target;

/// A chat WebSocket, as the contract crate's client names it.
pub type Ws = WebSocket;

/// How long one REST call or WebSocket step may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the tool reports for a close frame without a code (RFC 6455 §7.1.5: 1005, never sent).
pub const CLOSED_WITHOUT_CODE: u16 = 1005;
/// What the tool reports for a session that ended without a close frame (RFC 6455: 1006).
pub const CLOSED_ABNORMALLY: u16 = 1006;

/// Whether a session's close code is the contract's answer to `leave`.
pub fn left_cleanly(code: u16) -> bool {
    CloseCode::from_code(code) == Some(CloseCode::Left)
}

/// Why a REST call did not do what was asked, in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    RoomFull,
    RoomPending {
        retry_after: Duration,
    },
    AlreadyJoined,
    /// The room's waiting line is at `rooms.max_waiting`.
    QueueFull,
    RoomExists,
    RoomNotFound,
    RateLimited {
        retry_after: Duration,
    },
    Unavailable,
    /// Any other status or code (a bug in the server or in this tool); `None` when the body
    /// is not the contract's error body.
    Other {
        status: u16,
        code: Option<ErrorCode>,
    },
    /// No answer: connection refused or reset, time-out.
    Transport(String),
}

impl Refusal {
    /// A short label for counting refusals in reports: the contract's code where there is one.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::RoomFull => ErrorCode::RoomFull.as_str(),
            Refusal::RoomPending { .. } => ErrorCode::RoomPending.as_str(),
            Refusal::AlreadyJoined => ErrorCode::AlreadyJoined.as_str(),
            Refusal::QueueFull => ErrorCode::QueueFull.as_str(),
            Refusal::RoomExists => ErrorCode::RoomExists.as_str(),
            Refusal::RoomNotFound => ErrorCode::RoomNotFound.as_str(),
            Refusal::RateLimited { .. } => ErrorCode::RateLimited.as_str(),
            Refusal::Unavailable => ErrorCode::Unavailable.as_str(),
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

    /// Sorts an error answer by its status, its `Retry-After` header and the contract's
    /// `error.code`.
    pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Self {
        let code = serde_json::from_str::<ErrorBody>(body)
            .ok()
            .map(|body| body.error.code);
        let retry_after = Duration::from_secs(
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1),
        );
        Self::sort(status, code, retry_after)
    }

    /// A code counts only with the status the contract gives it; 429 and 503 count whatever
    /// the body says (a proxy's, say).
    fn sort(status: u16, code: Option<ErrorCode>, retry_after: Duration) -> Self {
        match code.filter(|code| code.status() == status) {
            Some(ErrorCode::RoomFull) => Refusal::RoomFull,
            Some(ErrorCode::RoomPending) => Refusal::RoomPending { retry_after },
            Some(ErrorCode::AlreadyJoined) => Refusal::AlreadyJoined,
            Some(ErrorCode::QueueFull) => Refusal::QueueFull,
            Some(ErrorCode::RoomExists) => Refusal::RoomExists,
            Some(ErrorCode::RoomNotFound) => Refusal::RoomNotFound,
            _ if status == ErrorCode::RateLimited.status() => Refusal::RateLimited { retry_after },
            _ if status == ErrorCode::Unavailable.status() => Refusal::Unavailable,
            _ => Refusal::Other { status, code },
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Other { status, code } => {
                write!(f, "HTTP {status} {:?}", code.map_or("", ErrorCode::as_str))
            }
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

/// A refusal through the typed client, which keeps no `Retry-After`: a wait, if one is due,
/// is the default second.
impl From<ClientError> for Refusal {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Refused { status, body } => {
                Self::sort(status, Some(body.error.code), Duration::from_secs(1))
            }
            ClientError::Unexpected { status, body } => Self::classify(status, None, &body),
            other => Refusal::Transport(other.to_string()),
        }
    }
}

/// How a WebSocket join ended without a `joined` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinFailure {
    /// The server closed with this code (the contract's [`CloseCode`]s, or 1005).
    Closed(u16),
    /// A first frame that is not `joined`.
    Protocol(String),
    Transport(String),
    Timeout,
}

impl JoinFailure {
    pub fn label(&self) -> &'static str {
        match self {
            JoinFailure::Closed(code) => match CloseCode::from_code(*code) {
                Some(CloseCode::InvalidTicket) => "ws_invalid_ticket",
                Some(CloseCode::TicketExpired) => "ws_ticket_expired",
                Some(CloseCode::RoomFull) => "ws_room_full",
                Some(CloseCode::JoinFailed) => "ws_join_failed",
                _ => "ws_closed",
            },
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

/// A client of one Roomgate server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// The contract crate's client, over the same connection pool.
    client: Client,
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
        let client = Client::with_http(http.clone(), target.http.clone());
        Ok(Self {
            http,
            client,
            target,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
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
            self.http.get(self.client.url("/healthz")).send().await,
            Ok(r) if r.status() == StatusCode::OK
        )
    }

    /// `POST /api/v1/dev/tokens`: a bearer token for `user`.
    pub async fn token(&self, user: &str) -> Result<String, Refusal> {
        let request = DevTokenRequest {
            user_id: user.to_owned(),
        };
        let response = self
            .http
            .post(self.client.url("/api/v1/dev/tokens"))
            .json(&request)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<DevTokenResponse>().await?.token)
    }

    /// `POST /api/v1/rooms`: registers a pending room; the creator holds its first seat.
    pub async fn create_room(
        &self,
        token: &str,
        id: &str,
        capacity: u32,
    ) -> Result<ReservationView, Refusal> {
        let request = CreateRoomRequest {
            id: id.to_owned(),
            title: format!("load {id}"),
            capacity,
            password: None,
        };
        let response = self
            .http
            .post(self.client.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<CreatedRoom>().await?.reservation)
    }

    /// `POST /api/v1/rooms/{room}/reservations`: 201 (new) and 200 (the same live one) both
    /// hold a seat.
    pub async fn reserve(&self, token: &str, room: &str) -> Result<ReservationView, Refusal> {
        let response = self
            .http
            .post(
                self.client
                    .url(&format!("/api/v1/rooms/{room}/reservations")),
            )
            .bearer_auth(token)
            .json(&ReserveRequest::default())
            .send()
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => Ok(response.json::<ReservationView>().await?),
            _ => Err(Self::refusal(response).await),
        }
    }

    /// `POST /api/v1/rooms/{room}/reservations` with `"wait": true`: a seat, or a place in the
    /// room's waiting line. Through the typed client, so a `Retry-After` is the default second.
    pub async fn reserve_or_wait(&self, token: &str, room: &str) -> Result<Admitted, Refusal> {
        Ok(self.client.reserve_or_wait(token, room, None).await?)
    }

    /// `GET /api/v1/rooms?limit=&after=`: one page of open rooms, ordered by id.
    pub async fn rooms_page(&self, limit: u32, after: &str) -> Result<RoomPage, Refusal> {
        Ok(self.client.rooms(Some(limit), Some(after)).await?)
    }

    /// `DELETE /api/v1/rooms/{room}/reservations/me`: gives a held seat back.
    pub async fn cancel(&self, token: &str, room: &str) -> Result<(), Refusal> {
        Ok(self.client.cancel(token, room).await?)
    }

    /// `GET /api/v1/rooms/{room}`: the server's own count of a room.
    pub async fn room(&self, room: &str) -> Result<RoomView, Refusal> {
        let response = self
            .http
            .get(self.client.url(&format!("/api/v1/rooms/{room}")))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.json::<RoomView>().await?)
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> Result<String, Refusal> {
        let response = self.http.get(self.client.url("/metrics")).send().await?;
        if response.status() != StatusCode::OK {
            return Err(Self::refusal(response).await);
        }
        Ok(response.text().await?)
    }

    /// Opens the reservation's WebSocket (its `ws_url`, with Nagle's algorithm off) and waits
    /// for the `joined` frame.
    pub async fn join(&self, reservation: &ReservationView) -> Result<(Ws, RoomView), JoinFailure> {
        self.join_frame(reservation)
            .await
            .map(|(ws, joined)| (ws, joined.room))
    }

    /// [`join`](Self::join), keeping the whole `joined` frame (its `members`).
    pub async fn join_frame(
        &self,
        reservation: &ReservationView,
    ) -> Result<(Ws, JoinedFrame), JoinFailure> {
        let mut ws = self.open(&reservation.ws_url).await?;
        let first = tokio::time::timeout(CALL_TIMEOUT, first_frame(&mut ws))
            .await
            .map_err(|_| JoinFailure::Timeout)??;
        Ok((ws, first))
    }

    /// Opens the WebSocket of a place in line; the caller reads its `waiting` frames and then
    /// its `joined`.
    pub async fn open_place(&self, place: &QueueView) -> Result<Ws, JoinFailure> {
        self.open(&place.ws_url).await
    }

    /// Opens a WebSocket at `path` (a `ws_url`), with Nagle's algorithm off.
    async fn open(&self, path: &str) -> Result<Ws, JoinFailure> {
        let url = format!("{}{}", self.target.ws, path);
        let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
        let (ws, _) = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .map_err(|_| JoinFailure::Timeout)?
            .map_err(|e| JoinFailure::Transport(e.to_string()))?;
        Ok(ws)
    }
}

/// The code of a close frame, [`CLOSED_WITHOUT_CODE`] when it has none.
pub fn close_code(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    frame.map_or(CLOSED_WITHOUT_CODE, |frame| u16::from(frame.code))
}

/// Reads until the first data frame: `joined` (its room) or a close (its code).
async fn first_frame(ws: &mut Ws) -> Result<JoinedFrame, JoinFailure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(ServerFrame::Joined(joined)) => Ok(joined),
                    Ok(_) => Err(JoinFailure::Protocol(truncate(text.as_str()))),
                    Err(e) => Err(JoinFailure::Protocol(e.to_string())),
                };
            }
            Some(Ok(Message::Close(close))) => {
                return Err(JoinFailure::Closed(close_code(close.as_ref())));
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

/// Sends one client frame as JSON text.
pub async fn send(ws: &mut Ws, frame: &ClientFrame) -> Result<(), String> {
    let text = serde_json::to_string(frame).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

/// Sends a chat message.
pub async fn send_message(ws: &mut Ws, body: String) -> Result<(), String> {
    send(ws, &ClientFrame::Message { body }).await
}

/// Sends `leave` and waits for the server's close; returns its code (1000,
/// [`CloseCode::Left`], expected). Frames that arrive meanwhile (other members' messages and
/// presence) are read and dropped.
pub async fn leave(ws: &mut Ws) -> Result<u16, String> {
    let leave = async {
        send(ws, &ClientFrame::Leave).await?;
        let code = loop {
            match ws.next().await {
                Some(Ok(Message::Close(close))) => break close_code(close.as_ref()),
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

    fn error(code: ErrorCode) -> String {
        serde_json::to_string(&ErrorBody::new(code, "m", None)).unwrap()
    }

    #[test]
    fn refusals_are_sorted_by_status_and_code() {
        assert_eq!(
            Refusal::classify(409, None, &error(ErrorCode::RoomFull)),
            Refusal::RoomFull
        );
        assert_eq!(
            Refusal::classify(409, None, &error(ErrorCode::AlreadyJoined)),
            Refusal::AlreadyJoined
        );
        assert_eq!(
            Refusal::classify(409, Some("3"), &error(ErrorCode::RoomPending)),
            Refusal::RoomPending {
                retry_after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            Refusal::classify(404, None, &error(ErrorCode::RoomNotFound)),
            Refusal::RoomNotFound
        );
        assert_eq!(
            Refusal::classify(503, None, &error(ErrorCode::Unavailable)),
            Refusal::Unavailable
        );
        let internal = Refusal::classify(500, None, &error(ErrorCode::Internal));
        assert_eq!(
            internal,
            Refusal::Other {
                status: 500,
                code: Some(ErrorCode::Internal)
            }
        );
        assert_eq!(internal.to_string(), r#"HTTP 500 "internal""#);
        // A code with a status the contract does not give it is not taken at its word.
        assert_eq!(
            Refusal::classify(500, None, &error(ErrorCode::RoomFull)),
            Refusal::Other {
                status: 500,
                code: Some(ErrorCode::RoomFull)
            }
        );
    }

    #[test]
    fn labels_are_the_contract_codes() {
        assert_eq!(Refusal::RoomFull.label(), "room_full");
        assert_eq!(
            Refusal::RoomPending {
                retry_after: Duration::ZERO
            }
            .label(),
            "room_pending"
        );
        assert_eq!(Refusal::Unavailable.label(), "unavailable");
        assert_eq!(Refusal::Transport(String::new()).label(), "transport_error");
    }

    #[test]
    fn rate_limits_carry_their_retry_after_defaulting_to_a_second() {
        let limited = Refusal::classify(429, Some("2"), &error(ErrorCode::RateLimited));
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(limited.label(), "rate_limited");
        let limited = Refusal::classify(429, None, "not json");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn an_unparsable_error_body_is_other_with_no_code() {
        let other = Refusal::classify(409, None, "<html>");
        assert_eq!(
            other,
            Refusal::Other {
                status: 409,
                code: None
            }
        );
        assert_eq!(other.to_string(), r#"HTTP 409 """#);
    }

    #[test]
    fn the_typed_clients_refusals_are_sorted_the_same_way() {
        let refused = ClientError::Refused {
            status: 409,
            body: ErrorBody::new(ErrorCode::RoomPending, "m", None),
        };
        assert_eq!(
            Refusal::from(refused),
            Refusal::RoomPending {
                retry_after: Duration::from_secs(1)
            }
        );
        let unexpected = ClientError::Unexpected {
            status: 503,
            body: "down".into(),
        };
        assert_eq!(Refusal::from(unexpected), Refusal::Unavailable);
        let frame = ClientError::Frame("x".into());
        assert!(matches!(Refusal::from(frame), Refusal::Transport(_)));
    }

    #[test]
    fn close_codes_have_labels() {
        let closed = |code: CloseCode| JoinFailure::Closed(code.code());
        assert_eq!(closed(CloseCode::RoomFull).label(), "ws_room_full");
        assert_eq!(closed(CloseCode::JoinFailed).label(), "ws_join_failed");
        assert_eq!(
            closed(CloseCode::InvalidTicket).label(),
            "ws_invalid_ticket"
        );
        assert_eq!(
            closed(CloseCode::TicketExpired).label(),
            "ws_ticket_expired"
        );
        assert_eq!(closed(CloseCode::GoingAway).label(), "ws_closed");
        assert_eq!(
            JoinFailure::Closed(CLOSED_WITHOUT_CODE).label(),
            "ws_closed"
        );
        assert!(left_cleanly(1000));
        assert!(!left_cleanly(CLOSED_ABNORMALLY));
    }
}
