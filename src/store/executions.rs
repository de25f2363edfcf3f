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
    let rows = lease::claim(&mut conn, store, &EXECUTIONS, None, now, now + lease_ms, limit, "id").await?;
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

/// Writes the new state if nobody else did meanwhile.
#[allow(clippy::too_many_arguments)]
pub async fn save<S: Serialize>(
    conn: &mut Conn,
    owner: &str,
    id: i64,
    version: i64,
    status: &str,
    state: &S,
    next_wake: i64,
    finished_at: Option<i64>,
    lease: Lease,
    now: i64,
) -> anyhow::Result<bool> {
    let state = serde_json::to_string(state)?;
    save_json(
        conn,
        owner,
        id,
        version,
        status,
        &state,
        next_wake,
        finished_at,
        lease,
        now,
    )
    .await
}

/// [`save`] of a state serialised already (outside the transaction).
#[allow(clippy::too_many_arguments)]
pub async fn save_json(
    conn: &mut Conn,
    owner: &str,
    id: i64,
    version: i64,
    status: &str,
    state: &str,
    next_wake: i64,
    finished_at: Option<i64>,
    lease: Lease,
    now: i64,
) -> anyhow::Result<bool> {
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

/// One save of [`save_many`]: the runner's own, that holds (`Lease::Hold`) or gives back
/// (`Lease::Release`) the lease it owns.
#[derive(Debug, Clone)]
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

/// Several runner saves in one statement; for each, whether it was written (as [`save`]).
pub async fn save_many(conn: &mut Conn, owner: &str, saves: &[Save<'_>]) -> anyhow::Result<Vec<bool>> {
    let mut out = Vec::with_capacity(saves.len());
    for chunk in saves.chunks(SAVES_PER_STATEMENT) {
        let statement = save_many_statement(super::Marks::new(conn), owner, chunk)?;
        let rows = statement.query().fetch_all(&mut *conn).await?;
        out.extend(saved(chunk, &rows)?);
    }
    Ok(out)
}

/// Most saves one statement of [`save_many`] writes.
pub const SAVES_PER_STATEMENT: usize = 256;

/// The statement of [`save_many`] for up to [`SAVES_PER_STATEMENT`] saves; it returns the
/// ids of those written.
pub(crate) fn save_many_statement(
    mut marks: super::Marks,
    owner: &str,
    chunk: &[Save<'_>],
) -> anyhow::Result<super::Statement> {
    use super::Arg;
    if let Some(other) = chunk
        .iter()
        .find(|s| !matches!(s.lease, Lease::Hold(_) | Lease::Release))
    {
        anyhow::bail!("save_many: execution {} does not hold or release its lease", other.id);
    }
    let values: Vec<String> = chunk.iter().map(|_| format!("({})", marks.list(9))).collect();
    let owner_mark = marks.next();
    let sql = format!(
        "WITH v (x_id, x_version, x_status, x_state, x_next_wake, x_finished_at, x_now, x_due_at, x_release) AS (VALUES {})
         UPDATE executions SET status = v.x_status, state = v.x_state, next_wake = v.x_next_wake,
                finished_at = v.x_finished_at, updated_at = v.x_now, version = executions.version + 1,
                due_at = v.x_due_at,
                lease_owner = CASE WHEN v.x_release = 1 THEN NULL ELSE executions.lease_owner END
         FROM v
         WHERE executions.id = v.x_id AND executions.version = v.x_version AND executions.lease_owner = {owner_mark}
         RETURNING executions.id AS id",
        values.join(", ")
    );
    let mut args = Vec::with_capacity(chunk.len() * 9 + 1);
    for s in chunk {
        let (due_at, release) = match s.lease {
            Lease::Hold(t) => (t, 0i64),
            _ => (s.next_wake, 1),
        };
        args.extend([
            Arg::Int(s.id),
            Arg::Int(s.version),
            Arg::Text(s.status.to_string()),
            Arg::Text(s.state.to_string()),
            Arg::Int(s.next_wake),
            Arg::MaybeInt(s.finished_at),
            Arg::Int(s.now),
            Arg::Int(due_at),
            Arg::Int(release),
        ]);
    }
    args.push(Arg::Text(owner.to_string()));
    Ok(super::Statement { sql, args })
}

/// What an execution's end writes beside its move when the move is written with others
/// (SQLite's group commit): the baseline it leaves, the event the ticket moves on with,
/// and its release lock given up. Each statement writes only if the move's version still
/// holds (they run before the move's save). The first one is a fence: when a release of
/// the same target waits, it changes the execution's version instead, so that nothing of
/// the move is written and the ending is committed with the lock passed on
/// (`executor::start::pass_lock`), which this way of writing does not do.
pub(crate) fn ending_statements(
    backend: super::Backend,
    guard: (i64, i64, &str),
    target: (&str, &str),
    left: &crate::domain::execution::Left,
    event: &super::inbox::NewEvent,
    now: i64,
) -> Vec<super::Statement> {
    use super::Arg;
    let (id, version, owner) = guard;
    // `sql` with the guard's placeholders after its own, and their values after `args`.
    let guarded = |sql: &dyn Fn(&mut super::Marks) -> String, args: Vec<Arg>| {
        let mut marks = super::Marks::for_backend(backend);
        let head = sql(&mut marks);
        let (i, v, o) = (marks.next(), marks.next(), marks.next());
        let mut args = args;
        args.extend([Arg::Int(id), Arg::Int(version), Arg::Text(owner.to_string())]);
        super::Statement {
            sql: head.replace(
                "{guard}",
                &format!(
                    "EXISTS (SELECT 1 FROM executions g WHERE g.id = {i} AND g.version = {v} AND g.lease_owner = {o})"
                ),
            ),
            args,
        }
    };
    let app = || Arg::Text(target.0.to_string());
    let env = || Arg::Text(target.1.to_string());
    vec![
        guarded(
            &|m| {
                format!(
                    "UPDATE executions SET version = version + 1
                     WHERE EXISTS (SELECT 1 FROM executions w WHERE w.application = {} AND w.environment = {}
                                   AND w.finished_at IS NULL AND w.status = 'QUEUED' AND w.id <> {})
                       AND executions.id = {} AND {{guard}}",
                    m.next(),
                    m.next(),
                    m.next(),
                    m.next()
                )
            },
            vec![app(), env(), Arg::Int(id), Arg::Int(id)],
        ),
        guarded(
            &|m| {
                format!(
                    "INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated)
                     SELECT {app}, {env}, {id}, {kind}, COALESCE({version}, b.version, '{unknown}'), COALESCE({replicas}, b.replicas, 0),
                            COALESCE(b.config_version, '-'), {at}, {simulated}
                     FROM (SELECT 1) LEFT JOIN (SELECT version, replicas, config_version FROM baselines
                                                WHERE application = {app_of} AND environment = {env_of}
                                                  AND execution_id = {before_of} AND kind = 'before' ORDER BY id LIMIT 1) b ON true
                     WHERE {{guard}}",
                    app = m.next(),
                    env = m.next(),
                    id = m.next(),
                    kind = m.next(),
                    version = m.next(),
                    replicas = m.next(),
                    at = m.next(),
                    simulated = m.next(),
                    app_of = m.next(),
                    env_of = m.next(),
                    before_of = m.next(),
                    unknown = crate::domain::execution::UNKNOWN,
                )
            },
            vec![
                app(),
                env(),
                Arg::Int(id),
                Arg::Text(left.kind.to_string()),
                Arg::MaybeText(left.version.clone()),
                Arg::MaybeInt(left.replicas),
                Arg::Int(now),
                Arg::Int(i64::from(left.simulated)),
                app(),
                env(),
                Arg::Int(id),
            ],
        ),
        guarded(
            &|m| {
                format!(
                    "INSERT INTO inbox (platform, dedupe_key, order_key, payload, status, received_at, due_at)
                     SELECT {}, 'pending', {}, {} WHERE {{guard}}
                     ON CONFLICT (dedupe_key) DO NOTHING",
                    m.list(4),
                    m.next(),
                    m.next()
                )
            },
            vec![
                Arg::Text(event.platform.clone()),
                Arg::Text(event.dedupe_key.clone()),
                Arg::Text(event.order_key.clone()),
                Arg::Text(event.payload.clone()),
                Arg::Int(now),
                Arg::Int(now),
            ],
        ),
        guarded(
            &|m| {
                format!(
                    "DELETE FROM release_locks WHERE application = {} AND environment = {} AND execution_id = {} AND {{guard}}",
                    m.next(),
                    m.next(),
                    m.next()
                )
            },
            vec![app(), env(), Arg::Int(id)],
        ),
    ]
}

/// For each save of a chunk, whether [`save_many_statement`] returned its id.
pub(crate) fn saved(chunk: &[Save<'_>], rows: &[sqlx::any::AnyRow]) -> anyhow::Result<Vec<bool>> {
    let ids: std::collections::HashSet<i64> = rows.iter().map(|r| get_i64(r, "id")).collect::<Result<_, _>>()?;
    Ok(chunk.iter().map(|s| ids.contains(&s.id)).collect())
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
    /// Recorded from the simulated fleet, not from a real system.
    pub simulated: bool,
}

pub async fn record_baseline(conn: &mut Conn, b: &Baseline) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&b.application)
    .bind(&b.environment)
    .bind(b.execution)
    .bind(&b.kind)
    .bind(&b.version)
    .bind(b.replicas)
    .bind(&b.config_version)
    .bind(b.recorded_at)
    .bind(i64::from(b.simulated))
    .fetch_one(&mut *conn)
    .await?;
    Ok(get_i64(&row, "id")?)
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

const BASELINE_COLUMNS: &str =
    "id, application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated";

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
        simulated: get_i64(r, "simulated")? != 0,
    })
}

pub async fn baseline(conn: &mut Conn, id: i64) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!("SELECT {BASELINE_COLUMNS} FROM baselines WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The state an execution (of `application` in `environment`: the index's way to its
/// baselines) started from: what a rollback returns to by default.
pub async fn baseline_before(
    conn: &mut Conn,
    execution: i64,
    application: &str,
    environment: &str,
) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines
         WHERE application = $1 AND environment = $2 AND execution_id = $3 AND kind = 'before' ORDER BY id LIMIT 1"
    ))
    .bind(application)
    .bind(environment)
    .bind(execution)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(baseline_from_row).transpose()
}

/// The last completed state of an application in an environment: what the newest
/// finished release (or rollback) left.
pub async fn last_completed(conn: &mut Conn, application: &str, environment: &str) -> anyhow::Result<Option<Baseline>> {
    let row = sqlx::query(&format!(
        "SELECT {BASELINE_COLUMNS} FROM baselines WHERE application = $1 AND environment = $2 AND kind IN ('after', 'rollback')
         ORDER BY id DESC LIMIT 1"
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
        "SELECT b.id, b.application, b.environment, b.execution_id, b.kind, b.version, b.replicas, b.config_version, b.recorded_at, b.simulated, e.ticket_id
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
