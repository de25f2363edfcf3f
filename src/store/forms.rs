//! Forms answered in several steps (Discord modals hold at most five inputs): the form
//! and the answers given so far, keyed by a random id carried in the modal.

use super::Store;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct Draft {
    pub id: String,
    pub platform: String,
    pub user_id: String,
    /// The neutral form, as JSON.
    pub form: String,
    /// Answers so far, as a JSON object.
    pub answers: String,
}

pub async fn create(store: &Store, d: &Draft, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO form_drafts (id, platform, user_id, form, answers, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&d.id)
    .bind(&d.platform)
    .bind(&d.user_id)
    .bind(&d.form)
    .bind(&d.answers)
    .bind(now)
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub async fn get(store: &Store, id: &str) -> anyhow::Result<Option<Draft>> {
    let row = sqlx::query("SELECT id, platform, user_id, form, answers FROM form_drafts WHERE id = $1")
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| {
        Ok(Draft {
            id: r.try_get("id")?,
            platform: r.try_get("platform")?,
            user_id: r.try_get("user_id")?,
            form: r.try_get("form")?,
            answers: r.try_get("answers")?,
        })
    })
    .transpose()
}

pub async fn save_answers(store: &Store, id: &str, answers: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE form_drafts SET answers = $1 WHERE id = $2")
        .bind(answers)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Forgets drafts older than `before` (abandoned forms).
pub async fn prune(store: &Store, before: i64) -> anyhow::Result<u64> {
    let res = sqlx::query("DELETE FROM form_drafts WHERE created_at < $1")
        .bind(before)
        .execute(&store.pool)
        .await?;
    Ok(res.rows_affected())
}
