//! Tickets and their stage decisions.

use super::{get_i64, is_unique_violation, Conn};
use crate::domain::ticket::{Decision, DecisionKind, ReleaseOutcome, Ticket, TicketId, TicketStatus};
use crate::domain::Actor;
use anyhow::Context;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

pub struct NewTicket<'a> {
    pub flow_id: &'a str,
    pub service: &'a str,
    pub application: &'a str,
    pub status: TicketStatus,
    pub submitter: &'a Actor,
    pub fields: &'a BTreeMap<String, String>,
    pub channel: &'a str,
    pub now: i64,
}

const COLUMNS: &str = "id, flow_id, service, application, status, stage, round, submitter_platform, submitter_id, fields, channel, outcome, version, created_at, updated_at";

pub async fn insert(conn: &mut Conn, t: NewTicket<'_>) -> anyhow::Result<Ticket> {
    let (status, stage) = t.status.to_db();
    let fields = serde_json::to_string(t.fields)?;
    let row = sqlx::query(&format!(
        "INSERT INTO tickets (flow_id, service, application, status, stage, round, submitter_platform, submitter_id, fields, channel, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, 0, $10, $10) RETURNING {COLUMNS}"
    ))
    .bind(t.flow_id)
    .bind(t.service)
    .bind(t.application)
    .bind(status)
    .bind(stage)
    .bind(&t.submitter.platform)
    .bind(&t.submitter.user_id)
    .bind(fields)
    .bind(t.channel)
    .bind(t.now)
    .fetch_one(&mut *conn)
    .await
    .context("inserting ticket")?;
    from_row(&row)
}

fn from_row(row: &AnyRow) -> anyhow::Result<Ticket> {
    let status: String = row.try_get("status")?;
    let stage = get_i64(row, "stage")?;
    let fields: String = row.try_get("fields")?;
    Ok(Ticket {
        id: TicketId(get_i64(row, "id")?),
        flow_id: row.try_get("flow_id")?,
        service: row.try_get("service")?,
        application: row.try_get("application")?,
        status: TicketStatus::from_db(&status, stage).with_context(|| format!("unknown ticket status {status}"))?,
        round: u32::try_from(get_i64(row, "round")?)?,
        submitter: Actor::new(
            row.try_get::<String, _>("submitter_platform")?,
            row.try_get::<String, _>("submitter_id")?,
        ),
        fields: serde_json::from_str(&fields).context("ticket fields")?,
        channel: row.try_get("channel")?,
        outcome: match row.try_get::<Option<String>, _>("outcome")? {
            Some(o) => Some(ReleaseOutcome::parse(&o).with_context(|| format!("unknown release outcome {o}"))?),
            None => None,
        },
        version: get_i64(row, "version")?,
        created_at: get_i64(row, "created_at")?,
        updated_at: get_i64(row, "updated_at")?,
    })
}

/// A ticket with its decisions, and where the message `msg_key` (one of its stage
/// messages) was posted: what deciding a stage needs, in one read.
pub async fn get_for_decision(
    conn: &mut Conn,
    id: TicketId,
    msg_key: &str,
) -> anyhow::Result<Option<(Ticket, Vec<Decision>, Option<String>)>> {
    let decisions = match conn.backend_name() {
        "PostgreSQL" => {
            "(SELECT COALESCE(json_agg(json_build_array(round, stage, platform, user_id, user_name, kind, comment, at) ORDER BY id), '[]'::json)::text
              FROM decisions WHERE ticket_id = tickets.id)"
        }
        _ => {
            "(SELECT json_group_array(json_array(round, stage, platform, user_id, user_name, kind, comment, at))
              FROM (SELECT * FROM decisions WHERE ticket_id = tickets.id ORDER BY id))"
        }
    };
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, (SELECT ts FROM message_refs WHERE msg_key = $2) AS message_ts, {decisions} AS decided
         FROM tickets WHERE id = $1"
    ))
    .bind(id.0)
    .bind(msg_key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let decided: String = r
        .try_get::<Option<String>, _>("decided")?
        .unwrap_or_else(|| "[]".into());
    let decided: Vec<DecisionColumns> = serde_json::from_str(&decided).context("decisions")?;
    let decisions = decided
        .into_iter()
        .map(|(round, stage, platform, user, name, kind, comment, at)| {
            Ok(Decision {
                round: u32::try_from(round)?,
                stage: usize::try_from(stage)?,
                actor: Actor::new(platform, user),
                actor_name: name,
                kind: DecisionKind::parse(&kind).with_context(|| format!("unknown decision kind {kind}"))?,
                comment,
                at,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some((
        from_row(&r)?,
        decisions,
        r.try_get::<Option<String>, _>("message_ts")?,
    )))
}

/// A decision as the query aggregates it: round, stage, platform, user, name, kind,
/// comment, at.
type DecisionColumns = (i64, i64, String, String, String, String, Option<String>, i64);

pub async fn get(conn: &mut Conn, id: TicketId) -> anyhow::Result<Option<Ticket>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Writes the ticket's status, round and fields if nobody changed it since it was read
/// (`ticket.version` is the version read). Returns false on a lost race.
pub async fn update(conn: &mut Conn, ticket: &Ticket, now: i64) -> anyhow::Result<bool> {
    let (status, stage) = ticket.status.to_db();
    let res = sqlx::query(
        "UPDATE tickets SET status = $1, stage = $2, round = $3, fields = $4, outcome = $5, version = version + 1, updated_at = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(status)
    .bind(stage)
    .bind(i64::from(ticket.round))
    .bind(serde_json::to_string(&ticket.fields)?)
    .bind(ticket.outcome.map(ReleaseOutcome::as_str))
    .bind(now)
    .bind(ticket.id.0)
    .bind(ticket.version)
    .execute(&mut *conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter<'a> {
    /// Submitted by this actor.
    Mine(&'a Actor),
    /// Waiting on a decision (in approval, or sent back to the submitter).
    Pending,
    All,
}

pub async fn list(conn: &mut Conn, filter: ListFilter<'_>, limit: i64) -> anyhow::Result<Vec<Ticket>> {
    let rows = match filter {
        ListFilter::Mine(a) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tickets WHERE submitter_platform = $1 AND submitter_id = $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(&a.platform)
            .bind(&a.user_id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        ListFilter::Pending => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tickets WHERE status IN ('in_approval', 'draft') ORDER BY id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        }
        ListFilter::All => {
            sqlx::query(&format!("SELECT {COLUMNS} FROM tickets ORDER BY id DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Records a decision; false when this person already decided this stage in this round.
pub async fn insert_decision(conn: &mut Conn, ticket: TicketId, d: &Decision) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO decisions (ticket_id, round, stage, platform, user_id, user_name, kind, comment, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ticket.0)
    .bind(i64::from(d.round))
    .bind(d.stage as i64)
    .bind(&d.actor.platform)
    .bind(&d.actor.user_id)
    .bind(&d.actor_name)
    .bind(d.kind.as_str())
    .bind(d.comment.as_deref())
    .bind(d.at)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e).context("inserting decision"),
    }
}

pub async fn decisions(conn: &mut Conn, ticket: TicketId) -> anyhow::Result<Vec<Decision>> {
    let rows = sqlx::query(
        "SELECT round, stage, platform, user_id, user_name, kind, comment, at FROM decisions WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(ticket.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Decision {
                round: u32::try_from(get_i64(r, "round")?)?,
                stage: usize::try_from(get_i64(r, "stage")?)?,
                actor: Actor::new(r.try_get::<String, _>("platform")?, r.try_get::<String, _>("user_id")?),
                actor_name: r.try_get("user_name")?,
                kind: DecisionKind::parse(&kind).with_context(|| format!("unknown decision kind {kind}"))?,
                comment: r.try_get("comment")?,
                at: get_i64(r, "at")?,
            })
        })
        .collect()
}
