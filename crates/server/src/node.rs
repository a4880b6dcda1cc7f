//! Node liveness: this process's id in the database, its heartbeat, and reclaiming the
//! memberships of processes that are gone.

use std::time::Duration;

use roomgate_domain::NodeId;
use roomgate_persistence::{Database, PersistenceError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Registers `node` and, since without a shared admission store this process is the only
/// node, reclaims every membership an earlier run left behind (a `kill -9`, a power cut):
/// no session from before this boot can still be alive.
pub async fn boot(db: &Database, node: NodeId, metrics: &Metrics) -> Result<(), PersistenceError> {
    db.register_node(node).await?;
    let reclaimed = db.reap_all_nodes_except(node).await?;
    if !reclaimed.is_empty() {
        tracing::info!(
            members = reclaimed.len(),
            "reclaimed memberships left by earlier runs"
        );
    }
    metrics.reaped("member", reclaimed.len());
    Ok(())
}

/// Records every `interval` that `node` is alive, until `stop` fires.
pub fn spawn_heartbeat(
    db: Database,
    node: NodeId,
    interval: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    if let Err(error) = db.heartbeat(node).await {
                        tracing::warn!(%error, "node heartbeat failed");
                    }
                }
            }
        }
    })
}

/// At shutdown: leaves every room this node still holds (normally none, since each session
/// leaves as it closes) and removes the node.
pub async fn retire(db: &Database, node: NodeId, metrics: &Metrics) {
    match db.remove_node(node).await {
        Ok(reclaimed) => {
            if !reclaimed.is_empty() {
                tracing::warn!(members = reclaimed.len(), "memberships removed at shutdown");
            }
            metrics.reaped("member", reclaimed.len());
        }
        Err(error) => {
            tracing::error!(%error, "could not remove this node; its members are reclaimed at the next boot");
        }
    }
}
