//! With Redis: moves committed room events from the database's outbox to each room's Redis
//! stream (`<key_prefix>events:{<room_id>}`), in `seq` order, at least once.
//!
//! Every node runs one relay. A pass reads the oldest unrelayed events, appends them to their
//! rooms' streams in `seq` order (one pipelined round trip), and only then marks them relayed. So
//! an event is never marked before it is in its stream (a node dying mid-pass leaves its events
//! to the next relay, which appends them again: duplicates, never a loss), and the first
//! occurrence of every `seq` in a stream comes in order: events of a room commit in `seq` order,
//! so a pass that reads an event also reads every earlier unrelayed one of its room. Consumers
//! drop an entry whose `seq` they have already seen. Streams are trimmed to about
//! `events.stream_max_len` entries, and relayed rows older than `events.retention` are pruned.

use std::time::{Duration, Instant};

use roomgate_domain::RoomId;
use roomgate_persistence::Database;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::EventSettings;
use crate::routes::events::event;

/// Where a room's events are appended.
pub fn stream_key(prefix: &str, room: &RoomId) -> String {
    format!("{prefix}events:{{{room}}}")
}

#[derive(Debug)]
pub struct EventRelay {
    pub client: redis::Client,
    pub prefix: String,
    pub response_timeout: Duration,
}

impl EventRelay {
    pub fn spawn(
        self,
        db: Database,
        settings: EventSettings,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(settings.relay_interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut connection = None;
            let mut last_prune = Instant::now();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                // Drain what is waiting, a batch per round trip, before sleeping again.
                loop {
                    match self.pass(&db, &settings, &mut connection).await {
                        Ok(moved) if moved == settings.relay_batch as usize => continue,
                        Ok(_) => break,
                        Err(error) => {
                            connection = None;
                            tracing::debug!(%error, "relaying room events failed; retrying");
                            break;
                        }
                    }
                }
                if last_prune.elapsed() >= settings.prune_interval() {
                    last_prune = Instant::now();
                    match db.prune_relayed(settings.retention()).await {
                        Ok(0) => {}
                        Ok(pruned) => tracing::debug!(pruned, "pruned relayed room events"),
                        Err(error) => tracing::debug!(%error, "pruning room events failed"),
                    }
                }
            }
        })
    }

    /// One batch: read, append, mark. Returns how many events it moved.
    async fn pass(
        &self,
        db: &Database,
        settings: &EventSettings,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> anyhow::Result<usize> {
        let events = db.unrelayed_events(settings.relay_batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        if connection.is_none() {
            let connecting = self.client.get_multiplexed_async_connection();
            *connection = Some(tokio::time::timeout(self.response_timeout, connecting).await??);
        }
        let Some(redis) = connection.as_mut() else {
            return Ok(0);
        };
        let mut pipe = redis::pipe();
        for record in &events {
            let fields = event(record).stream_fields();
            pipe.cmd("XADD")
                .arg(stream_key(&self.prefix, &record.room))
                .arg("MAXLEN")
                .arg("~")
                .arg(settings.stream_max_len)
                .arg("*")
                .arg(fields)
                .ignore();
        }
        tokio::time::timeout(self.response_timeout, pipe.query_async::<()>(redis)).await??;
        let relayed: Vec<(RoomId, u64)> = events
            .iter()
            .map(|record| (record.room.clone(), record.seq))
            .collect();
        db.mark_relayed(&relayed).await?;
        Ok(events.len())
    }
}
