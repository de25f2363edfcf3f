//! Roles: who may act on which stage. Members come from the configuration file
//! and from `/role add`.

use super::{Bot, Handled};
use crate::chat::{mention, Inbound, Message};
use crate::domain::Actor;
use crate::store::roles::{self as q, Member};
use crate::work::Work;
use serde_json::json;

/// The role members added from chat and the identity links, as of one version.
pub struct Snapshot {
    version: i64,
    members: Vec<Member>,
    links: Vec<Vec<Actor>>,
}

/// The roles kept in memory, read again only when their version changed.
#[derive(Default)]
pub struct RolesCache(std::sync::RwLock<Option<std::sync::Arc<Snapshot>>>);

impl RolesCache {
    /// The roles as `conn` sees them: one read of the version, the tables only when it changed.
    async fn snapshot(&self, conn: &mut Work) -> anyhow::Result<std::sync::Arc<Snapshot>> {
        let version = match conn.roles_version() {
            Some(v) => v,
            None => q::version(conn).await?,
        };
        conn.set_roles_version(Some(version));
        if let Some(s) = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|s| s.version == version)
        {
            return Ok(s.clone());
        }
        let s = std::sync::Arc::new(Snapshot {
            version,
            members: q::all(conn).await?,
            links: q::link_groups(conn).await?,
        });
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }
}

/// Members of `role` for `application` (members without an application count for all),
/// with every identity linked to them on other platforms.
pub async fn members(bot: &Bot, conn: &mut Work, role: &str, application: &str) -> anyhow::Result<Vec<Actor>> {
    let snapshot = bot.roles.snapshot(conn).await?;
    let mut out: Vec<Actor> = bot.config.role_members.get(role).cloned().unwrap_or_default();
    for m in snapshot.members.iter().cloned() {
        if m.role == role
            && (m.application.is_empty() || m.application.eq_ignore_ascii_case(application))
            && !out.contains(&m.actor)
        {
            out.push(m.actor);
        }
    }
    for group in &snapshot.links {
        if group.iter().any(|a| out.contains(a)) {
            for a in group {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
    }
    Ok(out)
}

/// `actor` as the person the rules know: when it is linked (`/role link`) to one of
/// `known` — a ticket's submitter, a stage's approvers — that identity, so that one person
/// is one person whichever platform they act from; otherwise `actor` itself.
pub async fn as_known<'k>(
    bot: &Bot,
    conn: &mut Work,
    actor: &Actor,
    known: impl IntoIterator<Item = &'k Actor>,
) -> anyhow::Result<Actor> {
    let snapshot = bot.roles.snapshot(conn).await?;
    let linked = snapshot.links.iter().find(|group| group.contains(actor));
    for k in known {
        if k == actor || linked.is_some_and(|group| group.contains(k)) {
            return Ok(k.clone());
        }
    }
    Ok(actor.clone())
}

/// Whether `actor` (or an identity linked to it) holds a role scoped to one of `apps`.
pub async fn holds_app_role(bot: &Bot, conn: &mut Work, actor: &Actor, apps: &[String]) -> anyhow::Result<bool> {
    let snapshot = bot.roles.snapshot(conn).await?;
    let linked = snapshot.links.iter().find(|group| group.contains(actor));
    let is = |a: &Actor| a == actor || linked.is_some_and(|g| g.contains(a));
    Ok(snapshot.members.iter().any(|m| {
        !m.application.is_empty() && apps.iter().any(|a| a.eq_ignore_ascii_case(&m.application)) && is(&m.actor)
    }))
}

pub async fn has_role(
    bot: &Bot,
    conn: &mut Work,
    actor: &Actor,
    role: &str,
    application: &str,
) -> anyhow::Result<bool> {
    Ok(members(bot, conn, role, application).await?.contains(actor))
}

/// Admins manage roles; while nobody holds `admin`, anyone may (to bootstrap).
async fn may_manage(bot: &Bot, conn: &mut Work, actor: &Actor) -> anyhow::Result<(bool, bool)> {
    let admins = members(bot, conn, "admin", "").await?;
    Ok((admins.is_empty() || admins.contains(actor), admins.is_empty()))
}

pub async fn is_admin(bot: &Bot, conn: &mut Work, actor: &Actor) -> anyhow::Result<bool> {
    has_role(bot, conn, actor, "admin", "").await
}

async fn reply(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    key: &str,
    data: serde_json::Value,
    bootstrap: bool,
) -> anyhow::Result<()> {
    let title = bot.texts.render(key, &data)?;
    let context = bootstrap_note(bot, bootstrap)?;
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            context,
            ..Default::default()
        },
    )
    .await
}

/// Refuses non-admins and unknown roles; `Some(bootstrap)` when the command may go on.
async fn checked(bot: &Bot, tx: &mut Work, ev: &Inbound, role: Option<&str>) -> anyhow::Result<Option<bool>> {
    let (allowed, bootstrap) = may_manage(bot, tx, &ev.actor).await?;
    if !allowed {
        bot.say(tx, ev, "role_admin_only", json!({})).await?;
        return Ok(None);
    }
    if let Some(role) = role.filter(|r| !bot.config.roles.contains_key(*r)) {
        let roles: Vec<&str> = bot.config.roles.keys().map(String::as_str).collect();
        bot.say(
            tx,
            ev,
            "role_unknown",
            json!({ "role": role, "roles": roles.join(", ") }),
        )
        .await?;
        return Ok(None);
    }
    Ok(Some(bootstrap))
}

pub async fn add(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    role: &str,
    user: &Actor,
    application: Option<&str>,
) -> anyhow::Result<Handled> {
    let Some(bootstrap) = checked(bot, tx, ev, Some(role)).await? else {
        return Ok(Handled::Done);
    };
    let m = Member {
        role: role.to_string(),
        actor: user.clone(),
        application: application.unwrap_or("").to_string(),
    };
    let data = json!({ "role": role, "user": mention(user), "application": application });
    let added = q::add(tx, &m, &ev.actor, bot.now()).await?;
    // The roles changed in this transaction: read them again.
    tx.set_roles_version(None);
    changed(bot, tx, ev, &m, added, ["role_added", "role_already"]).await?;
    reply(
        bot,
        tx,
        ev,
        if added { "role_added" } else { "role_already" },
        data,
        bootstrap && role != "admin",
    )
    .await?;
    Ok(Handled::Done)
}

pub async fn remove(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    role: &str,
    user: &Actor,
    application: Option<&str>,
) -> anyhow::Result<Handled> {
    let Some(bootstrap) = checked(bot, tx, ev, Some(role)).await? else {
        return Ok(Handled::Done);
    };
    let data = json!({ "role": role, "user": mention(user), "application": application });
    if bot.config.role_members.get(role).is_some_and(|m| m.contains(user)) {
        reply(bot, tx, ev, "role_config_member", data, bootstrap).await?;
        return Ok(Handled::Done);
    }
    let m = Member {
        role: role.to_string(),
        actor: user.clone(),
        application: application.unwrap_or("").to_string(),
    };
    let removed = q::remove(tx, &m).await?;
    // The roles changed in this transaction: read them again.
    tx.set_roles_version(None);
    changed(bot, tx, ev, &m, removed, ["role_removed", "role_not_member"]).await?;
    reply(
        bot,
        tx,
        ev,
        if removed { "role_removed" } else { "role_not_member" },
        data,
        bootstrap,
    )
    .await?;
    Ok(Handled::Done)
}

/// `/role link @user platform:user-id`: one person on two platforms (admin).
pub async fn link(bot: &Bot, tx: &mut Work, ev: &Inbound, user: &Actor, other: &Actor) -> anyhow::Result<Handled> {
    let Some(bootstrap) = checked(bot, tx, ev, None).await? else {
        return Ok(Handled::Done);
    };
    let data = json!({ "user": mention(user), "other": mention(other) });
    if user == other {
        reply(bot, tx, ev, "role_link_same", data, bootstrap).await?;
        return Ok(Handled::Done);
    }
    let linked = q::link(tx, user, other, &ev.actor, bot.now()).await?;
    // The roles changed in this transaction: read them again.
    tx.set_roles_version(None);
    if linked {
        let detail = json!({ "user": user.to_string(), "other": other.to_string() });
        bot.audit(tx, &ev.actor, None, "identity_linked", detail).await?;
    }
    let key = if linked { "role_linked" } else { "role_link_already" };
    reply(bot, tx, ev, key, data, bootstrap).await?;
    Ok(Handled::Done)
}

pub async fn list(bot: &Bot, tx: &mut Work, ev: &Inbound) -> anyhow::Result<Handled> {
    let Some(bootstrap) = checked(bot, tx, ev, None).await? else {
        return Ok(Handled::Done);
    };
    let stored = q::all(tx).await?;
    let mut fields = Vec::new();
    for (name, role) in &bot.config.roles {
        let mut who: Vec<String> = bot
            .config
            .role_members
            .get(name)
            .map(|m| m.iter().map(mention).collect())
            .unwrap_or_default();
        for m in stored.iter().filter(|m| &m.role == name) {
            let entry = if m.application.is_empty() {
                mention(&m.actor)
            } else {
                bot.texts.render(
                    "role_member_scoped",
                    &json!({ "user": mention(&m.actor), "application": m.application }),
                )?
            };
            who.push(entry);
        }
        let value = if who.is_empty() {
            bot.texts.plain("role_list_nobody")?
        } else {
            who.join(", ")
        };
        let label = if role.description.is_empty() {
            name.clone()
        } else {
            format!("{name} — {}", role.description)
        };
        fields.push(crate::chat::Field { label, value });
    }
    let groups = q::link_groups(tx).await?;
    if !groups.is_empty() {
        let value = groups
            .iter()
            .map(|g| g.iter().map(mention).collect::<Vec<_>>().join(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        fields.push(crate::chat::Field {
            label: bot.texts.plain("role_list_links")?,
            value,
        });
    }
    let title = bot.texts.plain("role_list_title")?;
    let context = bootstrap_note(bot, bootstrap)?;
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            fields,
            context,
            ..Default::default()
        },
    )
    .await?;
    Ok(Handled::Done)
}

/// Audits a membership change that happened (`keys[0]`); nothing for a no-op.
async fn changed(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    m: &Member,
    happened: bool,
    keys: [&str; 2],
) -> anyhow::Result<()> {
    if !happened {
        return Ok(());
    }
    let application = (!m.application.is_empty()).then_some(m.application.as_str());
    let detail = json!({ "role": m.role, "user": m.actor.to_string(), "application": application });
    bot.audit(tx, &ev.actor, None, keys[0], detail).await
}

/// The reminder shown while anyone may manage roles.
fn bootstrap_note(bot: &Bot, bootstrap: bool) -> anyhow::Result<Option<String>> {
    bootstrap.then(|| bot.texts.plain("role_bootstrap")).transpose()
}
