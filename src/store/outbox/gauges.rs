//! What the outbox holds (for `/metrics` and the workers' sleep), and pruning.

use super::*;

/// Items not yet delivered.
pub async fn depth(store: &Store) -> anyhow::Result<i64> {
    let row =
        sqlx::query("SELECT CAST(COALESCE(SUM(pending), 0) AS BIGINT) AS n FROM outbox_channels WHERE pending > 0")
            .fetch_one(&store.read)
            .await?;
    Ok(get_i64(&row, "n")?)
}

/// When the oldest message not yet delivered was written, if any waits.
pub async fn oldest_pending(store: &Store) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query("SELECT MIN(created_at) AS t FROM outbox WHERE status = 'pending'")
        .fetch_one(&store.read)
        .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

/// The earliest time a queue of `platform` falls due, if any waits.
pub async fn next_due(store: &Store, platform: &str) -> anyhow::Result<Option<i64>> {
    lease::next_due(store, &OUTBOX_CHANNELS, Some(platform)).await
}

/// The earliest time any queue falls due, if any waits.
pub async fn next_wake(store: &Store) -> anyhow::Result<Option<i64>> {
    lease::next_due(store, &OUTBOX_CHANNELS, None).await
}

/// Deletes up to `limit` items delivered (or given up) before `before`; how many went.
/// Where messages live (`message_refs`) is kept: later edits need it.
pub async fn prune(store: &Store, before: i64, limit: i64) -> anyhow::Result<u64> {
    let res = sqlx::query(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('sent', 'superseded', 'failed') AND sent_at < $1 ORDER BY sent_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&store.pool)
    .await?;
    Ok(res.rows_affected())
}
