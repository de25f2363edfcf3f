//! Executions of release plans. The whole run state is one JSON document per row,
//! written with optimistic concurrency; runners lease due rows.

use super::{get_i64, Conn, Store};
use crate::domain::ticket::TicketId;
use anyhow::Context;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

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
}

const COLUMNS: &str = "id, ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, started_at, finished_at";

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
    pub now: i64,
}

/// Creates the execution of a ticket; `None` if the ticket already has one (released at most once).
pub async fn insert<S: Serialize>(conn: &mut Conn, e: NewExec<'_, S>) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO executions (ticket_id, plan_id, plan, application, environment, status, state, platform, channel, version, next_wake, started_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10, $10)
         ON CONFLICT (ticket_id) DO NOTHING RETURNING id",
    )
    .bind(e.ticket.0)
    .bind(e.plan_id)
    .bind(e.plan_json)
    .bind(e.application)
    .bind(e.environment)
    .bind(e.status)
    .bind(serde_json::to_string(e.state)?)
    .bind(e.platform)
    .bind(e.channel)
    .bind(e.now)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| get_i64(&r, "id")).transpose().map_err(Into::into)
}

/// The plan as it was when the execution started (later configuration changes do not apply).
pub async fn plan_json(conn: &mut Conn, id: i64) -> anyhow::Result<String> {
    let row = sqlx::query("SELECT plan FROM executions WHERE id = $1")
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

/// Takes the next due execution for `lease_ms`: not finished, its wake time passed, not leased.
pub async fn lease_due<S: DeserializeOwned>(
    store: &Store,
    now: i64,
    lease_ms: i64,
) -> anyhow::Result<Option<ExecRow<S>>> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM executions WHERE finished_at IS NULL AND next_wake <= $1 AND lease_until < $1 ORDER BY next_wake, id LIMIT 1{}",
        store.skip_locked()
    ))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let e = from_row(&r)?;
    sqlx::query("UPDATE executions SET lease_until = $1 WHERE id = $2")
        .bind(now + lease_ms)
        .bind(e.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(e))
}

/// Lease argument of [`save`]: keep the lease as it is.
pub const KEEP_LEASE: i64 = -1;

/// Writes the new state if nobody else did meanwhile. `lease_until`: 0 releases the
/// lease, [`KEEP_LEASE`] leaves it, any other value extends it.
#[allow(clippy::too_many_arguments)]
pub async fn save<S: Serialize>(
    conn: &mut Conn,
    id: i64,
    version: i64,
    status: &str,
    state: &S,
    next_wake: i64,
    finished_at: Option<i64>,
    lease_until: i64,
    now: i64,
) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE executions SET status = $1, state = $2, next_wake = $3, finished_at = $4, updated_at = $5, version = version + 1,
         lease_until = CASE WHEN $6 < 0 THEN lease_until ELSE $6 END
         WHERE id = $7 AND version = $8",
    )
    .bind(status)
    .bind(serde_json::to_string(state)?)
    .bind(next_wake)
    .bind(finished_at)
    .bind(now)
    .bind(lease_until)
    .bind(id)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Frees every lease: called at start by a process that is the database's only user (SQLite).
pub async fn release_all_leases(store: &Store) -> anyhow::Result<u64> {
    let res = sqlx::query("UPDATE executions SET lease_until = 0 WHERE finished_at IS NULL AND lease_until > 0")
        .execute(&store.pool)
        .await?;
    Ok(res.rows_affected())
}

pub async fn save_lease(conn: &mut Conn, id: i64, lease_until: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE executions SET lease_until = $1 WHERE id = $2")
        .bind(lease_until)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes an execution due now (after a button press).
pub async fn wake(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE executions SET next_wake = $1 WHERE id = $2 AND finished_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The earliest wake time of an unfinished, unleased execution.
pub async fn next_wake(store: &Store) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query("SELECT MIN(next_wake) AS t FROM executions WHERE finished_at IS NULL AND next_wake < $1")
        .bind(crate::executor::providers::NEVER)
        .fetch_one(&store.pool)
        .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub id: i64,
    pub application: String,
    pub environment: String,
    pub execution: Option<i64>,
    /// `before` or `after` the release.
    pub kind: String,
    pub version: String,
    pub replicas: i64,
    pub config_version: String,
    pub recorded_at: i64,
}

pub async fn record_baseline(conn: &mut Conn, b: &Baseline) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&b.application)
    .bind(&b.environment)
    .bind(b.execution)
    .bind(&b.kind)
    .bind(&b.version)
    .bind(b.replicas)
    .bind(&b.config_version)
    .bind(b.recorded_at)
    .fetch_one(&mut *conn)
    .await?;
    Ok(get_i64(&row, "id")?)
}

/// Reopens a finished execution for a later task (a rollback run again later).
pub async fn reopen<S: Serialize>(conn: &mut Conn, id: i64, version: i64, state: &S, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "UPDATE executions SET state = $1, finished_at = NULL, next_wake = $2, lease_until = 0, version = version + 1, updated_at = $2
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

const BASELINE_COLUMNS: &str =
    "id, application, environment, execution_id, kind, version, replicas, config_version, recorded_at";

fn baseline_from_row(r: &AnyRow) -> anyhow::Result<Baseline> {
    Ok(Baseline {
        id: get_i64(r, "id")?,
        application: r.try_get("application")?,
        environment: r.try_get("environment")?,
        execution: r.try_get("execution_id")?,
        kind: r.try_get("kind")?,
        version: r.try_get("version")?,
        replicas: get_i64(r, "replicas")?,
        config_version: r.try_get("config_version")?,
        recorded_at: get_i64(r, "recorded_at")?,
    })
}

pub async fn baseline(conn: &mut Conn, id: i64) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!("SELECT {BASELINE_COLUMNS} FROM baselines WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The state an execution started from: what a rollback returns to by default.
pub async fn baseline_before(conn: &mut Conn, execution: i64) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines WHERE execution_id = $1 AND kind = 'before' ORDER BY id LIMIT 1"
    ))
    .bind(execution)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The latest recorded state of an application in an environment.
pub async fn latest_baseline(
    conn: &mut Conn,
    application: &str,
    environment: &str,
) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines WHERE application = $1 AND environment = $2 ORDER BY id DESC LIMIT 1"
    ))
    .bind(application)
    .bind(environment)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The baselines of an application in an environment, newest first, with the ticket of
/// the release that recorded each.
pub async fn list_baselines(
    conn: &mut Conn,
    application: &str,
    environment: &str,
    limit: i64,
) -> anyhow::Result<Vec<(Baseline, Option<TicketId>)>> {
    let rows = sqlx::query(
        "SELECT b.id, b.application, b.environment, b.execution_id, b.kind, b.version, b.replicas, b.config_version, b.recorded_at, e.ticket_id
         FROM baselines b LEFT JOIN executions e ON e.id = b.execution_id
         WHERE b.application = $1 AND b.environment = $2 ORDER BY b.id DESC LIMIT $3",
    )
    .bind(application)
    .bind(environment)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                baseline_from_row(r)?,
                r.try_get::<Option<i64>, _>("ticket_id")?.map(TicketId),
            ))
        })
        .collect()
}
