//! Follows one room's events from its Redis stream and prints them, oldest first, then waits
//! for more: where a billing, moderation or analytics service would start.
//!
//! ```sh
//! cargo run -p roomgate-api --example follow_room_events -- rust-study
//! # REDIS_URL (default redis://127.0.0.1:6379) and ROOMGATE_KEY_PREFIX (default roomgate:)
//! ```
//!
//! Delivery is at least once: a relay that died mid-pass may have appended some events twice.
//! Each carries its room's gapless `seq`, so an entry whose `seq` was already seen is dropped.

use std::time::Duration;

use anyhow::Context as _;
use redis::streams::{StreamReadOptions, StreamReadReply};
use roomgate_api::Event;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let room = std::env::args()
        .nth(1)
        .context("usage: follow_room_events <room_id>")?;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = std::env::var("ROOMGATE_KEY_PREFIX").unwrap_or_else(|_| "roomgate:".into());
    let key = format!("{prefix}events:{{{room}}}");
    let client = redis::Client::open(url).context("REDIS_URL")?;
    let mut redis = client.get_multiplexed_async_connection().await?;

    // Start at the beginning of what the stream keeps; a service would store `cursor` and
    // `last_seq` durably and resume from them.
    let mut cursor = "0".to_owned();
    let mut last_seq = 0;
    let block = StreamReadOptions::default()
        .block(Duration::from_secs(5).as_millis() as usize)
        .count(100);
    loop {
        let reply: StreamReadReply = redis::AsyncCommands::xread_options(
            &mut redis,
            &[key.as_str()],
            &[cursor.as_str()],
            &block,
        )
        .await?;
        for entry in reply.keys.into_iter().flat_map(|stream| stream.ids) {
            cursor = entry.id.clone();
            let fields: Vec<(String, String)> = entry
                .map
                .iter()
                .filter_map(|(key, value)| {
                    redis::from_redis_value::<String>(value.clone())
                        .ok()
                        .map(|value| (key.clone(), value))
                })
                .collect();
            let Some(event) =
                Event::from_stream_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            else {
                eprintln!("skipping an entry that is not an event: {}", entry.id);
                continue;
            };
            if event.seq <= last_seq {
                continue; // delivered before
            }
            last_seq = event.seq;
            println!("{}", serde_json::to_string(&event)?);
        }
    }
}
