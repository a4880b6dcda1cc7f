//! From the lower crates' records to the wire types of `roomgate-api`, the one definition of
//! the contract's JSON shapes.

use chrono::{DateTime, SecondsFormat, Utc};
use roomgate_admission::{PendingRoom, Place, Reservation, RoomCounts};
use roomgate_api::{Message, QueueView, ReservationView, RoomState, RoomView};
use roomgate_domain::Timestamp;
use roomgate_persistence::{MessageRecord, RoomRecord};

/// Times go out as RFC 3339 UTC with millisecond precision, e.g. `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn timestamp_to_datetime(at: Timestamp) -> DateTime<Utc> {
    i64::try_from(at.millis())
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A room as clients see it, from its database record. `attending` comes from the database and
/// `reserved` from the permit store, read one after the other. At every instant
/// `attending + reserved <= capacity` holds (a member's row is written only after its permit is
/// held, and removed before the permit is returned), but two reads a moment apart can count one
/// moving seat twice: once as the member who was leaving when the row was read, once as the
/// reservation that took the freed permit since. Such a seat is counted once, as attending, so
/// a read never shows more than the room holds.
///
/// A seat whose ticket is confirmed but whose row is not committed yet (a join in flight, a
/// seat just handed to the head of the line) holds a permit the database does not count yet:
/// it is shown as reserved, so a seat on its way to its member never reads as free. `waiting` is
/// the room's line, from the permit store.
pub fn open_room(room: &RoomRecord, seats: RoomCounts) -> RoomView {
    let held = seats.reserved.saturating_add(seats.joined);
    let reserved = seats.reserved.max(held.saturating_sub(room.attending));
    RoomView {
        id: room.id.to_string(),
        title: room.title.clone(),
        capacity: room.capacity,
        attending: room.attending,
        reserved: reserved.min(room.capacity.saturating_sub(room.attending)),
        waiting: seats.waiting,
        has_password: room.password_hash.is_some(),
        state: RoomState::Open,
        created_at: rfc3339(room.created_at),
    }
}

/// A registered creation: no member yet, its creator's permit among `reserved`.
pub fn pending_room(room: &PendingRoom, registered_at: DateTime<Utc>, reserved: u32) -> RoomView {
    RoomView {
        id: room.id.to_string(),
        title: room.title.as_str().to_owned(),
        capacity: room.capacity.get(),
        attending: 0,
        reserved,
        waiting: 0,
        has_password: room.password.is_some(),
        state: RoomState::Pending,
        created_at: rfc3339(registered_at),
    }
}

pub fn reservation(reservation: &Reservation) -> ReservationView {
    let ticket = reservation.ticket.to_text();
    ReservationView {
        room_id: reservation.room.to_string(),
        user_id: reservation.user.to_string(),
        ws_url: format!("/api/v1/ws?ticket={ticket}"),
        ticket,
        expires_at: rfc3339(timestamp_to_datetime(reservation.expires_at)),
    }
}

pub fn place(place: &Place) -> QueueView {
    let ticket = place.ticket.to_text();
    QueueView {
        room_id: place.room.to_string(),
        user_id: place.user.to_string(),
        position: place.position,
        ws_url: format!("/api/v1/ws?ticket={ticket}"),
        ticket,
        expires_at: rfc3339(timestamp_to_datetime(place.expires_at)),
    }
}

pub fn message(message: &MessageRecord) -> Message {
    Message {
        id: message.id,
        room_id: message.room_id.to_string(),
        user_id: message.user_id.to_string(),
        body: message.body.clone(),
        sent_at: rfc3339(message.sent_at),
    }
}

#[cfg(test)]
mod tests {
    use roomgate_domain::{RoomId, UserId};

    use super::*;

    fn seats(reserved: u32) -> RoomCounts {
        RoomCounts {
            reserved,
            ..RoomCounts::default()
        }
    }

    #[test]
    fn a_confirmed_seat_not_yet_committed_reads_as_reserved() {
        // The store holds 12 joined seats and 1 reservation; the database counts 10 rows: two
        // joins are in flight.
        let counts = RoomCounts {
            reserved: 1,
            joined: 12,
            waiting: 4,
        };
        let view = open_room(&record(16, 10), counts);
        assert_eq!((view.attending, view.reserved, view.waiting), (10, 3, 4));
    }

    fn record(capacity: u32, attending: u32) -> RoomRecord {
        RoomRecord {
            id: RoomId::parse("r").unwrap(),
            title: "R".into(),
            capacity,
            attending,
            password_hash: None,
            created_by: UserId::parse("alice").unwrap(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_seat_counted_by_both_reads_is_shown_once() {
        // 15 members when the row was read; since then one left and a reservation took the seat.
        let view = open_room(&record(16, 15), seats(2));
        assert_eq!((view.attending, view.reserved), (15, 1));
    }

    #[test]
    fn consistent_reads_are_shown_as_they_are() {
        let view = open_room(&record(16, 10), seats(6));
        assert_eq!((view.attending, view.reserved), (10, 6));
    }
}
