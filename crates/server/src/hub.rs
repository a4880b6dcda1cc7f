//! In-process fan-out: every session joined to a room subscribes here, and a frame published
//! to the room is queued for each of them.
//!
//! Each subscriber has a bounded queue. Publishing never waits: a subscriber whose queue is
//! full has fallen too far behind, so it is told to close (its `lagged` token fires) instead of
//! slowing the room or growing memory without bound.
//!
//! The boundary is deliberately small (`subscribe`, `publish`). With Redis configured,
//! `publish` hands the frame to [`RedisFanout`], which reaches every node's sessions (this
//! node's included) through Redis pub/sub; otherwise it delivers to this node's sessions
//! directly. Sessions never know which.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use roomgate_domain::{RoomId, SessionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fanout::RedisFanout;

/// A frame already encoded as JSON text, shared by every recipient.
pub type Frame = Arc<str>;

struct Subscriber {
    queue: mpsc::Sender<Frame>,
    lagged: CancellationToken,
}

type Rooms = HashMap<RoomId, HashMap<SessionId, Subscriber>>;

/// This node's subscribers, by room.
#[derive(Clone, Default)]
pub struct LocalRooms {
    rooms: Arc<Mutex<Rooms>>,
}

impl std::fmt::Debug for LocalRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRooms")
            .field("rooms", &self.rooms.lock().len())
            .finish()
    }
}

/// Where sessions subscribe and frames are published.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    local: LocalRooms,
    remote: Option<Arc<RedisFanout>>,
}

impl Hub {
    /// A hub that fans out across nodes through `remote`.
    pub fn with_remote(local: LocalRooms, remote: RedisFanout) -> Self {
        Self {
            local,
            remote: Some(Arc::new(remote)),
        }
    }

    /// Starts delivering `room`'s frames to `session`, queueing at most `queue_frames`.
    pub fn subscribe(&self, room: RoomId, session: SessionId, queue_frames: usize) -> Subscription {
        self.local.subscribe(room, session, queue_frames)
    }

    /// Sends `frame` to every member of `room`, the sender's own session included, on every
    /// node. Never waits.
    pub fn publish(&self, room: &RoomId, frame: Frame) {
        match &self.remote {
            Some(remote) => remote.publish(room, frame),
            None => self.local.deliver(room, frame),
        }
    }

    /// Sessions subscribed to `room` on this node.
    pub fn subscribers(&self, room: &RoomId) -> usize {
        self.local.subscribers(room)
    }
}

impl LocalRooms {
    /// Starts delivering `room`'s frames to `session`, queueing at most `queue_frames`.
    pub fn subscribe(&self, room: RoomId, session: SessionId, queue_frames: usize) -> Subscription {
        let (queue, frames) = mpsc::channel(queue_frames.max(1));
        let lagged = CancellationToken::new();
        self.rooms.lock().entry(room.clone()).or_default().insert(
            session,
            Subscriber {
                queue,
                lagged: lagged.clone(),
            },
        );
        Subscription {
            local: self.clone(),
            room,
            session,
            frames,
            lagged,
        }
    }

    /// Queues `frame` for every subscriber of `room` on this node.
    pub fn deliver(&self, room: &RoomId, frame: Frame) {
        let rooms = self.rooms.lock();
        let Some(subscribers) = rooms.get(room) else {
            return;
        };
        for subscriber in subscribers.values() {
            match subscriber.queue.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => subscriber.lagged.cancel(),
                // The session is on its way out and unsubscribes itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Sessions subscribed to `room` on this node.
    pub fn subscribers(&self, room: &RoomId) -> usize {
        self.rooms.lock().get(room).map_or(0, HashMap::len)
    }

    fn unsubscribe(&self, room: &RoomId, session: SessionId) {
        let mut rooms = self.rooms.lock();
        if let Some(subscribers) = rooms.get_mut(room) {
            subscribers.remove(&session);
            if subscribers.is_empty() {
                rooms.remove(room);
            }
        }
    }
}

/// One session's subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    local: LocalRooms,
    room: RoomId,
    session: SessionId,
    frames: mpsc::Receiver<Frame>,
    lagged: CancellationToken,
}

impl Subscription {
    /// The next frame for this session. Never ends while subscribed, since the hub holds a sender.
    pub async fn next(&mut self) -> Option<Frame> {
        self.frames.recv().await
    }

    /// Waits for the next frame, then moves it and every frame already queued behind it, up to
    /// `limit` in all, into `frames`; returns how many. Cancel-safe (nothing is lost if the
    /// future is dropped before it resolves).
    pub async fn next_batch(&mut self, frames: &mut Vec<Frame>, limit: usize) -> usize {
        self.frames.recv_many(frames, limit).await
    }

    /// Fires once the session has fallen too far behind.
    pub fn lagged(&self) -> CancellationToken {
        self.lagged.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.local.unsubscribe(&self.room, self.session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::parse("r").unwrap()
    }

    #[tokio::test]
    async fn publishes_to_every_subscriber_and_forgets_dropped_ones() {
        let hub = Hub::default();
        let mut a = hub.subscribe(room(), SessionId(1), 4);
        let b = hub.subscribe(room(), SessionId(2), 4);
        assert_eq!(hub.subscribers(&room()), 2);
        drop(b);
        assert_eq!(hub.subscribers(&room()), 1);
        hub.publish(&room(), Arc::from("hello"));
        assert_eq!(a.next().await.as_deref(), Some("hello"));
        drop(a);
        assert_eq!(hub.subscribers(&room()), 0);
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_subscriber_lagged_without_blocking() {
        let hub = Hub::default();
        let slow = hub.subscribe(room(), SessionId(1), 2);
        for i in 0..3 {
            hub.publish(&room(), Arc::from(format!("{i}").as_str()));
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), slow.lagged().cancelled())
            .await
            .expect("a subscriber that fell behind is told so");
    }
}
