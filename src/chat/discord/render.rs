//! Neutral messages and forms to Discord JSON (message content, one embed, buttons,
//! modals) within Discord's limits: content that does not fit is cut visibly.

use super::{parse::form_step_id, PLATFORM};
use crate::chat::markdown::{to_markdown, unescape, Flavor};
use crate::chat::{truncate, ButtonStyle, Form, InputKind, Message, Texts};
use serde_json::{json, Value};

pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBED_DESCRIPTION: usize = 4096;
pub const MAX_EMBED_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
/// All text of one embed together.
pub const MAX_EMBED_TOTAL: usize = 6000;
pub const MAX_BUTTONS_PER_ROW: usize = 5;
pub const MAX_ROWS: usize = 5;
pub const MAX_CUSTOM_ID: usize = 100;
pub const MAX_BUTTON_LABEL: usize = 80;
pub const MAX_MODAL_TITLE: usize = 45;
pub const MAX_MODAL_INPUTS: usize = 5;
pub const MAX_INPUT_LABEL: usize = 45;
pub const MAX_PLACEHOLDER: usize = 100;
pub const MAX_INPUT_VALUE: usize = 4000;

/// A button whose action needs a confirmation carries this prefix; the route asks first.
pub const CONFIRM_PREFIX: &str = "confirm:";
/// The custom id of "never mind" on a confirmation.
pub const DISMISS: &str = "dismiss";

/// Neutral text to Discord markdown: Discord users are mentioned, others named.
pub fn text(s: &str) -> String {
    to_markdown(s, Flavor::Discord, &|platform, user| {
        if platform == PLATFORM {
            format!("<@{user}>")
        } else {
            format!("@{user} ({platform})")
        }
    })
}

/// The Discord users a text mentions (so that only they are pinged).
fn mentioned(s: &str) -> Vec<String> {
    let token = format!("<@{PLATFORM}:");
    s.match_indices(&token)
        .filter_map(|(i, _)| {
            let rest = &s[i + token.len()..];
            rest.find('>').map(|end| rest[..end].to_string())
        })
        .collect()
}

fn button(label: &str, custom_id: &str, style: ButtonStyle) -> Value {
    let style = match style {
        ButtonStyle::Primary => 1,
        ButtonStyle::Default => 2,
        ButtonStyle::Danger => 4,
    };
    json!({ "type": 2, "style": style, "label": truncate(&unescape(label), MAX_BUTTON_LABEL, "…"), "custom_id": custom_id })
}

/// Buttons in rows of five, at most five rows; custom ids over 100 characters (which
/// Discord would refuse) are left out. Returns the rows and how many were left out.
pub fn rows(buttons: &[(String, String, ButtonStyle)]) -> (Vec<Value>, usize) {
    let fitting: Vec<Value> = buttons
        .iter()
        .filter(|(_, id, _)| !id.is_empty() && id.chars().count() <= MAX_CUSTOM_ID)
        .take(MAX_BUTTONS_PER_ROW * MAX_ROWS)
        .map(|(label, id, style)| button(label, id, *style))
        .collect();
    let dropped = buttons.len() - fitting.len();
    let rows = fitting
        .chunks(MAX_BUTTONS_PER_ROW)
        .map(|c| json!({ "type": 1, "components": c }))
        .collect();
    (rows, dropped)
}

/// A message: the title (with mentions) as content, the rest in one embed, buttons below.
pub fn message(m: &Message, texts: &Texts) -> anyhow::Result<Value> {
    rendered(m, texts, true)
}

/// `ping`: whoever the message addresses is named in the content (and notified); a private
/// answer pings nobody.
fn rendered(m: &Message, texts: &Texts, ping: bool) -> anyhow::Result<Value> {
    let marker = texts.plain("truncated")?;
    let content = truncate(&text(&m.title), MAX_CONTENT, &marker);
    // The note that content was cut is reserved first (the footer); the context (who is
    // waiting, who decided: a footer renders neither markdown nor mentions) and the page
    // link close the description; the body and the fields share what is left of the
    // embed's 6,000 characters.
    let cut_note = texts.render("truncated_blocks", &json!({ "platform": "Discord" }))?;
    let footer_room = MAX_FOOTER.min(500);
    let mut budget = MAX_EMBED_TOTAL - footer_room;
    let mut embed = serde_json::Map::new();
    let context = m.context.as_deref().filter(|c| !c.is_empty()).map(|c| {
        let c = text(c);
        // Each line of the context, quoted: it reads as a note under the message.
        let quoted: Vec<String> = c.lines().map(|l| format!("> {l}")).collect();
        truncate(&quoted.join("\n"), 1_000, &marker)
    });
    let link = m.link.as_ref().map(|l| format!("[{}]({})", l.label, l.url));
    let tail: Vec<String> = context.into_iter().chain(link).collect();
    let tail = (!tail.is_empty()).then(|| tail.join("\n"));
    let tail_room = tail.as_ref().map(|t| t.chars().count() + 2).unwrap_or(0);
    budget -= tail_room;
    let body = m
        .body
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| truncate(&text(b), (MAX_EMBED_DESCRIPTION - tail_room).min(budget), &marker));
    if let Some(d) = &body {
        budget -= d.chars().count();
    }
    let description = match (body, tail) {
        (Some(d), Some(t)) => Some(format!("{d}\n\n{t}")),
        (d, t) => d.or(t),
    };
    if let Some(d) = description {
        embed.insert("description".into(), json!(d));
    }
    let mut fields = Vec::new();
    let mut cut = m.fields.len() > MAX_EMBED_FIELDS;
    for f in m.fields.iter().take(MAX_EMBED_FIELDS) {
        let name = truncate(&text(&f.label), MAX_FIELD_NAME, &marker);
        let name_len = name.chars().count();
        if name.is_empty() || budget < name_len + marker.chars().count() + 8 {
            cut = true;
            break;
        }
        let value = truncate(&text(&f.value), MAX_FIELD_VALUE.min(budget - name_len), &marker);
        if value.is_empty() {
            continue;
        }
        budget -= name_len + value.chars().count();
        fields.push(json!({ "name": name, "value": value, "inline": f.value.chars().count() <= 40 }));
    }
    let footer = cut.then_some(cut_note);
    if !fields.is_empty() {
        embed.insert("fields".into(), json!(fields));
    }
    if let Some(f) = footer {
        embed.insert("footer".into(), json!({ "text": truncate(&f, footer_room, &marker) }));
    }
    let buttons: Vec<(String, String, ButtonStyle)> = m
        .buttons
        .iter()
        .map(|b| {
            let id = match &b.confirm {
                Some(_) => format!("{CONFIRM_PREFIX}{}", b.action),
                None => b.action.clone(),
            };
            (b.label.clone(), id, b.style)
        })
        .collect();
    let (components, dropped) = rows(&buttons);
    let mut content = content;
    if dropped > 0 {
        let note = texts.render("buttons_dropped", &json!({ "count": dropped }))?;
        content = truncate(&format!("{content}\n{note}"), MAX_CONTENT, &marker);
    }
    // Mentions inside an embed do not notify: whoever the message addresses (title, body,
    // context; not the data fields) is also named in the content, and only they are pinged.
    let mut users = Vec::new();
    let texts_of = std::iter::once(&m.title).chain(m.body.iter()).chain(m.context.iter());
    for s in texts_of.filter(|_| ping) {
        users.extend(mentioned(s));
    }
    users.sort();
    users.dedup();
    users.truncate(100);
    let in_title = mentioned(&m.title);
    let extra: Vec<String> = users
        .iter()
        .filter(|u| !in_title.contains(u))
        .map(|u| format!("<@{u}>"))
        .collect();
    if !extra.is_empty() {
        content = truncate(&format!("{content}\n{}", extra.join(" ")), MAX_CONTENT, &marker);
    }
    let mut out = json!({
        "content": content,
        "components": components,
        "allowed_mentions": { "parse": [], "users": users },
    });
    out["embeds"] = if embed.is_empty() {
        json!([])
    } else {
        json!([Value::Object(embed)])
    };
    Ok(out)
}

/// How many modals a form needs.
pub fn pages(form: &Form) -> usize {
    form.fields.len().div_ceil(MAX_MODAL_INPUTS).max(1)
}

/// The ids of the fields on page `page` (from 1).
pub fn page_fields(form: &Form, page: usize) -> Vec<&str> {
    form.fields
        .iter()
        .skip(page.saturating_sub(1) * MAX_MODAL_INPUTS)
        .take(MAX_MODAL_INPUTS)
        .map(|f| f.id.as_str())
        .collect()
}

/// Page `page` (from 1) of a form as a modal; `answers` pre-fill the inputs.
pub fn modal(form: &Form, draft: &str, page: usize, answers: &std::collections::BTreeMap<String, String>) -> Value {
    let total = pages(form);
    let title = if total > 1 {
        let suffix = format!(" ({page}/{total})");
        format!(
            "{}{suffix}",
            truncate(&unescape(&form.title), MAX_MODAL_TITLE - suffix.chars().count(), "…")
        )
    } else {
        truncate(&unescape(&form.title), MAX_MODAL_TITLE, "…")
    };
    let inputs: Vec<Value> = form
        .fields
        .iter()
        .skip((page - 1) * MAX_MODAL_INPUTS)
        .take(MAX_MODAL_INPUTS)
        .map(|f| {
            // Discord modals hold text inputs only: a select's options become the placeholder.
            let placeholder = match &f.input {
                InputKind::Select { options } => Some(options.join(" | ")),
                _ => f.hint.clone(),
            };
            let mut input = json!({
                "type": 4,
                "custom_id": f.id,
                "label": truncate(&unescape(&f.label), MAX_INPUT_LABEL, "…"),
                "style": if matches!(f.input, InputKind::Multiline) { 2 } else { 1 },
                "required": f.required,
                "max_length": f.max_len.unwrap_or(MAX_INPUT_VALUE).min(MAX_INPUT_VALUE),
            });
            if let Some(p) = placeholder {
                input["placeholder"] = json!(truncate(&unescape(&p), MAX_PLACEHOLDER, "…"));
            }
            if let Some(v) = answers.get(&f.id).or(f.initial.as_ref()) {
                input["value"] = json!(truncate(v, MAX_INPUT_VALUE, ""));
            }
            json!({ "type": 1, "components": [input] })
        })
        .collect();
    json!({
        "custom_id": form_step_id(draft, page),
        "title": title,
        "components": inputs,
    })
}

/// An interaction response (`type` from [`super::response`]) carrying `data`.
fn respond(kind: u8, data: Option<Value>) -> Value {
    match data {
        Some(d) => json!({ "type": kind, "data": d }),
        None => json!({ "type": kind }),
    }
}

/// A private answer to the user who interacted.
pub fn ephemeral(m: &Message, texts: &Texts) -> anyhow::Result<Value> {
    let mut v = rendered(m, texts, false)?;
    v["flags"] = json!(super::response::EPHEMERAL);
    Ok(v)
}

/// Interaction responses, as the HTTP answer to an interaction.
pub mod reply {
    use super::*;
    use crate::chat::discord::response;

    pub fn pong() -> Value {
        respond(response::PONG, None)
    }

    /// A private message; `buttons` (label, custom id, style) replace the message's own.
    pub fn private(m: &Message, texts: &Texts, buttons: &[(String, String, ButtonStyle)]) -> anyhow::Result<Value> {
        let mut v = ephemeral(m, texts)?;
        if !buttons.is_empty() {
            v["components"] = json!(rows(buttons).0);
        }
        Ok(respond(response::MESSAGE, Some(v)))
    }

    /// Replaces the message whose button was pressed with `text`.
    pub fn replaced(text: &str) -> Value {
        respond(
            response::UPDATE_MESSAGE,
            Some(json!({ "content": text, "components": [], "embeds": [] })),
        )
    }

    /// A button press acknowledged without changing its message.
    pub fn deferred_update() -> Value {
        respond(response::DEFERRED_UPDATE, None)
    }

    /// Page `page` of a form, as a modal.
    pub fn form(form: &Form, draft: &str, page: usize, answers: &std::collections::BTreeMap<String, String>) -> Value {
        respond(response::MODAL, Some(modal(form, draft, page, answers)))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn who_is_waiting_and_who_decided_are_shown_where_discord_renders_them() {
        let texts = Texts::new("en").unwrap();
        let m = Message {
            title: "REL-1 · App release — Test confirmation".into(),
            body: Some("Body".into()),
            context: Some("⚪ Waiting for *test*: <@discord:222>".into()),
            link: Some(crate::chat::Link {
                url: "https://rb.example/tickets/1?t=ab".into(),
                label: "Ticket page".into(),
            }),
            ..Default::default()
        };
        let v = message(&m, &texts).unwrap();
        let embed = &v["embeds"][0];
        assert_eq!(
            embed["description"],
            "Body\n\n> ⚪ Waiting for **test**: <@222>\n[Ticket page](https://rb.example/tickets/1?t=ab)"
        );
        assert!(embed.get("footer").is_none(), "{embed}");
    }

    use super::*;
    use crate::chat::{Button, Field, FormField};

    #[test]
    fn oversized_messages_fit_discord_limits_visibly() {
        let texts = Texts::new("en").unwrap();
        let m = Message {
            title: format!("<@discord:42> {}", "t".repeat(5000)),
            fields: (0..40)
                .map(|i| Field {
                    label: format!("f{i}"),
                    value: "v".repeat(3000),
                })
                .collect(),
            body: Some("b".repeat(10_000)),
            context: Some("c".into()),
            buttons: (0..30)
                .map(|i| Button {
                    label: "x".repeat(100),
                    action: if i == 0 {
                        "a".repeat(101)
                    } else {
                        format!("approve:{i}:1:0")
                    },
                    style: ButtonStyle::Primary,
                    confirm: None,
                })
                .collect(),
            page: None,
            link: None,
        };
        let v = message(&m, &texts).unwrap();
        assert!(v["content"].as_str().unwrap().chars().count() <= MAX_CONTENT);
        assert!(v["content"]
            .as_str()
            .unwrap()
            .contains(&texts.plain("truncated").unwrap()));
        assert_eq!(v["allowed_mentions"]["users"], json!(["42"]));
        let embed = &v["embeds"][0];
        let mut total = embed["description"].as_str().unwrap().chars().count();
        for f in embed["fields"].as_array().unwrap() {
            assert!(f["value"].as_str().unwrap().chars().count() <= MAX_FIELD_VALUE);
            total += f["value"].as_str().unwrap().chars().count() + f["name"].as_str().unwrap().chars().count();
        }
        let footer = embed["footer"]["text"].as_str().unwrap();
        total += footer.chars().count();
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        // The footer names this platform, carries no markup (it renders none), and points
        // at the page rather than at a command.
        assert!(footer.contains("Discord") && !footer.contains("Slack"), "{footer}");
        assert!(!footer.contains('`') && !footer.contains("/release"), "{footer}");
        let rows = v["components"].as_array().unwrap();
        assert_eq!(rows.len(), MAX_ROWS);
        for r in rows {
            let buttons = r["components"].as_array().unwrap();
            assert!(buttons.len() <= MAX_BUTTONS_PER_ROW);
            for b in buttons {
                assert!(b["custom_id"].as_str().unwrap().len() <= MAX_CUSTOM_ID);
                assert!(b["label"].as_str().unwrap().chars().count() <= MAX_BUTTON_LABEL);
            }
        }
        assert!(
            v["content"].as_str().unwrap().contains("could not be shown")
                || v["content"].as_str().unwrap().chars().count() == MAX_CONTENT
        );
    }

    #[test]
    fn long_forms_are_split_into_modals_of_five() {
        let form = Form {
            title: "A very long form title that goes on and on".into(),
            submit: "Submit".into(),
            cancel: "Cancel".into(),
            callback: "new:app-release".into(),
            reply_channel: "1".into(),
            intro: None,
            fields: (0..7)
                .map(|i| FormField {
                    id: format!("f{i}"),
                    label: format!("Field {i}"),
                    input: if i == 0 {
                        InputKind::Select {
                            options: vec!["a".into(), "b".into()],
                        }
                    } else {
                        InputKind::Text
                    },
                    required: true,
                    hint: None,
                    initial: None,
                    max_len: None,
                })
                .collect(),
        };
        assert_eq!(pages(&form), 2);
        let p1 = modal(&form, "d1", 1, &Default::default());
        assert_eq!(p1["components"].as_array().unwrap().len(), 5);
        assert_eq!(p1["custom_id"], "form:d1:1");
        assert!(p1["title"].as_str().unwrap().chars().count() <= MAX_MODAL_TITLE);
        assert!(p1["title"].as_str().unwrap().ends_with("(1/2)"));
        assert_eq!(p1["components"][0]["components"][0]["placeholder"], "a | b");
        let answers = [("f5".to_string(), "kept".to_string())].into_iter().collect();
        let p2 = modal(&form, "d1", 2, &answers);
        assert_eq!(p2["components"].as_array().unwrap().len(), 2);
        assert_eq!(p2["components"][0]["components"][0]["value"], "kept");
    }
}
