//! A small typed async client for Roomgate's REST calls and its chat WebSocket.

use futures_util::{SinkExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::codes::{CloseCode, ErrorCode};
use crate::frames::{ClientFrame, ServerFrame};
use crate::rest::{
    CreateRoomRequest, CreatedRoom, DevTokenRequest, DevTokenResponse, ErrorBody, QueueView,
    ReservationView, ReserveRequest, RoomPage, RoomView,
};

/// The raw WebSocket, for callers that need the socket itself (to drop it abruptly, say).
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused, with the contract's error body.
    #[error("{status} {}: {}", .body.error.code, .body.error.message)]
    Refused { status: u16, body: ErrorBody },
    /// An answer the contract does not describe.
    #[error("unexpected answer {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("a frame the contract does not describe: {0}")]
    Frame(String),
}

impl ClientError {
    /// The contract's error code, for a refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { body, .. } => Some(body.error.code),
            _ => None,
        }
    }
}

/// What a reservation request got: a seat (201), or the user's live one again (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub fresh: bool,
    pub reservation: ReservationView,
}

/// The answer to a reservation that may wait: a seat now, or a place in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Seat(Reserved),
    InLine(QueueView),
}

/// A client for one server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// `base` is the server's origin, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        Self::with_http(reqwest::Client::new(), base)
    }

    pub fn with_http(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /api/v1/dev/tokens` (only while the server's `auth.dev_tokens` is on).
    pub async fn dev_token(&self, user: &str) -> Result<DevTokenResponse, ClientError> {
        let request = DevTokenRequest {
            user_id: user.to_owned(),
        };
        let response = self
            .http
            .post(self.url("/api/v1/dev/tokens"))
            .json(&request)
            .send()
            .await?;
        expect(response, &[200]).await.map(|(_, body)| body)
    }

    /// `POST /api/v1/rooms`: the room registered as pending, and the creator's reservation.
    pub async fn create_room(
        &self,
        token: &str,
        room: &CreateRoomRequest,
    ) -> Result<CreatedRoom, ClientError> {
        let response = self
            .http
            .post(self.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(room)
            .send()
            .await?;
        expect(response, &[202]).await.map(|(_, body)| body)
    }

    /// `POST /api/v1/rooms/{room}/reservations`.
    pub async fn reserve(
        &self,
        token: &str,
        room: &str,
        request: &ReserveRequest,
    ) -> Result<Reserved, ClientError> {
        let response = self
            .http
            .post(self.url(&format!("/api/v1/rooms/{room}/reservations")))
            .bearer_auth(token)
            .json(request)
            .send()
            .await?;
        let (status, reservation) = expect(response, &[200, 201]).await?;
        Ok(Reserved {
            fresh: status == 201,
            reservation,
        })
    }

    /// `POST /api/v1/rooms/{room}/reservations` with `"wait": true`: a seat at once, or a place
    /// in the room's waiting line.
    pub async fn reserve_or_wait(
        &self,
        token: &str,
        room: &str,
        password: Option<&str>,
    ) -> Result<Admitted, ClientError> {
        let request = ReserveRequest {
            password: password.map(str::to_owned),
            wait: Some(true),
        };
        let response = self
            .http
            .post(self.url(&format!("/api/v1/rooms/{room}/reservations")))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let unexpected = || ClientError::Unexpected {
            status,
            body: text.clone(),
        };
        match status {
            200 | 201 => {
                // 200 is also the answer for a place the user already holds: only a place has a
                // `position`, so it is tried first.
                if let Ok(place) = serde_json::from_str::<QueueView>(&text) {
                    return Ok(Admitted::InLine(place));
                }
                serde_json::from_str::<ReservationView>(&text)
                    .map(|reservation| {
                        Admitted::Seat(Reserved {
                            fresh: status == 201,
                            reservation,
                        })
                    })
                    .map_err(|_| unexpected())
            }
            202 => serde_json::from_str::<QueueView>(&text)
                .map(Admitted::InLine)
                .map_err(|_| unexpected()),
            _ => Err(refusal(status, text)),
        }
    }

    /// `DELETE /api/v1/rooms/{room}/reservations/me`.
    pub async fn cancel(&self, token: &str, room: &str) -> Result<(), ClientError> {
        let response = self
            .http
            .delete(self.url(&format!("/api/v1/rooms/{room}/reservations/me")))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status().as_u16();
        if status == 204 {
            return Ok(());
        }
        Err(refusal(status, response.text().await?))
    }

    /// `GET /api/v1/rooms/{room}`.
    pub async fn room(&self, room: &str) -> Result<RoomView, ClientError> {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/rooms/{room}")))
            .send()
            .await?;
        expect(response, &[200]).await.map(|(_, body)| body)
    }

    /// `GET /api/v1/rooms?limit=&after=`.
    pub async fn rooms(
        &self,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<RoomPage, ClientError> {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let response = self
            .http
            .get(self.url("/api/v1/rooms"))
            .query(&query)
            .send()
            .await?;
        expect(response, &[200]).await.map(|(_, body)| body)
    }

    /// The WebSocket URL for a ticket.
    pub fn ws_url(&self, ticket: &str) -> String {
        let origin = self
            .base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{origin}/api/v1/ws?ticket={ticket}")
    }

    /// Opens the chat WebSocket for a ticket. The first frame tells whether the join succeeded.
    pub async fn connect(&self, ticket: &str) -> Result<Session, ClientError> {
        let (socket, _) = tokio_tungstenite::connect_async(self.ws_url(ticket)).await?;
        Ok(Session { socket })
    }
}

/// Reads a 2xx answer with one of `statuses` as `T`, or the refusal.
async fn expect<T: DeserializeOwned>(
    response: reqwest::Response,
    statuses: &[u16],
) -> Result<(u16, T), ClientError> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    if statuses.contains(&status) {
        return serde_json::from_str(&text)
            .map(|body| (status, body))
            .map_err(|_| ClientError::Unexpected { status, body: text });
    }
    Err(refusal(status, text))
}

fn refusal(status: u16, text: String) -> ClientError {
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => ClientError::Refused { status, body },
        Err(_) => ClientError::Unexpected { status, body: text },
    }
}

/// What a session read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Frame(ServerFrame),
    /// The server closed the session; its code and reason when it sent a close frame.
    Closed(Option<(u16, String)>),
}

impl Received {
    /// The close code, when it is one the contract defines.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Closed(Some((code, _))) => CloseCode::from_code(*code),
            _ => None,
        }
    }
}

/// One chat WebSocket.
#[derive(Debug)]
pub struct Session {
    socket: WebSocket,
}

impl Session {
    /// The next frame or the close, skipping pings and pongs. A connection that ends without a
    /// close frame reads as `Closed(None)`.
    pub async fn next(&mut self) -> Result<Received, ClientError> {
        loop {
            match self.socket.next().await {
                Some(Ok(WsMessage::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map(Received::Frame)
                        .map_err(|error| ClientError::Frame(format!("{error}: {text}")));
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    let close =
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()));
                    return Ok(Received::Closed(close));
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    return Err(ClientError::Frame("a binary frame".to_owned()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ok(Received::Closed(None)),
            }
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text = serde_json::to_string(frame).map_err(|e| ClientError::Frame(e.to_string()))?;
        self.socket.send(WsMessage::text(text)).await?;
        Ok(())
    }

    /// Sends a close frame (a client's polite goodbye).
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.socket.close(None).await?;
        Ok(())
    }

    pub fn socket(&mut self) -> &mut WebSocket {
        &mut self.socket
    }

    pub fn into_socket(self) -> WebSocket {
        self.socket
    }
}
