//! The delivery side of the outbox: queues claimed through the lease, attempts' outcomes
//! recorded in batches, a platform's items failed when it has no client.

use super::*;

/// Claims, for each `(platform, limit)`, up to `limit` due queues of that platform for
/// `lease_ms`, in one transaction, and returns the first item of each, marked as being
/// sent. A queue whose first item is held (not yet due) is given back until then.
pub async fn claim(store: &Store, wanted: &[(&str, usize)], now: i64, lease_ms: i64) -> anyhow::Result<Vec<Item>> {
    let mut tx = store.begin().await?;
    let mut keys: Vec<String> = Vec::new();
    let mut tats: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for (platform, limit) in wanted.iter().filter(|(_, n)| *n > 0) {
        let rows = lease::claim(
            &mut tx,
            store,
            &OUTBOX_CHANNELS,
            lease::Claim {
                filter: Some(platform),
                now,
                until: now + lease_ms,
                limit: *limit as i64,
            },
            "channel_key, next_at",
        )
        .await?;
        for r in &rows {
            let key: String = r.try_get("channel_key")?;
            tats.insert(key.clone(), get_i64(r, "next_at")?);
            keys.push(key);
        }
    }
    if keys.is_empty() {
        tx.commit().await?;
        return Ok(vec![]);
    }
    let sql = heads_sql(store.backend, keys.len());
    let mut q = sqlx::query(&sql);
    for k in &keys {
        q = q.bind(k.as_str());
    }
    let heads = q.fetch_all(&mut *tx).await?;
    let mut out = Vec::with_capacity(heads.len());
    let mut with_head = std::collections::BTreeSet::new();
    for r in &heads {
        let (mut item, not_before) = item_from_row(r)?;
        item.tat = tats.get(&item.channel_key).copied().unwrap_or(0);
        with_head.insert(item.channel_key.clone());
        if not_before > now {
            lease::release(
                &mut tx,
                &store.owner,
                &OUTBOX_CHANNELS,
                item.channel_key.as_str().into(),
                not_before,
            )
            .await?;
            continue;
        }
        out.push(item);
    }
    for k in keys.iter().filter(|k| !with_head.contains(*k)) {
        // Nothing left to send (the count was off): the queue goes idle and is repaired.
        sqlx::query("UPDATE outbox_channels SET pending = 0, lease_owner = NULL WHERE channel_key = $1")
            .bind(k.as_str())
            .execute(&mut *tx)
            .await?;
    }
    if !out.is_empty() {
        let marks = super::super::Marks::new(&tx).list(out.len());
        let sql = format!("UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id IN ({marks})");
        let mut q = sqlx::query(&sql);
        for item in &out {
            q = q.bind(item.id);
        }
        q.execute(&mut *tx).await?;
        for item in &mut out {
            item.attempts += 1;
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// The first undelivered item of each of `n` queues, by the queue index.
pub fn heads_sql(backend: super::super::Backend, n: usize) -> String {
    let marks = super::super::Marks::for_backend(backend).list(n);
    format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE id IN (
           SELECT MIN(id) FROM outbox WHERE channel_key IN ({marks}) AND status IN ('pending', 'sending') GROUP BY channel_key)"
    )
}

/// What became of a delivery attempt.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Delivered (or found delivered by reconciliation); where a new message lives.
    Sent(Option<&'a MessageRef>),
    /// Refused for good.
    Failed(&'a str),
    /// Try again at `at`; `certain` when the platform surely did not take it (a 429),
    /// otherwise the next attempt reconciles first.
    Retry { at: i64, error: &'a str, certain: bool },
}

/// An attempt's outcome, and its queue's pacing after it: `tat` its theoretical time of
/// the next message, `due` when it may send next.
pub struct Finished<'a> {
    pub item: &'a Item,
    pub outcome: Outcome<'a>,
    pub tat: i64,
    pub due: i64,
}

/// Records attempts' outcomes and gives their queues back — each due after its pacing
/// (when more items wait) — in one transaction, with a handful of statements however
/// many there are. Each attempt is the first item of its own queue.
pub async fn finish_many(store: &Store, attempts: &[Finished<'_>], now: i64) -> anyhow::Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    let mut settled: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let sent: Vec<i64> = attempts
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::Sent(_)))
        .map(|f| f.item.id)
        .collect();
    if !sent.is_empty() {
        let mut marks = super::super::Marks::for_store(store);
        let at = marks.next();
        let sql = format!(
            "UPDATE outbox SET status = 'sent', sent_at = {at}, last_error = NULL
             WHERE id IN ({}) AND status IN ('pending', 'sending') RETURNING channel_key",
            marks.list(sent.len())
        );
        let mut q = sqlx::query(&sql).bind(now);
        for id in &sent {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *tx).await? {
            *settled.entry(r.try_get("channel_key")?).or_default() += 1;
        }
    }
    let mut refs = Vec::new();
    for Finished { item, outcome, .. } in attempts {
        match outcome {
            Outcome::Sent(location) => {
                if let (Some(r), Some(key)) = (location, &item.msg_key) {
                    refs.push((key.as_str(), *r));
                }
            }
            Outcome::Failed(error) => {
                let rows = sqlx::query(
                    "UPDATE outbox SET status = 'failed', sent_at = $1, last_error = $2
                     WHERE id = $3 AND status IN ('pending', 'sending') RETURNING channel_key",
                )
                .bind(now)
                .bind(*error)
                .bind(item.id)
                .fetch_all(&mut *tx)
                .await?;
                for r in rows {
                    *settled.entry(r.try_get("channel_key")?).or_default() += 1;
                }
            }
            Outcome::Retry { at, error, certain } => {
                // A certain refusal (a 429) was no attempt: it does not count toward backoff.
                let (status, attempts) = if *certain {
                    ("pending", "attempts - 1")
                } else {
                    ("sending", "attempts")
                };
                sqlx::query(&format!(
                    "UPDATE outbox SET status = '{status}', attempts = {attempts}, next_attempt_at = $1, last_error = $2 WHERE id = $3"
                ))
                .bind(*at)
                .bind(*error)
                .bind(item.id)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    put_refs(&mut tx, &refs, now).await?;
    // Every queue given back: its count, pacing and next due time, in one statement.
    let mut marks = super::super::Marks::for_store(store);
    let values: Vec<String> = attempts
        .iter()
        .map(|_| {
            format!(
                "(CAST({} AS TEXT), CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT))",
                marks.next(),
                marks.next(),
                marks.next(),
                marks.next()
            )
        })
        .collect();
    let owner = marks.next();
    let sql = format!(
        "UPDATE outbox_channels SET pending = outbox_channels.pending - v.column2, next_at = v.column3,
           due_at = v.column4, lease_owner = NULL
         FROM (VALUES {}) AS v WHERE outbox_channels.channel_key = v.column1 AND outbox_channels.lease_owner = {owner}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for f in attempts {
        let due = match f.outcome {
            Outcome::Retry { at, .. } => at.max(f.due),
            _ => f.due,
        };
        q = q
            .bind(f.item.channel_key.as_str())
            .bind(settled.get(&f.item.channel_key).copied().unwrap_or(0))
            .bind(f.tat)
            .bind(due);
    }
    q.bind(store.owner.as_ref()).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives up on every undelivered item of a platform (its configuration is gone).
pub async fn fail_platform(store: &Store, platform: &str, error: &str, now: i64) -> anyhow::Result<u64> {
    let mut tx = store.begin().await?;
    let n = settle_items(
        &mut tx,
        "platform = $1",
        &[Bind::Text(platform)],
        "failed",
        now,
        Some(error),
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}
