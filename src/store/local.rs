//! The local chat platform's messages and open forms.

use super::{get_i64, Store};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    pub id: i64,
    pub channel: String,
    pub visible_to: Option<String>,
    pub parent: Option<i64>,
    /// The neutral message, as JSON.
    pub message: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, channel, visible_to, parent, message, version, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<LocalMessage> {
    Ok(LocalMessage {
        id: get_i64(r, "id")?,
        channel: r.try_get("channel")?,
        visible_to: r.try_get("visible_to")?,
        parent: r.try_get::<Option<i64>, _>("parent").ok().flatten(),
        message: r.try_get("message")?,
        version: get_i64(r, "version")?,
        created_at: get_i64(r, "created_at")?,
        updated_at: get_i64(r, "updated_at")?,
    })
}

pub struct NewMessage<'a> {
    pub channel: &'a str,
    pub visible_to: Option<&'a str>,
    pub parent: Option<i64>,
    pub message: &'a str,
    /// The outbox delivery's key: a second attempt of one delivery finds the first's row.
    pub delivery: &'a str,
}

/// Posts a message; the id of the row this delivery made (the earlier one on a retry).
pub async fn post(store: &Store, m: &NewMessage<'_>, now: i64) -> anyhow::Result<i64> {
    sqlx::query(
        "INSERT INTO local_messages (channel, visible_to, parent, message, delivery, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (delivery) DO NOTHING",
    )
    .bind(m.channel)
    .bind(m.visible_to)
    .bind(m.parent)
    .bind(m.message)
    .bind(m.delivery)
    .bind(now)
    .execute(&store.pool)
    .await?;
    let row = sqlx::query("SELECT id FROM local_messages WHERE delivery = $1")
        .bind(m.delivery)
        .fetch_one(&store.pool)
        .await?;
    Ok(get_i64(&row, "id")?)
}

/// Replaces a message; false when there is no such message.
pub async fn update(store: &Store, id: i64, message: &str, now: i64) -> anyhow::Result<bool> {
    let res =
        sqlx::query("UPDATE local_messages SET message = $1, version = version + 1, updated_at = $2 WHERE id = $3")
            .bind(message)
            .bind(now)
            .bind(id)
            .execute(&store.pool)
            .await?;
    Ok(res.rows_affected() > 0)
}

pub async fn get(store: &Store, id: i64) -> anyhow::Result<Option<LocalMessage>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM local_messages WHERE id = $1"))
        .bind(id)
        .fetch_optional(&store.read)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The last `limit` messages of a channel that `user` may see, oldest first.
pub async fn channel(store: &Store, channel: &str, user: &str, limit: i64) -> anyhow::Result<Vec<LocalMessage>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM local_messages WHERE channel = $1 AND (visible_to IS NULL OR visible_to = $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(channel)
    .bind(user)
    .bind(limit)
    .fetch_all(&store.read)
    .await?;
    let mut out = rows.iter().map(from_row).collect::<anyhow::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// The channels that have messages (direct-message channels start with `@`).
pub async fn channels(store: &Store) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT channel FROM local_messages ORDER BY channel")
        .fetch_all(&store.read)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("channel")?)).collect()
}

/// Opens a form for a person (a retried delivery opens it once).
pub async fn open_form(store: &Store, id: &str, user: &str, form: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO local_forms (id, user_id, form, open, created_at) VALUES ($1, $2, $3, 1, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(user)
    .bind(form)
    .bind(now)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// The person's most recent open form: its id and the neutral form (JSON).
pub async fn open_form_of(store: &Store, user: &str) -> anyhow::Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT id, form FROM local_forms WHERE user_id = $1 AND open = 1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(user)
    .fetch_optional(&store.read)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("form")?))).transpose()
}

/// An open form of this person, by id.
pub async fn form(store: &Store, id: &str, user: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT form FROM local_forms WHERE id = $1 AND user_id = $2 AND open = 1")
        .bind(id)
        .bind(user)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| Ok(r.try_get("form")?)).transpose()
}

/// Closes a form (answered or dismissed); false when it was not open.
pub async fn close_form(store: &Store, id: &str, user: &str) -> anyhow::Result<bool> {
    let res = sqlx::query("UPDATE local_forms SET open = 0 WHERE id = $1 AND user_id = $2 AND open = 1")
        .bind(id)
        .bind(user)
        .execute(&store.pool)
        .await?;
    Ok(res.rows_affected() > 0)
}
