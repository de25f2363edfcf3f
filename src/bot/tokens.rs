//! `/token list`, `/token revoke NAME` and `/token create NAME APP…` (admins): the API
//! tokens pipelines use. A token is created on the server (`releasebot token create`), not
//! in chat: shown in chat, it would stay in plain text in releasebot's queue of outgoing
//! messages; `/token create` says how, with the command to run.

use super::{roles, Bot, Handled};
use crate::chat::{Inbound, Message};
use crate::store::tokens as q;
use crate::work::Work;
use serde_json::json;

async fn admin_or_say(bot: &Bot, tx: &mut Work, ev: &Inbound) -> anyhow::Result<bool> {
    if roles::is_admin(bot, tx, &ev.actor).await? {
        return Ok(true);
    }
    bot.say(tx, ev, "token_admins_only", json!({})).await?;
    Ok(false)
}

pub async fn list(bot: &Bot, tx: &mut Work, ev: &Inbound) -> anyhow::Result<Handled> {
    if !admin_or_say(bot, tx, ev).await? {
        return Ok(Handled::Done);
    }
    let mut lines = Vec::new();
    for t in q::live(tx).await? {
        let by = crate::chat::mention_stored(&t.created_by);
        lines.push(bot.texts.render(
            "token_line",
            &json!({
                "name": t.name, "applications": t.applications.join(", "), "by": by,
                "at": crate::domain::fields::format_ms(t.created_at),
                "used": t.last_used_at.map(crate::domain::fields::format_ms),
            }),
        )?);
    }
    let body = if lines.is_empty() {
        bot.texts.render("token_none", &json!({}))?
    } else {
        lines.join("\n")
    };
    let msg = Message {
        title: bot.texts.render("token_list_title", &json!({}))?,
        body: Some(body),
        ..Default::default()
    };
    bot.ephemeral(tx, ev, msg).await?;
    Ok(Handled::Done)
}

pub async fn revoke(bot: &Bot, tx: &mut Work, ev: &Inbound, name: &str) -> anyhow::Result<Handled> {
    if !admin_or_say(bot, tx, ev).await? {
        return Ok(Handled::Done);
    }
    if !q::revoke(tx, name, &ev.actor.to_string(), bot.now()).await? {
        bot.say(tx, ev, "token_not_found", json!({ "name": name })).await?;
        return Ok(Handled::Done);
    }
    bot.audit(tx, &ev.actor, None, "token_revoked", json!({ "name": name }))
        .await?;
    bot.say(tx, ev, "token_revoked", json!({ "name": name })).await?;
    Ok(Handled::Done)
}

pub async fn create(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    name: &str,
    applications: &[String],
) -> anyhow::Result<Handled> {
    if !admin_or_say(bot, tx, ev).await? {
        return Ok(Handled::Done);
    }
    let data = json!({ "name": name, "applications": applications.join(",") });
    bot.say(tx, ev, "token_create_on_server", data).await?;
    Ok(Handled::Done)
}
