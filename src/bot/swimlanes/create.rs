//! `/swimlane create`: a lane named, checked and opened, its create hooks run.

use super::*;
use crate::work::Work;

/// `/swimlane create NAME [app …] [--for REL-ID|"title"] [--days N]`.
pub async fn create(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    given: &str,
    apps: Vec<String>,
    purpose: Option<String>,
    days: Option<u32>,
) -> anyhow::Result<Handled> {
    let name = match lane::sanitize(given) {
        Ok(n) => n,
        Err(lane::NameProblem::Empty) => {
            bot.say(tx, ev, "lane_name_invalid", json!({ "given": given })).await?;
            return Ok(Handled::Done);
        }
    };
    if name != given {
        // The name people will see everywhere is shown before anything is created.
        let mut line = format!("/swimlane create {name}");
        for a in &apps {
            line.push(' ');
            line.push_str(a);
        }
        if let Some(p) = &purpose {
            line.push_str(&format!(" --for \"{p}\""));
        }
        if let Some(d) = days {
            line.push_str(&format!(" --days {d}"));
        }
        bot.say(
            tx,
            ev,
            "lane_name_changed",
            json!({ "given": given, "name": name, "command": line }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let known = &bot.config.applications;
    if let Some(bad) = apps.iter().find(|a| !known.is_empty() && !known.contains(a)) {
        bot.say(
            tx,
            ev,
            "lane_unknown_app",
            json!({ "app": bad, "known": known.join(", ") }),
        )
        .await?;
        return Ok(Handled::Done);
    }
    let purpose = match purpose {
        None => None,
        Some(p) => match crate::domain::ticket::TicketId::parse(&p) {
            Some(id) => {
                if crate::store::tickets::get(tx, id).await?.is_none() {
                    bot.say(tx, ev, "ticket_not_found", json!({ "ticket": id.to_string() }))
                        .await?;
                    return Ok(Handled::Done);
                }
                Some(Purpose::Ticket(id.0))
            }
            None => Some(Purpose::Title(p)),
        },
    };
    if let Some(existing) = q::by_name(tx, &name).await? {
        let data =
            json!({ "name": name, "owner": mention(&existing.owner), "status": status_text(bot, existing.status)? });
        bot.say(tx, ev, "lane_name_taken", data).await?;
        return Ok(Handled::Done);
    }
    let policy = policy(bot);
    let idle_ms = days.map(|d| i64::from(d) * DAY_MS).unwrap_or(policy.idle_ms);
    let now = bot.now();
    let new = lane::NewLane {
        name: name.clone(),
        owner: ev.actor.clone(),
        owner_name: ev.actor_name.clone(),
        platform: ev.actor.platform.clone(),
        channel: lane_channel(bot, ev),
        apps,
        purpose,
    };
    let mut l = Lane::new(new, idle_ms, &policy, now);
    if bot.config.swimlanes.hooks.is_empty() {
        l.status = LaneStatus::Active;
    }
    let Some(id) = q::insert(tx, &l, now).await? else {
        bot.say(
            tx,
            ev,
            "lane_name_taken",
            json!({ "name": name, "owner": "?", "status": "?" }),
        )
        .await?;
        return Ok(Handled::Done);
    };
    l.id = id;
    plan_timer(bot, tx, &l, None).await?;
    let post = Outbound::Post {
        channel: l.channel.clone(),
        message: card(bot, &l)?,
    };
    bot.send(tx, &l.platform, post, Some(&card_key(id))).await?;
    if l.channel != ev.channel {
        bot.say(tx, ev, "lane_created_elsewhere", json!({ "name": name }))
            .await?;
    }
    let detail = json!({ "apps": l.apps, "idle_ms": l.idle_ms, "status": l.status.as_str() });
    audit(bot, tx, &ev.actor, &l, "swimlane_created", detail).await?;
    Ok(Handled::Done)
}
