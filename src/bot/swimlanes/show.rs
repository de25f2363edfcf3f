//! `/swimlane list` and `/swimlane show`.

use super::*;
use crate::work::Work;

/// `/swimlane list [mine|all]`.
pub async fn list(bot: &Bot, tx: &mut Work, ev: &Inbound, all: bool) -> anyhow::Result<Handled> {
    let owner = ev.actor.to_string();
    let lanes = q::live(tx, (!all).then_some(owner.as_str()), LIST_MAX).await?;
    let policy = policy(bot);
    let title = bot.texts.plain(if all {
        "lane_list_title_all"
    } else {
        "lane_list_title_mine"
    })?;
    let body = if lanes.is_empty() {
        bot.texts.plain("lane_list_empty")?
    } else {
        let mut lines = Vec::new();
        for l in &lanes {
            let expires = l.expires_at(&policy, bot.now()).map(when).unwrap_or_else(|| "—".into());
            lines.push(bot.texts.render(
                "lane_list_entry",
                &json!({ "name": l.name, "status": status_text(bot, l.status)?, "owner": mention(&l.owner),
                         "apps": l.apps.join(", "), "expires": expires }),
            )?);
        }
        lines.join("\n")
    };
    bot.ephemeral(
        tx,
        ev,
        Message {
            title,
            body: Some(body),
            ..Default::default()
        },
    )
    .await?;
    Ok(Handled::Done)
}

/// `/swimlane show NAME`: its card, privately; looking at an active lane is activity.
pub async fn show(bot: &Bot, tx: &mut Work, ev: &Inbound, name: &str) -> anyhow::Result<Handled> {
    let Some(mut l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    if l.touch(bot.now(), false) {
        if let Some(c) = save(bot, tx, &l).await? {
            return Ok(c);
        }
        plan_timer(bot, tx, &l, None).await?;
    }
    let message = card(bot, &l)?;
    bot.ephemeral(tx, ev, message).await?;
    Ok(Handled::Done)
}
