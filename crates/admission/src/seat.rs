//! `SeatGuard`: a joined seat whose permit goes back when the guard is dropped, exactly once.

use std::fmt;
use std::sync::Arc;

use roomgate_domain::{SessionId, UserRoomKey};

use crate::registry::MemorySeat;

/// Gives a joined seat back to the store that issued it. Implemented by shared stores whose
/// release is asynchronous: they must not block in `release` (spawn, or queue the work).
pub trait SeatRelease: Send + Sync + 'static {
    fn release(&self, key: &UserRoomKey, session: SessionId);
}

pub(crate) enum Releaser {
    /// The in-memory registry releases inline; no allocation per seat.
    Memory(MemorySeat),
    /// Any other store.
    Shared(Arc<dyn SeatRelease>),
}

/// Proof that `key` holds a joined seat for `session`.
///
/// The seat is given back when the guard is dropped or [`SeatGuard::release`]d; since both
/// consume the guard, the permit returns exactly once whatever way the session ends.
#[must_use = "dropping the guard gives the seat back at once"]
pub struct SeatGuard {
    key: UserRoomKey,
    session: SessionId,
    releaser: Option<Releaser>,
}

impl SeatGuard {
    pub(crate) fn new(key: UserRoomKey, session: SessionId, releaser: Releaser) -> Self {
        Self {
            key,
            session,
            releaser: Some(releaser),
        }
    }

    /// A guard for a seat held by a store outside this crate.
    pub fn shared(key: UserRoomKey, session: SessionId, releaser: Arc<dyn SeatRelease>) -> Self {
        Self::new(key, session, Releaser::Shared(releaser))
    }

    pub fn key(&self) -> &UserRoomKey {
        &self.key
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Gives the seat back now. Same as dropping the guard; reads better at an explicit exit.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for SeatGuard {
    fn drop(&mut self) {
        match self.releaser.take() {
            Some(Releaser::Memory(seat)) => seat.release(&self.key, self.session),
            Some(Releaser::Shared(store)) => store.release(&self.key, self.session),
            None => {}
        }
    }
}

impl fmt::Debug for SeatGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeatGuard")
            .field("key", &self.key)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}
