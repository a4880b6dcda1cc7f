//! Key names. A room's keys share the hash tag `{room}`, so one script may touch all of them.

use roomgate_domain::{RoomId, Ticket};

#[derive(Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn seats(&self, room: &RoomId) -> String {
        format!("{}{{{}}}:seats", self.prefix, room)
    }

    /// The room's waiting line: a sorted set of users by place number, beside the seats.
    pub(crate) fn line(&self, room: &RoomId) -> String {
        format!("{}{{{}}}:line", self.prefix, room)
    }

    /// The pub/sub channel on which every change of the room's line is announced.
    pub(crate) fn line_channel(&self, room: &RoomId) -> String {
        format!("{}{}", self.line_channel_prefix(), room)
    }

    /// What every line channel starts with; the room id follows.
    pub(crate) fn line_channel_prefix(&self) -> String {
        format!("{}line:", self.prefix)
    }

    /// A `PSUBSCRIBE` pattern for every line channel: the prefix's glob characters escaped.
    pub(crate) fn line_pattern(&self) -> String {
        let mut pattern = String::new();
        for c in self.line_channel_prefix().chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    pub(crate) fn pending(&self, room: &RoomId) -> String {
        format!("{}{{{}}}:pending", self.prefix, room)
    }

    /// Where a ticket says which seat it belongs to; lives in the ticket's own slot.
    pub(crate) fn ticket(&self, ticket: &Ticket) -> String {
        format!("{}ticket:{}", self.prefix, ticket.to_text())
    }

    /// Rooms that may hold seats: what the reaper walks.
    pub(crate) fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// Node id → Redis time of its last heartbeat.
    pub(crate) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
