//! The reaper: a tokio task that periodically reclaims expired reservations and pending rooms.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{AnyPendingRooms, AnyPermitStore, PendingRooms, PermitStore};

/// What one pass reclaimed, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapReport {
    pub reservations: usize,
    pub pending_rooms: usize,
}

/// A running reaper. Dropping it without [`Reaper::shutdown`] stops it at its next tick too.
#[derive(Debug)]
pub struct Reaper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reaper {
    /// Starts reaping every `interval`; `on_report` hears about every pass that reclaimed something.
    /// Needs a running tokio runtime.
    pub fn spawn(
        permits: AnyPermitStore,
        pending: AnyPendingRooms,
        interval: Duration,
        on_report: impl Fn(ReapReport) + Send + Sync + 'static,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    changed = stopped.changed() => {
                        if changed.is_err() || *stopped.borrow() {
                            return;
                        }
                    }
                }
                let report = reap_once(&permits, &pending).await;
                if report != ReapReport::default() {
                    on_report(report);
                }
            }
        });
        Self { stop, task }
    }

    /// Stops the task and waits for it, so no pass runs after this returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One pass over both stores. A store that cannot be reached is skipped this time and logged;
/// the next pass tries again.
pub async fn reap_once(permits: &AnyPermitStore, pending: &AnyPendingRooms) -> ReapReport {
    let reservations = permits.reap_expired().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "reaper could not reclaim reservations");
        0
    });
    let pending_rooms = pending.reap_expired().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "reaper could not reclaim pending rooms");
        0
    });
    ReapReport {
        reservations,
        pending_rooms,
    }
}
