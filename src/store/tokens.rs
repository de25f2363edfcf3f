//! API tokens: made (only the hash of the secret kept), listed, revoked, and looked up by
//! id when presented.

use super::{get_i64, Conn};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The applications it may act on (`*`: all).
    pub applications: Vec<String>,
    pub secret_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, applications, secret_hash, created_by, created_at, last_used_at, revoked_at";

fn from_row(r: &AnyRow) -> anyhow::Result<ApiToken> {
    Ok(ApiToken {
        id: get_i64(r, "id")?,
        name: r.try_get("name")?,
        applications: serde_json::from_str(&r.try_get::<String, _>("applications")?)?,
        secret_hash: r.try_get("secret_hash")?,
        created_by: r.try_get("created_by")?,
        created_at: get_i64(r, "created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Records a new token; `None` when a token of that name is live already.
pub async fn create(
    conn: &mut Conn,
    name: &str,
    applications: &[String],
    secret_hash: &str,
    by: &str,
    now: i64,
) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO api_tokens (name, applications, secret_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(serde_json::to_string(applications)?)
    .bind(secret_hash)
    .bind(by)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(|r| get_i64(r, "id")).transpose()?)
}

/// The live tokens, by name.
pub async fn live(conn: &mut Conn) -> anyhow::Result<Vec<ApiToken>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE revoked_at IS NULL ORDER BY name"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// A token by id, revoked or not.
pub async fn get(conn: &mut Conn, id: i64) -> anyhow::Result<Option<ApiToken>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Revokes the live token of that name; false when there is none.
pub async fn revoke(conn: &mut Conn, name: &str, by: &str, now: i64) -> anyhow::Result<bool> {
    let res =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE name = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(by)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    Ok(res.rows_affected() == 1)
}

/// Notes a use of the token.
pub async fn used(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
