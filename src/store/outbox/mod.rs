//! The outbox: chat messages written in the same transaction as the state change
//! they announce, delivered later by the outbox worker.
//!
//! Items wait in delivery queues (`outbox_channels`: a channel, a user's direct messages,
//! one interaction's answers). A queue is the unit of the lease: a worker claims due
//! queues, sends the first item of each, and gives the queue back due again after its
//! pacing, so items of one queue go out in order and paced, and queues go out at once.
//! `pending` counts a queue's undelivered items; every change of an item out of
//! `pending`/`sending` goes through [`settle_items`], which keeps it right.

use super::lease::{self, OUTBOX_CHANNELS};
use super::{get_i64, Conn, Store};
use crate::chat::MessageRef;
use sqlx::any::AnyRow;
use sqlx::Row;

mod delivery;
mod gauges;
mod refs;

pub use delivery::*;
pub use gauges::*;
pub use refs::*;

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
    /// The interaction this item answers, for [`take_reply`].
    pub reply_key: Option<&'a str>,
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
    /// An earlier attempt may have reached the platform (it was under way when the
    /// process stopped, or ended without a clear answer): reconcile before sending again.
    pub uncertain: bool,
    /// The queue's pacing: the theoretical time of its next message (GCRA), from which a
    /// burst of [`BURST_MS`] may be taken early.
    pub tat: i64,
}

/// How far ahead of its pace a queue may send (a burst of a few messages, as Slack allows).
pub const BURST_MS: i64 = 2_000;

const ITEM_COLUMNS: &str =
    "id, platform, channel_key, kind, msg_key, payload, attempts, created_at, next_attempt_at, status";

fn item_from_row(r: &AnyRow) -> anyhow::Result<(Item, i64)> {
    let status: String = r.try_get("status")?;
    Ok((
        Item {
            id: get_i64(r, "id")?,
            platform: r.try_get("platform")?,
            channel_key: r.try_get("channel_key")?,
            kind: r.try_get("kind")?,
            msg_key: r.try_get("msg_key")?,
            payload: r.try_get("payload")?,
            attempts: get_i64(r, "attempts")?,
            created_at: get_i64(r, "created_at")?,
            uncertain: status == "sending",
            tat: 0,
        },
        get_i64(r, "next_attempt_at")?,
    ))
}

/// The undelivered posts and edits of messages, by key: (id, kind, payload).
pub type Waiting = std::collections::HashMap<String, (i64, String, String)>;

/// The latest undelivered post or edit of each of these messages: (id, kind, payload) by key.
pub async fn pending_for_messages(conn: &mut Conn, keys: &[&str]) -> anyhow::Result<Waiting> {
    let mut out = Waiting::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let marks = super::Marks::new(conn).list(keys.len());
    let sql = format!(
        "SELECT id, msg_key, kind, payload FROM outbox WHERE msg_key IN ({marks}) AND kind IN ('post', 'update') AND status = 'pending' ORDER BY id"
    );
    let mut q = sqlx::query(&sql);
    for k in keys {
        q = q.bind(*k);
    }
    for r in q.fetch_all(&mut *conn).await? {
        out.insert(
            r.try_get("msg_key")?,
            (get_i64(&r, "id")?, r.try_get("kind")?, r.try_get("payload")?),
        );
    }
    Ok(out)
}

/// Which of these messages have a progress item waiting (drawn when it is sent).
pub async fn pending_progress(conn: &mut Conn, keys: &[&str]) -> anyhow::Result<std::collections::HashSet<String>> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let marks = super::Marks::new(conn).list(keys.len());
    let sql = format!(
        "SELECT DISTINCT msg_key FROM outbox WHERE msg_key IN ({marks}) AND kind = 'progress' AND status = 'pending'"
    );
    let mut q = sqlx::query(&sql);
    for k in keys {
        q = q.bind(*k);
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("msg_key")?))
        .collect()
}

/// Writes items and wakes their queues, in the caller's transaction: two statements.
pub async fn insert_many(conn: &mut Conn, items: &[NewItem<'_>], now: i64) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    for chunk in items.chunks(200) {
        let mut marks = super::Marks::new(conn);
        let values: Vec<String> = chunk
            .iter()
            .map(|_| {
                format!(
                    "({}, 'pending', {}, {}, {})",
                    marks.list(5),
                    marks.next(),
                    marks.next(),
                    marks.next()
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO outbox (platform, channel_key, kind, msg_key, payload, status, next_attempt_at, created_at, reply_key) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for item in chunk {
            q = q
                .bind(item.platform)
                .bind(item.channel_key)
                .bind(item.kind)
                .bind(item.msg_key)
                .bind(item.payload)
                .bind(item.not_before.max(now))
                .bind(now)
                .bind(item.reply_key);
        }
        q.execute(&mut *conn).await?;
    }
    // Each queue once: how many items it gained, and when the first may go.
    let mut queues: Vec<(&str, &str, i64, i64)> = Vec::new();
    for item in items {
        match queues.iter_mut().find(|(k, _, _, _)| *k == item.channel_key) {
            Some(q) => {
                q.2 += 1;
                q.3 = q.3.min(item.not_before.max(now));
            }
            None => queues.push((item.channel_key, item.platform, 1, item.not_before.max(now))),
        }
    }
    for chunk in queues.chunks(200) {
        let mut marks = super::Marks::new(conn);
        let values: Vec<String> = chunk
            .iter()
            .map(|_| format!("({}, 0, {})", marks.list(3), marks.next()))
            .collect();
        let sql = format!(
            "INSERT INTO outbox_channels (channel_key, platform, pending, next_at, due_at) VALUES {} {}",
            values.join(", "),
            queue_upsert()
        );
        let mut q = sqlx::query(&sql);
        for (key, platform, n, due) in chunk {
            q = q.bind(*key).bind(*platform).bind(*n).bind(*due);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How a queue takes new items: an idle queue falls due when its pacing and the items
/// allow; a busy one is already due or leased, and its worker picks the items up in turn.
fn queue_upsert() -> String {
    format!(
        "ON CONFLICT (channel_key) DO UPDATE SET pending = outbox_channels.pending + EXCLUDED.pending,
           due_at = CASE WHEN outbox_channels.pending > 0 OR outbox_channels.lease_owner IS NOT NULL THEN outbox_channels.due_at
                         WHEN outbox_channels.next_at - {BURST_MS} > EXCLUDED.due_at THEN outbox_channels.next_at - {BURST_MS}
                         ELSE EXCLUDED.due_at END"
    )
}

/// An item to write only if the move of its execution is saved: the execution still at
/// `version` and leased by this process.
pub struct Guarded<'a> {
    pub execution: i64,
    pub version: i64,
    pub item: NewItem<'a>,
    /// An edit of a named message: the message (JSON); it replaces an undelivered post
    /// or edit of that message instead of being added.
    pub edit: Option<&'a str>,
    /// Added only if no item of its kind waits for the same message (a progress message).
    pub once: bool,
}

/// On SQLite, the statements that write guarded items, to run in one request before the
/// moves themselves are saved (the guards read the executions as they were): undelivered
/// posts and edits replaced, the queues of the new items woken, the new items added (a
/// progress message only where none waits).
/// The same outcome as [`crate::outbox::Batch::flush`] of the saved moves' items, without
/// reading anything first.
pub(crate) fn guarded_statements(items: &[Guarded<'_>], owner: &str, now: i64) -> Vec<super::Statement> {
    use super::Arg;
    if items.is_empty() {
        return Vec::new();
    }
    // Each statement reads the items from the same table of values.
    let values = |sql: &str| -> super::Statement {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; items.len()].join(", ");
        let mut args = Vec::with_capacity(items.len() * 12 + 1);
        for (ord, g) in items.iter().enumerate() {
            args.extend([
                Arg::Int(ord as i64),
                Arg::Int(g.execution),
                Arg::Int(g.version),
                Arg::Text(g.item.platform.to_string()),
                Arg::Text(g.item.channel_key.to_string()),
                Arg::Text(g.item.kind.to_string()),
                Arg::MaybeText(g.item.msg_key.map(str::to_string)),
                Arg::Text(g.item.payload.to_string()),
                Arg::Int(g.item.not_before.max(now)),
                Arg::MaybeText(g.item.reply_key.map(str::to_string)),
                Arg::MaybeText(g.edit.map(str::to_string)),
                Arg::Int(g.once.into()),
            ]);
        }
        args.push(Arg::Text(owner.to_string()));
        super::Statement {
            sql: format!(
                "WITH v (x_ord, x_exec, x_version, x_platform, x_channel, x_kind, x_key, x_payload, x_at, x_reply, x_edit, x_once)
                 AS (VALUES {rows}) {sql}"
            ),
            args,
        }
    };
    let saved = "JOIN executions e ON e.id = v.x_exec AND e.version = v.x_version AND e.lease_owner = ?";
    let undelivered = "SELECT MAX(o.id) FROM outbox o WHERE o.msg_key = v.x_key AND o.kind IN ('post', 'update') AND o.status = 'pending'";
    let drawn = "SELECT 1 FROM outbox o WHERE o.msg_key = v.x_key AND o.kind = 'progress' AND o.status = 'pending'";
    let added = format!("(v.x_edit IS NULL OR ({undelivered}) IS NULL) AND (v.x_once = 0 OR NOT EXISTS ({drawn}))");
    let mut statements = Vec::with_capacity(3);
    // Edits that replace an undelivered post or edit (none among the executor's moves
    // now: their progress message is drawn when sent).
    if items.iter().any(|g| g.edit.is_some()) {
        statements.push(values(&format!(
            "UPDATE outbox SET payload = CASE WHEN outbox.kind = 'post'
                 THEN json_set(outbox.payload, '$.message', json(v.x_edit)) ELSE v.x_payload END
             FROM v {saved}
             WHERE v.x_edit IS NOT NULL AND outbox.id = ({undelivered}) AND outbox.status = 'pending'"
        )));
    }
    statements.extend([
        values(&format!(
            "INSERT INTO outbox_channels (channel_key, platform, pending, next_at, due_at)
             SELECT v.x_channel, MIN(v.x_platform), COUNT(*), 0, MIN(v.x_at) FROM v {saved}
             WHERE {added} GROUP BY v.x_channel {}",
            queue_upsert()
        )),
        {
            let mut insert = values(&format!(
                "INSERT INTO outbox (platform, channel_key, kind, msg_key, payload, status, next_attempt_at, created_at, reply_key)
                 SELECT v.x_platform, v.x_channel, v.x_kind, v.x_key, v.x_payload, 'pending', v.x_at, ?, v.x_reply
                 FROM v {saved} WHERE {added} ORDER BY v.x_ord"
            ));
            // `created_at` comes before the guard's owner among the placeholders.
            let owner = insert.args.pop();
            insert.args.push(Arg::Int(now));
            insert.args.extend(owner);
            insert
        },
    ]);
    statements
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
    set_payloads(conn, &[(id, payload.to_string())]).await
}

/// [`set_payload`] of several items, in one statement.
pub async fn set_payloads(conn: &mut Conn, items: &[(i64, String)]) -> anyhow::Result<()> {
    for chunk in items.chunks(512) {
        let mut marks = super::Marks::new(conn);
        let values: Vec<String> = chunk.iter().map(|_| format!("({})", marks.list(2))).collect();
        let sql = format!(
            "WITH v (x_id, x_payload) AS (VALUES {})
             UPDATE outbox SET payload = v.x_payload FROM v WHERE outbox.id = v.x_id AND outbox.status = 'pending'",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (id, payload) in chunk {
            q = q.bind(*id).bind(payload.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A value bound to a filter of [`settle_items`].
#[derive(Debug, Clone, Copy)]
pub enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// Moves undelivered items to a final `status` (`sent`, `superseded`, `failed`) and
/// takes them off their queues' counts. Returns how many changed.
pub async fn settle_items(
    conn: &mut Conn,
    filter: &str,
    bind: &[Bind<'_>],
    status: &str,
    now: i64,
    error: Option<&str>,
) -> anyhow::Result<u64> {
    let sql = format!(
        "UPDATE outbox SET status = '{status}', sent_at = ${n1}, last_error = ${n2}
         WHERE status IN ('pending', 'sending') AND {filter} RETURNING channel_key",
        n1 = bind.len() + 1,
        n2 = bind.len() + 2,
    );
    let mut q = sqlx::query(&sql);
    for b in bind {
        q = match *b {
            Bind::Int(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
        };
    }
    let rows = q.bind(now).bind(error).fetch_all(&mut *conn).await?;
    let mut per_channel: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for r in &rows {
        *per_channel.entry(r.try_get("channel_key")?).or_default() += 1;
    }
    for (channel, n) in per_channel {
        sqlx::query("UPDATE outbox_channels SET pending = pending - $1 WHERE channel_key = $2")
            .bind(n)
            .bind(channel)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.len() as u64)
}

/// Marks not-yet-sent edits of `msg_key` as replaced by a newer one.
pub async fn supersede_pending(conn: &mut Conn, msg_key: &str, kind: &str, now: i64) -> anyhow::Result<u64> {
    settle_items(
        conn,
        "msg_key = $1 AND kind = $2 AND status = 'pending'",
        &[Bind::Text(msg_key), Bind::Text(kind)],
        "superseded",
        now,
        None,
    )
    .await
}
