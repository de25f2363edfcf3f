//! Keys releasebot generates once and keeps.

use super::Store;
use crate::chat::links::{Links, KEY_NAME};
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

/// Page links signed with the key from `secret` when given, else the database's (generated on first use).
pub async fn links(store: &Store, public_url: &str, secret: Option<&str>, now: i64) -> anyhow::Result<Links> {
    if let Some(s) = secret.filter(|s| !s.trim().is_empty()) {
        return Ok(Links::new(public_url, s.as_bytes()));
    }
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let key = get_or_create(store, KEY_NAME, &fresh, now).await?;
    Ok(Links::new(public_url, key.as_bytes()))
}
