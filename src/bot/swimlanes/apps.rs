//! `/swimlane apps`: applications added to or removed from a lane.

use super::*;
use crate::work::Work;

/// `/swimlane apps NAME add|remove APP`.
pub async fn apps(bot: &Bot, tx: &mut Work, ev: &Inbound, name: &str, add: bool, app: &str) -> anyhow::Result<Handled> {
    let Some(mut l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    if !may_manage(bot, tx, &ev.actor, &l).await? {
        return refuse(bot, tx, ev, &l, "change").await;
    }
    let known = &bot.config.applications;
    if add && !known.is_empty() && !known.iter().any(|a| a == app) {
        bot.say(
            tx,
            ev,
            "lane_unknown_app",
            json!({ "app": app, "known": known.join(", ") }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let had = l.apps.iter().any(|a| a == app);
    if add == had {
        let key = if add { "lane_app_already" } else { "lane_app_absent" };
        bot.say(tx, ev, key, json!({ "name": l.name, "app": app })).await?;
        return Ok(Handled::Done);
    }
    if add {
        l.apps.push(app.to_string());
    } else {
        l.apps.retain(|a| a != app);
    }
    l.touch(bot.now(), false);
    if let Some(c) = save(bot, tx, &l).await? {
        return Ok(c);
    }
    plan_timer(bot, tx, &l, None).await?;
    let key = if add { "lane_app_added" } else { "lane_app_removed" };
    bot.say(tx, ev, key, json!({ "name": l.name, "app": app })).await?;
    if l.round == 0 {
        edit_current(bot, tx, &l, card(bot, &l)?).await?;
    }
    audit(bot, tx, &ev.actor, &l, key, json!({ "app": app })).await?;
    Ok(Handled::Done)
}
