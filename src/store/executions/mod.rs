//! Executions of release plans. The whole run state is one JSON document per row,
//! written with optimistic concurrency; runners lease due rows. The plan an execution
//! started with is kept apart (`execution_plans`): it never changes, and in the same row
//! every step's write would copy it too.

use super::lease::{self, EXECUTIONS};
use super::{get_i64, Conn, Store};
use crate::domain::ticket::TicketId;
use anyhow::Context;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

mod baselines;
mod group;
mod locks;

pub use baselines::*;
pub use group::*;
pub use locks::*;

#[derive(Debug, Clone)]
pub struct ExecRow<S> {
    pub id: i64,
    pub ticket: TicketId,
    pub plan_id: String,
    pub application: String,
    pub environment: String,
    pub status: String,
    pub state: S,
    pub platform: String,
    pub channel: String,
    pub version: i64,
    pub next_wake: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The process whose task runs it now, if any.
    pub lease_owner: Option<String>,
}

const COLUMNS: &str = "id, ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, started_at, finished_at, lease_owner";

fn from_row<S: DeserializeOwned>(r: &AnyRow) -> anyhow::Result<ExecRow<S>> {
    let state: String = r.try_get("state")?;
    Ok(ExecRow {
        id: get_i64(r, "id")?,
        ticket: TicketId(get_i64(r, "ticket_id")?),
        plan_id: r.try_get("plan_id")?,
        application: r.try_get("application")?,
        environment: r.try_get("environment")?,
        status: r.try_get("status")?,
        state: serde_json::from_str(&state).context("execution state")?,
        platform: r.try_get("platform")?,
        channel: r.try_get("channel")?,
        version: get_i64(r, "version")?,
        next_wake: get_i64(r, "next_wake")?,
        started_at: get_i64(r, "started_at")?,
        finished_at: r.try_get("finished_at")?,
        lease_owner: r.try_get("lease_owner")?,
    })
}

pub struct NewExec<'a, S> {
    pub ticket: TicketId,
    pub plan_id: &'a str,
    pub plan_json: &'a str,
    pub application: &'a str,
    pub environment: &'a str,
    pub status: &'a str,
    pub state: &'a S,
    pub platform: &'a str,
    pub channel: &'a str,
    /// When a runner may take it first (never, while it waits for another release).
    pub due_at: i64,
    pub now: i64,
}

/// Creates the execution of a ticket; `None` if the ticket already has one (released at most once).
pub async fn insert<S: Serialize>(conn: &mut Conn, e: NewExec<'_, S>) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO executions (ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, due_at, started_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $10, $10, $9, $9)
         ON CONFLICT (ticket_id) DO NOTHING RETURNING id",
    )
    .bind(e.ticket.0)
    .bind(e.plan_id)
    .bind(e.application)
    .bind(e.environment)
    .bind(e.status)
    .bind(serde_json::to_string(e.state)?)
    .bind(e.platform)
    .bind(e.channel)
    .bind(e.now)
    .bind(e.due_at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id = get_i64(&row, "id")?;
    sqlx::query("INSERT INTO execution_plans (execution_id, plan) VALUES ($1, $2)")
        .bind(id)
        .bind(e.plan_json)
        .execute(&mut *conn)
        .await?;
    Ok(Some(id))
}

/// The plan as it was when the execution started (later configuration changes do not apply).
pub async fn plan_json(conn: &mut Conn, id: i64) -> anyhow::Result<String> {
    let row = sqlx::query("SELECT plan FROM execution_plans WHERE execution_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("plan")?)
}

pub async fn get<S: DeserializeOwned>(conn: &mut Conn, id: i64) -> anyhow::Result<Option<ExecRow<S>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM executions WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn for_ticket<S: DeserializeOwned>(conn: &mut Conn, ticket: TicketId) -> anyhow::Result<Option<ExecRow<S>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM executions WHERE ticket_id = $1"))
        .bind(ticket.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Claims up to `limit` due executions for `lease_ms`; their ids.
pub async fn claim(store: &Store, now: i64, lease_ms: i64, limit: i64) -> anyhow::Result<Vec<i64>> {
    // Most looks find nothing due (a task just ended): they need not wait for the writer.
    if !lease::any_due(store, &EXECUTIONS, now).await? {
        return Ok(Vec::new());
    }
    let mut conn = store.pool.acquire().await?;
    let rows = lease::claim(
        &mut conn,
        store,
        &EXECUTIONS,
        lease::Claim {
            filter: None,
            now,
            until: now + lease_ms,
            limit,
        },
        "id",
    )
    .await?;
    rows.iter().map(|r| get_i64(r, "id").map_err(Into::into)).collect()
}

/// What a save does to the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Leaves it as it is (a person's change while a runner may hold it).
    Keep,
    /// The holder keeps it until then.
    Hold(i64),
    /// The holder gives it back; it falls due at `next_wake`.
    Release,
    /// Not the holder: makes it due now unless a runner holds it (that runner is woken).
    Wake(i64),
}

/// Writes the new state if nobody else did meanwhile (its version is still `s.version`).
pub async fn save(conn: &mut Conn, owner: &str, s: &Save<'_>) -> anyhow::Result<bool> {
    let Save {
        id,
        version,
        status,
        state,
        next_wake,
        finished_at,
        lease,
        now,
    } = *s;
    // $1..$7 are the same for every kind; the lease adds a time and/or the owner.
    let (lease_sql, at, owner_sql) = match lease {
        Lease::Keep => ("", None, ""),
        Lease::Hold(t) => (", due_at = $8", Some(t), " AND lease_owner = $9"),
        Lease::Release => (", due_at = $3, lease_owner = NULL", None, " AND lease_owner = $8"),
        Lease::Wake(t) => (
            ", due_at = CASE WHEN lease_owner IS NULL OR due_at < $8 THEN $8 ELSE due_at END",
            Some(t),
            "",
        ),
    };
    let sql = format!(
        "UPDATE executions SET status = $1, state = $2, next_wake = $3, finished_at = $4, updated_at = $5, version = version + 1{lease_sql}
         WHERE id = $6 AND version = $7{owner_sql}"
    );
    let mut q = sqlx::query(&sql)
        .bind(status)
        .bind(state)
        .bind(next_wake)
        .bind(finished_at)
        .bind(now)
        .bind(id)
        .bind(version);
    if let Some(t) = at {
        q = q.bind(t);
    }
    if !owner_sql.is_empty() {
        q = q.bind(owner.to_string());
    }
    let res = q.execute(&mut *conn).await?;
    Ok(res.rows_affected() == 1)
}

/// One save: the new state (JSON) of an execution at `version`, and what it does to the
/// lease. In [`save_many`], the runner's own, that holds (`Lease::Hold`) or gives back
/// (`Lease::Release`) the lease it owns.
#[derive(Debug, Clone, Copy)]
pub struct Save<'a> {
    pub id: i64,
    pub version: i64,
    pub status: &'a str,
    pub state: &'a str,
    pub next_wake: i64,
    pub finished_at: Option<i64>,
    pub lease: Lease,
    pub now: i64,
}

/// Gives a claimed execution back, due at `due_at` (its state unchanged).
pub async fn release(store: &Store, id: i64, due_at: i64) -> anyhow::Result<bool> {
    let mut conn = store.pool.acquire().await?;
    lease::release(&mut conn, &store.owner, &EXECUTIONS, id.into(), due_at).await
}

/// Extends this process's lease of an execution; false when it no longer holds it.
pub async fn extend(store: &Store, id: i64, until: i64) -> anyhow::Result<bool> {
    lease::extend(store, &EXECUTIONS, id.into(), until).await
}

/// The versions of some executions (to notice a change made by another replica).
pub async fn versions(store: &Store, ids: &[i64]) -> anyhow::Result<Vec<(i64, i64)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let marks = super::Marks::for_store(store).list(ids.len());
    let sql = format!("SELECT id, version FROM executions WHERE id IN ({marks})");
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&store.read).await?;
    rows.iter()
        .map(|r| Ok((get_i64(r, "id")?, get_i64(r, "version")?)))
        .collect()
}

/// Frees every lease: called at start by a process that is the database's only user (SQLite).
pub async fn release_all_leases(store: &Store) -> anyhow::Result<u64> {
    lease::release_all(store, &EXECUTIONS, 0).await
}

/// Makes an execution due now (after a button press) unless a runner holds it.
pub async fn wake(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE executions SET next_wake = $1, due_at = CASE WHEN lease_owner IS NULL OR due_at < $1 THEN $1 ELSE due_at END
         WHERE id = $2 AND finished_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The earliest time an unfinished execution falls due.
pub async fn next_wake(store: &Store) -> anyhow::Result<Option<i64>> {
    Ok(lease::next_due(store, &EXECUTIONS, None)
        .await?
        .filter(|t| *t < crate::domain::execution::NEVER))
}

/// Reopens a finished execution for a later task (a rollback run again later).
pub async fn reopen<S: Serialize>(conn: &mut Conn, id: i64, version: i64, state: &S, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE executions SET state = $1, finished_at = NULL, next_wake = $2, due_at = $2, lease_owner = NULL, version = version + 1, updated_at = $2
         WHERE id = $3 AND version = $4",
    )
    .bind(serde_json::to_string(state)?)
    .bind(now)
    .bind(id)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// An execution not finished yet, as the daily digest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub ticket: i64,
    pub status: String,
    pub application: String,
    pub platform: String,
    pub channel: String,
    pub started_at: i64,
}

/// Executions not finished yet, oldest first.
pub async fn unfinished(conn: &mut Conn, limit: i64) -> anyhow::Result<Vec<Unfinished>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT ticket_id, status, application, platform, channel, started_at FROM executions
         WHERE finished_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Unfinished {
                ticket: r.try_get("ticket_id")?,
                status: r.try_get("status")?,
                application: r.try_get("application")?,
                platform: r.try_get("platform")?,
                channel: r.try_get("channel")?,
                started_at: r.try_get("started_at")?,
            })
        })
        .collect()
}
