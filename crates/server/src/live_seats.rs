//! The seats this node's sessions hold, as the node itself knows them.
//!
//! A seat is claimed here the moment its ticket is confirmed, before anything is written, and
//! the claim is given up only once the membership row is known to be gone (the leave committed,
//! or a failed join undone). So at any instant, a participant row of this node whose user and
//! room hold no claim belongs to no live session: the reconciliation in [`crate::node`] removes
//! it. That is what heals a row that a database outage, a lost connection mid-commit or a
//! cancelled task left behind, without a restart.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use roomgate_domain::{RoomId, UserId, UserRoomKey};

#[derive(Debug, Default)]
pub struct LiveSeats {
    /// Claims per key. Normally at most one (the permit store admits one seat per user and
    /// room), but counting keeps a stray second claim from erasing the first.
    held: Mutex<HashMap<UserRoomKey, usize>>,
}

impl LiveSeats {
    pub fn claim(self: &Arc<Self>, key: UserRoomKey) -> SeatClaim {
        *self.held.lock().entry(key.clone()).or_default() += 1;
        SeatClaim {
            seats: Arc::clone(self),
            key,
        }
    }

    /// Whether some session of this node holds `user`'s seat in `room`.
    pub fn holds(&self, room: &RoomId, user: &UserId) -> bool {
        let key = UserRoomKey::new(user.clone(), room.clone());
        self.held.lock().contains_key(&key)
    }

    /// How many seats are claimed: live sessions, joins being committed, leaves being written.
    pub fn len(&self) -> usize {
        self.held.lock().values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One claim in [`LiveSeats`]; dropping it gives the claim up.
#[derive(Debug)]
pub struct SeatClaim {
    seats: Arc<LiveSeats>,
    key: UserRoomKey,
}

impl Drop for SeatClaim {
    fn drop(&mut self) {
        let mut held = self.seats.held.lock();
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> UserRoomKey {
        UserRoomKey::new(UserId::parse(user).unwrap(), RoomId::parse("r").unwrap())
    }

    #[test]
    fn a_claim_holds_until_dropped_and_claims_count() {
        let seats = Arc::new(LiveSeats::default());
        let room = RoomId::parse("r").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let first = seats.claim(key("alice"));
        let second = seats.claim(key("alice"));
        assert!(seats.holds(&room, &alice));
        assert_eq!(seats.len(), 2);
        drop(first);
        assert!(seats.holds(&room, &alice), "the second claim still holds");
        drop(second);
        assert!(!seats.holds(&room, &alice));
        assert!(seats.is_empty());
    }
}
