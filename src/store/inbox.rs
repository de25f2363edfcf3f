//! Inbound events, recorded before the platform is acknowledged and processed once.
//! The unique `dedupe_key` turns retried deliveries into no-ops.

use super::{get_i64, Conn, Store};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub platform: String,
    pub payload: String,
}

/// Records an event; `None` when the same delivery was already recorded.
pub async fn insert(
    store: &Store,
    platform: &str,
    dedupe_key: &str,
    payload: &str,
    now: i64,
) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO inbox (platform, dedupe_key, payload, status, received_at) VALUES ($1, $2, $3, 'pending', $4)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(platform)
    .bind(dedupe_key)
    .bind(payload)
    .bind(now)
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| get_i64(&r, "id")).transpose().map_err(Into::into)
}

/// Takes the oldest pending event (or one whose lease expired) for `lease_ms`.
pub async fn lease_next(store: &Store, now: i64, lease_ms: i64) -> anyhow::Result<Option<InboxRow>> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT id, platform, payload FROM inbox
         WHERE status = 'pending' OR (status = 'processing' AND lease_until < $1)
         ORDER BY id LIMIT 1{}",
        store.skip_locked()
    ))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let item = InboxRow {
        id: get_i64(&row, "id")?,
        platform: row.try_get("platform")?,
        payload: row.try_get("payload")?,
    };
    sqlx::query("UPDATE inbox SET status = 'processing', attempts = attempts + 1, lease_until = $1 WHERE id = $2")
        .bind(now + lease_ms)
        .bind(item.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(item))
}

/// Marks an event handled; called inside the transaction of its effects.
pub async fn mark_done(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE inbox SET status = 'done', processed_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn mark_failed(conn: &mut Conn, id: i64, error: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE inbox SET status = 'failed', processed_at = $1, error = $2 WHERE id = $3")
        .bind(now)
        .bind(error)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn pending(store: &Store) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE status IN ('pending', 'processing')")
        .fetch_one(&store.pool)
        .await?;
    Ok(get_i64(&row, "n")?)
}

/// Takes one given event for processing now (the platform waits for the answer);
/// `None` when a worker has it already.
pub async fn lease_id(store: &Store, id: i64, now: i64, lease_ms: i64) -> anyhow::Result<Option<InboxRow>> {
    let res = sqlx::query(
        "UPDATE inbox SET status = 'processing', attempts = attempts + 1, lease_until = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(now + lease_ms)
    .bind(id)
    .execute(&store.pool)
    .await?;
    if res.rows_affected() != 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT id, platform, payload FROM inbox WHERE id = $1")
        .bind(id)
        .fetch_one(&store.pool)
        .await?;
    Ok(Some(InboxRow {
        id: get_i64(&row, "id")?,
        platform: row.try_get("platform")?,
        payload: row.try_get("payload")?,
    }))
}
