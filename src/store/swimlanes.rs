//! Swimlanes: the lane as JSON beside the columns queries need. A live lane holds its
//! name (a unique index over the lanes that are not deleted); saves check the version.

use super::Conn;
use crate::domain::swimlane::{Lane, LaneStatus};
use sqlx::Row;

fn lane(r: &sqlx::any::AnyRow) -> anyhow::Result<Lane> {
    let data: String = r.try_get("data")?;
    let mut l: Lane = serde_json::from_str(&data)?;
    l.id = r.try_get("id")?;
    l.version = r.try_get("version")?;
    Ok(l)
}

fn channel_key(l: &Lane) -> String {
    format!("{}:{}", l.platform, l.channel)
}

/// Inserts a new lane; `None` when a live lane holds the name already.
pub async fn insert(conn: &mut Conn, l: &Lane, now: i64) -> anyhow::Result<Option<i64>> {
    let res = sqlx::query(
        "INSERT INTO swimlanes (name, status, owner, channel_key, data, version, updated_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
    )
    .bind(&l.name)
    .bind(l.status.as_str())
    .bind(l.owner.to_string())
    .bind(channel_key(l))
    .bind(serde_json::to_string(l)?)
    .bind(now)
    .fetch_one(&mut *conn)
    .await;
    match res {
        Ok(r) => Ok(Some(r.try_get("id")?)),
        Err(e) if super::is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Saves a lane read at `l.version`; false when someone changed it meanwhile.
pub async fn save(conn: &mut Conn, l: &Lane, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE swimlanes SET status = $1, owner = $2, channel_key = $3, data = $4, version = version + 1, updated_at = $5
         WHERE id = $6 AND version = $7",
    )
    .bind(l.status.as_str())
    .bind(l.owner.to_string())
    .bind(channel_key(l))
    .bind(serde_json::to_string(l)?)
    .bind(now)
    .bind(l.id)
    .bind(l.version)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn get(conn: &mut Conn, id: i64) -> anyhow::Result<Option<Lane>> {
    let row = sqlx::query("SELECT id, data, version FROM swimlanes WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(lane).transpose()
}

/// The live lane of that name.
pub async fn by_name(conn: &mut Conn, name: &str) -> anyhow::Result<Option<Lane>> {
    let row = sqlx::query("SELECT id, data, version FROM swimlanes WHERE name = $1 AND status <> 'deleted'")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(lane).transpose()
}

/// Live lanes, oldest first: all of them, or one owner's.
pub async fn live(conn: &mut Conn, owner: Option<&str>, limit: i64) -> anyhow::Result<Vec<Lane>> {
    let rows =
        match owner {
            Some(o) => sqlx::query(
                "SELECT id, data, version FROM swimlanes WHERE owner = $1 AND status <> 'deleted' ORDER BY id LIMIT $2",
            )
            .bind(o)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?,
            None => {
                sqlx::query("SELECT id, data, version FROM swimlanes WHERE status <> 'deleted' ORDER BY id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
    rows.iter().map(lane).collect()
}

/// Live lanes of one status.
pub async fn with_status(conn: &mut Conn, status: LaneStatus, limit: i64) -> anyhow::Result<Vec<Lane>> {
    let rows = sqlx::query("SELECT id, data, version FROM swimlanes WHERE status = $1 ORDER BY id LIMIT $2")
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(lane).collect()
}
