//! Neutral messages and forms to Block Kit JSON, within Slack's limits: content that
//! does not fit is cut visibly, never refused.

use super::PLATFORM;
use crate::chat::markdown::{to_markdown, Flavor};
use crate::chat::{truncate, ButtonStyle, Form, InputKind, Message, Texts};
use serde_json::{json, Value};

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_FIELDS_PER_SECTION: usize = 10;
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_BUTTON_VALUE: usize = 2000;
pub const MAX_ACTION_ID: usize = 255;
pub const MAX_ELEMENTS_PER_ACTIONS: usize = 25;
pub const MAX_MODAL_TITLE: usize = 24;
pub const MAX_MODAL_BLOCKS: usize = 100;
pub const MAX_LABEL: usize = 2000;
/// The most a `plain_text_input` may declare as its `max_length`.
pub const MAX_INPUT_VALUE: usize = 3000;
pub const MAX_OPTIONS: usize = 100;
pub const MAX_OPTION_TEXT: usize = 75;
pub const MAX_FALLBACK_TEXT: usize = 3000;

/// Neutral text to Slack mrkdwn: Slack mentions (users of other platforms are named
/// plainly) and user text that stays text.
pub fn text(s: &str) -> String {
    to_markdown(s, Flavor::Slack, &mention)
}

fn mention(platform: &str, id: &str) -> String {
    if platform == PLATFORM {
        format!("<@{id}>")
    } else {
        format!("@{id} ({platform})")
    }
}

fn mrkdwn(s: &str, max: usize, marker: &str) -> Value {
    // The source is cut, then escaped: a cut never falls inside an escape.
    json!({ "type": "mrkdwn", "text": crate::chat::fit(s, max, marker, text) })
}

fn plain(s: &str, max: usize) -> Value {
    json!({ "type": "plain_text", "text": crate::chat::fit(s, max, "…", plain_text), "emoji": true })
}

/// Plain-text contexts show text as is: no markup, mentioned users named.
fn plain_text(s: &str) -> String {
    to_markdown(s, Flavor::Plain, &|platform, id| {
        if platform == PLATFORM {
            format!("@{id}")
        } else {
            mention(platform, id)
        }
    })
}

/// The notification text shown where blocks are not (push notifications, old clients).
pub fn fallback_text(m: &Message) -> String {
    truncate(&text(&m.title), MAX_FALLBACK_TEXT, "…")
}

pub fn blocks(m: &Message, texts: &Texts) -> anyhow::Result<Vec<Value>> {
    let marker = texts.plain("truncated")?;
    let mut blocks =
        vec![json!({ "type": "section", "text": mrkdwn(&format!("*{}*", m.title), MAX_SECTION_TEXT, &marker) })];
    for chunk in m.fields.chunks(MAX_FIELDS_PER_SECTION) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| mrkdwn(&format!("*{}*\n{}", f.label, f.value), MAX_FIELD_TEXT, &marker))
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    if let Some(body) = m.body.as_deref().filter(|b| !b.is_empty()) {
        blocks.push(json!({ "type": "section", "text": mrkdwn(body, MAX_SECTION_TEXT, &marker) }));
    }
    let mut tail = Vec::new();
    if let Some(ctx) = m.context_with_link().as_deref() {
        tail.push(json!({ "type": "context", "elements": [mrkdwn(ctx, MAX_FIELD_TEXT, &marker)] }));
    }
    for chunk in m.buttons.chunks(MAX_ELEMENTS_PER_ACTIONS) {
        let elements: Vec<Value> = chunk
            .iter()
            .map(|b| {
                let mut e = json!({
                    "type": "button",
                    "text": plain(&b.label, MAX_BUTTON_TEXT),
                    "action_id": truncate(&b.action, MAX_ACTION_ID, ""),
                    "value": truncate(&b.action, MAX_BUTTON_VALUE, ""),
                });
                match b.style {
                    ButtonStyle::Primary => e["style"] = json!("primary"),
                    ButtonStyle::Danger => e["style"] = json!("danger"),
                    ButtonStyle::Default => {}
                }
                if let Some(c) = &b.confirm {
                    e["confirm"] = json!({
                        "title": plain(&c.title, 100),
                        "text": plain(&c.text, 300),
                        "confirm": plain(&c.ok, 30),
                        "deny": plain(&c.cancel, 30),
                    });
                }
                e
            })
            .collect();
        tail.push(json!({ "type": "actions", "elements": elements }));
    }
    // Keep the context and the buttons; cut the content before them.
    let room = MAX_BLOCKS.saturating_sub(tail.len());
    if blocks.len() > room {
        blocks.truncate(room.saturating_sub(1));
        blocks.push(
            json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": texts.render("truncated_blocks", &json!({ "platform": "Slack" }))? }] }),
        );
    }
    blocks.extend(tail);
    Ok(blocks)
}

/// A form as a modal view.
pub fn modal(f: &Form) -> Value {
    let mut blocks = Vec::new();
    if let Some(intro) = &f.intro {
        blocks.push(json!({ "type": "section", "text": mrkdwn(intro, MAX_SECTION_TEXT, "…") }));
    }
    for field in f.fields.iter().take(MAX_MODAL_BLOCKS - blocks.len()) {
        let element = match &field.input {
            InputKind::Select { options } => {
                let opts: Vec<Value> = options
                    .iter()
                    .take(MAX_OPTIONS)
                    .map(|o| json!({ "text": plain(o, MAX_OPTION_TEXT), "value": o }))
                    .collect();
                let mut e = json!({ "type": "static_select", "action_id": field.id, "options": opts });
                if let Some(init) = field
                    .initial
                    .as_ref()
                    .and_then(|i| opts.iter().find(|o| o["value"] == json!(i)))
                {
                    e["initial_option"] = init.clone();
                }
                e
            }
            kind => {
                let mut e = json!({ "type": "plain_text_input", "action_id": field.id, "multiline": matches!(kind, InputKind::Multiline) });
                if let Some(max) = field.max_len {
                    e["max_length"] = json!(max.min(MAX_INPUT_VALUE));
                }
                if let Some(init) = &field.initial {
                    e["initial_value"] = json!(init);
                }
                e
            }
        };
        let mut b = json!({ "type": "input", "block_id": field.id, "label": plain(&field.label, MAX_LABEL), "element": element, "optional": !field.required });
        if let Some(h) = &field.hint {
            b["hint"] = plain(h, MAX_LABEL);
        }
        blocks.push(b);
    }
    json!({
        "type": "modal",
        "callback_id": f.callback,
        "private_metadata": f.reply_channel,
        "title": plain(&f.title, MAX_MODAL_TITLE),
        "submit": plain(&f.submit, MAX_MODAL_TITLE),
        "close": plain(&f.cancel, MAX_MODAL_TITLE),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Button, Field};

    #[test]
    fn mentions_render_per_platform() {
        assert_eq!(text("hi <@slack:U1> and <@discord:42>"), "hi <@U1> and @42 (discord)");
    }

    #[test]
    fn oversized_messages_are_cut_visibly_within_limits() {
        let texts = Texts::new("en").unwrap();
        let m = Message {
            title: "t".repeat(5000),
            fields: (0..600)
                .map(|i| Field {
                    label: format!("f{i}"),
                    value: "v".repeat(3000),
                })
                .collect(),
            body: Some("b".repeat(10_000)),
            context: Some("c".into()),
            buttons: vec![Button {
                label: "x".repeat(100),
                action: "a".repeat(300),
                style: ButtonStyle::Primary,
                confirm: None,
            }],
            page: None,
            link: None,
        };
        let blocks = blocks(&m, &texts).unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let json = serde_json::to_string(&blocks).unwrap();
        assert!(json.contains(&texts.plain("truncated").unwrap()));
        assert!(json.contains(
            &texts
                .render("truncated_blocks", &json!({ "platform": "Slack" }))
                .unwrap()
        ));
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            MAX_SECTION_TEXT
        );
        for f in blocks[1]["fields"].as_array().unwrap() {
            assert!(f["text"].as_str().unwrap().chars().count() <= MAX_FIELD_TEXT);
        }
        let last = &blocks[MAX_BLOCKS - 1];
        assert_eq!(last["type"], "actions", "buttons survive the cut");
        assert_eq!(last["elements"][0]["action_id"].as_str().unwrap().len(), MAX_ACTION_ID);
        assert!(last["elements"][0]["text"]["text"].as_str().unwrap().chars().count() <= MAX_BUTTON_TEXT);
        // Every block deserialises into slack-morphism's model.
        for b in &blocks {
            serde_json::from_value::<slack_morphism::prelude::SlackBlock>(b.clone()).unwrap();
        }
    }
}
