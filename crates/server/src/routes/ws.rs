//! `GET /api/v1/ws?ticket=…`: upgrades, then hands the connection to its session task.
//!
//! Browsers cannot set headers on a WebSocket, so the ticket is the credential: every refusal
//! happens after the upgrade, as a close code the client can read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, rt, web};
use serde::Deserialize;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::ApiError;
use crate::session;
use crate::state::AppState;
use roomgate_api::ErrorBody;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    ticket: Option<String>,
}

/// Opens the chat session a reservation's ticket stands for (101 Switching Protocols).
#[utoipa::path(get, path = "/api/v1/ws", tag = "chat",
    params(("ticket" = String, Query, description = "The ticket of a live reservation, or of a place in a room's waiting line (the socket then receives `waiting` frames until a seat is handed to it, and `joined` then)")),
    responses(
        (status = 101, description = "Upgraded. Close codes: 4001 invalid_ticket, 4002 ticket_expired, 4009 room_full, 4500 join_failed, 1000 after leave (or a place given up), 1001 shutdown, 1002 protocol_error, 1008 rate_limited, 1009 frame too large, 1013 too_slow"),
        (status = 400, description = "invalid_request: not a WebSocket upgrade", body = ErrorBody)))]
#[get("/api/v1/ws")]
pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<WsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let upgraded_at = Instant::now();
    let (response, socket, incoming) = actix_ws::handle(&req, payload).map_err(|error| {
        ApiError::invalid("upgrade", format!("expected a WebSocket upgrade: {error}"))
    })?;
    let connection_closed = CancellationToken::new();
    let response = response.map_body(|_, body| ConnectionBody {
        body,
        _closed: connection_closed.clone().drop_guard(),
    });
    let max_frame = state.settings.ws.max_frame_bytes;
    let incoming = incoming
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let state = state.into_inner();
    let sessions = state.sessions.clone();
    let ticket = query.into_inner().ticket;
    let connection = session::Connection {
        socket,
        incoming,
        closed: connection_closed,
    };
    rt::spawn(sessions.track_future(session::run(state, connection, ticket, upgraded_at)));
    Ok(response.map_into_boxed_body())
}

/// The upgraded response's body: the outbound half of the WebSocket, alive exactly as long as
/// the HTTP connection is.
///
/// Why the session watches this rather than only its inbound stream: when the peer resets the
/// connection (an RST, which is what a client's kernel sends when it closes a socket with
/// unread data in its buffer), actix-http's dispatcher fails on the read and is dropped, and
/// with it the sender half of the request payload — without marking the payload finished or
/// failed. The inbound frame stream then never wakes again, and the session would only notice
/// at its next ping. The dispatcher does drop this body in every case, so its drop is the one
/// signal that the connection is gone, whatever ended it.
struct ConnectionBody {
    body: BoxBody,
    _closed: DropGuard,
}

impl MessageBody for ConnectionBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// Middleware: a request that asks to upgrade and is answered with anything but 101 says
/// `Connection: close`. actix-http closes such a connection after the answer whatever the
/// response says; saying so keeps keep-alive clients from sending their next request into it.
pub async fn close_refused_upgrades(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl MessageBody>, actix_web::Error> {
    let upgrade = req.headers().contains_key(actix_web::http::header::UPGRADE);
    let mut response = next.call(req).await?;
    if upgrade && response.status() != actix_web::http::StatusCode::SWITCHING_PROTOCOLS {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::session;
    use crate::state::AppState;

    /// The size of the future `connect` spawns for a session (its task allocates it whole, for
    /// the session's life), read from the function's type without running it.
    fn session_future_bytes<F, R>(_: F) -> usize
    where
        F: FnOnce(Arc<AppState>, session::Connection, Option<String>, Instant) -> R,
    {
        size_of::<R>()
    }

    /// A session's task is sized by the largest state of its future, and an idle member holds
    /// that size for as long as it stays. The admission, the wait for a seat, the greeting and
    /// the leave are boxed so that the conversation sets it. A count, not a time: 3,080 bytes
    /// in a debug build with rustc 1.95 (5,008 with them inline; the admission alone is
    /// ~3.4 KiB), less in release; inlining the admission again, or a conversation that grows
    /// by a third, fails here.
    #[test]
    fn an_idle_session_holds_a_small_task() {
        let bytes = session_future_bytes(session::run);
        assert!(
            bytes <= 4096,
            "a session's future is {bytes} bytes; box the states it runs through once \
             (see session::run) rather than make every idle member pay for them"
        );
    }
}
