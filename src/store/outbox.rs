//! The outbox: chat messages written in the same transaction as the state change
//! they announce, delivered later by the outbox worker.

use super::{get_i64, Conn, Store};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewItem<'a> {
    pub platform: &'a str,
    /// Items of one channel key are delivered in order, and paced together.
    pub channel_key: &'a str,
    pub kind: &'a str,
    /// Names the message this item posts or edits.
    pub msg_key: Option<&'a str>,
    pub payload: &'a str,
    /// Not delivered before this time (ms).
    pub not_before: i64,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: i64,
    pub platform: String,
    pub channel_key: String,
    pub kind: String,
    pub msg_key: Option<String>,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

pub async fn insert(conn: &mut Conn, item: &NewItem<'_>, now: i64) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO outbox (platform, channel_key, kind, msg_key, payload, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7) RETURNING id",
    )
    .bind(item.platform)
    .bind(item.channel_key)
    .bind(item.kind)
    .bind(item.msg_key)
    .bind(item.payload)
    .bind(item.not_before.max(now))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(get_i64(&row, "id")?)
}

/// The not-yet-sent item of `kind` for `msg_key`, if any.
pub async fn pending_for_message(conn: &mut Conn, msg_key: &str, kind: &str) -> anyhow::Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT id, payload FROM outbox WHERE msg_key = $1 AND kind = $2 AND status = 'pending' ORDER BY id DESC LIMIT 1")
        .bind(msg_key)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Ok((get_i64(&r, "id")?, r.try_get("payload")?))).transpose()
}

pub async fn set_payload(conn: &mut Conn, id: i64, payload: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET payload = $1 WHERE id = $2 AND status = 'pending'")
        .bind(payload)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks not-yet-sent edits of `msg_key` as replaced by a newer one.
pub async fn supersede_pending(conn: &mut Conn, msg_key: &str, kind: &str) -> anyhow::Result<u64> {
    let res =
        sqlx::query("UPDATE outbox SET status = 'superseded' WHERE msg_key = $1 AND kind = $2 AND status = 'pending'")
            .bind(msg_key)
            .bind(kind)
            .execute(&mut *conn)
            .await?;
    Ok(res.rows_affected())
}

/// Takes the next deliverable item: due, first of its channel, channel not paced.
pub async fn lease_next(store: &Store, now: i64, lease_ms: i64) -> anyhow::Result<Option<Item>> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT o.id, o.platform, o.channel_key, o.kind, o.msg_key, o.payload, o.attempts, o.created_at FROM outbox o
         WHERE ((o.status = 'pending' AND o.next_attempt_at <= $1) OR (o.status = 'sending' AND o.lease_until < $1))
           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel_key = o.channel_key AND p.id < o.id AND p.status IN ('pending', 'sending'))
           AND NOT EXISTS (SELECT 1 FROM outbox_channels c WHERE c.channel_key = o.channel_key AND c.next_at > $1)
         ORDER BY o.id LIMIT 1{}",
        store.skip_locked()
    ))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let item = Item {
        id: get_i64(&r, "id")?,
        platform: r.try_get("platform")?,
        channel_key: r.try_get("channel_key")?,
        kind: r.try_get("kind")?,
        msg_key: r.try_get("msg_key")?,
        payload: r.try_get("payload")?,
        attempts: get_i64(&r, "attempts")?,
        created_at: get_i64(&r, "created_at")?,
    };
    sqlx::query("UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $1 WHERE id = $2")
        .bind(now + lease_ms)
        .bind(item.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(item))
}

pub async fn mark_sent(store: &Store, id: i64, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Puts an item back in the queue, to be tried again at `next_at`.
pub async fn reschedule(store: &Store, id: i64, next_at: i64, error: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = $1, last_error = $2 WHERE id = $3")
        .bind(next_at)
        .bind(error)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Gives up on an item that can never be delivered (the platform refused it).
pub async fn mark_failed(store: &Store, id: i64, now: i64, error: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET status = 'failed', sent_at = $1, last_error = $2 WHERE id = $3")
        .bind(now)
        .bind(error)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Holds back the channel until `next_at` (pacing, or the platform's Retry-After).
pub async fn pace_channel(store: &Store, channel_key: &str, next_at: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox_channels (channel_key, next_at) VALUES ($1, $2)
         ON CONFLICT (channel_key) DO UPDATE SET next_at = EXCLUDED.next_at",
    )
    .bind(channel_key)
    .bind(next_at)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Items not yet delivered.
pub async fn depth(store: &Store) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")
        .fetch_one(&store.pool)
        .await?;
    Ok(get_i64(&row, "n")?)
}

/// The earliest time at which a waiting item may become deliverable, if any waits.
pub async fn next_wake(store: &Store) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MIN(CASE WHEN c.next_at IS NOT NULL AND c.next_at > o.next_attempt_at THEN c.next_at ELSE o.next_attempt_at END) AS t
         FROM outbox o LEFT JOIN outbox_channels c ON c.channel_key = o.channel_key
         WHERE o.status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel_key = o.channel_key AND p.id < o.id AND p.status IN ('pending', 'sending'))",
    )
    .fetch_one(&store.pool)
    .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

/// Where a posted message lives, so that later edits find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub platform: String,
    pub channel: String,
    pub ts: String,
}

pub async fn put_ref(store: &Store, msg_key: &str, r: &MessageRef, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO message_refs (msg_key, platform, channel, ts, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (msg_key) DO UPDATE SET platform = EXCLUDED.platform, channel = EXCLUDED.channel, ts = EXCLUDED.ts, updated_at = EXCLUDED.updated_at",
    )
    .bind(msg_key)
    .bind(&r.platform)
    .bind(&r.channel)
    .bind(&r.ts)
    .bind(now)
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub async fn get_ref(store: &Store, msg_key: &str) -> anyhow::Result<Option<MessageRef>> {
    let row = sqlx::query("SELECT platform, channel, ts FROM message_refs WHERE msg_key = $1")
        .bind(msg_key)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| {
        Ok(MessageRef {
            platform: r.try_get("platform")?,
            channel: r.try_get("channel")?,
            ts: r.try_get("ts")?,
        })
    })
    .transpose()
}

/// Finds which message key a platform message is, from its location.
pub async fn find_ref(store: &Store, platform: &str, channel: &str, ts: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT msg_key FROM message_refs WHERE platform = $1 AND channel = $2 AND ts = $3")
        .bind(platform)
        .bind(channel)
        .bind(ts)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| r.try_get("msg_key")).transpose().map_err(Into::into)
}

/// The channel of a posted message, from its platform id (DingTalk card callbacks name
/// only the card).
pub async fn channel_of(store: &Store, platform: &str, ts: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT channel FROM message_refs WHERE platform = $1 AND ts = $2")
        .bind(platform)
        .bind(ts)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| r.try_get("channel")).transpose().map_err(Into::into)
}

/// Claims the first undelivered private answer or form meant for one interaction
/// (`token` appears in its payload), so that the platform gets it as the synchronous
/// answer to that interaction instead of a later call. Forms come first.
/// Returns the claimed item's payload.
pub async fn take_reply(store: &Store, platform: &str, token: &str, now: i64) -> anyhow::Result<Option<String>> {
    // `%` and `_` in a token match themselves too; the exact check follows.
    let pattern = format!("%{token}%");
    let rows = sqlx::query(
        "SELECT id, kind, payload FROM outbox
         WHERE platform = $1 AND status = 'pending' AND kind IN ('open_form', 'ephemeral') AND payload LIKE $2
         ORDER BY id",
    )
    .bind(platform)
    .bind(pattern)
    .fetch_all(&store.pool)
    .await?;
    let mut best: Option<(i64, String, String)> = None;
    for r in rows {
        let (id, kind, payload): (i64, String, String) =
            (get_i64(&r, "id")?, r.try_get("kind")?, r.try_get("payload")?);
        if best
            .as_ref()
            .is_none_or(|(_, k, _)| k != "open_form" && kind == "open_form")
        {
            best = Some((id, kind, payload));
        }
    }
    let Some((id, _, payload)) = best else {
        return Ok(None);
    };
    let res = sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2 AND status = 'pending'")
        .bind(now)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok((res.rows_affected() == 1).then_some(payload))
}
