//! A waiting socket: a place in a full room's line, held by an open WebSocket until a seat is
//! handed to it.
//!
//! The socket is the place's proof of life. It is told its position at once and whenever it
//! changes; it looks at its place whenever the room's line moves (and every
//! [`LINE_RECHECK`](roomgate_admission::LINE_RECHECK) regardless). When the store has handed a
//! freed seat to it, the seat is confirmed for this socket's session by the store in the same
//! step, and the join is committed here, so the next frame is `joined` and the socket carries on
//! as a member's session. However the socket ends before that, the place's `WaitGuard` is
//! dropped and the place is given up at once.

use std::sync::Arc;
use std::time::Instant;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason, Session};
use futures_util::StreamExt as _;
use roomgate_admission::{PermitStore, PlaceStatus, StoreError, WaitGuard};
use roomgate_api::{ServerFrame, WaitingFrame};
use tokio_util::sync::CancellationToken;

use super::Ending;
use super::frames::{ClientFrame, FrameErrorCode, error_text};
use crate::join;
use crate::join::Seated;
use crate::rate_limit::session_limiter;
use crate::state::AppState;

/// Why a waiting socket did not become a member's session.
pub(crate) enum Ended {
    /// The seat was handed over but its join was refused (4009, 4500); the seat went on to the
    /// next in line as its guard was dropped.
    Refused(join::Refusal),
    /// The socket ended, or the place was given up: the close frame to send, if any.
    Closed(Option<Option<CloseReason>>),
}

impl From<Ending> for Ended {
    fn from(ending: Ending) -> Self {
        Self::Closed(ending.close_reason())
    }
}

/// Holds `place` until a seat is handed to it, then joins it. On success, the membership, the
/// room, and when the join began (for the join-duration metric).
pub(crate) async fn wait_for_seat(
    state: &Arc<AppState>,
    socket: &mut Session,
    incoming: &mut AggregatedMessageStream,
    connection_closed: &CancellationToken,
    place: WaitGuard,
) -> Result<(Seated, Instant), Ended> {
    // Watch before the first look, so that no move of the line between the two is missed.
    let mut line = state.permits.watch_line(&place.key().room);
    let limiter = session_limiter(state.settings.limits.ws_messages_per_second);
    let mut heartbeat = tokio::time::interval(state.settings.ws.heartbeat_interval());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client_timeout = state.settings.ws.client_timeout();
    let mut last_heard = Instant::now();
    let mut told: Option<u32> = None;
    let evicted = state.eviction();
    loop {
        match state.permits.check_place(&place).await {
            Ok(PlaceStatus::Waiting { position, eta_ms }) => {
                if told != Some(position) {
                    told = Some(position);
                    let frame = ServerFrame::Waiting(WaitingFrame {
                        room_id: place.key().room.to_string(),
                        position,
                        eta_ms,
                    });
                    bounded(socket.text(frame.to_text()), client_timeout).await?;
                }
            }
            Ok(PlaceStatus::Seat(seat)) => {
                let waited_ms = state
                    .clock
                    .now()
                    .millis()
                    .saturating_sub(place.taken_at().millis());
                place.seated(&seat);
                #[allow(clippy::cast_precision_loss)] // milliseconds of waiting, far below 2^52
                state.metrics.queue_wait.observe(waited_ms as f64 / 1000.0);
                let joining_since = Instant::now();
                return join::join_seat(state, seat)
                    .await
                    .map(|seated| (seated, joining_since))
                    .map_err(Ended::Refused);
            }
            // Given up with `DELETE …/reservations/me` (or reclaimed): nothing left to wait for.
            Ok(PlaceStatus::Gone) => return Err(Ending::Left.into()),
            // The store is away for a moment: keep the place and the socket, and look again at
            // the next wake-up or recheck. The place is not lost by waiting.
            Err(StoreError::Unavailable(error)) => {
                tracing::debug!(%error, "the waiting line could not be read; looking again soon");
            }
            Err(StoreError::Refused(refusal)) => {
                tracing::warn!(%refusal, "the waiting place was refused");
                return Err(Ending::Left.into());
            }
        }
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => return Err(Ending::ShuttingDown.into()),
            () = evicted.cancelled() => return Err(Ending::Evicted.into()),
            () = connection_closed.cancelled() => return Err(Ending::Vanished.into()),
            () = line.changed() => {}
            message = incoming.next() => {
                last_heard = Instant::now();
                match message {
                    None => return Err(Ending::Vanished.into()),
                    Some(Err(actix_ws::ProtocolError::Overflow)) => {
                        return Err(Ending::FrameTooBig.into());
                    }
                    Some(Err(_)) => return Err(Ending::ProtocolError.into()),
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        bounded(socket.pong(&payload), client_timeout).await?;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(reason))) => {
                        return Err(Ending::ClosedByClient(reason).into());
                    }
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if limiter.check().is_err() {
                            return Err(Ending::RateLimited.into());
                        }
                        if let Ok(ClientFrame::Leave) = serde_json::from_str::<ClientFrame>(&text) {
                            return Err(Ending::Left.into());
                        }
                        let refusal = error_text(
                            FrameErrorCode::InvalidMessage,
                            "waiting for a seat: only {\"type\": \"leave\"} is accepted until joined",
                        );
                        bounded(socket.text(refusal), client_timeout).await?;
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        if limiter.check().is_err() {
                            return Err(Ending::RateLimited.into());
                        }
                        let refusal =
                            error_text(FrameErrorCode::InvalidMessage, "frames must be JSON text");
                        bounded(socket.text(refusal), client_timeout).await?;
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > client_timeout {
                    return Err(Ending::TimedOut.into());
                }
                bounded(socket.ping(b""), client_timeout).await?;
            }
        }
    }
}

/// Waits for one send to the client, bounded by the client timeout (a waiting socket has no
/// room queue to fall behind on, so the timeout is the only bound).
async fn bounded(
    send: impl std::future::Future<Output = Result<(), actix_ws::Closed>>,
    timeout: std::time::Duration,
) -> Result<(), Ended> {
    match tokio::time::timeout(timeout, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Vanished.into()),
        Err(_) => Err(Ending::TimedOut.into()),
    }
}
