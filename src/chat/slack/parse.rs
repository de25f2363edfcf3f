//! Slack payloads (slash commands, interactions, Events API) to neutral events.
//! Lenient about fields we do not use; precise about the ones we do.

use super::PLATFORM;
use crate::chat::{Inbound, InboundKind, Location};
use crate::domain::Actor;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> ParseError {
    ParseError::Malformed(what.into())
}

/// A key that is the same for a retried delivery of the same request.
fn body_key(kind: &str, body: &[u8]) -> String {
    format!("slack:{kind}:{}", hex::encode(Sha256::digest(body)))
}

/// Slack mentions (`<@U123|name>`, `<@U123>`) to neutral tokens (`<@slack:U123>`).
pub fn neutral_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                let id = inner.split('|').next().unwrap_or("");
                if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
                    out.push_str(&format!("<@{PLATFORM}:{id}>"));
                } else {
                    out.push_str(&rest[start..start + 2 + end + 1]);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Deserialize)]
struct CommandForm {
    command: String,
    #[serde(default)]
    text: String,
    user_id: String,
    #[serde(default)]
    user_name: String,
    channel_id: String,
    #[serde(default)]
    trigger_id: Option<String>,
}

/// A slash command (`application/x-www-form-urlencoded`).
pub fn command(body: &[u8]) -> Result<(String, Inbound), ParseError> {
    let f: CommandForm = serde_urlencoded::from_bytes(body).map_err(|e| malformed(format!("slash command: {e}")))?;
    let key = match &f.trigger_id {
        Some(t) if !t.is_empty() => format!("slack:command:{t}"),
        _ => body_key("command", body),
    };
    let ev = Inbound {
        actor: Actor::new(PLATFORM, f.user_id),
        actor_name: f.user_name,
        channel: f.channel_id,
        trigger: f.trigger_id.filter(|t| !t.is_empty()),
        reply: None,
        kind: InboundKind::Command {
            name: f.command.trim_start_matches('/').to_string(),
            text: neutral_mentions(&f.text),
        },
    };
    Ok((key, ev))
}

/// What an interaction payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// To be recorded and processed (`key` dedupes retried deliveries).
    Event { key: String, event: Box<Inbound> },
    /// Ignored kinds (modal closed, select menus we did not send).
    Ignored,
}

#[derive(Deserialize)]
struct Envelope {
    payload: String,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Values of a submitted modal: `state.values[block_id][action_id]`, keyed by block id.
pub fn view_values(view: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(blocks) = view
        .get("state")
        .and_then(|s| s.get("values"))
        .and_then(Value::as_object)
    else {
        return out;
    };
    for (block_id, actions) in blocks {
        let Some(actions) = actions.as_object() else { continue };
        for (_, v) in actions {
            let value = v.get("value").and_then(Value::as_str).or_else(|| {
                v.get("selected_option")
                    .and_then(|o| o.get("value"))
                    .and_then(Value::as_str)
            });
            if let Some(value) = value {
                out.insert(block_id.clone(), value.to_string());
            }
        }
    }
    out
}

/// An interaction (`payload=<json>`, form-encoded).
pub fn interaction(body: &[u8]) -> Result<Interaction, ParseError> {
    let env: Envelope = serde_urlencoded::from_bytes(body).map_err(|e| malformed(format!("interaction: {e}")))?;
    let p: Value = serde_json::from_str(&env.payload).map_err(|e| malformed(format!("interaction payload: {e}")))?;
    let user = s(&p, &["user", "id"]).ok_or_else(|| malformed("interaction without user.id"))?;
    let name = s(&p, &["user", "username"])
        .or_else(|| s(&p, &["user", "name"]))
        .unwrap_or(user)
        .to_string();
    let actor = Actor::new(PLATFORM, user);
    let trigger = s(&p, &["trigger_id"]).map(str::to_string);
    let key = match &trigger {
        Some(t) => format!("slack:interaction:{t}"),
        None => body_key("interaction", body),
    };
    match s(&p, &["type"]) {
        Some("block_actions") => {
            let action = p
                .get("actions")
                .and_then(|a| a.get(0))
                .ok_or_else(|| malformed("block_actions without actions"))?;
            let value = s(action, &["value"])
                .or_else(|| s(action, &["action_id"]))
                .ok_or_else(|| malformed("action without value"))?;
            let channel = s(&p, &["channel", "id"])
                .or_else(|| s(&p, &["container", "channel_id"]))
                .unwrap_or_default()
                .to_string();
            let ts = s(&p, &["container", "message_ts"]).or_else(|| s(&p, &["message", "ts"]));
            let message = ts.map(|ts| Location {
                channel: channel.clone(),
                ts: ts.to_string(),
            });
            Ok(Interaction::Event {
                key,
                event: Box::new(Inbound {
                    actor,
                    actor_name: name,
                    channel,
                    trigger,
                    reply: None,
                    kind: InboundKind::Action {
                        action: value.to_string(),
                        message,
                    },
                }),
            })
        }
        Some("view_submission") => {
            let view = p.get("view").ok_or_else(|| malformed("view_submission without view"))?;
            let callback = s(view, &["callback_id"]).unwrap_or_default().to_string();
            let channel = s(view, &["private_metadata"]).unwrap_or_default().to_string();
            Ok(Interaction::Event {
                key,
                event: Box::new(Inbound {
                    actor,
                    actor_name: name,
                    channel,
                    trigger,
                    reply: None,
                    kind: InboundKind::FormSubmit {
                        callback,
                        values: view_values(view),
                    },
                }),
            })
        }
        _ => Ok(Interaction::Ignored),
    }
}

/// What an Events API request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    UrlVerification(String),
    /// A command addressed to the bot by mention (`@releasebot release show REL-1`).
    Command {
        key: String,
        event: Box<Inbound>,
    },
    Ignored {
        key: Option<String>,
    },
}

pub fn event(body: &[u8]) -> Result<Event, ParseError> {
    let p: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("event: {e}")))?;
    match s(&p, &["type"]) {
        Some("url_verification") => Ok(Event::UrlVerification(
            s(&p, &["challenge"]).unwrap_or_default().to_string(),
        )),
        Some("event_callback") => {
            let key = s(&p, &["event_id"]).map(|id| format!("slack:event:{id}"));
            let ev = p
                .get("event")
                .ok_or_else(|| malformed("event_callback without event"))?;
            if s(ev, &["type"]) != Some("app_mention") || ev.get("bot_id").is_some() {
                return Ok(Event::Ignored { key });
            }
            let (Some(user), Some(channel), Some(text)) = (s(ev, &["user"]), s(ev, &["channel"]), s(ev, &["text"]))
            else {
                return Ok(Event::Ignored { key });
            };
            // Drop the bot's own mention, then `release …` or `role …`.
            let text = neutral_mentions(text);
            let text = text.trim_start();
            let text = match text.strip_prefix("<@") {
                Some(rest) => rest.split_once('>').map(|(_, r)| r).unwrap_or(""),
                None => text,
            };
            let mut words = text.trim_start().splitn(2, char::is_whitespace);
            let name = words.next().unwrap_or("").trim_start_matches('/').to_ascii_lowercase();
            let rest = words.next().unwrap_or("").to_string();
            let key = key.unwrap_or_else(|| body_key("event", body));
            Ok(Event::Command {
                key,
                event: Box::new(Inbound {
                    actor: Actor::new(PLATFORM, user),
                    actor_name: user.to_string(),
                    channel: channel.to_string(),
                    trigger: None,
                    reply: None,
                    kind: InboundKind::Command { name, text: rest },
                }),
            })
        }
        _ => Ok(Event::Ignored { key: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_become_neutral() {
        assert_eq!(neutral_mentions("add qc <@U12|bob> x"), "add qc <@slack:U12> x");
        assert_eq!(neutral_mentions("<@U12> <@W9>"), "<@slack:U12> <@slack:W9>");
        assert_eq!(neutral_mentions("a <@bad id> <@"), "a <@bad id> <@");
    }

    #[test]
    fn parses_a_slash_command() {
        let body = b"command=%2Frelease&text=show+REL-1&user_id=U1&user_name=alice&channel_id=C1&trigger_id=T.1";
        let (key, ev) = command(body).unwrap();
        assert_eq!(key, "slack:command:T.1");
        assert_eq!(
            ev.kind,
            InboundKind::Command {
                name: "release".into(),
                text: "show REL-1".into()
            }
        );
        assert_eq!(ev.actor, Actor::new("slack", "U1"));
        assert!(command(b"text=x").is_err());
    }

    #[test]
    fn parses_block_actions_and_view_submissions() {
        let payload = serde_json::json!({
            "type": "block_actions", "user": {"id": "U2", "username": "bob"}, "trigger_id": "T.2",
            "channel": {"id": "C1"}, "container": {"message_ts": "1.2"},
            "actions": [{"action_id": "approve:1:1:0", "value": "approve:1:1:0"}]
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let Interaction::Event { key, event } = interaction(body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(key, "slack:interaction:T.2");
        assert_eq!(
            event.kind,
            InboundKind::Action {
                action: "approve:1:1:0".into(),
                message: Some(Location {
                    channel: "C1".into(),
                    ts: "1.2".into()
                })
            }
        );

        let payload = serde_json::json!({
            "type": "view_submission", "user": {"id": "U2"}, "trigger_id": "T.3",
            "view": {"callback_id": "new:app-release", "private_metadata": "C9", "state": {"values": {
                "version": {"version": {"type": "plain_text_input", "value": "1.0"}},
                "evaluation": {"evaluation": {"type": "static_select", "selected_option": {"value": "pass"}}},
                "notes": {"notes": {"type": "plain_text_input", "value": null}}
            }}}
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let Interaction::Event { event, .. } = interaction(body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(event.channel, "C9");
        let InboundKind::FormSubmit { callback, values } = event.kind else {
            panic!()
        };
        assert_eq!(callback, "new:app-release");
        assert_eq!(values.get("version").map(String::as_str), Some("1.0"));
        assert_eq!(values.get("evaluation").map(String::as_str), Some("pass"));
        assert!(!values.contains_key("notes"));
    }

    #[test]
    fn parses_events() {
        assert_eq!(
            event(br#"{"type":"url_verification","challenge":"abc"}"#),
            Ok(Event::UrlVerification("abc".into()))
        );
        let body = br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT> release show REL-2"}}"#;
        let Ok(Event::Command { key, event: ev }) = event(body) else {
            panic!()
        };
        assert_eq!(key, "slack:event:Ev1");
        assert_eq!(
            ev.kind,
            InboundKind::Command {
                name: "release".into(),
                text: "show REL-2".into()
            }
        );
        assert!(matches!(
            event(br#"{"type":"event_callback","event_id":"Ev2","event":{"type":"message"}}"#),
            Ok(Event::Ignored { .. })
        ));
        assert!(event(b"not json").is_err());
    }
}
