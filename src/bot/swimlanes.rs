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
use crate::store::{Conn, Tx};
use serde_json::json;

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

fn policy(bot: &Bot) -> lane::Policy {
    bot.config.swimlanes.policy()
}

fn when(ms: i64) -> String {
    crate::domain::fields::format_ms(ms)
}

/// A span of time as people say it: whole days as days, otherwise hours and minutes.
fn span(bot: &Bot, ms: i64) -> anyhow::Result<String> {
    if ms >= DAY_MS && ms % DAY_MS == 0 {
        return bot.texts.render("lane_days", &json!({ "n": ms / DAY_MS }));
    }
    crate::chat::texts::duration(&bot.texts, (ms / 1000).max(0) as u64)
}

fn status_text(bot: &Bot, s: LaneStatus) -> anyhow::Result<String> {
    bot.texts.plain(&format!("lane_status_{}", s.as_str()))
}

fn purpose_text(p: &Purpose) -> String {
    match p {
        Purpose::Ticket(id) => crate::domain::ticket::TicketId(*id).to_string(),
        Purpose::Title(t) => crate::chat::texts::escape(t),
    }
}

/// The lane's facts: owner, applications, what it is for, the derived names, its clock.
fn facts(bot: &Bot, l: &Lane) -> anyhow::Result<Vec<Field>> {
    let t = &bot.texts;
    let d = lane::derive(l, &bot.config.swimlanes.patterns());
    let mut out = vec![
        Field {
            label: t.plain("lane_label_owner")?,
            value: mention(&l.owner),
        },
        Field {
            label: t.plain("lane_label_namespace")?,
            value: format!("`{}`", d.namespace),
        },
        Field {
            label: t.plain("lane_label_branch")?,
            value: format!("`{}`", d.branch),
        },
    ];
    if !l.apps.is_empty() {
        out.push(Field {
            label: t.plain("lane_label_apps")?,
            value: l.apps.join(", "),
        });
    }
    let domains = |list: &[(String, String)]| {
        list.iter()
            .map(|(_, x)| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !d.internal.is_empty() {
        out.push(Field {
            label: t.plain("lane_label_internal")?,
            value: domains(&d.internal),
        });
    }
    if !d.external.is_empty() {
        out.push(Field {
            label: t.plain("lane_label_external")?,
            value: domains(&d.external),
        });
    }
    if let Some(p) = &l.purpose {
        out.push(Field {
            label: t.plain("lane_label_for")?,
            value: purpose_text(p),
        });
    }
    if let Some(at) = l.expires_at(&policy(bot), bot.now()) {
        out.push(Field {
            label: t.plain("lane_label_expires")?,
            value: t.render(
                "lane_expires",
                &json!({ "at": when(at), "idle": span(bot, l.idle_ms)? }),
            )?,
        });
    }
    Ok(out)
}

/// The lane's card: its status and facts, and why it failed if it did.
fn card(bot: &Bot, l: &Lane) -> anyhow::Result<Message> {
    let context = match (l.status, &l.reason) {
        (LaneStatus::Failed | LaneStatus::Provisioning, Some(r)) => Some(crate::chat::texts::escape(r)),
        _ => None,
    };
    Ok(Message {
        title: bot.texts.render(
            "lane_title",
            &json!({ "name": l.name, "status": status_text(bot, l.status)? }),
        )?,
        fields: facts(bot, l)?,
        context,
        ..Default::default()
    })
}

/// The announcement that an idle lane will be deleted, with Renew / Delete now.
fn prompt(bot: &Bot, l: &Lane) -> anyhow::Result<Message> {
    let t = &bot.texts;
    let name = json!({ "name": l.name });
    Ok(Message {
        title: t.render(
            "lane_prompt_title",
            &json!({ "name": l.name, "idle": span(bot, l.idle_ms)?,
                     "at": when(l.deadline.unwrap_or_default()) }),
        )?,
        fields: facts(bot, l)?,
        body: Some(t.render("lane_prompt_body", &json!({ "owner": mention(&l.owner) }))?),
        context: max_lifetime_note(bot, l)?,
        buttons: vec![
            Button {
                label: t.plain("btn_lane_renew")?,
                action: LaneAction::Renew { lane: l.id }.encode(),
                style: ButtonStyle::Primary,
                confirm: None,
            },
            Button {
                label: t.plain("btn_lane_delete_now")?,
                action: LaneAction::Delete { lane: l.id }.encode(),
                style: ButtonStyle::Danger,
                confirm: Some(Confirm {
                    title: t.render("lane_confirm_title", &name)?,
                    text: t.render("lane_confirm_text", &name)?,
                    ok: t.plain("btn_lane_delete")?,
                    cancel: t.plain("btn_keep")?,
                }),
            },
        ],
        page: None,
        link: None,
    })
}

/// Says when the maximum lifetime ends and who can extend it, when one is configured.
fn max_lifetime_note(bot: &Bot, l: &Lane) -> anyhow::Result<Option<String>> {
    l.hard_end
        .map(|end| bot.texts.render("lane_max_lifetime", &json!({ "end": when(end) })))
        .transpose()
}

/// The prompt as it ends: what happened, no buttons.
fn prompt_outcome(bot: &Bot, l: &Lane, key: &str, data: serde_json::Value) -> anyhow::Result<Message> {
    Ok(Message {
        title: bot.texts.render(key, &data)?,
        fields: facts(bot, l)?,
        ..Default::default()
    })
}

/// Edits the lane's current message (its last prompt, or its card) and the owner's copy.
async fn edit_current(bot: &Bot, tx: &mut Tx, l: &Lane, message: Message) -> anyhow::Result<()> {
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
    tx: &mut Tx,
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
async fn plan_timer(bot: &Bot, conn: &mut Conn, l: &Lane, at: Option<i64>) -> anyhow::Result<()> {
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
    bot.scheduler_notify.notify_one();
    Ok(())
}

/// The live lane a command names (sanitised as at creation); says so when there is none.
async fn find_or_say(bot: &Bot, tx: &mut Tx, ev: &Inbound, name: &str) -> anyhow::Result<Option<Lane>> {
    let wanted = lane::sanitize(name).unwrap_or_else(|_| name.to_string());
    let found = q::by_name(tx, &wanted).await?;
    if found.is_none() {
        bot.say(tx, ev, "lane_not_found", json!({ "name": wanted })).await?;
    }
    Ok(found)
}

/// Whether `actor` may renew, delete or change the lane: its owner (any identity linked
/// to the owner), an admin, or a holder of a role scoped to one of its applications.
async fn may_manage(bot: &Bot, conn: &mut Conn, actor: &Actor, l: &Lane) -> anyhow::Result<bool> {
    if roles::as_known(bot, conn, actor, [&l.owner]).await? == l.owner {
        return Ok(true);
    }
    Ok(roles::is_admin(bot, conn, actor).await? || roles::holds_app_role(bot, conn, actor, &l.apps).await?)
}

/// The lane is in no state for what was asked (`key` says what), and in which it is.
async fn not_now(bot: &Bot, tx: &mut Tx, ev: &Inbound, key: &str, l: &Lane, s: LaneStatus) -> anyhow::Result<Handled> {
    bot.say(tx, ev, key, json!({ "name": l.name, "status": status_text(bot, s)? }))
        .await?;
    Ok(Handled::Done)
}

async fn refuse(bot: &Bot, tx: &mut Tx, ev: &Inbound, l: &Lane, what: &str) -> anyhow::Result<Handled> {
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

/// `/swimlane create NAME [app …] [--for REL-ID|"title"] [--days N]`.
pub async fn create(
    bot: &Bot,
    tx: &mut Tx,
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
    let mut l = Lane::new(
        name.clone(),
        ev.actor.clone(),
        ev.actor_name.clone(),
        ev.actor.platform.clone(),
        lane_channel(bot, ev),
        apps,
        purpose,
        idle_ms,
        &policy,
        now,
    );
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

/// `/swimlane list [mine|all]`.
pub async fn list(bot: &Bot, tx: &mut Tx, ev: &Inbound, all: bool) -> anyhow::Result<Handled> {
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

/// Saves a lane changed by a person; `Conflict` when it changed meanwhile (run again).
async fn save(bot: &Bot, tx: &mut Tx, l: &Lane) -> anyhow::Result<Option<Handled>> {
    Ok((!q::save(tx, l, bot.now()).await?).then_some(Handled::Conflict))
}

/// `/swimlane show NAME`: its card, privately; looking at an active lane is activity.
pub async fn show(bot: &Bot, tx: &mut Tx, ev: &Inbound, name: &str) -> anyhow::Result<Handled> {
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

/// `/swimlane apps NAME add|remove APP`.
pub async fn apps(bot: &Bot, tx: &mut Tx, ev: &Inbound, name: &str, add: bool, app: &str) -> anyhow::Result<Handled> {
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

/// `/swimlane renew NAME [days]`.
pub async fn renew_by_command(
    bot: &Bot,
    tx: &mut Tx,
    ev: &Inbound,
    name: &str,
    days: Option<u32>,
) -> anyhow::Result<Handled> {
    let Some(l) = find_or_say(bot, tx, ev, name).await? else {
        return Ok(Handled::Done);
    };
    renew(bot, tx, ev, l, days.map(|d| i64::from(d) * DAY_MS)).await
}

async fn renew(bot: &Bot, tx: &mut Tx, ev: &Inbound, mut l: Lane, for_ms: Option<i64>) -> anyhow::Result<Handled> {
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

/// `/swimlane delete NAME [--confirm]`: asks first, then deletes.
pub async fn delete_by_command(
    bot: &Bot,
    tx: &mut Tx,
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

async fn delete(bot: &Bot, tx: &mut Tx, ev: &Inbound, mut l: Lane) -> anyhow::Result<Handled> {
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

/// Renew / Delete pressed on a lane's message.
pub async fn on_action(bot: &Bot, tx: &mut Tx, ev: &Inbound, a: LaneAction) -> anyhow::Result<Handled> {
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

/// What a deploy reported by a CI system did to a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// The idle clock starts over; the lane is next announced at `until`.
    Kept { until: i64, was_pending: bool },
    /// No live lane of that name.
    NotFound,
    /// Being created, deleted, or failed: nothing to keep.
    NotActive(LaneStatus),
}

/// `POST /swimlanes/{name}/activity`: a deploy (or other use) reported by CI resets the
/// idle clock, and keeps a lane pending deletion.
pub async fn activity(bot: &Bot, name: &str, what: Option<&str>) -> anyhow::Result<Activity> {
    for _ in 0..5 {
        let mut tx = bot.store.begin().await?;
        let Some(mut l) = q::by_name(&mut tx, name).await? else {
            return Ok(Activity::NotFound);
        };
        let was_pending = l.status == LaneStatus::PendingDeletion;
        let now = bot.now();
        if !l.touch(now, true) {
            return Ok(Activity::NotActive(l.status));
        }
        if !q::save(&mut tx, &l, now).await? {
            tx.rollback().await?;
            continue;
        }
        plan_timer(bot, &mut tx, &l, None).await?;
        let until = l.prompt_at(&policy(bot));
        if was_pending {
            let data = json!({ "name": l.name, "at": when(now), "until": when(until) });
            edit_current(
                bot,
                &mut tx,
                &l,
                prompt_outcome(bot, &l, "lane_kept_by_activity", data)?,
            )
            .await?;
        }
        let actor = Actor::new("ci", "activity");
        audit(bot, &mut tx, &actor, &l, "swimlane_activity", json!({ "what": what })).await?;
        tx.commit().await?;
        bot.outbox_notify.notify_one();
        return Ok(Activity::Kept { until, was_pending });
    }
    anyhow::bail!("the lane kept changing; try again")
}

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
        let mut tx = bot.store.begin().await?;
        if !super::jobs::finish(bot, &mut tx, f).await? {
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
        bot.outbox_notify.notify_one();
        return Ok(());
    }
    anyhow::bail!("lane {id} kept changing while its timer fired")
}

async fn run_hooks(bot: &Bot, l: Option<&Lane>, event: hooks::Event) -> Result<Vec<String>, hooks::HookFailure> {
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
async fn after_hooks(
    bot: &Bot,
    tx: &mut Tx,
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
async fn on_clock(bot: &Bot, tx: &mut Tx, l: &mut Lane) -> anyhow::Result<bool> {
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
    let mut tx = bot.store.begin().await?;
    if !super::jobs::finish(bot, &mut tx, f).await? {
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
    bot.outbox_notify.notify_one();
    Ok(())
}
