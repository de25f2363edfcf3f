//! A ticket as messages: its stage card, decisions, outcome, status, `show` and `list`.

use crate::chat::actions::Action;
use crate::chat::texts::escape;
use crate::chat::{mention, Button, ButtonStyle, Confirm, Field, Message, Texts};
use crate::domain::fields::format_ms;
use crate::domain::flow::Flow;
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
        let actor = crate::chat::mention_stored(&e.actor);
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
