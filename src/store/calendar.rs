//! Ad-hoc freezes, deploy locks and release overrides.

use super::Conn;
use crate::domain::calendar::Scope;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdHocFreeze {
    pub id: i64,
    pub scope: Scope,
    pub reason: String,
    pub created_by: String,
    pub from: i64,
    pub until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub application: String,
    /// `*`: every environment.
    pub environment: String,
    pub reason: String,
    pub by: String,
    pub since: i64,
}

pub async fn start_freeze(
    conn: &mut Conn,
    scope: &Scope,
    reason: &str,
    by: &str,
    from: i64,
    until: Option<i64>,
) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO freezes (scope, reason, created_by, from_at, until_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(serde_json::to_string(scope)?)
    .bind(reason)
    .bind(by)
    .bind(from)
    .bind(until)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

/// Ends an open freeze; false when there is no open freeze with that id.
pub async fn end_freeze(conn: &mut Conn, id: i64, by: &str, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE freezes SET ended_at = $1, ended_by = $2 WHERE id = $3 AND ended_at IS NULL AND (until_at IS NULL OR until_at > $1)",
    )
    .bind(now)
    .bind(by)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Freezes started by hand that hold at `now`.
pub async fn open_freezes(conn: &mut Conn, now: i64) -> anyhow::Result<Vec<AdHocFreeze>> {
    let rows = sqlx::query(
        "SELECT id, scope, reason, created_by, from_at, until_at FROM freezes
         WHERE ended_at IS NULL AND from_at <= $1 AND (until_at IS NULL OR until_at > $1) ORDER BY id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AdHocFreeze {
                id: r.try_get("id")?,
                scope: serde_json::from_str(&r.try_get::<String, _>("scope")?)?,
                reason: r.try_get("reason")?,
                created_by: r.try_get("created_by")?,
                from: r.try_get("from_at")?,
                until: r.try_get("until_at")?,
            })
        })
        .collect()
}

/// Locks; false when that application and environment is locked already.
pub async fn lock(conn: &mut Conn, l: &Lock) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO deploy_locks (application, environment, reason, locked_by, since) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (application, environment) DO NOTHING",
    )
    .bind(&l.application)
    .bind(&l.environment)
    .bind(&l.reason)
    .bind(&l.by)
    .bind(l.since)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn unlock(conn: &mut Conn, application: &str, environment: &str) -> anyhow::Result<bool> {
    let res = sqlx::query("DELETE FROM deploy_locks WHERE application = $1 AND environment = $2")
        .bind(application)
        .bind(environment)
        .execute(&mut *conn)
        .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn locks(conn: &mut Conn) -> anyhow::Result<Vec<Lock>> {
    let rows =
        sqlx::query("SELECT application, environment, reason, locked_by, since FROM deploy_locks ORDER BY since")
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Lock {
                application: r.try_get("application")?,
                environment: r.try_get("environment")?,
                reason: r.try_get("reason")?,
                by: r.try_get("locked_by")?,
                since: r.try_get("since")?,
            })
        })
        .collect()
}

/// Records an override of a ticket's round; false when it has one already.
pub async fn add_override(
    conn: &mut Conn,
    ticket: i64,
    round: u32,
    reason: &str,
    by: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO release_overrides (ticket_id, round, reason, by_actor, at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (ticket_id, round) DO NOTHING",
    )
    .bind(ticket)
    .bind(i64::from(round))
    .bind(reason)
    .bind(by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn has_override(conn: &mut Conn, ticket: i64, round: u32) -> anyhow::Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM release_overrides WHERE ticket_id = $1 AND round = $2")
            .bind(ticket)
            .bind(i64::from(round))
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// Escalates a stage of a ticket's round to `role`; false when it was escalated already.
pub async fn escalate(
    conn: &mut Conn,
    ticket: i64,
    round: u32,
    stage: usize,
    role: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO escalations (ticket_id, round, stage, role, at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (ticket_id, round, stage) DO NOTHING",
    )
    .bind(ticket)
    .bind(i64::from(round))
    .bind(stage as i64)
    .bind(role)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// The role a stage of a ticket's round was escalated to, if it was.
pub async fn escalated_to(conn: &mut Conn, ticket: i64, round: u32, stage: usize) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT role FROM escalations WHERE ticket_id = $1 AND round = $2 AND stage = $3")
        .bind(ticket)
        .bind(i64::from(round))
        .bind(stage as i64)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("role")?),
        None => None,
    })
}
