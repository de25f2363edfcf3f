//! The chat side of an execution: one progress message edited in place, alerts that
//! mention the on-call role, gate prompts, notices and the final report.

use super::{Row, Run};
use crate::chat::actions::Action;
use crate::chat::texts::duration;
use crate::chat::texts::escape;
use crate::chat::{mention, Button, ButtonStyle, Confirm, Field, Message, Texts};
use crate::domain::execution::Command;
use crate::domain::execution::{ExecStatus, Reaction, StepStatus};
use crate::domain::plan::Plan;
use crate::domain::ticket::{ReleaseOutcome, Ticket};
use crate::domain::Actor;
use chrono::{TimeZone, Utc};
use serde_json::json;

fn hhmm(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

fn simulated(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| s.simulated())
}

fn header(texts: &Texts, plan: &Plan, ticket: &Ticket, service: &str) -> serde_json::Value {
    json!({
        "ticket": ticket.id.to_string(), "service": service, "plan": plan.name,
        "application": ticket.application, "version": ticket.fields.get("version"), "simulated": simulated(plan),
        "_": texts.locale(),
    })
}

fn icon(run: &Run, i: usize) -> &'static str {
    match run.exec.steps[i].status {
        StepStatus::Completed => "✅",
        StepStatus::Running if run.exec.status == ExecStatus::Paused => "⏸",
        StepStatus::Running => "🔵",
        StepStatus::Pending if run.exec.status == ExecStatus::Paused => "⚪",
        StepStatus::Pending => "⚪",
        StepStatus::Failed => "❌",
        StepStatus::Skipped => "⏭",
        StepStatus::Interrupted => "⚠️",
    }
}

fn step_lines(texts: &Texts, run: &Run, plan: &Plan) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let info = &run.steps[i];
        let time = match (info.started_at, info.ended_at) {
            (Some(a), Some(b)) => Some(format!("{}–{}", hhmm(a), hhmm(b))),
            (Some(a), None) => Some(format!("{}–", hhmm(a))),
            _ => None,
        };
        lines.push(texts.render(
            "exec_step",
            &json!({ "icon": icon(run, i), "name": s.name, "time": time, "result": info.result, "attempts": (run.exec.steps[i].attempts > 1).then_some(run.exec.steps[i].attempts) }),
        )?);
    }
    if let Some(r) = &run.rollback_result {
        lines.push(texts.render("exec_rollback_line", &json!({ "result": r }))?);
    }
    if let Some(q) = &run.exec.queued {
        let step = run
            .exec
            .running()
            .and_then(|i| plan.steps.get(i))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        lines.push(texts.render(
            "exec_queued_line",
            &json!({ "command": texts.plain(&format!("btn_{}", q.command.as_str()))?, "by": q.by, "step": step }),
        )?);
    }
    Ok(lines)
}

fn button(texts: &Texts, ticket: &Ticket, cmd: Command, style: ButtonStyle) -> anyhow::Result<Button> {
    let confirm = match cmd {
        Command::Rollback | Command::Abort | Command::StopRollback | Command::StopAbort => {
            let data = json!({ "ticket": ticket.id.to_string() });
            Some(Confirm {
                title: texts.render(&format!("confirm_{}_title", cmd.as_str()), &data)?,
                text: texts.render(&format!("confirm_{}_text", cmd.as_str()), &data)?,
                ok: texts.plain(&format!("btn_{}", cmd.as_str()))?,
                cancel: texts.plain("form_cancel")?,
            })
        }
        _ => None,
    };
    Ok(Button {
        label: texts.plain(&format!("btn_{}", cmd.as_str()))?,
        action: Action::Exec {
            ticket: ticket.id,
            cmd: cmd.as_str().to_string(),
        }
        .encode(),
        style,
        confirm,
    })
}

/// A button that stops the running step and rolls back (or aborts), offered when a
/// command waits for a step that must otherwise be let finish.
pub fn stop_button(texts: &Texts, ticket: &Ticket, cmd: Command) -> anyhow::Result<Button> {
    button(texts, ticket, cmd, ButtonStyle::Danger)
}

/// The buttons that fit the execution's state.
fn controls(texts: &Texts, run: &Run, plan: &Plan, ticket: &Ticket) -> anyhow::Result<Vec<Button>> {
    let e = &run.exec;
    if e.status.is_final() || e.rolling_back {
        return Ok(vec![]);
    }
    // An Argo Rollout under way: its own pause, promotion and abort.
    if e.running().is_some_and(|i| plan.steps[i].relays_commands()) {
        let paused = run
            .argo
            .as_ref()
            .and_then(|m| m.paused.as_deref())
            .is_some_and(|p| p.starts_with("paused"));
        return [
            if paused {
                (Command::Resume, ButtonStyle::Primary)
            } else {
                (Command::Pause, ButtonStyle::Default)
            },
            (Command::Promote, ButtonStyle::Primary),
            (Command::Abort, ButtonStyle::Default),
            (Command::Rollback, ButtonStyle::Danger),
        ]
        .iter()
        .map(|(c, s)| {
            let mut b = button(texts, ticket, *c, *s)?;
            // Aborting a Rollout sends it back to its stable version; the plan then rolls back.
            if let (Command::Abort, Some(confirm)) = (c, b.confirm.as_mut()) {
                confirm.text = texts.render(
                    "confirm_abort_rollout_text",
                    &json!({ "ticket": ticket.id.to_string() }),
                )?;
            }
            Ok(b)
        })
        .collect();
    }
    if run.queued_behind.is_some() {
        return Ok(vec![button(texts, ticket, Command::Abort, ButtonStyle::Default)?]);
    }
    let cmds: &[(Command, ButtonStyle)] = match (e.status, e.blocked_on) {
        (ExecStatus::Paused, Some(_)) => &[
            (Command::Retry, ButtonStyle::Primary),
            (Command::Skip, ButtonStyle::Default),
            (Command::Rollback, ButtonStyle::Danger),
            (Command::Abort, ButtonStyle::Default),
        ],
        (ExecStatus::Paused, None) => &[
            (Command::Resume, ButtonStyle::Primary),
            (Command::Rollback, ButtonStyle::Danger),
        ],
        _ => &[
            (Command::Pause, ButtonStyle::Default),
            (Command::Rollback, ButtonStyle::Danger),
        ],
    };
    cmds.iter().map(|(c, s)| button(texts, ticket, *c, *s)).collect()
}

fn remaining_secs(run: &Run, plan: &Plan, now: i64) -> u64 {
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, s)| match run.exec.steps[i].status {
            StepStatus::Pending => s.expected_secs(),
            StepStatus::Running => {
                let elapsed = run.steps[i]
                    .started_at
                    .map(|t| ((now - t) / 1000).max(0) as u64)
                    .unwrap_or(0);
                s.expected_secs().saturating_sub(elapsed)
            }
            _ => 0,
        })
        .sum()
}

/// An execution as its progress message shows it now.
pub struct Shown {
    pub row: Row,
    pub plan: Plan,
    pub ticket: Ticket,
    pub message: Message,
}

/// Reads an execution and draws its progress message from its latest state: the outbox
/// does it when it delivers the message, the release page when it is opened. `None`: no
/// such execution (or ticket).
pub async fn shown(
    store: &crate::store::Store,
    texts: &Texts,
    config: &crate::config::Config,
    id: i64,
    now: i64,
) -> anyhow::Result<Option<Shown>> {
    use crate::store::executions as q;
    let mut conn = store.read.acquire().await?;
    let Some(row) = q::get::<Run>(&mut conn, id).await? else {
        return Ok(None);
    };
    let plan = match serde_json::from_str::<Plan>(&q::plan_json(&mut conn, id).await?) {
        Ok(plan) => plan,
        // A plan this version cannot read (the executor fails such a release and says
        // why): the message still shows the release's state, without its steps.
        Err(_) => Plan {
            name: config
                .plans
                .get(&row.plan_id)
                .map_or_else(|| row.plan_id.clone(), |p| p.name.clone()),
            id: row.plan_id.clone(),
            template: crate::domain::plan::Template::Custom,
            steps: Vec::new(),
        },
    };
    let Some(ticket) = crate::store::tickets::get(&mut conn, row.ticket).await? else {
        return Ok(None);
    };
    drop(conn);
    let message = message(texts, &row, &plan, &ticket, &config.service_name(&ticket.service), now)?;
    Ok(Some(Shown {
        row,
        plan,
        ticket,
        message,
    }))
}

/// The live progress message.
pub fn message(
    texts: &Texts,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    service: &str,
    now: i64,
) -> anyhow::Result<Message> {
    let run = &row.state;
    let status_key = if run.exec.rolling_back && !run.exec.status.is_final() {
        "ROLLING_BACK".to_string()
    } else {
        row.status.clone()
    };
    let status_value = match (&run.queued_behind, run.exec.status.is_final()) {
        (Some(b), false) => texts.render(
            "exec_status_queued_behind",
            &json!({ "ticket": crate::domain::ticket::TicketId(b.ticket).to_string(), "application": row.application, "environment": row.environment }),
        )?,
        _ => texts.plain(&format!("exec_status_{status_key}"))?,
    };
    let mut fields = vec![
        Field {
            label: texts.plain("label_status")?,
            value: status_value,
        },
        Field {
            label: texts.plain("label_traffic")?,
            value: texts.render("exec_traffic", &json!({ "new": run.traffic, "old": 100 - run.traffic }))?,
        },
    ];
    if let Some(s) = &run.sample {
        fields.push(Field {
            label: texts.plain("label_success")?,
            value: texts.render(
                "exec_success",
                &json!({ "new": format!("{:.1}", s.new_success), "old": format!("{:.1}", s.old_success) }),
            )?,
        });
        fields.push(Field {
            label: texts.plain("label_latency")?,
            value: texts.render(
                "exec_latency",
                &json!({ "new": s.new_p95, "old": s.old_p95, "new99": s.new_p99, "old99": s.old_p99 }),
            )?,
        });
    }
    if !run.targets.is_empty() {
        let value = run
            .targets
            .iter()
            .map(|(h, st)| {
                let icon = match st {
                    super::TargetStatus::Done => "✅",
                    super::TargetStatus::Failed => "❌",
                    super::TargetStatus::Pending => "⚪",
                };
                format!("{icon} {}", escape(h))
            })
            .collect::<Vec<_>>()
            .join(" · ");
        fields.push(Field {
            label: texts.plain("label_targets")?,
            value,
        });
    }
    if let Some(m) = &run.argo {
        fields.push(Field {
            label: texts.plain("label_rollout")?,
            value: texts.render("exec_argo", &serde_json::to_value(m)?)?,
        });
    }
    let end = row.finished_at.unwrap_or(now);
    fields.push(Field {
        label: texts.plain("label_elapsed")?,
        value: duration(texts, ((end - row.started_at) / 1000).max(0) as u64)?,
    });
    if !run.exec.status.is_final() {
        fields.push(Field {
            label: texts.plain("label_remaining")?,
            value: texts.render(
                "exec_remaining",
                &json!({ "duration": duration(texts, remaining_secs(run, plan, now))? }),
            )?,
        });
    }
    Ok(Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        link: None,
        title: texts.render("exec_title", &header(texts, plan, ticket, service))?,
        fields,
        body: Some(step_lines(texts, run, plan)?.join("\n")),
        context: simulated(plan).then(|| texts.plain("exec_simulated")).transpose()?,
        buttons: controls(texts, run, plan, ticket)?,
    })
}

fn oncall(members: &[Actor]) -> String {
    members.iter().map(mention).collect::<Vec<_>>().join(" ")
}

/// A failed step: the evidence, what happens now, and the buttons if a person must choose.
/// What an alert is about: the step that went wrong, what the executor does about it, and
/// the evidence.
#[derive(Debug, Clone, Copy)]
pub struct Alarm<'a> {
    pub step: usize,
    pub reaction: Reaction,
    pub evidence: &'a str,
}

pub fn alert(
    texts: &Texts,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    alarm: Alarm<'_>,
    members: &[Actor],
) -> anyhow::Result<Message> {
    let Alarm {
        step: i,
        reaction,
        evidence,
    } = alarm;
    let step = &plan.steps[i];
    let key = match reaction {
        Reaction::RollingBack => "alert_rolling_back",
        Reaction::Paused => "alert_paused",
        Reaction::Aborted => "alert_aborted",
        Reaction::Skipped => "alert_skipped",
        Reaction::Retrying { .. } => "alert_paused",
    };
    let data = json!({ "ticket": ticket.id.to_string(), "step": step.name, "oncall": oncall(members), "type": serde_json::to_value(step.kind)? });
    let log = &row.state.steps[i].log;
    let body = if log.is_empty() {
        None
    } else {
        Some(format!("```\n{}\n```", escape(&log.join("\n"))))
    };
    Ok(Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        link: None,
        title: texts.render("alert_title", &data)?,
        fields: vec![
            Field {
                label: texts.plain("label_evidence")?,
                value: evidence.to_string(),
            },
            Field {
                label: texts.plain("label_next")?,
                value: texts.render(key, &data)?,
            },
        ],
        body,
        context: Some(texts.render("alert_oncall", &data)?),
        buttons: if reaction == Reaction::Paused {
            controls(texts, &row.state, plan, ticket)?
        } else {
            vec![]
        },
    })
}

/// A non-idempotent step was running when the process stopped.
pub fn interrupted(
    texts: &Texts,
    _row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    i: usize,
    members: &[Actor],
) -> anyhow::Result<Message> {
    let data = json!({ "ticket": ticket.id.to_string(), "step": plan.steps[i].name, "oncall": oncall(members) });
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        title: texts.render("interrupted_title", &data)?,
        body: Some(texts.render("interrupted_body", &data)?),
        context: Some(texts.render("alert_oncall", &data)?),
        buttons: vec![
            button(texts, ticket, Command::Retry, ButtonStyle::Primary)?,
            button(texts, ticket, Command::Skip, ButtonStyle::Default)?,
            button(texts, ticket, Command::Rollback, ButtonStyle::Danger)?,
        ],
        ..Default::default()
    })
}

/// An approval gate waits for its role to press Continue.
pub fn gate(texts: &Texts, row: &Row, plan: &Plan, ticket: &Ticket, i: usize) -> anyhow::Result<Message> {
    let data = json!({ "ticket": ticket.id.to_string(), "step": plan.steps[i].name, "role": plan.steps[i].role });
    Ok(Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        title: texts.render("gate_title", &data)?,
        buttons: vec![
            button(texts, ticket, Command::Continue, ButtonStyle::Primary)?,
            button(texts, ticket, Command::Rollback, ButtonStyle::Danger)?,
        ],
        ..Default::default()
    })
}

/// A step's post-action: its result announced in the channel.
pub fn notice(texts: &Texts, row: &Row, plan: &Plan, ticket: &Ticket, i: usize) -> anyhow::Result<Message> {
    let data =
        json!({ "ticket": ticket.id.to_string(), "step": plan.steps[i].name, "result": row.state.steps[i].result });
    Ok(Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        title: texts.render("notice_title", &data)?,
        ..Default::default()
    })
}

/// Posted when the execution ends.
pub fn report(
    texts: &Texts,
    row: &Row,
    plan: &Plan,
    ticket: &Ticket,
    service: &str,
    outcome: ReleaseOutcome,
    now: i64,
) -> anyhow::Result<Message> {
    let data = header(texts, plan, ticket, service);
    let took = duration(texts, ((now - row.started_at) / 1000).max(0) as u64)?;
    Ok(Message {
        page: Some(crate::chat::links::Page::Execution(row.id)),
        link: None,
        title: texts.render(&format!("report_title_{}", outcome.as_str()), &data)?,
        fields: vec![
            Field {
                label: texts.plain("label_plan")?,
                value: escape(&plan.name),
            },
            Field {
                label: texts.plain("label_duration")?,
                value: took,
            },
            Field {
                label: texts.plain("label_traffic")?,
                value: texts.render(
                    "exec_traffic",
                    &json!({ "new": row.state.traffic, "old": 100 - row.state.traffic }),
                )?,
            },
        ],
        body: Some(step_lines(texts, &row.state, plan)?.join("\n")),
        context: simulated(plan).then(|| texts.plain("exec_simulated")).transpose()?,
        buttons: vec![],
    })
}

/// The result of a rollback asked for after the release ended.
pub fn later_rollback(
    texts: &Texts,
    ticket: &Ticket,
    lr: &super::LaterRollback,
    ok: bool,
    result: &str,
) -> anyhow::Result<Message> {
    let data = json!({ "ticket": ticket.id.to_string(), "baseline": lr.baseline, "version": lr.version, "actor": lr.requested_by, "result": result });
    let key = if ok {
        "later_rollback_done"
    } else {
        "later_rollback_failed"
    };
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        title: texts.render(key, &data)?,
        context: Some(texts.render("later_rollback_by", &data)?),
        ..Default::default()
    })
}
