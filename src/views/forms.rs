//! Forms: a stage's submission and decision forms, and a form as text where a platform has none.

use crate::chat::actions::FormCallback;
use crate::chat::texts::escape;
use crate::chat::{Field, Form, FormField, InputKind, Message, Texts};
use crate::domain::fields::MAX_FIELD_LEN;
use crate::domain::flow::{FieldDef, FieldKind, Flow};
use crate::domain::ticket::{DecisionKind, Ticket};
use serde_json::json;

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
        max_len: (def.kind != FieldKind::Select).then_some(MAX_FIELD_LEN),
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
                max_len: Some(MAX_FIELD_LEN),
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
                max_len: Some(MAX_FIELD_LEN),
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
                    "max": f.max_len,
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
