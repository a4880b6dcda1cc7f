//! `GET /api/v1/ws?ticket=…`: upgrades, then hands the connection to its session task.
//!
//! Browsers cannot set headers on a WebSocket, so the ticket is the credential: every refusal
//! happens after the upgrade, as a close code the client can read.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, get, rt, web};
use serde::Deserialize;

use crate::session;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    ticket: Option<String>,
}

/// Opens the chat session a reservation's ticket stands for (101 Switching Protocols).
#[utoipa::path(get, path = "/api/v1/ws", tag = "chat",
    params(("ticket" = String, Query, description = "The ticket of a live reservation")),
    responses((status = 101, description = "Upgraded. Close codes: 4001 invalid_ticket, 4002 ticket_expired, 4009 room_full, 4500 join_failed, 1000 after leave, 1001 shutdown, 1008 rate_limited, 1009 frame too large")))]
#[get("/api/v1/ws")]
pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<WsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let upgraded_at = Instant::now();
    let (response, socket, incoming) = actix_ws::handle(&req, payload)?;
    let max_frame = state.settings.ws.max_frame_bytes;
    let incoming = incoming
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let state = state.into_inner();
    let sessions = state.sessions.clone();
    let ticket = query.into_inner().ticket;
    rt::spawn(sessions.track_future(session::run(state, socket, incoming, ticket, upgraded_at)));
    Ok(response)
}
