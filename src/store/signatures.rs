//! Signed requests already accepted (replay protection where a signature does not cover
//! the body).

use super::Store;

/// Records `signature` (with its timestamp) as used; false when it was used before.
pub async fn first_use(store: &Store, platform: &str, signature: &str, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO signatures_seen (platform, signature, seen_at) VALUES ($1, $2, $3)
         ON CONFLICT (platform, signature) DO NOTHING",
    )
    .bind(platform)
    .bind(signature)
    .bind(now)
    .execute(&store.pool)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Forgets one signature (its request was not recorded after all).
pub async fn forget(store: &Store, platform: &str, signature: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM signatures_seen WHERE platform = $1 AND signature = $2")
        .bind(platform)
        .bind(signature)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Forgets up to `limit` signatures seen before `before` (they fail the time check by then).
pub async fn prune(store: &Store, before: i64, limit: i64) -> anyhow::Result<u64> {
    let res = sqlx::query(
        "DELETE FROM signatures_seen WHERE (platform, signature) IN
           (SELECT platform, signature FROM signatures_seen WHERE seen_at < $1 ORDER BY seen_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&store.pool)
    .await?;
    Ok(res.rows_affected())
}
