//! The one lease mechanism of every queue: inbox events, outbox channels, executions
//! (and the scheduler's firings). A row of a queue can be claimed while it is live and its
//! `due_at` has passed; claiming moves `due_at` to the end of the lease and names the
//! owner, so the lease of a process that died simply falls due again: there is no `OR`
//! in the claim, and each claim reads the first rows of one partial index
//! (`(due_at …) WHERE live`), which costs the same with 100 or 100,000 rows waiting —
//! with PostgreSQL's cached generic plans too (`store` tests check the plans).

use super::{Backend, Conn, Store};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::Any;

/// The key of a queue's row: an id, or a name (an outbox channel).
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Id(i64),
    Name(&'a str),
}

impl From<i64> for Key<'_> {
    fn from(id: i64) -> Self {
        Key::Id(id)
    }
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(name: &'a str) -> Self {
        Key::Name(name)
    }
}

fn bind_key<'q>(q: Query<'q, Any, AnyArguments<'q>>, key: Key<'q>) -> Query<'q, Any, AnyArguments<'q>> {
    match key {
        Key::Id(id) => q.bind(id),
        Key::Name(name) => q.bind(name),
    }
}

/// A table used as a queue.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub table: &'static str,
    /// The key column.
    pub key: &'static str,
    /// What makes a row claimable besides being due (a literal predicate, so that the
    /// planner matches it with the partial index even in a generic plan).
    pub live: &'static str,
    /// More assignments made by a claim (`, attempts = attempts + 1`).
    pub on_claim: &'static str,
    /// Where `due_at` goes when every lease is released at start (SQLite).
    pub release_due: &'static str,
    /// The column claims may filter on (the outbox's platform), served by the index.
    pub filter: Option<&'static str>,
}

pub const INBOX: Queue = Queue {
    table: "inbox",
    key: "id",
    live: "status = 'pending'",
    on_claim: ", attempts = attempts + 1",
    release_due: "$1",
    filter: None,
};

pub const OUTBOX_CHANNELS: Queue = Queue {
    table: "outbox_channels",
    key: "channel_key",
    live: "pending > 0",
    on_claim: "",
    release_due: "next_at",
    filter: Some("platform"),
};

pub const EXECUTIONS: Queue = Queue {
    table: "executions",
    key: "id",
    live: "finished_at IS NULL",
    on_claim: "",
    release_due: "next_wake",
    filter: None,
};

pub const FIRINGS: Queue = Queue {
    table: "firings",
    key: "id",
    live: "status = 'pending'",
    on_claim: ", attempts = attempts + 1",
    release_due: "$1",
    filter: None,
};

/// The value of the queue's filter column a claim is restricted to (`slack`), if any.
pub type Filter<'a> = Option<&'a str>;

/// What a claim takes: rows due at `now` (of the filter's value, when the queue has a
/// filter), at most `limit`, leased until `until`.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub filter: Filter<'a>,
    pub now: i64,
    pub until: i64,
    pub limit: i64,
}

/// Claims up to `limit` due rows of `q` for `owner` until `until`, oldest due first;
/// returns `returning` columns of each. On PostgreSQL rows another transaction is
/// claiming are skipped (`FOR UPDATE SKIP LOCKED`).
pub async fn claim(
    conn: &mut Conn,
    store: &Store,
    q: &Queue,
    c: Claim<'_>,
    returning: &str,
) -> anyhow::Result<Vec<AnyRow>> {
    let Claim {
        filter,
        now,
        until,
        limit,
    } = c;
    let sql = claim_sql(q, store.backend, filter.is_some(), returning);
    let mut query = sqlx::query(&sql)
        .bind(until)
        .bind(store.owner.as_ref())
        .bind(now)
        .bind(limit);
    if let (Some(v), Some(_)) = (filter, q.filter) {
        query = query.bind(v);
    }
    Ok(query.fetch_all(&mut *conn).await?)
}

/// The claim statement: `$1` lease end, `$2` owner, `$3` now, `$4` limit, `$5` the
/// filter's value. Public so that tests can look at its plans.
pub fn claim_sql(q: &Queue, backend: Backend, filtered: bool, returning: &str) -> String {
    let skip = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let filter_sql = match (filtered, q.filter) {
        (true, Some(col)) => format!(" AND {col} = $5"),
        _ => String::new(),
    };
    format!(
        "UPDATE {t} SET due_at = $1, lease_owner = $2{on_claim}
         WHERE {k} IN (SELECT {k} FROM {t} WHERE {live}{filter_sql} AND due_at <= $3 ORDER BY due_at, {k} LIMIT $4{skip})
         RETURNING {returning}",
        t = q.table,
        k = q.key,
        on_claim = q.on_claim,
        live = q.live,
    )
}

/// Whether any row of the queue is due, read without the writer (a claim that would
/// find nothing then does not take it).
pub async fn any_due(store: &Store, q: &Queue, now: i64) -> anyhow::Result<bool> {
    let sql = format!(
        "SELECT 1 AS due FROM {t} WHERE {live} AND due_at <= $1 LIMIT 1",
        t = q.table,
        live = q.live,
    );
    Ok(sqlx::query(&sql).bind(now).fetch_optional(&store.read).await?.is_some())
}

/// Claims one given row if it is live and not leased by a live owner.
pub async fn claim_key(store: &Store, q: &Queue, key: Key<'_>, now: i64, until: i64) -> anyhow::Result<bool> {
    let sql = format!(
        "UPDATE {t} SET due_at = $1, lease_owner = $2{on_claim}
         WHERE {k} = $3 AND {live} AND (lease_owner IS NULL OR due_at <= $4)",
        t = q.table,
        k = q.key,
        on_claim = q.on_claim,
        live = q.live,
    );
    let query = sqlx::query(&sql).bind(until).bind(store.owner.as_ref());
    let res = bind_key(query, key).bind(now).execute(&store.pool).await?;
    Ok(res.rows_affected() == 1)
}

/// Gives a claimed row back, to fall due again at `due_at`; false when this owner no
/// longer held it. Runs in the caller's transaction.
pub async fn release(conn: &mut Conn, owner: &str, q: &Queue, key: Key<'_>, due_at: i64) -> anyhow::Result<bool> {
    let sql = format!(
        "UPDATE {t} SET due_at = $1, lease_owner = NULL WHERE {k} = $2 AND lease_owner = $3",
        t = q.table,
        k = q.key,
    );
    let query = bind_key(sqlx::query(&sql).bind(due_at), key);
    let res = query.bind(owner).execute(&mut *conn).await?;
    Ok(res.rows_affected() == 1)
}

/// Extends a claimed row's lease to `until`; false when this owner no longer holds it.
pub async fn extend(store: &Store, q: &Queue, key: Key<'_>, until: i64) -> anyhow::Result<bool> {
    let sql = format!(
        "UPDATE {t} SET due_at = $1 WHERE {k} = $2 AND lease_owner = $3",
        t = q.table,
        k = q.key,
    );
    let query = bind_key(sqlx::query(&sql).bind(until), key);
    let res = query.bind(store.owner.as_ref()).execute(&store.pool).await?;
    Ok(res.rows_affected() == 1)
}

/// Frees every lease of the queue at once: called at start by a process that is the
/// database's only user (SQLite), so that nothing waits for a dead process's leases.
pub async fn release_all(store: &Store, q: &Queue, now: i64) -> anyhow::Result<u64> {
    let sql = format!(
        "UPDATE {t} SET due_at = {due}, lease_owner = NULL WHERE lease_owner IS NOT NULL AND {live}",
        t = q.table,
        due = q.release_due,
        live = q.live,
    );
    let mut query = sqlx::query(&sql);
    if q.release_due == "$1" {
        query = query.bind(now);
    }
    Ok(query.execute(&store.pool).await?.rows_affected())
}

/// Frees the leases this process holds (at shutdown), so another replica takes them now.
pub async fn release_owned(store: &Store, q: &Queue, now: i64) -> anyhow::Result<u64> {
    let sql = format!(
        "UPDATE {t} SET due_at = $1, lease_owner = NULL WHERE lease_owner = $2 AND {live}",
        t = q.table,
        live = q.live,
    );
    Ok(sqlx::query(&sql)
        .bind(now)
        .bind(store.owner.as_ref())
        .execute(&store.pool)
        .await?
        .rows_affected())
}

/// The earliest time a row of the queue falls due, if any is live.
pub async fn next_due(store: &Store, q: &Queue, filter: Filter<'_>) -> anyhow::Result<Option<i64>> {
    use sqlx::Row;
    let filter_sql = match (filter, q.filter) {
        (Some(_), Some(col)) => format!(" AND {col} = $1"),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT MIN(due_at) AS t FROM {t} WHERE {live}{filter_sql}",
        t = q.table,
        live = q.live
    );
    let mut query = sqlx::query(&sql);
    if let (Some(v), Some(_)) = (filter, q.filter) {
        query = query.bind(v);
    }
    let row = query.fetch_one(&store.read).await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}
