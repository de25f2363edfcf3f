//! Swimlanes in chat: `/swimlane …`, the Renew / Delete buttons, and what the scheduler
//! does to a lane on its clock (provision, announce, delete). Every change of a lane is
//! one transaction with its timer (a scheduler firing), its messages and its audit entry.
//!
//! Messages: the lane's card (`lane:{id}`) is posted in the lane's channel when it is
//! created and edited while it is provisioned; each announcement of a pending deletion
//! is a new message in the channel (`lane:{id}:prompt:{round}`) and a direct message to
//! the owner, both edited in place by what follows (renewal, deletion, a failed hook).

use super::{roles, Bot, Handled};
use crate::chat::actions::LaneAction;
use crate::chat::{mention, Button, ButtonStyle, Confirm, Field, Inbound, Message, Outbound};
use crate::domain::swimlane::{self as lane, DeletedBy, Lane, LaneRefusal, LaneStatus, Purpose, Renewal};
use crate::domain::Actor;
use crate::executor::hooks;
use crate::store::firings::{self, Firing};
use crate::store::swimlanes as q;
use crate::work::Work;
use serde_json::json;

mod activity;
mod apps;
mod cards;
mod clock;
mod create;
mod delete;
mod deploy;
mod renew;
mod show;

pub use activity::*;
pub use apps::*;
use cards::*;
pub use clock::*;
pub use create::*;
pub use delete::*;
pub use deploy::*;
pub use renew::*;
pub use show::*;

/// Every lane event is handled in order with the others (names are unique among lanes).
pub const ORDER_KEY: &str = "swimlanes";
/// Lanes listed at most.
const LIST_MAX: i64 = 50;
const DAY_MS: i64 = 86_400_000;

/// A lane's timer is the scheduler job `lane:{id}`.
pub fn timer_job(id: i64) -> String {
    crate::domain::jobs::Job::LaneTimer(id).key()
}

fn card_key(id: i64) -> String {
    format!("lane:{id}")
}

fn prompt_key(id: i64, round: u32) -> String {
    format!("lane:{id}:prompt:{round}")
}

fn dm_key(id: i64, round: u32) -> String {
    format!("lane:{id}:dm:{round}")
}

/// Edits the lane's current message (its last prompt, or its card) and the owner's copy.
async fn edit_current(bot: &Bot, tx: &mut Work, l: &Lane, message: Message) -> anyhow::Result<()> {
    if l.round == 0 {
        let out = Outbound::Update {
            channel: l.channel.clone(),
            message,
        };
        return bot.send(tx, &l.platform, out, Some(&card_key(l.id))).await;
    }
    // DingTalk's direct messages are plain robot messages, which cannot be edited.
    if l.platform != crate::chat::dingtalk::PLATFORM {
        let dm = Outbound::Update {
            channel: l.owner.user_id.clone(),
            message: message.clone(),
        };
        bot.send(tx, &l.platform, dm, Some(&dm_key(l.id, l.round))).await?;
    }
    let out = Outbound::Update {
        channel: l.channel.clone(),
        message,
    };
    bot.send(tx, &l.platform, out, Some(&prompt_key(l.id, l.round))).await
}

async fn audit(
    bot: &Bot,
    tx: &mut Work,
    actor: &Actor,
    l: &Lane,
    action: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    bot.metrics
        .inc("releasebot_swimlane_transitions_total", &[("action", action)]);
    let mut detail = detail;
    detail["lane"] = json!(l.name);
    detail["lane_id"] = json!(l.id);
    bot.audit(tx, actor, None, action, detail).await
}

/// The actor releasebot itself acts as (the scheduler's changes).
fn system() -> Actor {
    Actor::new("releasebot", "scheduler")
}

/// Plans the lane's timer for what comes next in its life.
async fn plan_timer(bot: &Bot, conn: &mut Work, l: &Lane, at: Option<i64>) -> anyhow::Result<()> {
    let job = timer_job(l.id);
    let due = match (l.status, at) {
        (_, Some(at)) => at,
        (LaneStatus::Active, None) => l.prompt_at(&policy(bot)),
        (LaneStatus::PendingDeletion, None) => l.deadline.unwrap_or_else(|| bot.now()),
        (LaneStatus::Provisioning | LaneStatus::Deleting, None) => bot.now(),
        (LaneStatus::Deleted | LaneStatus::Failed, None) => return firings::cancel(conn, &job).await,
    };
    // What is due is part of the firing: a deadline and the deletion it starts may fall
    // in the same millisecond and are two firings.
    firings::set(conn, &job, due, l.status.as_str()).await?;
    conn.wake_scheduler();
    Ok(())
}

/// The live lane a command names (sanitised as at creation); says so when there is none.
async fn find_or_say(bot: &Bot, tx: &mut Work, ev: &Inbound, name: &str) -> anyhow::Result<Option<Lane>> {
    let wanted = lane::sanitize(name).unwrap_or_else(|_| name.to_string());
    let found = q::by_name(tx, &wanted).await?;
    if found.is_none() {
        bot.say(tx, ev, "lane_not_found", json!({ "name": wanted })).await?;
    }
    Ok(found)
}

/// Whether `actor` may renew, delete or change the lane: its owner (any identity linked
/// to the owner), an admin, or a holder of a role scoped to one of its applications.
async fn may_manage(bot: &Bot, conn: &mut Work, actor: &Actor, l: &Lane) -> anyhow::Result<bool> {
    if roles::as_known(bot, conn, actor, [&l.owner]).await? == l.owner {
        return Ok(true);
    }
    Ok(roles::is_admin(bot, conn, actor).await? || roles::holds_app_role(bot, conn, actor, &l.apps).await?)
}

/// The lane is in no state for what was asked (`key` says what), and in which it is.
async fn not_now(
    bot: &Bot,
    tx: &mut Work,
    ev: &Inbound,
    key: &str,
    l: &Lane,
    s: LaneStatus,
) -> anyhow::Result<Handled> {
    bot.say(tx, ev, key, json!({ "name": l.name, "status": status_text(bot, s)? }))
        .await?;
    Ok(Handled::Done)
}

async fn refuse(bot: &Bot, tx: &mut Work, ev: &Inbound, l: &Lane, what: &str) -> anyhow::Result<Handled> {
    let what = bot.texts.plain(&format!("lane_what_{what}"))?;
    bot.say(
        tx,
        ev,
        "lane_denied",
        json!({ "name": l.name, "owner": mention(&l.owner), "what": what }),
    )
    .await?;
    Ok(Handled::Done)
}

/// Where a lane created from `ev` lives: the configured channel on that platform, or
/// the channel it was created in.
fn lane_channel(bot: &Bot, ev: &Inbound) -> String {
    bot.config
        .swimlanes
        .channel
        .as_ref()
        .and_then(|c| c.on(&ev.actor.platform))
        .map(str::to_string)
        .unwrap_or_else(|| ev.channel.clone())
}

/// Saves a lane changed by a person; `Conflict` when it changed meanwhile (run again).
async fn save(bot: &Bot, tx: &mut Work, l: &Lane) -> anyhow::Result<Option<Handled>> {
    Ok((!q::save(tx, l, bot.now()).await?).then_some(Handled::Conflict))
}

/// Renew / Delete pressed on a lane's message.
pub async fn on_action(bot: &Bot, tx: &mut Work, ev: &Inbound, a: LaneAction) -> anyhow::Result<Handled> {
    let Some(l) = q::get(tx, a.lane()).await?.filter(|l| l.status.live()) else {
        bot.say(tx, ev, "lane_gone", json!({})).await?;
        return Ok(Handled::Done);
    };
    match a {
        LaneAction::Renew { .. } => renew(bot, tx, ev, l, None).await,
        LaneAction::Delete { .. } => {
            if !may_manage(bot, tx, &ev.actor, &l).await? {
                return refuse(bot, tx, ev, &l, "delete").await;
            }
            delete(bot, tx, ev, l).await
        }
    }
}
