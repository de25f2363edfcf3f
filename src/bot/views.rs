//! Builds neutral messages and forms from templates. Pure apart from template lookups.

use super::actions::{Action, FormCallback};
use crate::chat::texts::escape;
use crate::chat::{mention, Button, ButtonStyle, Confirm, Field, Form, FormField, InputKind, Message, Texts};
use crate::command::{CommandError, Verb};
use crate::domain::fields::format_ms;
use crate::domain::flow::{FieldDef, FieldKind, Flow};
use crate::domain::ticket::{Decision, DecisionKind, Ticket, TicketStatus};
use crate::domain::Actor;
use crate::store::audit::AuditEntry;
use serde_json::json;

/// Key under which a stage's input is stored in the ticket's fields.
pub fn input_key(flow: &Flow, stage: usize, field: &str) -> String {
    if stage == 0 {
        field.to_string()
    } else {
        format!(
            "{}.{field}",
            flow.stages.get(stage).map(|s| s.id.as_str()).unwrap_or("?")
        )
    }
}

/// The answers gathered by stages `0..upto`, labelled.
pub fn ticket_fields(ticket: &Ticket, flow: &Flow, upto: usize) -> Vec<Field> {
    let mut out = Vec::new();
    for (i, stage) in flow.stages.iter().enumerate().take(upto) {
        for f in &stage.fields {
            if let Some(v) = ticket.fields.get(&input_key(flow, i, &f.id)) {
                out.push(Field {
                    label: escape(&f.label),
                    value: escape(v),
                });
            }
        }
    }
    out
}

fn mentions(actors: &[Actor]) -> String {
    actors.iter().map(mention).collect::<Vec<_>>().join(" ")
}

pub enum StageState<'a> {
    Waiting {
        members: &'a [Actor],
        approvals: &'a [Decision],
    },
    Decided(&'a Decision),
    Closed {
        by: &'a Actor,
        at: i64,
    },
}

pub fn stage_message(
    texts: &Texts,
    ticket: &Ticket,
    flow: &Flow,
    service: &str,
    stage: usize,
    state: StageState<'_>,
) -> anyhow::Result<Message> {
    let st = flow
        .stages
        .get(stage)
        .ok_or_else(|| anyhow::anyhow!("flow {} has no stage {stage}", flow.id))?;
    let title = texts.render(
        "stage_title",
        &json!({ "ticket": ticket.id.to_string(), "service": service, "stage": st.name }),
    )?;
    let mut fields = ticket_fields(ticket, flow, stage);
    fields.insert(
        0,
        Field {
            label: texts.plain("label_requested_by")?,
            value: mention(&ticket.submitter),
        },
    );
    let (context, buttons) = match state {
        StageState::Waiting { members, approvals } => {
            let mut context = texts.render(
                "stage_waiting",
                &json!({ "role": st.role, "members": mentions(members) }),
            )?;
            if st.approvals_required > 1 {
                let who: Vec<Actor> = approvals.iter().map(|d| d.actor.clone()).collect();
                context.push('\n');
                context.push_str(&texts.render(
                    "stage_countersign",
                    &json!({ "approvals": approvals.len(), "required": st.approvals_required, "approvers": mentions(&who) }),
                )?);
            }
            let action = |kind| {
                Action::Decide {
                    ticket: ticket.id,
                    stage,
                    round: ticket.round,
                    kind,
                }
                .encode()
            };
            let buttons = vec![
                Button {
                    label: texts.plain("btn_approve")?,
                    action: action(DecisionKind::Approve),
                    style: ButtonStyle::Primary,
                    confirm: None,
                },
                Button {
                    label: texts.plain("btn_reject")?,
                    action: action(DecisionKind::Reject),
                    style: ButtonStyle::Danger,
                    confirm: None,
                },
            ];
            (context, buttons)
        }
        StageState::Decided(d) => (decision_line(texts, d)?, vec![]),
        StageState::Closed { by, at } => (
            texts.render("stage_closed", &json!({ "actor": mention(by), "at": format_ms(at) }))?,
            vec![],
        ),
    };
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        link: None,
        title,
        fields,
        body: None,
        context: Some(context),
        buttons,
    })
}

pub fn decision_line(texts: &Texts, d: &Decision) -> anyhow::Result<String> {
    let key = match d.kind {
        DecisionKind::Approve => "stage_approved",
        DecisionKind::Reject => "stage_rejected",
    };
    texts.render(
        key,
        &json!({ "actor": mention(&d.actor), "at": format_ms(d.at), "comment": d.comment }),
    )
}

/// Posted to the ticket's channel when a rejection sends the ticket back to its submitter.
pub fn sent_back(
    texts: &Texts,
    ticket: &Ticket,
    flow: &Flow,
    service: &str,
    stage_name: &str,
    d: &Decision,
) -> anyhow::Result<Message> {
    let data = json!({
        "ticket": ticket.id.to_string(), "service": service, "stage": stage_name,
        "submitter": mention(&ticket.submitter), "actor": mention(&d.actor), "reason": d.comment,
    });
    let mut fields = ticket_fields(ticket, flow, 1);
    fields.insert(
        0,
        Field {
            label: texts.plain("label_requested_by")?,
            value: mention(&ticket.submitter),
        },
    );
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        link: None,
        title: texts.render("sent_back_title", &data)?,
        fields,
        body: Some(texts.render("sent_back_body", &data)?),
        context: None,
        buttons: vec![
            Button {
                label: texts.plain("btn_resubmit")?,
                action: Action::Resubmit {
                    ticket: ticket.id,
                    round: ticket.round,
                }
                .encode(),
                style: ButtonStyle::Primary,
                confirm: None,
            },
            withdraw_button(texts, ticket)?,
        ],
    })
}

fn withdraw_button(texts: &Texts, ticket: &Ticket) -> anyhow::Result<Button> {
    let data = json!({ "ticket": ticket.id.to_string() });
    Ok(Button {
        label: texts.plain("btn_withdraw")?,
        action: Action::Withdraw { ticket: ticket.id }.encode(),
        style: ButtonStyle::Danger,
        confirm: Some(Confirm {
            title: texts.render("confirm_withdraw_title", &data)?,
            text: texts.render("confirm_withdraw_text", &data)?,
            ok: texts.plain("btn_withdraw")?,
            cancel: texts.plain("btn_keep")?,
        }),
    })
}

/// The sent-back message once the submitter acted on it.
pub fn sent_back_done(
    texts: &Texts,
    ticket: &Ticket,
    service: &str,
    key: &str,
    actor: &Actor,
    at: i64,
) -> anyhow::Result<Message> {
    let data =
        json!({ "ticket": ticket.id.to_string(), "service": service, "actor": mention(actor), "at": format_ms(at) });
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        title: texts.render("sent_back_done_title", &data)?,
        context: Some(texts.render(key, &data)?),
        ..Default::default()
    })
}

/// Posted when a ticket ends: every stage approved, rejected for good, or closed.
pub fn outcome(
    texts: &Texts,
    ticket: &Ticket,
    flow: &Flow,
    service: &str,
    actor: &Actor,
    reason: Option<&str>,
) -> anyhow::Result<Message> {
    let key = match ticket.status {
        TicketStatus::Ready => "outcome_ready",
        TicketStatus::Released => "outcome_released",
        TicketStatus::ReleaseFailed => "outcome_release_failed",
        TicketStatus::RolledBack => "outcome_rolled_back",
        TicketStatus::Rejected => "outcome_rejected",
        _ => "outcome_closed",
    };
    let data = json!({ "ticket": ticket.id.to_string(), "service": service, "actor": mention(actor), "submitter": mention(&ticket.submitter), "reason": reason });
    let mut fields = ticket_fields(ticket, flow, flow.stages.len());
    fields.insert(
        0,
        Field {
            label: texts.plain("label_requested_by")?,
            value: mention(&ticket.submitter),
        },
    );
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        title: texts.render(key, &data)?,
        fields,
        ..Default::default()
    })
}

pub fn status_text(texts: &Texts, ticket: &Ticket, flow: &Flow) -> anyhow::Result<String> {
    let stage = match ticket.status {
        TicketStatus::InApproval(i) => flow.stages.get(i).map(|s| s.name.clone()),
        _ => None,
    };
    let outcome = ticket
        .outcome
        .map(|o| texts.plain(&format!("release_outcome_{}", o.as_str())))
        .transpose()?;
    if let (Some(stage), Some(outcome)) = (&stage, &outcome) {
        return texts.render(
            "status_in_approval_after_release",
            &json!({ "stage": stage, "outcome": outcome }),
        );
    }
    texts.render(&format!("status_{}", ticket.status.key()), &json!({ "stage": stage }))
}

pub fn show(
    texts: &Texts,
    ticket: &Ticket,
    flow: &Flow,
    service: &str,
    audit: &[AuditEntry],
) -> anyhow::Result<Message> {
    let data = json!({
        "ticket": ticket.id.to_string(), "service": service, "status": status_text(texts, ticket, flow)?,
        "submitter": mention(&ticket.submitter), "at": format_ms(ticket.created_at),
    });
    let mut lines = Vec::new();
    for e in audit {
        let actor = crate::domain::Actor::parse(&e.actor)
            .map(|a| mention(&a))
            .unwrap_or_else(|| escape(&e.actor));
        let d = json!({
            "at": format_ms(e.at), "actor": actor, "platform": e.platform,
            "stage": e.detail.get("stage_name"), "comment": e.detail.get("comment"),
            "reason": e.detail.get("reason"), "action": e.action,
        });
        // An entry without wording of its own (written by a newer version) is still shown.
        let line = texts
            .render(&format!("audit_{}", e.action), &d)
            .or_else(|_| texts.render("audit_other", &d))?;
        lines.push(line);
    }
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        link: None,
        title: texts.render("show_title", &data)?,
        fields: ticket_fields(ticket, flow, flow.stages.len()),
        body: Some(format!("{}\n{}", texts.plain("show_timeline")?, lines.join("\n"))),
        context: Some(texts.render("show_context", &data)?),
        buttons: vec![],
    })
}

pub fn list(texts: &Texts, scope_key: &str, rows: &[(Ticket, String)]) -> anyhow::Result<Message> {
    let mut lines = Vec::new();
    for (t, status) in rows {
        lines.push(texts.render(
            "list_entry",
            &json!({
                "ticket": t.id.to_string(), "application": t.application,
                "version": t.fields.get("version"), "status": status, "submitter": mention(&t.submitter),
            }),
        )?);
    }
    let body = if lines.is_empty() {
        texts.plain("list_empty")?
    } else {
        lines.join("\n")
    };
    Ok(Message {
        title: texts.plain(&format!("list_title_{scope_key}"))?,
        body: Some(body),
        ..Default::default()
    })
}

/// The help of a command; `service` is the default service's name. DingTalk has no
/// slash commands: there the usages go without the slash, after @-mentioning the robot.
pub fn help(texts: &Texts, command: &str, service: &str, platform: &str) -> anyhow::Result<Message> {
    let dingtalk = platform == crate::chat::dingtalk::PLATFORM;
    let mut lines = Vec::new();
    for v in Verb::ALL.into_iter().filter(|v| v.command() == command) {
        let usage = if dingtalk {
            v.usage().trim_start_matches('/')
        } else {
            v.usage()
        };
        lines.push(texts.render(
            "help_line",
            &json!({ "usage": usage, "text": texts.render(v.help_key(), &json!({ "service": service }))? }),
        )?);
    }
    Ok(Message {
        title: texts.render("help_title", &json!({ "command": command, "slash": !dingtalk }))?,
        body: Some(lines.join("\n")),
        context: dingtalk.then(|| texts.plain("help_dingtalk_hint")).transpose()?,
        ..Default::default()
    })
}

pub fn command_error(texts: &Texts, e: &CommandError) -> anyhow::Result<Message> {
    let (command, word) = match &e.problem {
        crate::command::Problem::UnknownVerb { command, word } => (command.clone(), word.clone()),
        p => (
            e.verb
                .map(|v| v.command().to_string())
                .unwrap_or_else(|| "release".into()),
            p.word().to_string(),
        ),
    };
    let title = texts.render(
        &format!("usage_{}", e.problem.code()),
        &json!({ "word": word, "command": command }),
    )?;
    let context = match e.verb {
        Some(v) => texts.render("usage_line", &json!({ "usage": v.usage() }))?,
        None => texts.render("usage_see_help", &json!({ "command": command }))?,
    };
    Ok(Message {
        title,
        context: Some(context),
        ..Default::default()
    })
}

fn form_field(def: &FieldDef, initial: Option<&String>) -> FormField {
    FormField {
        id: def.id.clone(),
        label: def.label.clone(),
        input: match def.kind {
            FieldKind::Multiline => InputKind::Multiline,
            FieldKind::Select => InputKind::Select {
                options: def.options.clone(),
            },
            _ => InputKind::Text,
        },
        required: def.required,
        hint: def.hint.clone(),
        initial: initial.cloned(),
    }
}

/// The submission form of a service; `ticket` pre-fills it for a resubmission.
pub fn submission_form(
    texts: &Texts,
    flow: &Flow,
    service_id: &str,
    service: &str,
    reply_channel: &str,
    ticket: Option<&Ticket>,
) -> anyhow::Result<Form> {
    let stage = flow
        .submission()
        .ok_or_else(|| anyhow::anyhow!("flow {} has no stages", flow.id))?;
    let (title, callback) = match ticket {
        None => (
            texts.render("form_new_title", &json!({ "service": service }))?,
            FormCallback::New {
                service: service_id.to_string(),
            },
        ),
        Some(t) => (
            texts.render("form_resubmit_title", &json!({ "ticket": t.id.to_string() }))?,
            FormCallback::Resubmit {
                ticket: t.id,
                round: t.round,
            },
        ),
    };
    Ok(Form {
        title,
        submit: texts.plain("form_submit")?,
        cancel: texts.plain("form_cancel")?,
        callback: callback.encode(),
        reply_channel: reply_channel.to_string(),
        intro: None,
        fields: stage
            .fields
            .iter()
            .map(|f| form_field(f, ticket.and_then(|t| t.fields.get(&f.id))))
            .collect(),
    })
}

/// Field id of the free comment (approval) or reason (rejection) in decision forms.
pub const COMMENT_FIELD: &str = "comment";

/// The form asked before a decision: the stage's inputs and a comment, or a rejection reason.
pub fn decision_form(
    texts: &Texts,
    ticket: &Ticket,
    flow: &Flow,
    stage: usize,
    kind: DecisionKind,
    reply_channel: &str,
) -> anyhow::Result<Form> {
    let st = flow
        .stages
        .get(stage)
        .ok_or_else(|| anyhow::anyhow!("flow {} has no stage {stage}", flow.id))?;
    let data = json!({ "ticket": ticket.id.to_string(), "stage": st.name, "application": ticket.application, "version": ticket.fields.get("version") });
    let mut fields = Vec::new();
    let (title, submit) = match kind {
        DecisionKind::Approve => {
            fields.extend(st.fields.iter().map(|f| form_field(f, None)));
            fields.push(FormField {
                id: COMMENT_FIELD.into(),
                label: texts.plain("form_comment_label")?,
                input: InputKind::Multiline,
                required: false,
                hint: None,
                initial: None,
            });
            (texts.render("form_approve_title", &data)?, texts.plain("btn_approve")?)
        }
        DecisionKind::Reject => {
            fields.push(FormField {
                id: COMMENT_FIELD.into(),
                label: texts.plain("form_reason_label")?,
                input: InputKind::Multiline,
                required: true,
                hint: Some(texts.plain("form_reason_hint")?),
                initial: None,
            });
            (texts.render("form_reject_title", &data)?, texts.plain("btn_reject")?)
        }
    };
    Ok(Form {
        title,
        submit,
        cancel: texts.plain("form_cancel")?,
        callback: FormCallback::Decide {
            ticket: ticket.id,
            stage,
            round: ticket.round,
            kind,
        }
        .encode(),
        reply_channel: reply_channel.to_string(),
        intro: Some(texts.render("form_decide_intro", &data)?),
        fields,
    })
}

/// A duration in the reader's language.
pub use crate::chat::texts::duration;

fn policy_text(texts: &Texts, p: &crate::domain::plan::FailurePolicy) -> anyhow::Result<String> {
    use crate::domain::plan::FailurePolicy as P;
    match p {
        P::Rollback => texts.plain("policy_rollback"),
        P::Pause => texts.plain("policy_pause"),
        P::Skip => texts.plain("policy_skip"),
        P::Abort => texts.plain("policy_abort"),
        P::Retry {
            times,
            backoff_secs,
            then,
        } => texts.render(
            "policy_retry",
            &json!({ "times": times, "backoff": duration(texts, *backoff_secs)?, "then": policy_text(texts, then)? }),
        ),
    }
}

/// `/release plan`: what would run, before anyone approves.
pub fn dry_run(texts: &Texts, ticket: &Ticket, plan: &crate::domain::plan::Plan) -> anyhow::Result<Message> {
    let mut lines = Vec::new();
    let mut simulated = false;
    for (i, s) in plan.steps.iter().enumerate() {
        simulated |= s.simulated();
        let thresholds = match &s.thresholds {
            Some(t) => Some(texts.render(
                "plan_thresholds",
                &json!({ "success": t.min_success_rate, "p95": t.max_p95_ms, "p99": t.max_p99_ms, "drop": t.max_success_rate_drop }),
            )?),
            None => None,
        };
        let batches = s.batches.as_ref().map(|b| json!({ "first": b.first, "size": b.size }));
        lines.push(texts.render(
            "plan_step",
            &json!({
                "n": i + 1, "name": s.name, "type": serde_json::to_value(s.kind)?, "provider": s.provider.name(),
                "simulated": s.simulated(), "weight": s.weight,
                "duration": s.duration_secs.map(|d| duration(texts, d)).transpose()?,
                "thresholds": thresholds, "gate": s.role, "batches": batches,
                "timeout": s.timeout_secs.map(|d| duration(texts, d)).transpose()?,
                "requires": (!s.requires.is_empty()).then(|| s.requires.join(", ")),
                "policy": policy_text(texts, &s.on_failure)?,
            }),
        )?);
    }
    let data = json!({
        "ticket": ticket.id.to_string(), "plan": plan.name, "template": serde_json::to_value(plan.template)?,
    });
    let scope = ticket.fields.get("scope").filter(|s| !s.trim().is_empty());
    let fields = vec![
        Field {
            label: texts.plain("label_application")?,
            value: escape(&ticket.application),
        },
        Field {
            label: texts.plain("label_version")?,
            value: escape(ticket.fields.get("version").map(String::as_str).unwrap_or("—")),
        },
        Field {
            label: texts.plain("label_targets")?,
            value: match scope {
                Some(s) => escape(s),
                None => texts.plain("plan_all_targets")?,
            },
        },
        Field {
            label: texts.plain("label_expected_duration")?,
            value: texts.render(
                "plan_expected",
                &json!({ "duration": duration(texts, plan.expected_secs())? }),
            )?,
        },
    ];
    Ok(Message {
        page: Some(crate::chat::links::Page::Ticket(ticket.id.0)),
        link: None,
        title: texts.render("plan_title", &data)?,
        fields,
        body: Some(lines.join("\n")),
        context: if simulated {
            Some(texts.plain("plan_simulated")?)
        } else {
            None
        },
        buttons: vec![],
    })
}

/// The command that answers a form on platforms without forms (DingTalk): the same
/// grammar as the slash commands, `field=value` per answer.
pub fn form_command(form: &Form) -> String {
    let fields = |skip_comment: bool| -> String {
        form.fields
            .iter()
            .filter(|f| !(skip_comment && f.id == COMMENT_FIELD))
            .map(|f| format!(" {}=…", f.id))
            .collect()
    };
    match FormCallback::decode(&form.callback) {
        Some(FormCallback::New { service }) => format!("release new {service}{}", fields(false)),
        Some(FormCallback::Decide {
            ticket,
            kind: DecisionKind::Reject,
            ..
        }) => format!("release reject {ticket} …"),
        Some(FormCallback::Decide { ticket, .. }) => format!("release approve {ticket}{}", fields(false)),
        Some(FormCallback::Resubmit { ticket, .. }) => format!("release resubmit {ticket}{}", fields(false)),
        None => format!("release help{}", fields(true)),
    }
}

/// A form as a message: what to send, and what each answer means.
pub fn form_as_text(texts: &Texts, form: &Form) -> anyhow::Result<Message> {
    // The form's title is message text already; its variables are escaped once, here.
    let title = texts.render(
        "form_as_text_title",
        &json!({ "title": crate::chat::markdown::unescape(&form.title) }),
    )?;
    let fields = form
        .fields
        .iter()
        .map(|f| {
            let options = match &f.input {
                InputKind::Select { options } => Some(options.join(" | ")),
                _ => None,
            };
            let value = texts.render(
                "form_as_text_field",
                &json!({
                    "id": f.id,
                    "required": f.required,
                    "hint": f.hint,
                    "options": options,
                    "initial": f.initial,
                }),
            )?;
            Ok(Field {
                label: escape(&f.label),
                value,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Message {
        title,
        fields,
        body: Some(format!("`{}`", escape(&form_command(form)))),
        context: Some(texts.plain("form_as_text_context")?),
        buttons: Vec::new(),
        page: None,
        link: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally_in_both_languages() {
        let en = Texts::new("en").unwrap();
        let zh = Texts::new("zh-CN").unwrap();
        let cases = [
            (0, "0s", "0 秒"),
            (45, "45s", "45 秒"),
            (300, "5m", "5 分钟"),
            (3930, "1h 5m 30s", "1 小时5 分钟30 秒"),
            (3600, "1h", "1 小时"),
        ];
        for (secs, e, z) in cases {
            assert_eq!(duration(&en, secs).unwrap(), e);
            assert_eq!(duration(&zh, secs).unwrap(), z);
        }
    }
}
