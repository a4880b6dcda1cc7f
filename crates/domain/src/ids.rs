//! Validated identifiers and values. Each is parsed once at the edge and trusted afterwards.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Largest capacity the type itself accepts; deployments lower it with `rooms.max_capacity`.
pub const CAPACITY_HARD_LIMIT: u32 = 1_000_000;

/// A room's slug: `^[a-z0-9][a-z0-9-]{0,62}$`, chosen by its creator.
///
/// Backed by `Arc<str>` because room ids are cloned into every map, guard and frame.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomId(Arc<str>);

impl RoomId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bytes = raw.as_bytes();
        let valid_first = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid_rest = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !valid_first || !valid_rest || bytes.len() > 63 {
            return Err(ValidationError::new(
                "id",
                "room id must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            ));
        }
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's id: 1-64 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(ValidationError::new(
                "user_id",
                "user id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
            ));
        }
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_id_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $ty::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_id_impls!(RoomId, UserId);

/// How many members a room may hold at once: `1..=max`, where `max` is the deployment's limit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct Capacity(u32);

impl Capacity {
    pub fn new(value: u32, max: u32) -> Result<Self, ValidationError> {
        let max = max.min(CAPACITY_HARD_LIMIT);
        if value == 0 || value > max {
            return Err(ValidationError::new(
                "capacity",
                format!("capacity must be between 1 and {max}"),
            ));
        }
        Ok(Self(value))
    }

    /// For values that were validated when they were stored (database rows, Redis entries).
    pub fn from_trusted(value: u32) -> Self {
        Self(value.clamp(1, CAPACITY_HARD_LIMIT))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A room's display title: 1-100 characters (not bytes), not only white space.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(transparent)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > 100 || raw.trim().is_empty() {
            return Err(ValidationError::new(
                "title",
                "title must be 1-100 characters and not blank",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A chat message's body: 1-4000 characters, not only white space.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || raw.trim().is_empty() {
            return Err(ValidationError::new(
                "body",
                "message body must be 1-4000 characters and not blank",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Milliseconds since the Unix epoch. Every TTL is computed in this unit so that the in-memory
/// store (system clock) and a shared store (its server's clock) agree on one representation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    pub fn millis(self) -> u64 {
        self.0
    }
}

/// Identifies one server process (a node) for as long as it runs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random id; 63 bits so it fits a signed BIGINT column.
    pub fn random() -> Self {
        Self(rand::random::<u64>() >> 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Identifies one WebSocket session, so that a stale release cannot remove a newer session's seat.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl SessionId {
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// The pair a seat belongs to: one user in one room.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct UserRoomKey {
    pub user: UserId,
    pub room: RoomId,
}

impl UserRoomKey {
    pub fn new(user: UserId, room: RoomId) -> Self {
        Self { user, room }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_follow_the_slug_rule() {
        for ok in ["a", "rust-study", "0", "a-", &"a".repeat(63)] {
            assert!(RoomId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(64)] {
            let err = RoomId::parse(bad).unwrap_err();
            assert_eq!(err.field, "id", "{bad}");
        }
    }

    #[test]
    fn user_ids_follow_the_contract() {
        for ok in ["alice", "A.b-c_d", &"x".repeat(64)] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65)] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacity_is_bounded_by_the_configured_max() {
        assert!(Capacity::new(0, 10).is_err());
        assert_eq!(Capacity::new(10, 10).unwrap().get(), 10);
        assert!(Capacity::new(11, 10).is_err());
        assert!(Capacity::new(CAPACITY_HARD_LIMIT + 1, u32::MAX).is_err());
    }

    #[test]
    fn title_counts_characters_not_bytes() {
        assert!(Title::parse(&"é".repeat(100)).is_ok());
        assert!(Title::parse(&"é".repeat(101)).is_err());
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse("").is_err());
    }

    #[test]
    fn message_body_limits() {
        assert!(MessageBody::parse("hi").is_ok());
        assert!(MessageBody::parse(&"x".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"x".repeat(4001)).is_err());
        assert!(MessageBody::parse(" \n").is_err());
    }

    #[test]
    fn ids_deserialize_through_their_parsers() {
        let ok: RoomId = serde_json::from_str("\"rust-study\"").unwrap();
        assert_eq!(ok.as_str(), "rust-study");
        assert!(serde_json::from_str::<RoomId>("\"Bad Id\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }

    #[test]
    fn node_ids_fit_a_signed_bigint() {
        for _ in 0..1000 {
            assert!(NodeId::random().0 <= i64::MAX as u64);
        }
    }
}
