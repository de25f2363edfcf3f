//! The pruner: deletes what the retention period no longer keeps (handled events,
//! delivered messages, past firings, seen signatures), in small batches.

use crate::clock::SharedClock;
use crate::domain::schedule::Span;
use crate::store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deletes handled inbox events and delivered outbox messages older than the retention,
/// in small batches so that it never holds the database for long. The audit trail and
/// where messages live (for later edits) are kept.
#[derive(Clone)]
pub struct Pruner {
    store: Store,
    clock: SharedClock,
    retention: Span,
}

/// Rows deleted by one statement.
pub const PRUNE_BATCH: i64 = 500;
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Pruner {
    pub fn new(store: Store, clock: SharedClock, retention: Span) -> Self {
        Self {
            store,
            clock,
            retention,
        }
    }

    /// One pass: deletes everything older than the retention, batch by batch. Returns
    /// (inbox events, outbox messages) deleted.
    pub async fn prune(&self) -> anyhow::Result<(u64, u64)> {
        let before = self.clock.now_ms() - self.retention.ms();
        let mut total = (0, 0);
        loop {
            // Used signatures fail the time check long before the retention.
            let stale = self.clock.now_ms() - 3 * crate::chat::dingtalk::verify::MAX_SKEW_MS;
            crate::store::signatures::prune(&self.store, stale, PRUNE_BATCH).await?;
            crate::store::firings::prune(&self.store, before, PRUNE_BATCH).await?;
            let events = crate::store::inbox::prune(&self.store, before, PRUNE_BATCH).await?;
            let messages = crate::store::outbox::prune(&self.store, before, PRUNE_BATCH).await?;
            total = (total.0 + events, total.1 + messages);
            if events < PRUNE_BATCH as u64 && messages < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.prune().await {
                Ok((0, 0)) => {}
                Ok((events, messages)) => {
                    tracing::info!(events, messages, "pruned old inbox events and outbox messages")
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "pruning"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
