//! Fan-out across nodes over Redis pub/sub.
//!
//! With Redis configured, a frame published on any node goes to Redis first and reaches the
//! sessions of every node (this one included) through each node's pattern subscription, so that
//! one path delivers everything and nothing is delivered twice. One publisher task per node
//! sends frames in the order they were handed to it, batched into one round trip when several
//! are waiting; a room's frames therefore leave a node in order.
//!
//! While Redis cannot be reached, frames are delivered to this node's sessions directly, so that
//! members on one node keep chatting; other nodes miss them (pub/sub keeps nothing). The
//! subscription reconnects by itself when Redis is back.

use std::time::Duration;

use futures_util::StreamExt;
use roomgate_domain::RoomId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::{Frame, LocalRooms};

/// Frames sent in one round trip at most.
const BATCH: usize = 256;

/// How long fan-out waits on Redis: a Redis that stops answering (rather than refusing) must
/// not hold frames back from this node's own sessions.
#[derive(Clone, Copy, Debug)]
pub struct FanoutTimeouts {
    pub connect: Duration,
    pub response: Duration,
}

#[derive(Debug)]
pub struct RedisFanout {
    outbox: mpsc::UnboundedSender<(RoomId, Frame)>,
}

impl RedisFanout {
    /// Starts the publisher and the subscriber. Nothing is sent until the first frame.
    pub fn start(
        client: redis::Client,
        prefix: &str,
        timeouts: FanoutTimeouts,
        local: LocalRooms,
        stop: CancellationToken,
    ) -> Self {
        let (outbox, frames) = mpsc::unbounded_channel();
        let channel_prefix = format!("{prefix}fanout:");
        tokio::spawn(publish_loop(
            client.clone(),
            channel_prefix.clone(),
            timeouts,
            frames,
            local.clone(),
        ));
        tokio::spawn(subscribe_loop(
            client,
            channel_prefix,
            timeouts,
            local,
            stop,
        ));
        Self { outbox }
    }

    /// Hands `frame` to the publisher; never waits.
    pub fn publish(&self, room: &RoomId, frame: Frame) {
        // Fails only when the publisher is gone, i.e. at shutdown, when no session listens.
        let _ = self.outbox.send((room.clone(), frame));
    }
}

async fn publish_loop(
    client: redis::Client,
    channel_prefix: String,
    timeouts: FanoutTimeouts,
    mut frames: mpsc::UnboundedReceiver<(RoomId, Frame)>,
    local: LocalRooms,
) {
    let mut connection = None;
    let mut batch = Vec::with_capacity(BATCH);
    while frames.recv_many(&mut batch, BATCH).await > 0 {
        if connection.is_none() {
            let connecting = client.get_multiplexed_async_connection();
            connection = tokio::time::timeout(timeouts.connect, connecting)
                .await
                .ok()
                .and_then(Result::ok);
        }
        let sent = match connection.as_mut() {
            Some(connection) => {
                let mut pipe = redis::pipe();
                for (room, frame) in &batch {
                    pipe.publish(format!("{channel_prefix}{room}"), frame.as_bytes())
                        .ignore();
                }
                let sending = pipe.query_async::<()>(connection);
                matches!(
                    tokio::time::timeout(timeouts.response, sending).await,
                    Ok(Ok(()))
                )
            }
            None => false,
        };
        if !sent {
            connection = None;
            tracing::warn!(
                frames = batch.len(),
                "redis unreachable: delivering on this node only"
            );
            for (room, frame) in &batch {
                local.deliver(room, frame.clone());
            }
        }
        batch.clear();
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel_prefix: String,
    timeouts: FanoutTimeouts,
    local: LocalRooms,
    stop: CancellationToken,
) {
    let pattern = format!("{channel_prefix}*");
    let mut backoff = Duration::from_millis(50);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = async {
            tokio::time::timeout(timeouts.connect + timeouts.response, subscribed)
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "timed out subscribing",
                    )))
                })
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            result = subscribed => result,
        };
        match pubsub {
            Ok(pubsub) => {
                backoff = Duration::from_millis(50);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let room = message
                        .get_channel_name()
                        .strip_prefix(&channel_prefix)
                        .and_then(|room| RoomId::parse(room).ok());
                    let frame = std::str::from_utf8(message.get_payload_bytes()).ok();
                    if let (Some(room), Some(frame)) = (room, frame) {
                        local.deliver(&room, Frame::from(frame));
                    }
                }
                tracing::warn!("redis subscription lost; reconnecting");
            }
            Err(error) => tracing::warn!(%error, "redis subscription failed; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
