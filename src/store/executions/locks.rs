//! The release lock of an application and environment, and the releases queued behind it.

use super::*;

/// Takes the release lock of an application and environment for an execution; false
/// when another unfinished execution holds it.
pub async fn take_lock(
    conn: &mut Conn,
    application: &str,
    environment: &str,
    execution: i64,
    now: i64,
) -> anyhow::Result<bool> {
    let row = sqlx::query(
        "INSERT INTO release_locks (application, environment, execution_id, since) VALUES ($1, $2, $3, $4)
         ON CONFLICT (application, environment) DO UPDATE SET execution_id = EXCLUDED.execution_id, since = EXCLUDED.since
         WHERE release_locks.execution_id = EXCLUDED.execution_id
            OR NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = release_locks.execution_id AND e.finished_at IS NULL)
         RETURNING execution_id",
    )
    .bind(application)
    .bind(environment)
    .bind(execution)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// The unfinished execution holding the release lock of an application and environment,
/// with its ticket and since when.
pub async fn lock_holder(
    conn: &mut Conn,
    application: &str,
    environment: &str,
) -> anyhow::Result<Option<(i64, TicketId, i64)>> {
    let row = sqlx::query(
        "SELECT l.execution_id, e.ticket_id, l.since FROM release_locks l JOIN executions e ON e.id = l.execution_id
         WHERE l.application = $1 AND l.environment = $2 AND e.finished_at IS NULL",
    )
    .bind(application)
    .bind(environment)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok((
            get_i64(&r, "execution_id")?,
            TicketId(get_i64(&r, "ticket_id")?),
            get_i64(&r, "since")?,
        ))
    })
    .transpose()
}

/// Frees the release lock if `execution` holds it.
pub async fn release_lock(
    conn: &mut Conn,
    application: &str,
    environment: &str,
    execution: i64,
) -> anyhow::Result<bool> {
    let res =
        sqlx::query("DELETE FROM release_locks WHERE application = $1 AND environment = $2 AND execution_id = $3")
            .bind(application)
            .bind(environment)
            .bind(execution)
            .execute(&mut *conn)
            .await?;
    Ok(res.rows_affected() == 1)
}

/// Records when a queued execution really started.
pub async fn set_started(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE executions SET started_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The oldest execution waiting for the release lock of an application and environment.
pub async fn next_queued(conn: &mut Conn, application: &str, environment: &str) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT id FROM executions WHERE application = $1 AND environment = $2 AND finished_at IS NULL AND status = 'QUEUED'
         ORDER BY id LIMIT 1",
    )
    .bind(application)
    .bind(environment)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| get_i64(&r, "id").map_err(Into::into)).transpose()
}
