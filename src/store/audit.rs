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

/// Appends an entry at once (a unit of work buffers its entries: `Work::audit`).
pub async fn append(conn: &mut Conn, e: &AuditEntry) -> anyhow::Result<()> {
    write(conn, std::slice::from_ref(e)).await
}

/// Writes entries in the caller's transaction.
pub async fn write(conn: &mut Conn, entries: &[AuditEntry]) -> anyhow::Result<()> {
    for chunk in entries.chunks(100) {
        let mut marks = super::Marks::new(conn);
        let values: Vec<String> = chunk.iter().map(|_| marks.row(6)).collect();
        let sql = format!(
            "INSERT INTO audit_log (ticket_id, at, platform, actor, action, detail) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.ticket.map(|t| t.0))
                .bind(e.at)
                .bind(e.platform.as_str())
                .bind(e.actor.as_str())
                .bind(e.action.as_str())
                .bind(e.detail.to_string());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A ticket's trail, oldest first (a unit of work flushes its own entries first).
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
