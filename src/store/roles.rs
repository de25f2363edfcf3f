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

/// The roles' version: a new one with every change of members or links.
pub async fn version(conn: &mut Conn) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT version FROM roles_version WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(super::get_i64(&row, "version")?)
}

/// Marks the roles changed (a random version: a rolled-back change never looks like another).
async fn bump(conn: &mut Conn) -> anyhow::Result<()> {
    sqlx::query("UPDATE roles_version SET version = $1 WHERE id = 1")
        .bind(rand::random::<i64>())
        .execute(&mut *conn)
        .await?;
    Ok(())
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
        Ok(_) => {
            bump(conn).await?;
            Ok(true)
        }
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
    if res.rows_affected() > 0 {
        bump(conn).await?;
    }
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

/// Every identity linked to `actor`'s person, `actor` included.
pub async fn identities(conn: &mut Conn, actor: &Actor) -> anyhow::Result<Vec<Actor>> {
    let rows = sqlx::query(
        "SELECT actor FROM identity_links WHERE person = (SELECT person FROM identity_links WHERE actor = $1) ORDER BY id",
    )
    .bind(actor.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut out = vec![actor.clone()];
    for r in rows {
        if let Some(a) = Actor::parse(&r.try_get::<String, _>("actor")?) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// All links, as groups of identities of one person.
pub async fn link_groups(conn: &mut Conn) -> anyhow::Result<Vec<Vec<Actor>>> {
    let rows = sqlx::query("SELECT person, actor FROM identity_links ORDER BY person, id")
        .fetch_all(&mut *conn)
        .await?;
    let mut groups: Vec<(String, Vec<Actor>)> = Vec::new();
    for r in rows {
        let person: String = r.try_get("person")?;
        let Some(actor) = Actor::parse(&r.try_get::<String, _>("actor")?) else {
            continue;
        };
        match groups.last_mut() {
            Some((p, g)) if *p == person => g.push(actor),
            _ => groups.push((person, vec![actor])),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).collect())
}

/// Links `a` and `b` (and everyone already linked to either). False when they already were.
pub async fn link(conn: &mut Conn, a: &Actor, b: &Actor, by: &Actor, now: i64) -> anyhow::Result<bool> {
    let person_of = |actor: String| sqlx::query("SELECT person FROM identity_links WHERE actor = $1").bind(actor);
    let pa: Option<String> = match person_of(a.to_string()).fetch_optional(&mut *conn).await? {
        Some(r) => Some(r.try_get("person")?),
        None => None,
    };
    let pb: Option<String> = match person_of(b.to_string()).fetch_optional(&mut *conn).await? {
        Some(r) => Some(r.try_get("person")?),
        None => None,
    };
    if pa.is_some() && pa == pb {
        return Ok(false);
    }
    let person = pa.clone().or(pb.clone()).unwrap_or_else(|| a.to_string());
    if let (Some(pb), true) = (&pb, pa.is_some()) {
        sqlx::query("UPDATE identity_links SET person = $1 WHERE person = $2")
            .bind(&person)
            .bind(pb)
            .execute(&mut *conn)
            .await?;
    }
    for (actor, known) in [(a, pa.is_some()), (b, pb.is_some())] {
        if !known {
            sqlx::query("INSERT INTO identity_links (person, actor, linked_by, linked_at) VALUES ($1, $2, $3, $4)")
                .bind(&person)
                .bind(actor.to_string())
                .bind(by.to_string())
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
    }
    bump(conn).await?;
    Ok(true)
}
