//! WebSocket frames: the wire types are `roomgate-api`'s; this is how the session builds them.

pub use roomgate_api::{
    ClientFrame, CloseCode, ErrorFrame, FrameErrorCode, JoinedFrame, Message, PresenceEvent,
    PresenceFrame, ServerFrame,
};

/// A presence frame's text.
pub fn presence_text(event: PresenceEvent, user: &str, attending: u32) -> String {
    ServerFrame::Presence(PresenceFrame {
        event,
        user_id: user.to_owned(),
        attending,
    })
    .to_text()
}

/// An error frame's text; the session stays open after it.
pub fn error_text(code: FrameErrorCode, message: &str) -> String {
    ServerFrame::Error(ErrorFrame {
        code,
        message: message.to_owned(),
    })
    .to_text()
}

// Property tests; a sibling file (`session/frames_props.rs`) rather than `session/frames/`.
#[cfg(test)]
#[path = "frames_props.rs"]
mod frames_props;
