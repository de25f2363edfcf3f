//! The scheduler's firings: one row per (job, due time, payload: what is due). A job has at most one pending
//! firing at a time; claiming goes through the one lease mechanism (`lease::FIRINGS`).

use super::lease::{self, FIRINGS};
use super::{Conn, Store};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub id: i64,
    pub job: String,
    /// When it was meant to fire.
    pub due: i64,
    pub payload: String,
    /// Claims so far (1 on the first).
    pub attempts: i64,
}

fn firing(r: &sqlx::any::AnyRow) -> Result<Firing, sqlx::Error> {
    Ok(Firing {
        id: r.try_get("id")?,
        job: r.try_get("job")?,
        due: r.try_get("due")?,
        payload: r.try_get("payload")?,
        attempts: r.try_get::<i64, _>("attempts")?,
    })
}

/// Makes `due` the job's one pending firing: its pending firing moves there (one being
/// fired elsewhere is cancelled: that handler's transaction then rolls back), or a new one
/// is planned. A firing that fired at exactly this time already is not planned again.
pub async fn set(conn: &mut Conn, job: &str, due: i64, payload: &str) -> anyhow::Result<()> {
    let moved = sqlx::query(
        "UPDATE firings SET due = $2, due_at = $2, payload = $3
         WHERE job = $1 AND status = 'pending' AND lease_owner IS NULL
         AND NOT EXISTS (SELECT 1 FROM firings f WHERE f.job = $1 AND f.due = $2 AND f.payload = $3 AND f.status <> 'pending')",
    )
    .bind(job)
    .bind(due)
    .bind(payload)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() > 0 {
        return Ok(());
    }
    cancel(conn, job).await?;
    sqlx::query(
        "INSERT INTO firings (job, due, payload, status, due_at) VALUES ($1, $2, $3, 'pending', $2)
         ON CONFLICT (job, due, payload) DO UPDATE SET status = 'pending', payload = excluded.payload,
             due_at = excluded.due_at, lease_owner = NULL
         WHERE firings.status = 'cancelled'",
    )
    .bind(job)
    .bind(due)
    .bind(payload)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes fired and cancelled firings planned before `before`, at most `limit`.
pub async fn prune(store: &Store, before: i64, limit: i64) -> anyhow::Result<u64> {
    let res = sqlx::query(
        "DELETE FROM firings WHERE id IN (SELECT id FROM firings WHERE status <> 'pending' AND due < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&store.pool)
    .await?;
    Ok(res.rows_affected())
}

/// Adds a firing unless the job has one at that time (several replicas planning the next
/// firing of a cron job plan one).
pub async fn add(conn: &mut Conn, job: &str, due: i64, payload: &str) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO firings (job, due, payload, status, due_at) VALUES ($1, $2, $3, 'pending', $2)
         ON CONFLICT (job, due, payload) DO NOTHING",
    )
    .bind(job)
    .bind(due)
    .bind(payload)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Cancels the job's pending firing, if any.
pub async fn cancel(conn: &mut Conn, job: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE firings SET status = 'cancelled' WHERE job = $1 AND status = 'pending'")
        .bind(job)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The job's pending firing: (id, due).
pub async fn pending(conn: &mut Conn, job: &str) -> anyhow::Result<Option<(i64, i64)>> {
    let row = sqlx::query("SELECT id, due FROM firings WHERE job = $1 AND status = 'pending'")
        .bind(job)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("id")?, r.try_get("due")?)),
        None => None,
    })
}

/// Claims up to `limit` due firings until `now + lease_ms`, oldest first.
pub async fn claim(store: &Store, now: i64, lease_ms: i64, limit: i64) -> anyhow::Result<Vec<Firing>> {
    let mut conn = store.pool.acquire().await?;
    let rows = lease::claim(
        &mut conn,
        store,
        &FIRINGS,
        lease::Claim {
            filter: None,
            now,
            until: now + lease_ms,
            limit,
        },
        "id, job, due, payload, attempts",
    )
    .await?;
    let mut out = rows.iter().map(firing).collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|f| (f.due, f.id));
    Ok(out)
}

/// Marks a claimed firing done, in the transaction of what it did; false when this owner
/// no longer holds it (its lease ran out and someone else took it): roll back.
pub async fn complete(conn: &mut Conn, owner: &str, id: i64, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE firings SET status = 'done', fired_at = $1, lease_owner = NULL
         WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
    )
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Gives a claimed firing back, to fall due again at `due_at` (a retry after an error).
pub async fn release(conn: &mut Conn, owner: &str, id: i64, due_at: i64) -> anyhow::Result<bool> {
    lease::release(conn, owner, &FIRINGS, id.into(), due_at).await
}

/// Gives back a firing whose handler failed, due again at `due_at`, keeping its error.
pub async fn fail(conn: &mut Conn, owner: &str, id: i64, due_at: i64, error: &str) -> anyhow::Result<bool> {
    if !release(conn, owner, id, due_at).await? {
        return Ok(false);
    }
    sqlx::query("UPDATE firings SET last_error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Pending firings whose last attempt failed, oldest first: (job, its last error).
pub async fn failing(store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT job, last_error FROM firings WHERE status = 'pending' AND last_error IS NOT NULL ORDER BY id",
    )
    .fetch_all(&store.read)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("job")?, r.try_get("last_error")?)))
        .collect()
}

/// The cron schedule a job's pending firing was planned by.
pub async fn cron_schedule(conn: &mut Conn, job: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT schedule FROM cron_jobs WHERE name = $1")
        .bind(job)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("schedule")?),
        None => None,
    })
}

pub async fn set_cron_schedule(conn: &mut Conn, job: &str, schedule: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO cron_jobs (name, schedule, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET schedule = excluded.schedule, updated_at = excluded.updated_at",
    )
    .bind(job)
    .bind(schedule)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Cron jobs known to the database (to retire those the configuration dropped).
pub async fn cron_jobs(conn: &mut Conn) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM cron_jobs").fetch_all(&mut *conn).await?;
    Ok(rows.iter().map(|r| r.try_get("name")).collect::<Result<_, _>>()?)
}

pub async fn forget_cron_job(conn: &mut Conn, job: &str) -> anyhow::Result<()> {
    cancel(conn, job).await?;
    sqlx::query("DELETE FROM cron_jobs WHERE name = $1")
        .bind(job)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
