//! A lane on the clock: its prompt, its deadline, its hooks, and the daily list of lanes
//! deleted within a day.

use super::*;
use crate::work::Work;

/// A lane's timer fired: provision it, announce it, delete it, or retry a hook — whatever
/// its state says is due.
pub async fn on_timer(bot: &Bot, f: &Firing, id: i64) -> anyhow::Result<()> {
    let current = {
        let mut conn = bot.store.read.acquire().await?;
        q::get(&mut conn, id).await?
    };
    // Hooks run outside any transaction (they take time); what they did is recorded after.
    let hook_result = match current.as_ref().map(|l| l.status) {
        Some(LaneStatus::Provisioning) => Some(run_hooks(bot, current.as_ref(), hooks::Event::Create).await),
        Some(LaneStatus::Deleting) => Some(run_hooks(bot, current.as_ref(), hooks::Event::Delete).await),
        _ => None,
    };
    for _ in 0..5 {
        let mut tx = Work::begin(&bot.core).await?;
        if !crate::bot::jobs::finish(bot, &mut tx, f).await? {
            // Someone else fires it now (this lease ran out), or it was planned anew.
            tx.rollback().await?;
            return Ok(());
        }
        let Some(mut l) = q::get(&mut tx, id).await? else {
            tx.commit().await?;
            return Ok(());
        };
        let ran_for = current.as_ref().map(|c| c.status);
        let changed = match (&hook_result, l.status) {
            (Some(result), s) if Some(s) == ran_for => after_hooks(bot, &mut tx, &mut l, result).await?,
            (Some(_), _) => {
                // The lane moved on while its hooks ran: plan what its new state needs.
                plan_timer(bot, &mut tx, &l, None).await?;
                false
            }
            (None, _) => on_clock(bot, &mut tx, &mut l).await?,
        };
        if changed && !q::save(&mut tx, &l, bot.now()).await? {
            tx.rollback().await?;
            continue;
        }
        tx.commit().await?;
        return Ok(());
    }
    anyhow::bail!("lane {id} kept changing while its timer fired")
}

pub(super) async fn run_hooks(
    bot: &Bot,
    l: Option<&Lane>,
    event: hooks::Event,
) -> Result<Vec<String>, hooks::HookFailure> {
    let Some(l) = l else { return Ok(vec![]) };
    let cfg = &bot.config.swimlanes;
    let derived = lane::derive(l, &cfg.patterns());
    let subject = hooks::Subject {
        lane: l,
        derived: &derived,
        expires_at: Some(l.prompt_at(&cfg.policy()).saturating_add(cfg.grace.ms())),
    };
    hooks::run(&cfg.hooks, event, &subject, cfg.hook_timeout.0).await
}

/// Records what the hooks did; true when the lane changed.
pub(super) async fn after_hooks(
    bot: &Bot,
    tx: &mut Work,
    l: &mut Lane,
    result: &Result<Vec<String>, hooks::HookFailure>,
) -> anyhow::Result<bool> {
    let now = bot.now();
    let cfg = &bot.config.swimlanes;
    let deleting = l.status == LaneStatus::Deleting;
    match result {
        Ok(log) if deleting => {
            l.status = LaneStatus::Deleted;
            l.deleted_at = Some(now);
            l.reason = None;
            plan_timer(bot, tx, l, None).await?;
            let why = match &l.deleted_by {
                Some(DeletedBy::Person(a)) => bot.texts.render("lane_why_person", &json!({ "actor": mention(a) }))?,
                _ => bot.texts.plain("lane_why_expired")?,
            };
            let data = json!({ "name": l.name, "at": when(now), "why": why });
            edit_current(bot, tx, l, prompt_outcome(bot, l, "lane_deleted", data)?).await?;
            audit(bot, tx, &system(), l, "swimlane_deleted", json!({ "log": log })).await?;
        }
        Ok(log) => {
            l.status = LaneStatus::Active;
            l.attempts = 0;
            l.reason = None;
            l.last_activity = now;
            plan_timer(bot, tx, l, None).await?;
            edit_current(bot, tx, l, card(bot, l)?).await?;
            audit(bot, tx, &system(), l, "swimlane_provisioned", json!({ "log": log })).await?;
        }
        Err(failure) => {
            l.attempts += 1;
            let reason = format!("{}: {}", failure.hook, failure.error);
            l.reason = Some(reason.clone());
            let next = lane::after_failure(deleting, l.attempts, cfg.hook_retries, cfg.hook_backoff.ms(), now);
            let detail =
                json!({ "hook": failure.hook, "error": failure.error, "log": failure.log, "attempt": l.attempts });
            match next {
                lane::HookNext::RetryAt(at) => {
                    plan_timer(bot, tx, l, Some(at)).await?;
                    let phase = bot.texts.plain(if deleting {
                        "lane_phase_delete"
                    } else {
                        "lane_phase_create"
                    })?;
                    let data = json!({ "name": l.name, "phase": phase, "attempt": l.attempts,
                                       "error": reason, "next": when(at) });
                    let text = bot.texts.render("lane_hook_failed", &data)?;
                    let mut message = if deleting {
                        prompt_outcome(bot, l, "lane_hook_failed", data)?
                    } else {
                        card(bot, l)?
                    };
                    message.context = Some(text.clone());
                    edit_current(bot, tx, l, message).await?;
                    if l.attempts == 1 {
                        // An edit notifies nobody: the first failure is said in the channel.
                        let alert = Outbound::Post {
                            channel: l.channel.clone(),
                            message: Message {
                                title: text,
                                body: Some(
                                    bot.texts
                                        .render("lane_hook_failed_who", &json!({ "owner": mention(&l.owner) }))?,
                                ),
                                ..Default::default()
                            },
                        };
                        bot.send(tx, &l.platform, alert, None).await?;
                    }
                    audit(bot, tx, &system(), l, "swimlane_hook_failed", detail).await?;
                }
                lane::HookNext::GiveUp => {
                    l.status = LaneStatus::Failed;
                    plan_timer(bot, tx, l, None).await?;
                    edit_current(bot, tx, l, card(bot, l)?).await?;
                    let alert = Outbound::Post {
                        channel: l.channel.clone(),
                        message: Message {
                            title: bot.texts.render(
                                "lane_failed",
                                &json!({ "name": l.name, "reason": reason, "owner": mention(&l.owner) }),
                            )?,
                            ..Default::default()
                        },
                    };
                    bot.send(tx, &l.platform, alert, None).await?;
                    audit(bot, tx, &system(), l, "swimlane_failed", detail).await?;
                }
            }
        }
    }
    Ok(true)
}

/// The lane's clock: announce an idle lane, delete an unrenewed one. True when it changed.
pub(super) async fn on_clock(bot: &Bot, tx: &mut Work, l: &mut Lane) -> anyhow::Result<bool> {
    let now = bot.now();
    let policy = policy(bot);
    match l.status {
        LaneStatus::Active if now >= l.prompt_at(&policy) => {
            l.announce(now, &policy);
            plan_timer(bot, tx, l, None).await?;
            let message = prompt(bot, l)?;
            let post = Outbound::Post {
                channel: l.channel.clone(),
                message: message.clone(),
            };
            bot.send(tx, &l.platform, post, Some(&prompt_key(l.id, l.round)))
                .await?;
            let dm = Outbound::Direct {
                user: l.owner.user_id.clone(),
                message,
            };
            bot.send(tx, &l.platform, dm, Some(&dm_key(l.id, l.round))).await?;
            let detail = json!({ "deadline": l.deadline, "round": l.round });
            audit(bot, tx, &system(), l, "swimlane_pending_deletion", detail).await?;
            Ok(true)
        }
        LaneStatus::PendingDeletion if l.deadline.is_some_and(|d| now >= d) => {
            if l.start_deletion(DeletedBy::Expired).is_err() {
                return Ok(false);
            }
            plan_timer(bot, tx, l, None).await?;
            let data = json!({ "name": l.name, "why": bot.texts.plain("lane_why_expired")? });
            edit_current(bot, tx, l, prompt_outcome(bot, l, "lane_deleting", data)?).await?;
            audit(bot, tx, &system(), l, "swimlane_expired", json!({})).await?;
            Ok(true)
        }
        LaneStatus::Provisioning | LaneStatus::Deleting => {
            plan_timer(bot, tx, l, None).await?;
            Ok(false)
        }
        // Activity moved the time: the timer follows it.
        _ => {
            plan_timer(bot, tx, l, None).await?;
            Ok(false)
        }
    }
}

/// The daily list, per channel, of lanes deleted within 24 hours; nothing where none is.
pub async fn expiring_list(bot: &Bot, f: &Firing) -> anyhow::Result<()> {
    let now = bot.now();
    let policy = policy(bot);
    let mut tx = Work::begin(&bot.core).await?;
    if !crate::bot::jobs::finish(bot, &mut tx, f).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let mut by_channel: std::collections::BTreeMap<(String, String), Vec<(i64, Lane)>> = Default::default();
    for status in [LaneStatus::Active, LaneStatus::PendingDeletion] {
        for l in q::with_status(&mut tx, status, 1_000_000).await? {
            if let Some(at) = l.expires_at(&policy, now).filter(|at| *at <= now + DAY_MS) {
                by_channel
                    .entry((l.platform.clone(), l.channel.clone()))
                    .or_default()
                    .push((at, l));
            }
        }
    }
    for ((platform, channel), mut lanes) in by_channel {
        lanes.sort_by_key(|(at, l)| (*at, l.id));
        let mut lines = Vec::new();
        for (at, l) in &lanes {
            lines.push(bot.texts.render(
                "lane_expiring_entry",
                &json!({ "name": l.name, "owner": mention(&l.owner), "at": when(*at) }),
            )?);
        }
        let message = Message {
            title: bot
                .texts
                .render("lane_expiring_title", &json!({ "count": lanes.len() }))?,
            body: Some(lines.join("\n")),
            context: Some(bot.texts.plain("lane_expiring_hint")?),
            ..Default::default()
        };
        bot.send(&mut tx, &platform, Outbound::Post { channel, message }, None)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
