//! `RoomQueueTracker`: room creations waiting for their creator's WebSocket.
//!
//! A new room is only *registered* here in phase 1; nothing is written to the database until
//! the creator confirms. The first registration of an id wins; later ones are refused while it
//! lives. An entry that is never materialized simply expires: no ghost room is ever written.

use std::sync::Arc;
use std::time::Duration;

use roomgate_domain::{
    AdmissionError, Capacity, PasswordHash, RoomEvent, RoomId, RoomState, Timestamp, Title, UserId,
    room_step,
};

use crate::clock::{Clock, ttl_millis};
use crate::shards::ShardedMap;

/// Everything needed to write the room once its creator confirms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRoom {
    pub id: RoomId,
    pub title: Title,
    pub capacity: Capacity,
    pub password: Option<PasswordHash>,
    pub creator: UserId,
}

#[derive(Debug)]
struct Entry {
    room: PendingRoom,
    expires_at: Timestamp,
    /// Handed to the creator's confirmation; kept (blocking new registrations) until the caller
    /// removes it after the database write, or it expires.
    taken: bool,
}

/// The in-memory registry of pending room creations. Cheap to clone; clones share entries.
#[derive(Clone, Debug)]
pub struct RoomQueueTracker {
    clock: Arc<dyn Clock>,
    entries: Arc<ShardedMap<RoomId, Entry>>,
}

impl RoomQueueTracker {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: Arc::new(ShardedMap::new()),
        }
    }

    /// Registers `room` as pending for `ttl`; returns when it expires.
    /// A live registration of the same id (taken or not) refuses with `RoomPending`.
    pub fn register(&self, room: PendingRoom, ttl: Duration) -> Result<Timestamp, AdmissionError> {
        let now = self.clock.now();
        let expires_at = now.plus_millis(ttl_millis(ttl));
        let mut shard = self.entries.shard(&room.id).lock();
        let state = match shard.get(&room.id) {
            Some(entry) => RoomState::Pending {
                creator: entry.room.creator.clone(),
                expires_at: entry.expires_at,
            },
            None => RoomState::Absent,
        };
        let event = RoomEvent::Create {
            creator: room.creator.clone(),
            expires_at,
            now,
        };
        room_step(&room.id, &state, event)?;
        shard.insert(
            room.id.clone(),
            Entry {
                room,
                expires_at,
                taken: false,
            },
        );
        Ok(expires_at)
    }

    /// The live, not yet materialized registration of `room`, with its expiry.
    pub fn get(&self, room: &RoomId) -> Option<(PendingRoom, Timestamp)> {
        let now = self.clock.now();
        let shard = self.entries.shard(room).lock();
        shard
            .get(room)
            .filter(|e| !e.taken && now < e.expires_at)
            .map(|e| (e.room.clone(), e.expires_at))
    }

    /// Hands the registration to the creator's confirmation, exactly once.
    pub fn materialize(&self, room: &RoomId) -> Result<PendingRoom, AdmissionError> {
        let now = self.clock.now();
        let mut shard = self.entries.shard(room).lock();
        let Some(entry) = shard.get_mut(room) else {
            return Err(AdmissionError::RoomNotFound { room: room.clone() });
        };
        if entry.taken {
            return Err(AdmissionError::RoomNotFound { room: room.clone() });
        }
        let state = RoomState::Pending {
            creator: entry.room.creator.clone(),
            expires_at: entry.expires_at,
        };
        room_step(room, &state, RoomEvent::Materialize { now })?;
        entry.taken = true;
        Ok(entry.room.clone())
    }

    /// Forgets the registration of `room` (after its database write, or to undo a creation).
    pub fn remove(&self, room: &RoomId) -> Option<PendingRoom> {
        self.entries.shard(room).lock().remove(room).map(|e| e.room)
    }

    /// Drops every registration past its TTL; returns how many.
    pub fn reap_expired(&self) -> usize {
        let now = self.clock.now();
        let mut reaped = 0;
        for shard in self.entries.shards() {
            shard.lock().retain(|_, entry| {
                let keep = now < entry.expires_at;
                if !keep && !entry.taken {
                    reaped += 1;
                }
                keep
            });
        }
        reaped
    }

    /// Number of registrations held (live or awaiting the reaper).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
