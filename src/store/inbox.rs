//! Inbound events, recorded before the platform is acknowledged and processed once.
//! The unique `dedupe_key` turns retried deliveries into no-ops; `order_key` names the
//! aggregate an event changes (a ticket, the role set …): events of one key are handled
//! in the order they arrived, events of different keys at once.

use super::lease::{self, INBOX};
use super::{get_i64, Conn, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub platform: String,
    pub order_key: String,
    pub payload: String,
    pub attempts: i64,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub platform: String,
    pub dedupe_key: String,
    pub order_key: String,
    pub payload: String,
}

const RETURNING: &str = "id, platform, order_key, payload, attempts";

fn from_row(r: &AnyRow) -> anyhow::Result<InboxRow> {
    Ok(InboxRow {
        id: get_i64(r, "id")?,
        platform: r.try_get("platform")?,
        order_key: r.try_get("order_key")?,
        payload: r.try_get("payload")?,
        attempts: get_i64(r, "attempts")?,
    })
}

/// Largest number of events written by one statement.
const INSERT_CHUNK: usize = 256;

/// Records events in one transaction (a group commit of acknowledgements); for each, its
/// inbox id, or `None` when the same delivery was recorded before (or earlier in `events`).
pub async fn insert_batch(store: &Store, events: &[NewEvent], now: i64) -> anyhow::Result<Vec<Option<i64>>> {
    Ok(insert_batch_timed(store, events, now).await?.ids)
}

/// What [`insert_batch_timed`] did and how long each part took.
pub struct Recorded {
    pub ids: Vec<Option<i64>>,
    /// Waiting for the writer (on SQLite: behind whatever transaction holds it).
    pub waited: std::time::Duration,
    /// Writing and committing, once the writer was had.
    pub wrote: std::time::Duration,
}

/// [`insert_batch`], timed.
pub async fn insert_batch_timed(store: &Store, events: &[NewEvent], now: i64) -> anyhow::Result<Recorded> {
    let asked = std::time::Instant::now();
    let mut conn = store.pool.acquire().await?;
    let had = std::time::Instant::now();
    let ids = if events.len() <= INSERT_CHUNK {
        // One statement is atomic by itself: no transaction around it.
        insert_in(&mut conn, events, now).await?
    } else {
        use sqlx::Connection;
        let mut tx = conn.begin().await?;
        let ids = insert_in(&mut tx, events, now).await?;
        tx.commit().await?;
        ids
    };
    Ok(Recorded {
        ids,
        waited: had - asked,
        wrote: had.elapsed(),
    })
}

/// Like [`insert_batch`], in the caller's transaction (an event emitted together with the
/// state change it reports).
pub async fn insert_in(conn: &mut Conn, events: &[NewEvent], now: i64) -> anyhow::Result<Vec<Option<i64>>> {
    let mut out = vec![None; events.len()];
    let mut first_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let unique: Vec<usize> = (0..events.len())
        .filter(|&i| *first_of.entry(events[i].dedupe_key.as_str()).or_insert(i) == i)
        .collect();
    for chunk in unique.chunks(INSERT_CHUNK) {
        let mut marks = super::Marks::new(conn);
        let values: Vec<String> = chunk
            .iter()
            .map(|_| format!("({}, 'pending', {}, {})", marks.list(4), marks.next(), marks.next()))
            .collect();
        let sql = format!(
            "INSERT INTO inbox (platform, dedupe_key, order_key, payload, status, received_at, due_at) VALUES {}
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            let e = &events[i];
            q = q
                .bind(e.platform.as_str())
                .bind(e.dedupe_key.as_str())
                .bind(e.order_key.as_str())
                .bind(e.payload.as_str())
                .bind(now)
                .bind(now);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let key: String = r.try_get("dedupe_key")?;
            if let Some(&i) = first_of.get(key.as_str()) {
                out[i] = Some(get_i64(&r, "id")?);
            }
        }
    }
    Ok(out)
}

/// Records one event; `None` when the same delivery was already recorded.
pub async fn insert(
    store: &Store,
    platform: &str,
    dedupe_key: &str,
    payload: &str,
    now: i64,
) -> anyhow::Result<Option<i64>> {
    let e = NewEvent {
        platform: platform.into(),
        dedupe_key: dedupe_key.into(),
        order_key: format!("event:{dedupe_key}"),
        payload: payload.into(),
    };
    Ok(insert_batch(store, &[e], now).await?.pop().flatten())
}

/// Claims up to `limit` due events for `lease_ms`, oldest first.
pub async fn claim(store: &Store, now: i64, lease_ms: i64, limit: i64) -> anyhow::Result<Vec<InboxRow>> {
    let mut conn = store.pool.acquire().await?;
    let rows = lease::claim(
        &mut conn,
        store,
        &INBOX,
        lease::Claim {
            filter: None,
            now,
            until: now + lease_ms,
            limit,
        },
        RETURNING,
    )
    .await?;
    let mut out = rows.iter().map(from_row).collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

/// Takes the next due event (or one whose lease expired) for `lease_ms`.
pub async fn lease_next(store: &Store, now: i64, lease_ms: i64) -> anyhow::Result<Option<InboxRow>> {
    Ok(claim(store, now, lease_ms, 1).await?.pop())
}

/// Takes one given event for processing now (the platform waits for the answer);
/// `None` when a worker has it already.
pub async fn lease_id(store: &Store, id: i64, now: i64, lease_ms: i64) -> anyhow::Result<Option<InboxRow>> {
    if !lease::claim_key(store, &INBOX, id.into(), now, now + lease_ms).await? {
        return Ok(None);
    }
    let row = sqlx::query(&format!("SELECT {RETURNING} FROM inbox WHERE id = $1"))
        .bind(id)
        .fetch_one(&store.pool)
        .await?;
    Ok(Some(from_row(&row)?))
}

/// An earlier waiting event of the key `$1` than the id `$2`.
pub const EARLIER_PENDING_SQL: &str =
    "SELECT id FROM inbox WHERE order_key = $1 AND status = 'pending' AND id < $2 LIMIT 1";

/// Whether an earlier event of the same key is still waiting (claimed by another worker,
/// or not yet): this one must wait for it.
pub async fn has_earlier_pending(conn: &mut Conn, order_key: &str, id: i64) -> anyhow::Result<bool> {
    let row = sqlx::query(EARLIER_PENDING_SQL)
        .bind(order_key)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Gives a claimed event back, to be taken again at `due_at`.
pub async fn release(conn: &mut Conn, owner: &str, id: i64, due_at: i64) -> anyhow::Result<bool> {
    lease::release(conn, owner, &INBOX, id.into(), due_at).await
}

/// Marks an event handled; called inside the transaction of its effects.
pub async fn mark_done(conn: &mut Conn, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE inbox SET status = 'done', processed_at = $1, lease_owner = NULL WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks events handled; called inside the transaction of their effects.
pub async fn mark_done_many(conn: &mut Conn, ids: &[i64], now: i64) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut marks = super::Marks::new(conn);
    let at = marks.next();
    let sql = format!(
        "UPDATE inbox SET status = 'done', processed_at = {at}, lease_owner = NULL WHERE id IN ({})",
        marks.list(ids.len())
    );
    let mut q = sqlx::query(&sql).bind(now);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

pub async fn mark_failed(conn: &mut Conn, id: i64, error: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE inbox SET status = 'failed', processed_at = $1, error = $2, lease_owner = NULL WHERE id = $3")
        .bind(now)
        .bind(error)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Events not yet handled.
pub async fn pending(store: &Store) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE status = 'pending'")
        .fetch_one(&store.read)
        .await?;
    Ok(get_i64(&row, "n")?)
}

/// When the oldest event not yet handled was received, if any waits.
pub async fn oldest_pending(store: &Store) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query("SELECT MIN(received_at) AS t FROM inbox WHERE status = 'pending'")
        .fetch_one(&store.read)
        .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

/// Deletes up to `limit` events handled before `before`; how many went.
pub async fn prune(store: &Store, before: i64, limit: i64) -> anyhow::Result<u64> {
    let res = sqlx::query(
        "DELETE FROM inbox WHERE id IN (SELECT id FROM inbox WHERE status IN ('done', 'failed') AND processed_at < $1 ORDER BY processed_at LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(&store.pool)
    .await?;
    Ok(res.rows_affected())
}
