//! WebSocket frames, all JSON text.

use serde::{Deserialize, Serialize};

use crate::views::{MessageView, RoomView};

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    Message { body: String },
    Leave,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceEvent {
    Joined,
    Left,
}

/// What the server sends. `Message` frames are built from [`MessageView`], which carries its
/// own `type` field.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Joined {
        room: &'a RoomView,
        members: &'a [String],
        history: &'a [MessageView],
    },
    Presence {
        event: PresenceEvent,
        user_id: &'a str,
        attending: u32,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl ServerFrame<'_> {
    /// Serialising these types cannot fail (no maps with non-string keys, no custom
    /// serialisers that refuse), but a fallback frame keeps that a non-panicking promise.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"frame could not be encoded"}"#
                .to_owned()
        })
    }
}

pub fn message_text(message: &MessageView) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Close codes the contract defines, with their reasons.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    /// Not in the contract: the session's outbound queue overflowed ("try again later").
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const INVALID_TICKET: u16 = 4001;
    pub const TICKET_EXPIRED: u16 = 4002;
    pub const ROOM_FULL: u16 = 4009;
    pub const JOIN_FAILED: u16 = 4500;
}
