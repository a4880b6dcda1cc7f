//! The admission state machine, as pure functions.
//!
//! For one [`UserRoomKey`] a seat goes *none → reserved → joined → gone*, or *reserved → gone*
//! by cancel or expiry. In a full room a user who asks to wait goes *none → waiting*, and from
//! there *waiting → reserved* when a freed seat is handed to the head of the line, or
//! *waiting → gone* when the place is given up (cancel, its socket ending, or expiry before the
//! socket opened). For one room id a creation goes *absent → pending → open*, or
//! *pending → absent* by expiry. Each step either returns the next state and the effects the
//! caller must carry out, or a typed refusal that changes nothing. Stores (in memory, Redis) and
//! the server drive their data through these functions so that the rules live in one place.

use crate::error::AdmissionError;
use crate::ids::{SessionId, Timestamp, UserId, UserRoomKey};
use crate::ticket::Ticket;

/// What a caller must do to make a transition real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Take one permit from the room's pool.
    TakePermit,
    /// Give one permit back to the room's pool.
    ReturnPermit,
    /// Keep the room's creation in the pending registry (nothing is written to the database).
    RegisterPending,
    /// Forget the pending creation without writing anything.
    DropPending,
    /// Write the room row (the pending room becomes real).
    WriteRoom,
    /// Write the participant row and count it in `attending`.
    WriteMembership,
    /// Delete the participant row and uncount it.
    RemoveMembership,
    /// Put the user at the back of the room's waiting line.
    JoinLine,
    /// Take the user out of the room's waiting line; everyone behind moves up.
    LeaveLine,
}

/// Whether a reservation may take a place in the waiting line when no seat is free for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Refuse with `RoomFull`.
    No,
    /// Take a place at the back of the line; `line_full` refuses with `QueueFull` instead.
    Yes { line_full: bool, max_waiting: u32 },
}

/// Where one user's seat in one room stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeatState {
    None,
    Reserved {
        ticket: Ticket,
        expires_at: Timestamp,
    },
    Joined {
        session: SessionId,
    },
    /// A place in the room's waiting line. Until its socket is attached the place lives until
    /// `expires_at`; once attached it lives as long as that socket (`attached`).
    Waiting {
        ticket: Ticket,
        expires_at: Timestamp,
        attached: Option<SessionId>,
    },
    Gone,
}

impl SeatState {
    fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reserved { .. } => "reserved",
            Self::Joined { .. } => "joined",
            Self::Waiting { .. } => "waiting",
            Self::Gone => "gone",
        }
    }

    /// Whether this is a place in the waiting line.
    pub fn is_waiting(&self) -> bool {
        matches!(self, Self::Waiting { .. })
    }

    /// Whether this state holds a permit (reserved and joined seats do; a place in line does not).
    pub fn holds_permit(&self) -> bool {
        matches!(self, Self::Reserved { .. } | Self::Joined { .. })
    }
}

/// Something that happens to a seat.
#[derive(Clone, Debug)]
pub enum SeatEvent<'a> {
    /// Phase 1: hold a seat. `free_permits` is what the room's pool has left for this user (0
    /// while anyone waits in line: no barging); `capacity` is only used to word the refusal.
    Reserve {
        ticket: Ticket,
        expires_at: Timestamp,
        now: Timestamp,
        free_permits: u32,
        capacity: u32,
        wait: Wait,
    },
    /// The waiting socket of a place in line opened with the place's ticket.
    Attach {
        ticket: &'a Ticket,
        session: SessionId,
        now: Timestamp,
    },
    /// A seat freed while this place was at the head of the line: the seat is handed to it as a
    /// reservation on the same ticket, held until `expires_at`.
    Promote { expires_at: Timestamp },
    /// The waiting socket ended.
    LeaveLine { session: SessionId },
    /// Phase 2: the WebSocket presents its ticket.
    Confirm {
        ticket: &'a Ticket,
        session: SessionId,
        now: Timestamp,
    },
    /// The user gives the reservation back before confirming.
    Cancel,
    /// The reaper finds the reservation past its TTL.
    Expire { now: Timestamp },
    /// The session ended, however it ended.
    Disconnect { session: SessionId },
}

impl SeatEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Reserve { .. } => "reserve",
            Self::Attach { .. } => "attach",
            Self::Promote { .. } => "promote",
            Self::LeaveLine { .. } => "leave_line",
            Self::Confirm { .. } => "confirm",
            Self::Cancel => "cancel",
            Self::Expire { .. } => "expire",
            Self::Disconnect { .. } => "disconnect",
        }
    }
}

/// A legal step: the next state and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<S> {
    pub next: S,
    pub effects: &'static [Effect],
}

/// A ticket presented on a WebSocket, to a reservation or a place held on `held` until
/// `expires_at`: a different ticket is unknown, a late one has expired.
fn check_ticket(
    held: &Ticket,
    expires_at: Timestamp,
    presented: &Ticket,
    now: Timestamp,
) -> Result<(), AdmissionError> {
    if held != presented {
        Err(AdmissionError::InvalidTicket)
    } else if now >= expires_at {
        Err(AdmissionError::TicketExpired)
    } else {
        Ok(())
    }
}

fn illegal(state: &'static str, event: &'static str) -> AdmissionError {
    AdmissionError::IllegalTransition { state, event }
}

/// Applies `event` to the seat of `key` in `state`.
pub fn seat_step(
    key: &UserRoomKey,
    state: &SeatState,
    event: SeatEvent<'_>,
) -> Result<Transition<SeatState>, AdmissionError> {
    use SeatState as S;
    let (state_name, event_name) = (state.name(), event.name());
    match (state, event) {
        (
            S::None | S::Gone,
            SeatEvent::Reserve {
                ticket,
                expires_at,
                free_permits,
                capacity,
                wait,
                ..
            },
        ) => match (free_permits, wait) {
            (1.., _) => Ok(Transition {
                next: S::Reserved { ticket, expires_at },
                effects: &[Effect::TakePermit],
            }),
            (0, Wait::No) => Err(AdmissionError::RoomFull {
                room: key.room.clone(),
                capacity,
            }),
            (
                0,
                Wait::Yes {
                    line_full: true,
                    max_waiting,
                },
            ) => Err(AdmissionError::QueueFull {
                room: key.room.clone(),
                max_waiting,
            }),
            (
                0,
                Wait::Yes {
                    line_full: false, ..
                },
            ) => Ok(Transition {
                next: S::Waiting {
                    ticket,
                    expires_at,
                    attached: None,
                },
                effects: &[Effect::JoinLine],
            }),
        },
        // Asking again while in line keeps the place: a seat is only ever handed to the head.
        // Without `wait` the answer is that no seat is free for this user.
        (
            S::Waiting {
                expires_at: held_until,
                attached,
                ..
            },
            SeatEvent::Reserve {
                ticket,
                expires_at,
                now,
                capacity,
                wait,
                ..
            },
        ) => match wait {
            Wait::No => Err(AdmissionError::RoomFull {
                room: key.room.clone(),
                capacity,
            }),
            Wait::Yes { .. } if attached.is_some() || now < *held_until => Ok(Transition {
                next: state.clone(),
                effects: &[],
            }),
            // A place whose socket never opened in time and was not reaped yet: same place,
            // fresh ticket.
            Wait::Yes { .. } => Ok(Transition {
                next: S::Waiting {
                    ticket,
                    expires_at,
                    attached: None,
                },
                effects: &[],
            }),
        },
        // Reserving again while a reservation is held is idempotent: a live one is kept as is;
        // one that expired but was not reaped yet keeps its permit and gets a fresh ticket.
        (
            S::Reserved {
                expires_at: held_until,
                ..
            },
            SeatEvent::Reserve {
                ticket,
                expires_at,
                now,
                ..
            },
        ) => {
            let next = if now < *held_until {
                state.clone()
            } else {
                S::Reserved { ticket, expires_at }
            };
            Ok(Transition { next, effects: &[] })
        }
        (S::Joined { .. }, SeatEvent::Reserve { .. }) => Err(AdmissionError::AlreadyJoined {
            room: key.room.clone(),
            user: key.user.clone(),
        }),

        (
            S::Reserved {
                ticket: held,
                expires_at,
            },
            SeatEvent::Confirm {
                ticket,
                session,
                now,
            },
        ) => {
            check_ticket(held, *expires_at, ticket, now)?;
            Ok(Transition {
                next: S::Joined { session },
                effects: &[Effect::WriteMembership],
            })
        }
        (_, SeatEvent::Confirm { .. }) => Err(AdmissionError::InvalidTicket),

        (
            S::Waiting {
                ticket: held,
                expires_at,
                attached: None,
            },
            SeatEvent::Attach {
                ticket,
                session,
                now,
            },
        ) => {
            check_ticket(held, *expires_at, ticket, now)?;
            Ok(Transition {
                next: S::Waiting {
                    ticket: held.clone(),
                    expires_at: *expires_at,
                    attached: Some(session),
                },
                effects: &[],
            })
        }
        // A second socket for the same place: the ticket is single-use.
        (_, SeatEvent::Attach { .. }) => Err(AdmissionError::InvalidTicket),

        (S::Waiting { ticket, .. }, SeatEvent::Promote { expires_at }) => Ok(Transition {
            next: S::Reserved {
                ticket: ticket.clone(),
                expires_at,
            },
            effects: &[Effect::LeaveLine, Effect::TakePermit],
        }),

        (
            S::Waiting {
                attached: Some(held),
                ..
            },
            SeatEvent::LeaveLine { session },
        ) if *held == session => Ok(Transition {
            next: S::Gone,
            effects: &[Effect::LeaveLine],
        }),

        (S::Reserved { .. }, SeatEvent::Cancel) => Ok(Transition {
            next: S::Gone,
            effects: &[Effect::ReturnPermit],
        }),
        (S::Waiting { .. }, SeatEvent::Cancel) => Ok(Transition {
            next: S::Gone,
            effects: &[Effect::LeaveLine],
        }),
        (_, SeatEvent::Cancel) => Err(AdmissionError::ReservationNotFound {
            room: key.room.clone(),
            user: key.user.clone(),
        }),

        (S::Reserved { expires_at, .. }, SeatEvent::Expire { now }) if now >= *expires_at => {
            Ok(Transition {
                next: S::Gone,
                effects: &[Effect::ReturnPermit],
            })
        }

        (
            S::Waiting {
                expires_at,
                attached: None,
                ..
            },
            SeatEvent::Expire { now },
        ) if now >= *expires_at => Ok(Transition {
            next: S::Gone,
            effects: &[Effect::LeaveLine],
        }),

        (S::Joined { session: held }, SeatEvent::Disconnect { session }) if *held == session => {
            Ok(Transition {
                next: S::Gone,
                effects: &[Effect::RemoveMembership, Effect::ReturnPermit],
            })
        }

        _ => Err(illegal(state_name, event_name)),
    }
}

/// Where the creation of one room id stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomState {
    Absent,
    Pending {
        creator: UserId,
        expires_at: Timestamp,
    },
    Open,
}

impl RoomState {
    fn name(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Pending { .. } => "pending",
            Self::Open => "open",
        }
    }
}

/// Something that happens to a room id.
#[derive(Clone, Debug)]
pub enum RoomEvent {
    /// A user asks to create the room.
    Create {
        creator: UserId,
        expires_at: Timestamp,
        now: Timestamp,
    },
    /// The creator's WebSocket confirmed: the room is written.
    Materialize { now: Timestamp },
    /// The reaper finds the pending creation past its TTL.
    Expire { now: Timestamp },
}

impl RoomEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Materialize { .. } => "materialize",
            Self::Expire { .. } => "expire",
        }
    }
}

/// Applies `event` to the room `room` in `state`.
pub fn room_step(
    room: &crate::ids::RoomId,
    state: &RoomState,
    event: RoomEvent,
) -> Result<Transition<RoomState>, AdmissionError> {
    use RoomState as S;
    let (state_name, event_name) = (state.name(), event.name());
    let pending_is_live = |expires_at: &Timestamp, now: Timestamp| now < *expires_at;
    match (state, event) {
        (
            S::Absent,
            RoomEvent::Create {
                creator,
                expires_at,
                ..
            },
        ) => Ok(Transition {
            next: S::Pending {
                creator,
                expires_at,
            },
            effects: &[Effect::RegisterPending, Effect::TakePermit],
        }),
        // A pending creation past its TTL that the reaper has not reached yet no longer counts:
        // the new creator replaces it, and the old creator's permit goes back.
        (
            S::Pending {
                expires_at: old, ..
            },
            RoomEvent::Create {
                creator,
                expires_at,
                now,
            },
        ) => {
            if pending_is_live(old, now) {
                Err(AdmissionError::RoomPending { room: room.clone() })
            } else {
                Ok(Transition {
                    next: S::Pending {
                        creator,
                        expires_at,
                    },
                    effects: &[
                        Effect::ReturnPermit,
                        Effect::RegisterPending,
                        Effect::TakePermit,
                    ],
                })
            }
        }
        (S::Open, RoomEvent::Create { .. }) => {
            Err(AdmissionError::RoomExists { room: room.clone() })
        }

        (S::Pending { expires_at, .. }, RoomEvent::Materialize { now }) => {
            if pending_is_live(expires_at, now) {
                Ok(Transition {
                    next: S::Open,
                    effects: &[
                        Effect::DropPending,
                        Effect::WriteRoom,
                        Effect::WriteMembership,
                    ],
                })
            } else {
                Err(AdmissionError::TicketExpired)
            }
        }
        (S::Absent, RoomEvent::Materialize { .. }) => {
            Err(AdmissionError::RoomNotFound { room: room.clone() })
        }

        (S::Pending { expires_at, .. }, RoomEvent::Expire { now })
            if !pending_is_live(expires_at, now) =>
        {
            Ok(Transition {
                next: S::Absent,
                effects: &[Effect::DropPending, Effect::ReturnPermit],
            })
        }

        _ => Err(illegal(state_name, event_name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RoomId;

    fn key() -> UserRoomKey {
        UserRoomKey::new(UserId::parse("alice").unwrap(), RoomId::parse("r").unwrap())
    }

    fn reserve(ticket: &Ticket, now: u64, free: u32) -> SeatEvent<'static> {
        SeatEvent::Reserve {
            ticket: ticket.clone(),
            expires_at: Timestamp(now + 100),
            now: Timestamp(now),
            free_permits: free,
            capacity: 3,
            wait: Wait::No,
        }
    }

    fn reserved(ticket: &Ticket, expires_at: u64) -> SeatState {
        SeatState::Reserved {
            ticket: ticket.clone(),
            expires_at: Timestamp(expires_at),
        }
    }

    fn wait_for(ticket: &Ticket, now: u64, line_full: bool) -> SeatEvent<'static> {
        SeatEvent::Reserve {
            ticket: ticket.clone(),
            expires_at: Timestamp(now + 100),
            now: Timestamp(now),
            free_permits: 0,
            capacity: 3,
            wait: Wait::Yes {
                line_full,
                max_waiting: 7,
            },
        }
    }

    fn waiting(ticket: &Ticket, expires_at: u64, attached: Option<SessionId>) -> SeatState {
        SeatState::Waiting {
            ticket: ticket.clone(),
            expires_at: Timestamp(expires_at),
            attached,
        }
    }

    #[test]
    fn a_full_room_gives_a_place_in_line_to_whoever_asks_to_wait() {
        let t = Ticket::generate();
        let step = seat_step(&key(), &SeatState::None, wait_for(&t, 0, false)).unwrap();
        assert_eq!(step.next, waiting(&t, 100, None));
        assert_eq!(step.effects, &[Effect::JoinLine]);
        let err = seat_step(&key(), &SeatState::None, wait_for(&t, 0, true)).unwrap_err();
        assert_eq!(
            err,
            AdmissionError::QueueFull {
                room: key().room,
                max_waiting: 7
            }
        );
        // A free seat is taken at once, wait or not.
        let mut with_seat = wait_for(&t, 0, false);
        if let SeatEvent::Reserve { free_permits, .. } = &mut with_seat {
            *free_permits = 1;
        }
        let step = seat_step(&key(), &SeatState::None, with_seat).unwrap();
        assert_eq!(step.next, reserved(&t, 100));
    }

    #[test]
    fn asking_again_in_line_keeps_the_place_and_without_wait_is_room_full() {
        let held = Ticket::generate();
        let place = waiting(&held, 100, None);
        let step = seat_step(&key(), &place, wait_for(&Ticket::generate(), 50, false)).unwrap();
        assert_eq!(step.next, place);
        assert!(step.effects.is_empty());
        let err = seat_step(&key(), &place, reserve(&Ticket::generate(), 50, 1)).unwrap_err();
        assert!(matches!(err, AdmissionError::RoomFull { .. }));
        // An unattached place past its expiry that was not reaped yet gets a fresh ticket.
        let fresh = Ticket::generate();
        let step = seat_step(&key(), &place, wait_for(&fresh, 100, false)).unwrap();
        assert_eq!(step.next, waiting(&fresh, 200, None));
    }

    #[test]
    fn attach_ties_the_place_to_its_socket_once() {
        let t = Ticket::generate();
        let s = SessionId(9);
        let attach = |ticket, now| SeatEvent::Attach {
            ticket,
            session: s,
            now: Timestamp(now),
        };
        let step = seat_step(&key(), &waiting(&t, 100, None), attach(&t, 10)).unwrap();
        assert_eq!(step.next, waiting(&t, 100, Some(s)));
        let other = Ticket::generate();
        for (state, event, refusal) in [
            (
                waiting(&t, 100, None),
                attach(&other, 10),
                AdmissionError::InvalidTicket,
            ),
            (
                waiting(&t, 100, None),
                attach(&t, 100),
                AdmissionError::TicketExpired,
            ),
            (
                waiting(&t, 100, Some(s)),
                attach(&t, 10),
                AdmissionError::InvalidTicket,
            ),
            (
                reserved(&t, 100),
                attach(&t, 10),
                AdmissionError::InvalidTicket,
            ),
        ] {
            assert_eq!(seat_step(&key(), &state, event).unwrap_err(), refusal);
        }
    }

    #[test]
    fn promotion_hands_the_freed_permit_to_the_head_on_the_same_ticket() {
        let t = Ticket::generate();
        for attached in [None, Some(SessionId(1))] {
            let step = seat_step(
                &key(),
                &waiting(&t, 100, attached),
                SeatEvent::Promote {
                    expires_at: Timestamp(500),
                },
            )
            .unwrap();
            assert_eq!(step.next, reserved(&t, 500));
            assert_eq!(step.effects, &[Effect::LeaveLine, Effect::TakePermit]);
        }
        let promote = SeatEvent::Promote {
            expires_at: Timestamp(500),
        };
        assert!(seat_step(&key(), &reserved(&t, 100), promote).is_err());
    }

    #[test]
    fn a_place_is_given_up_by_its_socket_cancel_or_expiry_and_only_so() {
        let t = Ticket::generate();
        let s = SessionId(3);
        let leave = |session| SeatEvent::LeaveLine { session };
        let gone = |state: &SeatState, event| seat_step(&key(), state, event).map(|t| t.next);
        assert_eq!(
            gone(&waiting(&t, 100, Some(s)), leave(s)),
            Ok(SeatState::Gone)
        );
        assert!(gone(&waiting(&t, 100, Some(s)), leave(SessionId(4))).is_err());
        assert!(gone(&waiting(&t, 100, None), leave(s)).is_err());
        // Leaving the line never ends a joined seat of the same session.
        assert!(gone(&SeatState::Joined { session: s }, leave(s)).is_err());
        assert_eq!(
            gone(&waiting(&t, 100, Some(s)), SeatEvent::Cancel),
            Ok(SeatState::Gone)
        );
        let expire = |now| SeatEvent::Expire {
            now: Timestamp(now),
        };
        assert_eq!(
            gone(&waiting(&t, 100, None), expire(100)),
            Ok(SeatState::Gone)
        );
        assert!(gone(&waiting(&t, 100, None), expire(99)).is_err());
        // An attached place lives as long as its socket, whatever the clock says.
        assert!(gone(&waiting(&t, 100, Some(s)), expire(1_000)).is_err());
    }

    #[test]
    fn reserve_takes_a_permit_when_one_is_free() {
        let t = Ticket::generate();
        for from in [SeatState::None, SeatState::Gone] {
            let step = seat_step(&key(), &from, reserve(&t, 0, 1)).unwrap();
            assert_eq!(step.next, reserved(&t, 100));
            assert_eq!(step.effects, &[Effect::TakePermit]);
        }
    }

    #[test]
    fn reserve_without_free_permits_is_room_full() {
        let err =
            seat_step(&key(), &SeatState::None, reserve(&Ticket::generate(), 0, 0)).unwrap_err();
        assert_eq!(
            err,
            AdmissionError::RoomFull {
                room: key().room,
                capacity: 3
            }
        );
    }

    #[test]
    fn reserve_again_keeps_a_live_reservation() {
        let held = Ticket::generate();
        let state = reserved(&held, 100);
        let step = seat_step(&key(), &state, reserve(&Ticket::generate(), 50, 0)).unwrap();
        assert_eq!(step.next, state);
        assert!(step.effects.is_empty());
    }

    #[test]
    fn reserve_again_after_expiry_reissues_the_ticket_on_the_same_permit() {
        let fresh = Ticket::generate();
        let step = seat_step(
            &key(),
            &reserved(&Ticket::generate(), 100),
            reserve(&fresh, 100, 0),
        )
        .unwrap();
        assert_eq!(step.next, reserved(&fresh, 200));
        assert!(step.effects.is_empty());
    }

    #[test]
    fn reserve_while_joined_is_already_joined() {
        let state = SeatState::Joined {
            session: SessionId(1),
        };
        let err = seat_step(&key(), &state, reserve(&Ticket::generate(), 0, 5)).unwrap_err();
        assert!(matches!(err, AdmissionError::AlreadyJoined { .. }));
    }

    #[test]
    fn confirm_with_the_right_live_ticket_joins() {
        let t = Ticket::generate();
        let event = SeatEvent::Confirm {
            ticket: &t,
            session: SessionId(7),
            now: Timestamp(99),
        };
        let step = seat_step(&key(), &reserved(&t, 100), event).unwrap();
        assert_eq!(
            step.next,
            SeatState::Joined {
                session: SessionId(7)
            }
        );
        assert_eq!(step.effects, &[Effect::WriteMembership]);
    }

    #[test]
    fn confirm_refusals_are_told_apart() {
        let t = Ticket::generate();
        let other = Ticket::generate();
        let at = |now| SeatEvent::Confirm {
            ticket: &t,
            session: SessionId(1),
            now: Timestamp(now),
        };
        assert_eq!(
            seat_step(&key(), &reserved(&t, 100), at(100)).unwrap_err(),
            AdmissionError::TicketExpired
        );
        assert_eq!(
            seat_step(&key(), &reserved(&other, 100), at(0)).unwrap_err(),
            AdmissionError::InvalidTicket
        );
        for state in [
            SeatState::None,
            SeatState::Gone,
            SeatState::Joined {
                session: SessionId(1),
            },
        ] {
            assert_eq!(
                seat_step(&key(), &state, at(0)).unwrap_err(),
                AdmissionError::InvalidTicket
            );
        }
    }

    #[test]
    fn cancel_returns_the_permit_only_from_reserved() {
        let step = seat_step(
            &key(),
            &reserved(&Ticket::generate(), 100),
            SeatEvent::Cancel,
        )
        .unwrap();
        assert_eq!(step.next, SeatState::Gone);
        assert_eq!(step.effects, &[Effect::ReturnPermit]);
        for state in [
            SeatState::None,
            SeatState::Gone,
            SeatState::Joined {
                session: SessionId(1),
            },
        ] {
            let err = seat_step(&key(), &state, SeatEvent::Cancel).unwrap_err();
            assert!(matches!(err, AdmissionError::ReservationNotFound { .. }));
        }
    }

    #[test]
    fn expire_only_after_the_ttl() {
        let state = reserved(&Ticket::generate(), 100);
        assert!(seat_step(&key(), &state, SeatEvent::Expire { now: Timestamp(99) }).is_err());
        let step = seat_step(
            &key(),
            &state,
            SeatEvent::Expire {
                now: Timestamp(100),
            },
        )
        .unwrap();
        assert_eq!(step.next, SeatState::Gone);
        assert_eq!(step.effects, &[Effect::ReturnPermit]);
        let joined = SeatState::Joined {
            session: SessionId(1),
        };
        assert!(
            seat_step(
                &key(),
                &joined,
                SeatEvent::Expire {
                    now: Timestamp(1000)
                }
            )
            .is_err()
        );
    }

    #[test]
    fn disconnect_releases_only_the_matching_session() {
        let joined = SeatState::Joined {
            session: SessionId(1),
        };
        let step = seat_step(
            &key(),
            &joined,
            SeatEvent::Disconnect {
                session: SessionId(1),
            },
        )
        .unwrap();
        assert_eq!(step.next, SeatState::Gone);
        assert_eq!(
            step.effects,
            &[Effect::RemoveMembership, Effect::ReturnPermit]
        );
        assert!(
            seat_step(
                &key(),
                &joined,
                SeatEvent::Disconnect {
                    session: SessionId(2)
                }
            )
            .is_err()
        );
        // A second disconnect finds the seat gone: the permit cannot come back twice.
        assert!(
            seat_step(
                &key(),
                &SeatState::Gone,
                SeatEvent::Disconnect {
                    session: SessionId(1)
                }
            )
            .is_err()
        );
        assert!(
            seat_step(
                &key(),
                &reserved(&Ticket::generate(), 9),
                SeatEvent::Disconnect {
                    session: SessionId(1)
                }
            )
            .is_err()
        );
    }

    fn room() -> RoomId {
        RoomId::parse("r").unwrap()
    }

    fn create(now: u64) -> RoomEvent {
        RoomEvent::Create {
            creator: UserId::parse("bob").unwrap(),
            expires_at: Timestamp(now + 100),
            now: Timestamp(now),
        }
    }

    fn pending(expires_at: u64) -> RoomState {
        RoomState::Pending {
            creator: UserId::parse("alice").unwrap(),
            expires_at: Timestamp(expires_at),
        }
    }

    #[test]
    fn create_registers_a_pending_room_and_takes_the_first_permit() {
        let step = room_step(&room(), &RoomState::Absent, create(0)).unwrap();
        assert!(matches!(step.next, RoomState::Pending { .. }));
        assert_eq!(step.effects, &[Effect::RegisterPending, Effect::TakePermit]);
    }

    #[test]
    fn second_creation_is_refused_while_pending_or_open() {
        let err = room_step(&room(), &pending(100), create(50)).unwrap_err();
        assert!(matches!(err, AdmissionError::RoomPending { .. }));
        let err = room_step(&room(), &RoomState::Open, create(50)).unwrap_err();
        assert!(matches!(err, AdmissionError::RoomExists { .. }));
    }

    #[test]
    fn an_expired_pending_creation_is_replaced() {
        let step = room_step(&room(), &pending(100), create(100)).unwrap();
        assert_eq!(
            step.next,
            RoomState::Pending {
                creator: UserId::parse("bob").unwrap(),
                expires_at: Timestamp(200)
            }
        );
        assert_eq!(
            step.effects,
            &[
                Effect::ReturnPermit,
                Effect::RegisterPending,
                Effect::TakePermit
            ]
        );
    }

    #[test]
    fn materialize_writes_the_room_then_the_membership() {
        let step = room_step(
            &room(),
            &pending(100),
            RoomEvent::Materialize { now: Timestamp(10) },
        )
        .unwrap();
        assert_eq!(step.next, RoomState::Open);
        assert_eq!(
            step.effects,
            &[
                Effect::DropPending,
                Effect::WriteRoom,
                Effect::WriteMembership
            ]
        );
        let late = room_step(
            &room(),
            &pending(100),
            RoomEvent::Materialize {
                now: Timestamp(100),
            },
        );
        assert_eq!(late.unwrap_err(), AdmissionError::TicketExpired);
        assert!(matches!(
            room_step(
                &room(),
                &RoomState::Absent,
                RoomEvent::Materialize { now: Timestamp(0) }
            )
            .unwrap_err(),
            AdmissionError::RoomNotFound { .. }
        ));
        assert!(
            room_step(
                &room(),
                &RoomState::Open,
                RoomEvent::Materialize { now: Timestamp(0) }
            )
            .is_err()
        );
    }

    #[test]
    fn expire_drops_a_stale_pending_room_without_writing() {
        assert!(
            room_step(
                &room(),
                &pending(100),
                RoomEvent::Expire { now: Timestamp(99) }
            )
            .is_err()
        );
        let step = room_step(
            &room(),
            &pending(100),
            RoomEvent::Expire {
                now: Timestamp(100),
            },
        )
        .unwrap();
        assert_eq!(step.next, RoomState::Absent);
        assert_eq!(step.effects, &[Effect::DropPending, Effect::ReturnPermit]);
        assert!(
            room_step(
                &room(),
                &RoomState::Open,
                RoomEvent::Expire {
                    now: Timestamp(1000)
                }
            )
            .is_err()
        );
        assert!(
            room_step(
                &room(),
                &RoomState::Absent,
                RoomEvent::Expire {
                    now: Timestamp(1000)
                }
            )
            .is_err()
        );
    }
}
