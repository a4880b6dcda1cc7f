//! What phase 1 needs to know of an open room and what never changes once its row is written:
//! its capacity and its password hash. Rooms are never altered or deleted (no endpoint does
//! either), so an entry cannot go stale; a reservation for a room this node has seen needs no
//! database round trip. Attendance is not kept here: it changes, and the permits count it.

use std::collections::HashMap;

use parking_lot::RwLock;
use roomgate_domain::{Capacity, PasswordHash, RoomId};
use roomgate_persistence::RoomRecord;

/// Rooms remembered at most; a full catalog starts over (a miss only costs the read it saves).
const MAX_ROOMS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRoom {
    pub capacity: Capacity,
    pub password_hash: Option<PasswordHash>,
}

#[derive(Debug, Default)]
pub struct RoomCatalog {
    rooms: RwLock<HashMap<RoomId, KnownRoom>>,
}

impl RoomCatalog {
    pub fn get(&self, room: &RoomId) -> Option<KnownRoom> {
        self.rooms.read().get(room).cloned()
    }

    /// Remembers an open room as read from the database.
    pub fn remember(&self, record: &RoomRecord) {
        let mut rooms = self.rooms.write();
        if rooms.len() >= MAX_ROOMS && !rooms.contains_key(&record.id) {
            rooms.clear();
        }
        rooms.insert(
            record.id.clone(),
            KnownRoom {
                capacity: Capacity::from_trusted(record.capacity),
                password_hash: record.password_hash.clone(),
            },
        );
    }
}
