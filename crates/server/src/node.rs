//! Node liveness: this process's id in the database, its heartbeat, and reclaiming the
//! memberships of processes that are gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomgate_admission::AnyPermitStore;
use roomgate_domain::{NodeId, SessionId, UserRoomKey};
use roomgate_persistence::{Database, DepartureReason, PersistenceError};
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, ReapedKind};
use crate::session::membership::announce_departure;
use crate::state::AppState;

/// Registers `node`. A node that is alone (no shared admission store) also reclaims every
/// membership an earlier run left behind (a `kill -9`, a power cut): no session from before
/// this boot can still be alive. Nodes that share Redis cannot know that of each other, so
/// they reclaim only nodes whose lease ran out, in [`spawn_liveness`].
pub async fn boot(
    db: &Database,
    node: NodeId,
    metrics: &Metrics,
    alone: bool,
) -> Result<(), PersistenceError> {
    db.register_node(node).await?;
    if alone {
        let reclaimed = db.reap_all_nodes_except(node).await?;
        if !reclaimed.is_empty() {
            tracing::info!(
                members = reclaimed.len(),
                "reclaimed memberships left by earlier runs"
            );
        }
        metrics.reaped(ReapedKind::Member, reclaimed.len());
    }
    Ok(())
}

/// Every heartbeat interval until shutdown: records that this node is alive (database, and
/// Redis when shared). With Redis it also reclaims the memberships of nodes whose lease ran out
/// and tells their rooms; their Redis seats are reclaimed by the admission reaper.
pub fn spawn_liveness(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(state.settings.node.heartbeat_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = state.db.heartbeat(state.node).await {
                tracing::warn!(%error, "node heartbeat failed");
            }
            if !state.permits.is_shared() {
                continue;
            }
            match state.permits.heartbeat().await {
                Ok(unknown) if unknown && !first => lease_lost(&state),
                Ok(_) => first = false,
                Err(error) => tracing::warn!(%error, "node lease renewal failed"),
            }
            reclaim_dead_nodes(&state).await;
        }
    })
}

/// Redis no longer knew this node: it missed its lease (a long pause, a network split) and the
/// other nodes have already given its seats away. Its sessions must end, or their rooms would
/// hold more people than seats.
fn lease_lost(state: &AppState) {
    tracing::error!("this node's lease ran out and its seats were reclaimed: closing its sessions");
    state.evict_sessions();
}

async fn reclaim_dead_nodes(state: &AppState) {
    let reclaimed = match state.db.reap_dead_nodes(state.settings.node.lease()).await {
        Ok(reclaimed) => reclaimed,
        Err(error) => {
            tracing::warn!(%error, "reclaiming dead nodes failed");
            return;
        }
    };
    if reclaimed.is_empty() {
        return;
    }
    tracing::info!(
        members = reclaimed.len(),
        "reclaimed the members of dead nodes"
    );
    state.metrics.reaped(ReapedKind::Member, reclaimed.len());
    for member in reclaimed {
        let attending = match state.db.get_room(&member.room).await {
            Ok(Some(record)) => record.attending,
            Ok(None) => 0,
            Err(_) => continue,
        };
        announce_departure(state, &member.room, &member.user, attending);
    }
}

/// Every `node.reconcile_interval` until shutdown: compares what the database and Redis say this
/// node holds with the seats its sessions claim ([`crate::live_seats`]) and gives back what no
/// session claims. Departures are normally written by the session itself (retrying through an
/// outage); this is the net under it, for a seat whose writer is gone: a task cancelled or a
/// panic between the commit and the claim's end. A failed pass changes nothing and the next one
/// starts over, so an outage only delays it.
pub fn spawn_reconciliation(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(state.settings.node.reconcile_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut suspects = Suspects::new();
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            reconcile_rows(&state).await;
            suspects = reconcile_redis_seats(&state, suspects).await;
        }
    })
}

/// Removes, and announces, this node's participant rows that no session claims; returns how many.
pub async fn reconcile_rows(state: &AppState) -> usize {
    let seats = match state.db.seats_of_node(state.node).await {
        Ok(seats) => seats,
        Err(error) => {
            tracing::debug!(%error, "reconciliation could not read this node's seats");
            return 0;
        }
    };
    let mut removed = 0;
    // A row whose claim is absent belongs to no live session: claims are taken before a row is
    // written and given up only after it is gone. The removal names the exact row seen, so a
    // membership of the same user that began in between is a different row and stays.
    for seat in seats
        .iter()
        .filter(|seat| !state.live_seats.holds(&seat.room, &seat.user))
    {
        match state.db.remove_seat(seat, DepartureReason::Reclaimed).await {
            Ok(Some(attending)) => {
                tracing::warn!(room = %seat.room, user = %seat.user, "removed a membership no session held");
                removed += 1;
                announce_departure(state, &seat.room, &seat.user, attending);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "reconciliation stopped: the database did not answer");
                break;
            }
        }
    }
    state.metrics.reaped(ReapedKind::OrphanMember, removed);
    removed
}

/// A joined seat in Redis, as the reconciliation tracks it between passes.
type RedisSeat = (UserRoomKey, SessionId);

/// Seats found unclaimed, with when each was first seen so.
type Suspects = HashMap<RedisSeat, Instant>;

/// Gives back this node's Redis seats that no session claims. A seat is confirmed in Redis a
/// moment before its session claims it (the confirming script, then the ticket's removal, each
/// bounded by `redis.response_timeout_ms`), so a seat is given back only once it has been seen
/// unclaimed, with the same session, for longer than that moment can last: a reconcile interval
/// plus two Redis round trips at their longest. Returns the seats still suspected, for the next
/// pass.
async fn reconcile_redis_seats(state: &AppState, suspects: Suspects) -> Suspects {
    let AnyPermitStore::Redis(store) = &state.permits else {
        // In memory a seat is released synchronously as its guard drops; none can outlive it.
        return Suspects::new();
    };
    let seats = match store.seats_of_this_node().await {
        Ok(seats) => seats,
        Err(error) => {
            tracing::debug!(%error, "reconciliation could not read this node's Redis seats");
            return suspects;
        }
    };
    let grace = state.settings.node.reconcile_interval()
        + 2 * Duration::from_millis(state.settings.redis.response_timeout_ms);
    let now = Instant::now();
    let mut still = Suspects::new();
    let mut released = 0;
    for seat in seats {
        if state.live_seats.holds(&seat.0.room, &seat.0.user) {
            continue;
        }
        let first_seen = suspects.get(&seat).copied().unwrap_or(now);
        if now.duration_since(first_seen) < grace {
            still.insert(seat, first_seen);
            continue;
        }
        match store.release_if_held(&seat.0, seat.1).await {
            Ok(true) => {
                tracing::warn!(room = %seat.0.room, user = %seat.0.user, "gave back a Redis seat no session held");
                released += 1;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::debug!(%error, "reconciliation could not give back a Redis seat");
                still.insert(seat, first_seen);
            }
        }
    }
    state.metrics.reaped(ReapedKind::OrphanSeat, released);
    still
}

/// At shutdown: leaves every room this node still holds (normally none, since each session
/// leaves as it closes) and removes the node.
pub async fn retire(db: &Database, node: NodeId, metrics: &Metrics) {
    match db.remove_node(node).await {
        Ok(reclaimed) => {
            if !reclaimed.is_empty() {
                tracing::warn!(members = reclaimed.len(), "memberships removed at shutdown");
            }
            metrics.reaped(ReapedKind::Member, reclaimed.len());
        }
        Err(error) => {
            tracing::error!(%error, "could not remove this node; its members are reclaimed at the next boot");
        }
    }
}
