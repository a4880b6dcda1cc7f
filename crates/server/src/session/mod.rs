//! One WebSocket session, from the upgraded connection to its single exit.
//!
//! The task first admits the ticket (see [`crate::join`]); a refusal closes the socket with the
//! contract's code. A joined session then multiplexes four things until one of them ends it:
//! frames from the client, frames for the client from the room's hub, the heartbeat, and
//! server shutdown. Whatever ends the loop, control falls through to `membership.leave()`.

pub mod frames;
pub mod membership;
mod waiting;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use futures_util::StreamExt as _;
use roomgate_domain::{MessageBody, SessionId};
use roomgate_persistence::{Arrival, DepartureReason, Joined, NewMessage};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::hub::{Frame, Subscription};
use crate::join;
use crate::rate_limit::session_limiter;
use crate::session::frames::{
    ClientFrame, FrameErrorCode, JoinedFrame, PresenceEvent, ServerFrame, error_text, presence_text,
};
use crate::session::membership::Membership;
use crate::state::AppState;
use crate::views;

/// How long a close frame may take to leave before the connection is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Queued frames taken for one socket at once: actix-ws's own outbound channel holds 32, so a
/// batch this size is handed over without waiting for the connection to write.
const OUTBOUND_BATCH: usize = 32;

/// How a joined session ended, and so which close frame (if any) it sends.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client sent `leave`.
    Left,
    /// The client sent a close frame; it is echoed.
    ClosedByClient(Option<CloseReason>),
    /// The connection is gone (TCP drop, send error); nothing can be sent.
    Vanished,
    /// No pong or frame within `ws.client_timeout`.
    TimedOut,
    ShuttingDown,
    /// This node lost its lease and its seats were reclaimed by the others (it was paused or
    /// cut off past `node.lease_ms`); to the client it is the server going away.
    Evicted,
    RateLimited,
    FrameTooBig,
    ProtocolError,
    TooSlow,
}

impl Ending {
    /// The reason the room's events record for this ending.
    fn departure(&self) -> DepartureReason {
        match self {
            Self::Left => DepartureReason::Left,
            Self::TimedOut => DepartureReason::TimedOut,
            Self::ShuttingDown => DepartureReason::Shutdown,
            Self::Evicted => DepartureReason::Reclaimed,
            Self::ClosedByClient(_)
            | Self::Vanished
            | Self::RateLimited
            | Self::FrameTooBig
            | Self::ProtocolError
            | Self::TooSlow => DepartureReason::Disconnected,
        }
    }

    pub(crate) fn close_reason(self) -> Option<Option<CloseReason>> {
        let reason = |close: frames::CloseCode, text: &str| {
            Some(Some(CloseReason {
                code: CloseCode::from(close.code()),
                description: Some(text.to_owned()),
            }))
        };
        let usual = |close: frames::CloseCode| reason(close, close.reason());
        match self {
            Self::Left => usual(frames::CloseCode::Left),
            Self::ClosedByClient(echo) => Some(echo),
            Self::Vanished => None,
            Self::TimedOut => reason(frames::CloseCode::GoingAway, "client_timeout"),
            Self::ShuttingDown | Self::Evicted => usual(frames::CloseCode::GoingAway),
            Self::RateLimited => usual(frames::CloseCode::RateLimited),
            Self::FrameTooBig => usual(frames::CloseCode::FrameTooLarge),
            Self::ProtocolError => usual(frames::CloseCode::ProtocolError),
            Self::TooSlow => usual(frames::CloseCode::TooSlow),
        }
    }
}

/// One upgraded connection: its outbound and inbound halves, and the signal that the
/// connection itself is gone (see `routes::ws::ConnectionBody` for why that is needed).
pub(crate) struct Connection {
    pub(crate) socket: Session,
    pub(crate) incoming: AggregatedMessageStream,
    pub(crate) closed: CancellationToken,
}

/// Runs a session to its end. Spawned once per upgraded connection.
pub(crate) async fn run(
    state: Arc<AppState>,
    connection: Connection,
    ticket: Option<String>,
    upgraded_at: Instant,
) {
    let Connection {
        mut socket,
        mut incoming,
        closed,
    } = connection;
    if state.shutdown.is_cancelled() {
        close_with(socket, Ending::ShuttingDown.close_reason()).await;
        return;
    }
    let session = SessionId::random();
    let refused = |refusal: join::Refusal| {
        if let join::Refusal::Failed(cause) | join::Refusal::Interrupted(cause) = &refusal {
            tracing::warn!(%cause, "join failed");
        }
        Some(Some(CloseReason {
            code: CloseCode::from(refusal.close_code().code()),
            description: Some(refusal.reason().to_owned()),
        }))
    };
    // The admission, the wait for a seat, the greeting and the leave each run once, around
    // the conversation that an idle member spends its life in: boxed, their states take heap
    // only while they run, instead of sizing every session's task for the largest of them.
    let admitted = match Box::pin(join::admit(&state, ticket.as_deref(), session)).await {
        Ok(join::Admitted::Member(seated)) => Ok((*seated, upgraded_at)),
        Ok(join::Admitted::Waiting(place)) => {
            let span = membership::span(&place.key().room, &place.key().user);
            Box::pin(
                waiting::wait_for_seat(&state, &mut socket, &mut incoming, &closed, place)
                    .instrument(span),
            )
            .await
            .map_err(|ending| match ending {
                waiting::Ended::Refused(refusal) => refused(refusal),
                waiting::Ended::Closed(reason) => reason,
            })
        }
        Err(refusal) => Err(refused(refusal)),
    };
    // Presented; an idle member need not hold it for its whole stay.
    drop(ticket);
    let (
        join::Seated {
            membership,
            joined,
            mut subscription,
        },
        joining_since,
    ) = match admitted {
        Ok(admitted) => admitted,
        Err(reason) => {
            close_with(socket, reason).await;
            return;
        }
    };
    // From here on every log line of the session carries its room and user.
    let span = membership::span(membership.room(), membership.user());
    async move {
        let ending = match Box::pin(greet(&state, &mut socket, &membership, joined)).await {
            Ok(()) => {
                state
                    .metrics
                    .join_duration
                    .observe(joining_since.elapsed().as_secs_f64());
                converse(
                    &state,
                    &mut socket,
                    &mut incoming,
                    &mut subscription,
                    &membership,
                    &closed,
                )
                .await
            }
            Err(ending) => ending,
        };
        drop(subscription);
        Box::pin(membership.leave(ending.departure())).await;
        close_with(socket, ending.close_reason()).await;
    }
    .instrument(span)
    .await;
}

pub(crate) async fn close_with(socket: Session, reason: Option<Option<CloseReason>>) {
    if let Some(reason) = reason {
        // The peer may already be gone, or too far behind to take even this frame; either way
        // there is no one left to wait for. Dropping the session then ends the connection.
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(reason)).await;
    }
}

/// Sends one frame to a peer that may have stopped reading. Once the peer's buffers are
/// full a send waits, so every send in the loop is bounded: by the session falling behind
/// its room (`lagged`) or by the client timeout.
async fn deliver(
    send: impl Future<Output = Result<(), actix_ws::Closed>>,
    lagged: &CancellationToken,
    timeout: Duration,
) -> Result<(), Ending> {
    tokio::select! {
        sent = tokio::time::timeout(timeout, send) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Vanished),
            Err(_) => Err(Ending::TimedOut),
        },
        () = lagged.cancelled() => Err(Ending::TooSlow),
    }
}

/// Sends the `joined` frame and announces the newcomer to the room. Everything in it came with
/// the join (`Joined`), so greeting costs no database statement; `joined` is consumed here, so
/// a member does not keep the room's history for its whole stay.
async fn greet(
    state: &AppState,
    socket: &mut Session,
    membership: &Membership,
    joined: Joined,
) -> Result<(), Ending> {
    let room = membership.room();
    let Joined {
        room: record,
        arrival: Arrival { members, history },
    } = joined;
    let seats = crate::routes::rooms::seats(state, room).await;
    let frame = ServerFrame::Joined(JoinedFrame {
        room: views::open_room(&record, seats),
        members: members.iter().map(ToString::to_string).collect(),
        history: history.iter().map(views::message).collect(),
    });
    socket
        .text(frame.to_text())
        .await
        .map_err(|_| Ending::Vanished)?;
    let presence = presence_text(
        PresenceEvent::Joined,
        membership.user().as_str(),
        record.attending,
    );
    state.hub.publish(room, Frame::from(presence));
    Ok(())
}

async fn converse(
    state: &AppState,
    socket: &mut Session,
    incoming: &mut AggregatedMessageStream,
    subscription: &mut Subscription,
    membership: &Membership,
    connection_closed: &CancellationToken,
) -> Ending {
    let limiter = session_limiter(state.settings.limits.ws_messages_per_second);
    let mut heartbeat = tokio::time::interval(state.settings.ws.heartbeat_interval());
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client_timeout = state.settings.ws.client_timeout();
    let mut last_heard = Instant::now();
    let lagged = subscription.lagged();
    let evicted = state.eviction();
    let mut outgoing = Vec::with_capacity(OUTBOUND_BATCH);
    loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => return Ending::ShuttingDown,
            () = evicted.cancelled() => return Ending::Evicted,
            () = lagged.cancelled() => return Ending::TooSlow,
            () = connection_closed.cancelled() => return Ending::Vanished,
            queued = subscription.next_batch(&mut outgoing, OUTBOUND_BATCH) => {
                if queued == 0 {
                    return Ending::Vanished;
                }
                // Every frame already queued goes out before the loop waits again: one wake-up
                // and one bounded wait for the lot, and the connection's writer encodes them
                // into one buffer, so one write reaches the socket.
                let frames = &mut outgoing;
                let socket = &mut *socket;
                let send_all = async move {
                    for frame in frames.drain(..) {
                        socket.text(&*frame).await?;
                    }
                    Ok(())
                };
                if let Err(ending) = deliver(send_all, &lagged, client_timeout).await {
                    return ending;
                }
            }
            message = incoming.next() => {
                last_heard = Instant::now();
                match message {
                    None => return Ending::Vanished,
                    Some(Err(actix_ws::ProtocolError::Overflow)) => return Ending::FrameTooBig,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "websocket protocol error");
                        return Ending::ProtocolError;
                    }
                    Some(Ok(AggregatedMessage::Ping(payload))) => {
                        if let Err(ending) = deliver(socket.pong(&payload), &lagged, client_timeout).await {
                            return ending;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(reason))) => return Ending::ClosedByClient(reason),
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        if limiter.check().is_err() {
                            return Ending::RateLimited;
                        }
                        if let Err(ending) = reject(socket, "frames must be JSON text").await {
                            return ending;
                        }
                    }
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if limiter.check().is_err() {
                            return Ending::RateLimited;
                        }
                        if let Some(ending) = handle_text(state, socket, membership, &text).await {
                            return ending;
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > client_timeout {
                    return Ending::TimedOut;
                }
                if let Err(ending) = deliver(socket.ping(b""), &lagged, client_timeout).await {
                    return ending;
                }
            }
        }
    }
}

/// Handles one text frame; `Some` ends the session.
async fn handle_text(
    state: &AppState,
    socket: &mut Session,
    membership: &Membership,
    text: &str,
) -> Option<Ending> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(error) => {
            let message = format!(
                "expected {{\"type\": \"message\", \"body\": \"...\"}} or {{\"type\": \"leave\"}}: {error}"
            );
            return reject(socket, &message).await.err();
        }
    };
    let body = match frame {
        ClientFrame::Leave => return Some(Ending::Left),
        ClientFrame::Message { body } => body,
    };
    let body = match MessageBody::parse(&body) {
        Ok(body) => body,
        Err(error) => return reject(socket, &error.message).await.err(),
    };
    let message = NewMessage {
        room: membership.room().clone(),
        user: membership.user().clone(),
        body,
    };
    // The node's writer stores it with whatever else is waiting, then publishes it (see
    // `message_writer`); waiting for that before reading the next frame keeps this sender's
    // messages in order.
    match state.messages.post(message).await {
        Ok(_) => None,
        Err(error) => {
            // The session stays: the database may be back for the next message.
            tracing::warn!(%error, "storing a message failed");
            let frame = error_text(
                FrameErrorCode::Unavailable,
                "the message could not be stored; nothing was sent",
            );
            socket.text(frame).await.err().map(|_| Ending::Vanished)
        }
    }
}

/// Tells the client a frame was not accepted; the session stays open.
async fn reject(socket: &mut Session, message: &str) -> Result<(), Ending> {
    socket
        .text(error_text(FrameErrorCode::InvalidMessage, message))
        .await
        .map_err(|_| Ending::Vanished)
}
