//! A room as the product knows it, independent of where it is stored.

use crate::ids::Title;
use crate::ids::{Capacity, RoomId, Timestamp, UserId};
use crate::password::PasswordHash;

/// A chat room: an id chosen by its creator, a title, a capacity and an optional password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub id: RoomId,
    pub title: Title,
    pub capacity: Capacity,
    pub password: Option<PasswordHash>,
    pub created_by: UserId,
    pub created_at: Timestamp,
}

impl Room {
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whether `candidate` may enter. A room without a password admits any (or no) candidate;
    /// a protected room needs the matching password.
    pub fn admits_password(&self, candidate: Option<&str>) -> bool {
        match (&self.password, candidate) {
            (None, _) => true,
            (Some(hash), Some(given)) => hash.verify(given),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(password: Option<&str>) -> Room {
        Room {
            id: RoomId::parse("r").unwrap(),
            title: Title::parse("R").unwrap(),
            capacity: Capacity::new(2, 10).unwrap(),
            password: password.map(|p| PasswordHash::hash(p).unwrap()),
            created_by: UserId::parse("alice").unwrap(),
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn open_rooms_admit_everyone() {
        assert!(room(None).admits_password(None));
        assert!(room(None).admits_password(Some("whatever")));
    }

    #[test]
    fn protected_rooms_need_the_password() {
        let r = room(Some("pw"));
        assert!(r.has_password());
        assert!(r.admits_password(Some("pw")));
        assert!(!r.admits_password(Some("nope")));
        assert!(!r.admits_password(None));
    }
}
