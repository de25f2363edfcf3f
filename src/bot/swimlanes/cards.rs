//! A lane as messages: its card, the renew-or-delete prompt and its outcomes.

use super::*;

pub(super) fn policy(bot: &Bot) -> lane::Policy {
    bot.config.swimlanes.policy()
}

pub(super) fn when(ms: i64) -> String {
    crate::domain::fields::format_ms(ms)
}

/// A span of time as people say it: whole days as days, otherwise hours and minutes.
pub(super) fn span(bot: &Bot, ms: i64) -> anyhow::Result<String> {
    if ms >= DAY_MS && ms % DAY_MS == 0 {
        return bot.texts.render("lane_days", &json!({ "n": ms / DAY_MS }));
    }
    crate::chat::texts::duration(&bot.texts, (ms / 1000).max(0) as u64)
}

pub(super) fn status_text(bot: &Bot, s: LaneStatus) -> anyhow::Result<String> {
    bot.texts.plain(&format!("lane_status_{}", s.as_str()))
}

pub(super) fn purpose_text(p: &Purpose) -> String {
    match p {
        Purpose::Ticket(id) => crate::domain::ticket::TicketId(*id).to_string(),
        Purpose::Title(t) => crate::chat::texts::escape(t),
    }
}

/// The lane's facts: owner, applications, what it is for, the derived names, its clock.
pub(super) fn facts(bot: &Bot, l: &Lane) -> anyhow::Result<Vec<Field>> {
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
pub(super) fn card(bot: &Bot, l: &Lane) -> anyhow::Result<Message> {
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
pub(super) fn prompt(bot: &Bot, l: &Lane) -> anyhow::Result<Message> {
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
pub(super) fn max_lifetime_note(bot: &Bot, l: &Lane) -> anyhow::Result<Option<String>> {
    l.hard_end
        .map(|end| bot.texts.render("lane_max_lifetime", &json!({ "end": when(end) })))
        .transpose()
}

/// The prompt as it ends: what happened, no buttons.
pub(super) fn prompt_outcome(bot: &Bot, l: &Lane, key: &str, data: serde_json::Value) -> anyhow::Result<Message> {
    Ok(Message {
        title: bot.texts.render(key, &data)?,
        fields: facts(bot, l)?,
        ..Default::default()
    })
}
