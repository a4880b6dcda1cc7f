//! Room events: what happened in a room, in order, for other services. Read them a page at a
//! time from `GET /api/v1/rooms/{room_id}/events`, or follow the room's Redis stream.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    RoomOpened,
    MemberJoined,
    MemberLeft,
}

/// Why a member left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The member sent `leave`.
    Left,
    /// The connection ended without a `leave`.
    Disconnected,
    /// The member answered no ping in time.
    TimedOut,
    /// Its node died or was restarted, and the seat was reclaimed.
    Reclaimed,
    /// Its node shut down.
    Shutdown,
}

impl EventType {
    pub const ALL: [Self; 3] = [Self::RoomOpened, Self::MemberJoined, Self::MemberLeft];
}

impl LeaveReason {
    pub const ALL: [Self; 5] = [
        Self::Left,
        Self::Disconnected,
        Self::TimedOut,
        Self::Reclaimed,
        Self::Shutdown,
    ];
}

/// One change to a room's membership, written in the same transaction as the change. Events of
/// a room carry a gapless `seq` (1, 2, 3, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub room_id: String,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who joined or left; the creator for `room_opened`.
    pub user_id: String,
    /// The room's attendance right after the change.
    pub attending: u32,
    /// Only on `member_left`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<LeaveReason>,
    #[schema(format = DateTime)]
    pub at: String,
}

/// A page of a room's events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page; null when this page is the last one so far.
    pub next: Option<u64>,
}

impl Event {
    /// The entry's fields in a room's Redis stream: the event's keys, each value as text.
    pub fn stream_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("room_id", self.room_id.clone()),
            ("seq", self.seq.to_string()),
            ("type", enum_text(self.kind)),
            ("user_id", self.user_id.clone()),
            ("attending", self.attending.to_string()),
            ("at", self.at.clone()),
        ];
        if let Some(reason) = self.reason {
            fields.push(("reason", enum_text(reason)));
        }
        fields
    }

    /// Reads a stream entry's fields back; `None` when they are not an event.
    pub fn from_stream_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Self> {
        let mut object = serde_json::Map::new();
        for (key, value) in fields {
            let value = match key {
                "seq" | "attending" => serde_json::Value::from(value.parse::<u64>().ok()?),
                _ => serde_json::Value::from(value),
            };
            object.insert(key.to_owned(), value);
        }
        serde_json::from_value(serde_json::Value::Object(object)).ok()
    }
}

fn enum_text(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_event_survives_the_stream_and_reads_as_the_contract_says() {
        let event = Event {
            room_id: "rust-study".into(),
            seq: 3,
            kind: EventType::MemberLeft,
            user_id: "alice".into(),
            attending: 1,
            reason: Some(LeaveReason::Disconnected),
            at: "2026-12-01T10:02:00.000Z".into(),
        };
        let fields = event.stream_fields();
        let back = Event::from_stream_fields(fields.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back.as_ref(), Some(&event));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"room_id": "rust-study", "seq": 3, "type": "member_left",
                "user_id": "alice", "attending": 1, "reason": "disconnected",
                "at": "2026-12-01T10:02:00.000Z"})
        );
    }
}
