//! All SQL lives here, one module per aggregate. Works on SQLite and PostgreSQL
//! through sqlx's `Any` driver; queries use `$n` placeholders, which both accept.

pub mod audit;
pub mod calendar;
pub mod executions;
pub mod firings;
pub mod forms;
pub mod inbox;
pub mod lease;
pub mod local;
pub mod outbox;
pub mod roles;
pub mod secrets;
pub mod signatures;
pub mod swimlanes;
pub mod tickets;
pub mod tokens;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Conn = sqlx::AnyConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of a connection.
    pub fn of(conn: &Conn) -> Self {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The database: `pool` takes every write (on SQLite one connection, the only writer, so
/// writes queue instead of failing); `read` serves reads that need no transaction (on
/// SQLite a pool of read-only connections beside the writer, thanks to WAL; on PostgreSQL
/// the same pool). `owner` names this process in the leases it takes.
#[derive(Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub read: AnyPool,
    pub backend: Backend,
    pub owner: std::sync::Arc<str>,
    /// Alive while a clone of this store is (SQLite's checkpointer stops with the last).
    _alive: std::sync::Arc<()>,
}

/// Connections to PostgreSQL (shared by every worker and request).
const POSTGRES_CONNECTIONS: u32 = 24;
/// Read-only SQLite connections beside the writer.
const SQLITE_READERS: u32 = 4;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects without migrating.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!(
                "DATABASE_URL must start with sqlite: or postgres:// (got {})",
                redact_url(url)
            );
        };
        let owner: std::sync::Arc<str> = format!("{}-{:08x}", std::process::id(), rand::random::<u32>()).into();
        let connect = |max: u32, read_only: bool| async move {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                // A broken connection fails its statement (and the work is retried); a
                // ping before every use would double the round trips of the single writer.
                .test_before_acquire(false)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL with synchronous=NORMAL: a crash loses no committed transaction
                            // and cannot corrupt the file; only a power cut may lose the last ones.
                            // Readers see the last commit while the writer works.
                            sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                            if read_only {
                                sqlx::query("PRAGMA query_only = ON").execute(&mut *conn).await?;
                            } else {
                                // The writer never stops to copy the log into the database
                                // (an unpredictable pause of a commit): the checkpointer does.
                                sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(&mut *conn).await?;
                                // When the log starts over, a log grown by a burst shrinks back.
                                sqlx::query("PRAGMA journal_size_limit = 67108864")
                                    .execute(&mut *conn)
                                    .await?;
                            }
                        }
                        Ok(())
                    })
                })
                .connect(url)
                .await
                .with_context(|| format!("connecting to {}", redact_url(url)))
        };
        let alive = std::sync::Arc::new(());
        let (pool, read) = match backend {
            Backend::Sqlite => {
                // One writer: SQLite allows one at a time, and a single connection serialises
                // writes in order instead of failing them with SQLITE_BUSY.
                let pool = connect(1, false).await?;
                let read = connect(SQLITE_READERS, true).await?;
                checkpoint_in_background(url, std::sync::Arc::downgrade(&alive)).await?;
                (pool, read)
            }
            Backend::Postgres => {
                let pool = connect(POSTGRES_CONNECTIONS, false).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            read,
            backend,
            owner,
            _alive: alive,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("applying migrations")?;
        Ok(())
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let s = Self::connect(url).await?;
        s.migrate().await?;
        Ok(s)
    }

    pub async fn begin(&self) -> anyhow::Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.read.close().await;
    }
}

/// How often SQLite's write-ahead log is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies SQLite's write-ahead log into the database on a connection of its own, beside
/// the writer (a passive checkpoint waits for nobody and makes nobody wait), until the
/// store is dropped. The log starts over from its beginning once it is all copied (see
/// [`checkpoint`]).
async fn checkpoint_in_background(url: &str, alive: std::sync::Weak<()>) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.strong_count() == 0 {
                break;
            }
            if let Err(e) = checkpoint(&mut conn).await {
                tracing::warn!(error = %format!("{e:#}"), "sqlite: checkpoint");
            }
        }
        let _ = conn.close().await;
    });
    Ok(())
}

/// Most passive checkpoints in a row while the writer keeps adding to the log.
const CHECKPOINT_ROUNDS: usize = 4;

/// Copies the log into the database until all of it is copied (or a few rounds were not
/// enough). The log starts over only once all of it is copied, and a checkpoint copies
/// what was committed when it began: under a steady stream of commits a single one
/// always leaves behind those committed while it copied, and the log would grow for as
/// long as the commits go on, each one slower. The rounds after the first copy only
/// those few, and soon catch up (a round that finds the log as the last one left it).
async fn checkpoint(conn: &mut sqlx::AnyConnection) -> anyhow::Result<()> {
    let mut last = -1;
    for _ in 0..CHECKPOINT_ROUNDS {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *conn)
            .await?;
        let log = get_i64(&row, "log")?;
        if log == last {
            break;
        }
        last = log;
    }
    Ok(())
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Placeholders of a statement built with many parameters: `?` on SQLite (where each
/// numbered parameter costs a lookup through all of them when bound), `$n` on PostgreSQL.
/// Values are bound in the order the placeholders were made.
pub(crate) struct Marks {
    sqlite: bool,
    n: usize,
}

impl Marks {
    pub(crate) fn new(conn: &Conn) -> Self {
        Self::for_backend(Backend::of(conn))
    }

    pub(crate) fn for_store(store: &Store) -> Self {
        Self::for_backend(store.backend)
    }

    pub(crate) fn for_backend(backend: Backend) -> Self {
        Self {
            sqlite: backend == Backend::Sqlite,
            n: 0,
        }
    }

    /// The next placeholder.
    pub(crate) fn next(&mut self) -> String {
        self.n += 1;
        if self.sqlite {
            "?".to_string()
        } else {
            format!("${}", self.n)
        }
    }

    /// `count` placeholders, comma-separated.
    pub(crate) fn list(&mut self, count: usize) -> String {
        (0..count).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// A row of `count` placeholders in parentheses.
    pub(crate) fn row(&mut self, count: usize) -> String {
        format!("({})", self.list(count))
    }
}

/// A value bound to a built statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(String),
    MaybeText(Option<String>),
}

/// One statement and its arguments, in the order of its placeholders.
#[derive(Clone)]
pub(crate) struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Statement {
    /// A statement without arguments.
    pub(crate) fn plain(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            args: Vec::new(),
        }
    }

    /// The statement ready to run (its arguments bound).
    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        bind_all(sqlx::query(&self.sql), &self.args)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: impl IntoIterator<Item = &'q Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::MaybeInt(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
            Arg::MaybeText(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// Runs `statements` in one transaction on SQLite's writer (`conn`), all in one request to its
/// thread ([`run_together`] with `BEGIN` and `COMMIT`); the rows of each statement.
/// On failure the transaction is rolled back (or the connection discarded). Not
/// cancel-safe: a future dropped mid-way would leave the connection inside the
/// transaction; its one caller, the executor's writer, runs to completion (only the end
/// of the runtime stops it, and SQLite then discards the uncommitted transaction).
pub(crate) async fn commit_together(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    statements: Vec<Statement>,
) -> anyhow::Result<Vec<Vec<AnyRow>>> {
    let mut script = Vec::with_capacity(statements.len() + 2);
    script.push(Statement::plain("BEGIN"));
    script.extend(statements);
    script.push(Statement::plain("COMMIT"));
    match run_together(conn, &script).await {
        Ok(mut rows) => {
            rows.pop();
            rows.remove(0);
            Ok(rows)
        }
        Err(e) => {
            if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err() {
                // Whatever state it is in, the connection is not used again.
                conn.close_on_drop();
            }
            Err(e)
        }
    }
}

/// Several SQLite statements run in one request to the connection's thread, instead of a
/// request (and a wake-up of each side) per statement. Their placeholders are all `?`,
/// each taking the next argument. Returns the rows of each statement.
async fn run_together(conn: &mut Conn, statements: &[Statement]) -> anyhow::Result<Vec<Vec<AnyRow>>> {
    use futures::TryStreamExt;
    use sqlx::Executor;
    let sql = statements
        .iter()
        .map(|s| s.sql.as_str())
        .collect::<Vec<_>>()
        .join(";\n");
    let args = statements.iter().flat_map(|s| s.args.iter());
    let mut out: Vec<Vec<AnyRow>> = vec![Vec::new()];
    let mut results = conn.fetch_many(bind_all(sqlx::query(&sql), args));
    while let Some(r) = results.try_next().await? {
        match r {
            sqlx::Either::Left(_) => out.push(Vec::new()),
            sqlx::Either::Right(row) => {
                if let Some(rows) = out.last_mut() {
                    rows.push(row);
                }
            }
        }
    }
    out.pop();
    anyhow::ensure!(
        out.len() == statements.len(),
        "{} of {} statements ran",
        out.len(),
        statements.len()
    );
    Ok(out)
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db.message().contains("UNIQUE constraint failed")
                || db.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> Result<i64, sqlx::Error> {
    row.try_get::<i64, _>(col)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:redacted@h/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    /// Once the checkpointer has copied the log, the next commit starts it over: the log
    /// file holds what was committed since and does not grow.
    #[tokio::test]
    async fn the_log_starts_over_once_copied() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        sqlx::any::install_default_drivers();
        // A writer as the store's (but without its own checkpointer running beside).
        let mut writer = sqlx::AnyConnection::connect(&url).await.unwrap();
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA wal_autocheckpoint = 0",
            "CREATE TABLE t (x TEXT)",
        ] {
            sqlx::query(pragma).execute(&mut writer).await.unwrap();
        }
        let page = "x".repeat(4000);
        let log = || std::fs::metadata(dir.path().join("log.db-wal")).unwrap().len();
        let mut checkpointer = sqlx::AnyConnection::connect(&url).await.unwrap();
        let mut sizes = Vec::new();
        for _ in 0..3 {
            for _ in 0..100 {
                sqlx::query("INSERT INTO t (x) VALUES ($1)")
                    .bind(&page)
                    .execute(&mut writer)
                    .await
                    .unwrap();
            }
            sizes.push(log());
            super::checkpoint(&mut checkpointer).await.unwrap();
        }
        assert!(sizes[0] > 100 * 4096, "{sizes:?}");
        assert_eq!(sizes[2], sizes[0], "the log started over each time: {sizes:?}");
    }
}
