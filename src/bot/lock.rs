//! `/lock` and `/unlock`: a deploy lock on an application in an environment, held by a
//! person with a reason, that stops its releases from starting (never a rollback).

use super::calendar::{announce, is_role, need_role};
use super::{Bot, Handled};
use crate::chat::mention;
use crate::chat::Inbound;
use crate::store::calendar as q;
use crate::work::Work;
use serde_json::json;

/// `/lock APP [ENV] reason` (ops or admin): the environment when the first word is one.
pub async fn lock(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    words: &[String],
) -> anyhow::Result<Handled> {
    if !is_role(bot, tx, &ev.actor, "ops").await? {
        return need_role(bot, tx, ev, "ops").await;
    }
    let (environment, reason) = match words.split_first() {
        Some((first, rest))
            if !rest.is_empty() && bot.config.environments.iter().any(|e| e.eq_ignore_ascii_case(first)) =>
        {
            (first.to_ascii_lowercase(), rest.join(" "))
        }
        _ => ("*".to_string(), words.join(" ")),
    };
    let l = q::Lock {
        application: application.to_string(),
        environment: environment.clone(),
        reason: reason.clone(),
        by: ev.actor.to_string(),
        since: bot.now(),
    };
    if !q::lock(tx, &l).await? {
        bot.say(
            tx,
            ev,
            "calendar_locked_already",
            json!({ "application": application, "environment": environment }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let data = json!({ "application": application, "environment": environment, "reason": reason, "actor": mention(&ev.actor) });
    announce(bot, tx, ev, "calendar_locked", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "locked", data).await?;
    Ok(Handled::Done)
}

/// `/unlock APP [ENV]` (ops or admin).
pub async fn unlock(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    application: &str,
    environment: Option<&str>,
) -> anyhow::Result<Handled> {
    if !is_role(bot, tx, &ev.actor, "ops").await? {
        return need_role(bot, tx, ev, "ops").await;
    }
    let environment = environment.map(str::to_ascii_lowercase).unwrap_or_else(|| "*".into());
    if !q::unlock(tx, application, &environment).await? {
        bot.say(
            tx,
            ev,
            "calendar_not_locked",
            json!({ "application": application, "environment": environment }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let data = json!({ "application": application, "environment": environment, "actor": mention(&ev.actor) });
    announce(bot, tx, ev, "calendar_unlocked", data.clone()).await?;
    bot.audit(tx, &ev.actor, None, "unlocked", data).await?;
    Ok(Handled::Done)
}
