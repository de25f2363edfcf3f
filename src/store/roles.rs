//! Role members added from chat (members from the configuration file are not stored).

use super::{is_unique_violation, Conn};
use crate::domain::Actor;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: String,
    pub actor: Actor,
    /// Empty: every application.
    pub application: String,
}

/// False when the member was already there.
pub async fn add(conn: &mut Conn, m: &Member, added_by: &Actor, now: i64) -> anyhow::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO role_members (role, platform, user_id, application, added_by, added_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&m.role)
    .bind(&m.actor.platform)
    .bind(&m.actor.user_id)
    .bind(&m.application)
    .bind(added_by.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// False when there was no such member.
pub async fn remove(conn: &mut Conn, m: &Member) -> anyhow::Result<bool> {
    let res =
        sqlx::query("DELETE FROM role_members WHERE role = $1 AND platform = $2 AND user_id = $3 AND application = $4")
            .bind(&m.role)
            .bind(&m.actor.platform)
            .bind(&m.actor.user_id)
            .bind(&m.application)
            .execute(&mut *conn)
            .await?;
    Ok(res.rows_affected() > 0)
}

pub async fn all(conn: &mut Conn) -> anyhow::Result<Vec<Member>> {
    let rows = sqlx::query("SELECT role, platform, user_id, application FROM role_members ORDER BY role, id")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                role: r.try_get("role")?,
                actor: Actor::new(r.try_get::<String, _>("platform")?, r.try_get::<String, _>("user_id")?),
                application: r.try_get("application")?,
            })
        })
        .collect()
}
