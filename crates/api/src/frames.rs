//! WebSocket frames, all JSON text, each with its `type`.

use serde::{Deserialize, Serialize};

use crate::rest::RoomView;

/// What a client may send. Reading one is strict: a JSON object with exactly the fields of its
/// `type` (serde's derived reading of tagged enums would let unknown fields and arrays through).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// A chat message, 1-4000 characters.
    Message { body: String },
    /// Ends the session; the server closes with 1000.
    Leave,
}

impl<'de> Deserialize<'de> for ClientFrame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(D::Error::custom("a frame is a JSON object"));
        };
        let kind = match fields.remove("type") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom("`type` is a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        let frame = match kind.as_str() {
            "message" => match fields.remove("body") {
                Some(serde_json::Value::String(body)) => Self::Message { body },
                Some(_) => return Err(D::Error::custom("`body` is a string")),
                None => return Err(D::Error::missing_field("body")),
            },
            "leave" => Self::Leave,
            other => return Err(D::Error::unknown_variant(other, &["message", "leave"])),
        };
        if let Some(unknown) = fields.keys().next() {
            return Err(D::Error::unknown_field(unknown, &["type", "body"]));
        }
        Ok(frame)
    }
}

/// What the server sends. Each frame is its own type carrying its own `type` field, so that a
/// message reads the same on its own and inside a `joined` frame's history; reading one
/// dispatches on `type` first, so a frame is never taken for another with similar fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ServerFrame {
    Joined(JoinedFrame),
    Message(Message),
    Presence(PresenceFrame),
    Error(ErrorFrame),
    Waiting(WaitingFrame),
}

/// Sent on a waiting socket at once and whenever the position changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "waiting")]
pub struct WaitingFrame {
    pub room_id: String,
    /// 1 for the next person to get a seat.
    pub position: u32,
    /// Expected wait from the room's recent rate of departures; `null` until one is seen.
    pub eta_ms: Option<u64>,
}

/// The first frame of a session: the room, who is in it, the recent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "joined")]
pub struct JoinedFrame {
    pub room: RoomView,
    pub members: Vec<String>,
    /// The last `chat.history_on_join` messages, oldest first.
    pub history: Vec<Message>,
}

/// A chat message as stored and fanned out, to every member, sender included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "message")]
pub struct Message {
    pub id: u64,
    pub room_id: String,
    pub user_id: String,
    pub body: String,
    pub sent_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceEvent {
    Joined,
    Left,
}

/// Someone joined or left; `attending` is the room's count after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "presence")]
pub struct PresenceFrame {
    pub event: PresenceEvent,
    pub user_id: String,
    pub attending: u32,
}

/// `code` of an error frame; the session stays open after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameErrorCode {
    /// A frame the server cannot accept.
    InvalidMessage,
    /// The message could not be stored; nothing was sent.
    Unavailable,
}

impl FrameErrorCode {
    pub const ALL: [Self; 2] = [Self::InvalidMessage, Self::Unavailable];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidMessage => "invalid_message",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "error")]
pub struct ErrorFrame {
    pub code: FrameErrorCode,
    pub message: String,
}

impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        const TYPES: &[&str] = &["joined", "message", "presence", "error", "waiting"];
        let value = serde_json::Value::deserialize(deserializer)?;
        let kind = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| D::Error::missing_field("type"))?;
        match kind {
            "joined" => serde_json::from_value(value).map(Self::Joined),
            "message" => serde_json::from_value(value).map(Self::Message),
            "presence" => serde_json::from_value(value).map(Self::Presence),
            "error" => serde_json::from_value(value).map(Self::Error),
            "waiting" => serde_json::from_value(value).map(Self::Waiting),
            other => return Err(D::Error::unknown_variant(other, TYPES)),
        }
        .map_err(D::Error::custom)
    }
}

impl ServerFrame {
    /// The frame as JSON text. Encoding these types cannot fail (no maps with non-string keys,
    /// no serialisers that refuse), but a fallback keeps that a non-panicking promise.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"invalid_message","message":"frame could not be encoded"}"#
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn frames_carry_their_type_and_round_trip() {
        let message = Message {
            id: 7,
            room_id: "r".into(),
            user_id: "alice".into(),
            body: "hi".into(),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let frame = ServerFrame::Message(message.clone());
        let value: serde_json::Value = serde_json::from_str(&frame.to_text()).unwrap();
        assert_eq!(
            value,
            json!({"type": "message", "id": 7, "room_id": "r", "user_id": "alice", "body": "hi",
                   "sent_at": "2026-01-01T00:00:00.000Z"})
        );
        let back: ServerFrame = serde_json::from_value(value).unwrap();
        assert_eq!(back, frame);

        let presence = r#"{"type":"presence","event":"left","user_id":"bob","attending":1}"#;
        let frame: ServerFrame = serde_json::from_str(presence).unwrap();
        assert_eq!(
            frame,
            ServerFrame::Presence(PresenceFrame {
                event: PresenceEvent::Left,
                user_id: "bob".into(),
                attending: 1
            })
        );
        let error = r#"{"type":"error","code":"invalid_message","message":"no"}"#;
        assert!(matches!(
            serde_json::from_str::<ServerFrame>(error).unwrap(),
            ServerFrame::Error(ErrorFrame {
                code: FrameErrorCode::InvalidMessage,
                ..
            })
        ));
    }

    #[test]
    fn a_frame_of_one_type_is_not_read_as_another() {
        let wrong =
            r#"{"type":"presence","id":7,"room_id":"r","user_id":"a","body":"b","sent_at":"t"}"#;
        assert!(serde_json::from_str::<ServerFrame>(wrong).is_err());
        for refused in [
            r#"{"type":"leave","extra":1}"#,
            r#"{"type":"message","body":"x","extra":1}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"message","body":1}"#,
            r#"["message","x"]"#,
            r#"{"type":"shout","body":"x"}"#,
        ] {
            assert!(
                serde_json::from_str::<ClientFrame>(refused).is_err(),
                "{refused}"
            );
        }
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"leave"}"#).unwrap(),
            ClientFrame::Leave
        );
    }
}
