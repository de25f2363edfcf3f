//! Where posted messages live (so that later edits find them), and interactions' replies.

use super::*;

/// Records where several messages live, in one statement.
pub async fn put_refs(conn: &mut Conn, refs: &[(&str, &MessageRef)], now: i64) -> anyhow::Result<()> {
    // One row per key, the latest: PostgreSQL refuses a statement that upserts a row twice
    // (and the whole batch of outcomes would go unrecorded).
    let mut latest: Vec<(&str, &MessageRef)> = Vec::with_capacity(refs.len());
    for (key, r) in refs.iter().rev() {
        if !latest.iter().any(|(k, _)| k == key) {
            latest.push((key, r));
        }
    }
    let refs = latest;
    if refs.is_empty() {
        return Ok(());
    }
    let mut marks = super::super::Marks::new(conn);
    let values: Vec<String> = refs.iter().map(|_| marks.row(5)).collect();
    let sql = format!(
        "INSERT INTO message_refs (msg_key, platform, channel, ts, updated_at) VALUES {}
         ON CONFLICT (msg_key) DO UPDATE SET platform = EXCLUDED.platform, channel = EXCLUDED.channel, ts = EXCLUDED.ts, updated_at = EXCLUDED.updated_at",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (key, r) in &refs {
        q = q
            .bind(*key)
            .bind(r.platform.as_str())
            .bind(r.channel.as_str())
            .bind(r.ts.as_str())
            .bind(now);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Where several messages live, by message key.
pub async fn get_refs(store: &Store, keys: &[&str]) -> anyhow::Result<std::collections::HashMap<String, MessageRef>> {
    let mut out = std::collections::HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let marks = super::super::Marks::for_store(store).list(keys.len());
    let sql = format!("SELECT msg_key, platform, channel, ts FROM message_refs WHERE msg_key IN ({marks})");
    let mut q = sqlx::query(&sql);
    for k in keys {
        q = q.bind(*k);
    }
    for r in q.fetch_all(&store.read).await? {
        out.insert(
            r.try_get("msg_key")?,
            MessageRef {
                platform: r.try_get("platform")?,
                channel: r.try_get("channel")?,
                ts: r.try_get("ts")?,
            },
        );
    }
    Ok(out)
}

pub async fn put_ref(conn: &mut Conn, msg_key: &str, r: &MessageRef, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO message_refs (msg_key, platform, channel, ts, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (msg_key) DO UPDATE SET platform = EXCLUDED.platform, channel = EXCLUDED.channel, ts = EXCLUDED.ts, updated_at = EXCLUDED.updated_at",
    )
    .bind(msg_key)
    .bind(&r.platform)
    .bind(&r.channel)
    .bind(&r.ts)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_ref(conn: &mut Conn, msg_key: &str) -> anyhow::Result<Option<MessageRef>> {
    let row = sqlx::query("SELECT platform, channel, ts FROM message_refs WHERE msg_key = $1")
        .bind(msg_key)
        .fetch_optional(&mut *conn)
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
pub async fn find_ref(conn: &mut Conn, platform: &str, channel: &str, ts: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT msg_key FROM message_refs WHERE platform = $1 AND ts = $2 AND channel = $3")
        .bind(platform)
        .bind(ts)
        .bind(channel)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.try_get("msg_key")).transpose().map_err(Into::into)
}

/// The channel of a posted message, from its platform id (DingTalk card callbacks name
/// only the card).
pub async fn channel_of(store: &Store, platform: &str, ts: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT channel FROM message_refs WHERE platform = $1 AND ts = $2")
        .bind(platform)
        .bind(ts)
        .fetch_optional(&store.read)
        .await?;
    row.map(|r| r.try_get("channel")).transpose().map_err(Into::into)
}

/// Claims the first undelivered private answer or form meant for one interaction (its
/// `reply_key`), so that the platform gets it as the synchronous answer to that
/// interaction instead of a later call. Forms come first. Returns the claimed payload.
pub async fn take_reply(store: &Store, platform: &str, token: &str, now: i64) -> anyhow::Result<Option<String>> {
    let rows = sqlx::query(
        "SELECT id, kind, payload FROM outbox WHERE reply_key = $1 AND status = 'pending' AND platform = $2 ORDER BY id",
    )
    .bind(token)
    .bind(platform)
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
    let mut tx = store.begin().await?;
    let taken = settle_items(
        &mut tx,
        "id = $1 AND status = 'pending'",
        &[Bind::Int(id)],
        "sent",
        now,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok((taken == 1).then_some(payload))
}
