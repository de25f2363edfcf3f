//! The append-only audit trail (the database refuses updates and deletes).

use super::{get_i64, Conn};
use crate::domain::ticket::TicketId;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub ticket: Option<TicketId>,
    pub at: i64,
    pub platform: String,
    /// `platform:user` or `system`.
    pub actor: String,
    pub action: String,
    /// JSON object with the specifics (stage, comment, fields changed).
    pub detail: serde_json::Value,
}

pub async fn append(conn: &mut Conn, e: &AuditEntry) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (ticket_id, at, platform, actor, action, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.ticket.map(|t| t.0))
    .bind(e.at)
    .bind(&e.platform)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(e.detail.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn for_ticket(conn: &mut Conn, ticket: TicketId) -> anyhow::Result<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT ticket_id, at, platform, actor, action, detail FROM audit_log WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(ticket.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(AuditEntry {
                ticket: r.try_get::<Option<i64>, _>("ticket_id")?.map(TicketId),
                at: get_i64(r, "at")?,
                platform: r.try_get("platform")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                detail: serde_json::from_str(&detail)?,
            })
        })
        .collect()
}
