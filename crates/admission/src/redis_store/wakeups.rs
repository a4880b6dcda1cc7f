//! Wake-ups of waiting sockets across nodes: every script that changes a room's line publishes
//! on the room's line channel, and one subscriber task per store turns those messages into a
//! bump of the room's local `watch`, which every [`LineWatch`] of that room on this node sees.
//!
//! A message is only a hint to look again; a lost one (Redis away, the subscription
//! reconnecting) delays a waiter by at most `LINE_RECHECK`, its timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use roomgate_domain::RoomId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Shared;
use crate::line::LineWatch;

/// The per-room senders behind this node's `LineWatch`es.
#[derive(Debug, Default)]
pub(crate) struct LineWakeups {
    rooms: Mutex<Rooms>,
    /// Whether the subscription is in place (tests wait for it).
    subscribed: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Rooms {
    senders: HashMap<RoomId, watch::Sender<u64>>,
    /// The map's size after the last sweep of rooms nobody watches any more; the next sweep
    /// comes when it has doubled, so sweeping costs O(1) per watch on average.
    swept_at: usize,
}

impl LineWakeups {
    pub(crate) fn watch(&self, room: &RoomId) -> LineWatch {
        let mut rooms = self.rooms.lock();
        if rooms.senders.len() >= rooms.swept_at.max(32) * 2 {
            rooms
                .senders
                .retain(|_, sender| sender.receiver_count() > 0);
            rooms.swept_at = rooms.senders.len();
        }
        let receiver = match rooms.senders.get(room) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(0);
                rooms.senders.insert(room.clone(), sender);
                receiver
            }
        };
        LineWatch::new(receiver)
    }

    /// Wakes the watchers of `room`, forgetting the room once no one watches it.
    fn notify(&self, room: &RoomId) {
        let mut rooms = self.rooms.lock();
        if let Some(sender) = rooms.senders.get(room) {
            if sender.receiver_count() == 0 {
                rooms.senders.remove(room);
            } else {
                sender.send_modify(|version| *version = version.wrapping_add(1));
            }
        }
    }

    /// Wakes every watcher: messages may have been lost while the subscription was down.
    fn notify_all(&self) {
        for sender in self.rooms.lock().senders.values() {
            sender.send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    /// Resolves once the subscription is in place.
    #[cfg(feature = "testing")]
    pub(crate) async fn subscribed(&self) {
        let mut subscribed = self.subscribed.subscribe();
        let _ = subscribed.wait_for(|up| *up).await;
    }
}

/// The subscriber task; aborted when the last clone of its store is dropped.
#[derive(Debug)]
pub(crate) struct Subscriber {
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the store's one subscriber task. Needs a running tokio runtime.
pub(crate) fn spawn(shared: Arc<Shared>, wakeups: Arc<LineWakeups>) -> Subscriber {
    Subscriber {
        task: tokio::spawn(subscribe_loop(shared, wakeups)),
    }
}

async fn subscribe_loop(shared: Arc<Shared>, wakeups: Arc<LineWakeups>) {
    let pattern = shared.keys.line_pattern();
    let channel_prefix = shared.keys.line_channel_prefix();
    let mut backoff = Duration::from_millis(50);
    loop {
        let subscribed = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(shared.subscribe_timeout, subscribed).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                wakeups.subscribed.send_replace(true);
                wakeups.notify_all();
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    if let Some(room) = message
                        .get_channel_name()
                        .strip_prefix(&channel_prefix)
                        .and_then(|room| RoomId::parse(room).ok())
                    {
                        wakeups.notify(&room);
                    }
                }
                wakeups.subscribed.send_replace(false);
                tracing::warn!("redis line subscription lost; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, "redis line subscription failed; retrying"),
            Err(_) => tracing::warn!("redis line subscription timed out; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
