//! `/swimlane delete` and the Delete button.

use super::*;
use crate::work::Work;

/// `/swimlane delete NAME [--confirm]`: asks first, then deletes.
pub async fn delete_by_command(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    name: &str,
    confirmed: bool,
) -> anyhow::Result<Handled> {
    let Some(l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    if !may_manage(bot, tx, &ev.actor, &l).await? {
        return refuse(bot, tx, ev, &l, "delete").await;
    }
    if confirmed {
        return delete(bot, tx, ev, l).await;
    }
    let t = &bot.texts;
    let d = lane::derive(&l, &bot.config.swimlanes.patterns());
    let data = json!({ "name": l.name, "namespace": d.namespace });
    let message = Message {
        title: t.render("lane_confirm_title", &data)?,
        body: Some(t.render("lane_confirm_body", &data)?),
        buttons: vec![Button {
            label: t.plain("btn_lane_delete")?,
            action: LaneAction::Delete { lane: l.id }.encode(),
            style: ButtonStyle::Danger,
            confirm: None,
        }],
        ..Default::default()
    };
    bot.ephemeral(tx, ev, message).await?;
    Ok(Handled::Done)
}

pub(super) async fn delete(bot: &Bot, tx: &mut Work, ev: &Inbound, mut l: Lane) -> anyhow::Result<Handled> {
    if let Err(refusal) = l.start_deletion(DeletedBy::Person(ev.actor.clone())) {
        let s = match refusal {
            LaneRefusal::NotLive(s) => s,
            LaneRefusal::AtMaxLifetime { .. } => l.status,
        };
        return not_now(bot, tx, ev, "lane_not_deletable", &l, s).await;
    }
    if let Some(c) = save(bot, tx, &l).await? {
        return Ok(c);
    }
    plan_timer(bot, tx, &l, None).await?;
    let data =
        json!({ "name": l.name, "why": bot.texts.render("lane_why_person", &json!({ "actor": mention(&ev.actor) }))? });
    edit_current(bot, tx, &l, prompt_outcome(bot, &l, "lane_deleting", data)?).await?;
    bot.say(tx, ev, "lane_delete_started", json!({ "name": l.name }))
        .await?;
    audit(bot, tx, &ev.actor, &l, "swimlane_delete_requested", json!({})).await?;
    Ok(Handled::Done)
}
