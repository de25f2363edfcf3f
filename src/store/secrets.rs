//! Keys releasebot generates once and keeps.

use super::Store;
use sqlx::Row;

/// The value stored under `name`, storing `fresh` first when there is none (the first
/// of several replicas to start wins; the others read its value).
pub async fn get_or_create(store: &Store, name: &str, fresh: &str, now: i64) -> anyhow::Result<String> {
    sqlx::query("INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .bind(now)
        .execute(&store.pool)
        .await?;
    let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_one(&store.pool)
        .await?;
    Ok(row.try_get("value")?)
}
