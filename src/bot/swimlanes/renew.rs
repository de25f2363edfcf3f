//! `/swimlane renew` and the Renew button.

use super::*;
use crate::work::Work;

/// `/swimlane renew NAME [days]`.
pub async fn renew_by_command(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    name: &str,
    days: Option<u32>,
) -> anyhow::Result<Handled> {
    let Some(l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    renew(bot, tx, ev, l, days.map(|d| i64::from(d) * DAY_MS)).await
}

pub(super) async fn renew(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    mut l: Lane,
    for_ms: Option<i64>,
) -> anyhow::Result<Handled> {
    if !may_manage(bot, tx, &ev.actor, &l).await? {
        return refuse(bot, tx, ev, &l, "renew").await;
    }
    let admin = roles::is_admin(bot, tx, &ev.actor).await?;
    let now = bot.now();
    let renewal = match l.renew(now, for_ms, &policy(bot), admin) {
        Ok(r) => r,
        Err(LaneRefusal::AtMaxLifetime { end }) => {
            bot.say(
                tx,
                ev,
                "lane_at_max_lifetime",
                json!({ "name": l.name, "end": when(end) }),
            )
            .await?;
            return Ok(Handled::Done);
        }
        Err(LaneRefusal::NotLive(s)) => return not_now(bot, tx, ev, "lane_not_renewable", &l, s).await,
    };
    if let Some(c) = save(bot, tx, &l).await? {
        return Ok(c);
    }
    plan_timer(bot, tx, &l, None).await?;
    let (until, was_pending, capped) = match renewal {
        Renewal::Kept { until, was_pending } => (until, was_pending, false),
        Renewal::Capped { until, was_pending } => (until, was_pending, true),
    };
    let data = json!({ "name": l.name, "actor": mention(&ev.actor), "at": when(now), "until": when(until),
                       "deleted": when(until + policy(bot).grace_ms) });
    if was_pending {
        let message = prompt_outcome(bot, &l, "lane_renewed", data.clone())?;
        edit_current(bot, tx, &l, message).await?;
    }
    let mut reply = bot.texts.render("lane_renew_done", &data)?;
    if capped {
        reply.push(' ');
        reply.push_str(&bot.texts.render(
            "lane_renew_capped",
            &json!({ "end": when(l.hard_end.unwrap_or(until)) }),
        )?);
    }
    bot.ephemeral(
        tx,
        ev,
        Message {
            title: reply,
            ..Default::default()
        },
    )
    .await?;
    let detail = json!({ "until": until, "capped": capped, "was_pending": was_pending });
    audit(bot, tx, &ev.actor, &l, "swimlane_renewed", detail).await?;
    Ok(Handled::Done)
}
