//! `RedisPendingRooms`: room creations visible to every node; the first registration wins.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use roomgate_domain::{AdmissionError, Capacity, PasswordHash, RoomId, Timestamp, Title, UserId};

use super::{Shared, scripts, unavailable};
use crate::clock::ttl_millis;
use crate::error::StoreError;
use crate::queue::PendingRoom;
use crate::store::PendingRooms;

/// Pending rooms in Redis. Each registration is a hash that expires by itself with its TTL.
#[derive(Clone)]
pub struct RedisPendingRooms {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisPendingRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPendingRooms")
            .field("prefix", &self.shared.keys.prefix())
            .finish_non_exhaustive()
    }
}

fn malformed() -> StoreError {
    StoreError::Unavailable("malformed pending room in redis".into())
}

/// Rebuilds a registration from the script's reply: creator, title, capacity, password, expiry.
fn decode(room: &RoomId, fields: &[String]) -> Result<(PendingRoom, Timestamp), StoreError> {
    let [creator, title, capacity, password, expires_at] = fields else {
        return Err(malformed());
    };
    let pending = PendingRoom {
        id: room.clone(),
        title: Title::parse(title).map_err(|_| malformed())?,
        capacity: Capacity::from_trusted(capacity.parse().map_err(|_| malformed())?),
        password: (!password.is_empty()).then(|| PasswordHash::from_stored(password.clone())),
        creator: UserId::parse(creator).map_err(|_| malformed())?,
    };
    let expires_at = Timestamp(expires_at.parse().map_err(|_| malformed())?);
    Ok((pending, expires_at))
}

impl RedisPendingRooms {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl PendingRooms for RedisPendingRooms {
    async fn register(&self, room: PendingRoom, ttl: Duration) -> Result<Timestamp, StoreError> {
        let mut connection = self.shared.connection();
        let reply: Vec<String> = scripts::PENDING_REGISTER
            .key(self.shared.keys.pending(&room.id))
            .arg(ttl_millis(ttl))
            .arg(room.creator.as_str())
            .arg(room.title.as_str())
            .arg(room.capacity.get())
            .arg(room.password.as_ref().map_or("", |p| p.as_str()))
            .arg(self.shared.offset())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("ok") => reply
                .get(1)
                .and_then(|t| t.parse().ok())
                .map(Timestamp)
                .ok_or_else(malformed),
            _ => Err(AdmissionError::RoomPending { room: room.id }.into()),
        }
    }

    async fn get(&self, room: &RoomId) -> Result<Option<(PendingRoom, Timestamp)>, StoreError> {
        let mut connection = self.shared.connection();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.shared.keys.pending(room))
            .arg(&[
                "creator",
                "title",
                "capacity",
                "password",
                "expires_at",
                "taken",
            ])
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let Some(fields) = fields.into_iter().collect::<Option<Vec<String>>>() else {
            return Ok(None);
        };
        if fields[5] == "1" {
            return Ok(None);
        }
        let (pending, expires_at) = decode(room, &fields[..5])?;
        // Redis expires the key itself; a test that moved the clock forward must see the same.
        let now = crate::redis_store::permits_now(&self.shared, &mut connection).await?;
        Ok((now < expires_at).then_some((pending, expires_at)))
    }

    async fn materialize(&self, room: &RoomId) -> Result<PendingRoom, StoreError> {
        let mut connection = self.shared.connection();
        let reply: Vec<String> = scripts::PENDING_MATERIALIZE
            .key(self.shared.keys.pending(room))
            .arg(self.shared.offset())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(decode(room, &reply[1..])?.0),
            Some("expired") => Err(AdmissionError::TicketExpired.into()),
            _ => Err(AdmissionError::RoomNotFound { room: room.clone() }.into()),
        }
    }

    async fn remove(&self, room: &RoomId) -> Result<Option<PendingRoom>, StoreError> {
        let found = self.get(room).await?;
        let mut connection = self.shared.connection();
        let _: i64 = connection
            .del(self.shared.keys.pending(room))
            .await
            .map_err(unavailable)?;
        Ok(found.map(|(pending, _)| pending))
    }

    /// Registrations expire as Redis keys; there is nothing to sweep.
    async fn reap_expired(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
}
