//! DingTalk inbound (already signature-checked): @-mention text messages to the
//! robot become commands; card button callbacks become actions.

use super::PLATFORM;
use crate::chat::{Inbound, InboundKind, Location};
use crate::domain::Actor;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A command (text that is no command, `hello bot`, asks for the help) or a button
    /// press. The channel is unknown for card callbacks: the route looks it up by the
    /// card's `outTrackId`.
    Event {
        key: String,
        event: Box<Inbound>,
    },
    Ignored,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtUser {
    #[serde(default)]
    staff_id: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RobotMessage {
    #[serde(default)]
    msg_id: Option<String>,
    #[serde(default)]
    text: Option<Text>,
    sender_staff_id: Option<String>,
    #[serde(default)]
    sender_nick: Option<String>,
    #[serde(default)]
    conversation_type: Option<String>,
    conversation_id: Option<String>,
    #[serde(default)]
    at_users: Vec<AtUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CardCallback {
    out_track_id: String,
    user_id: String,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallbackContent {
    card_private_data: PrivateData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrivateData {
    #[serde(default)]
    action_ids: Vec<String>,
}

/// The channel of a direct conversation with one user.
pub fn direct_channel(staff_id: &str) -> String {
    format!("dm:{staff_id}")
}

fn key_of(kind: &str, body: &[u8]) -> String {
    format!("{PLATFORM}:{kind}:{}", hex::encode(Sha256::digest(body)))
}

/// `@Nick` words become `<@dingtalk:staffId>`, in order of the message's `atUsers`.
fn neutral_mentions(text: &str, staff_ids: &[String]) -> String {
    let mut ids = staff_ids.iter();
    text.split(' ')
        .map(|w| match (w.strip_prefix('@'), w.len() > 1) {
            (Some(_), true) => match ids.next() {
                Some(id) => format!("<@{PLATFORM}:{id}>"),
                None => w.to_string(),
            },
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Card callbacks carry no delivery id: the same press delivered again within this
/// window counts once; a press of the same button later (after a refusal) counts anew.
pub const CALLBACK_DEDUPE_MS: i64 = 30_000;

/// `now_ms` is the request's signed timestamp.
pub fn event(body: &[u8], now_ms: i64) -> Result<Parsed, ParseError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(format!("not JSON: {e}")))?;
    if v.get("outTrackId").is_some() {
        let c: CardCallback =
            serde_json::from_value(v).map_err(|e| ParseError::Malformed(format!("not a card callback: {e}")))?;
        let content: CallbackContent = serde_json::from_str(&c.content)
            .map_err(|e| ParseError::Malformed(format!("card callback content: {e}")))?;
        let Some(action) = content.card_private_data.action_ids.into_iter().next() else {
            return Ok(Parsed::Ignored);
        };
        return Ok(Parsed::Event {
            key: format!("{}:{}", key_of("card", body), now_ms.div_euclid(CALLBACK_DEDUPE_MS)),
            event: Box::new(Inbound {
                actor: Actor::new(PLATFORM, c.user_id.clone()),
                actor_name: c.user_id,
                channel: String::new(),
                trigger: None,
                reply: None,
                kind: InboundKind::Action {
                    action,
                    message: Some(Location {
                        channel: String::new(),
                        ts: c.out_track_id,
                    }),
                },
            }),
        });
    }
    let m: RobotMessage =
        serde_json::from_value(v).map_err(|e| ParseError::Malformed(format!("not a robot message: {e}")))?;
    let (Some(user), Some(conversation)) = (m.sender_staff_id, m.conversation_id) else {
        return Ok(Parsed::Ignored);
    };
    let staff: Vec<String> = m.at_users.into_iter().filter_map(|a| a.staff_id).collect();
    let content = m.text.map(|t| t.content).unwrap_or_default();
    let text = neutral_mentions(content.trim(), &staff);
    let channel = if m.conversation_type.as_deref() == Some("1") {
        direct_channel(&user)
    } else {
        conversation
    };
    let key = match &m.msg_id {
        Some(id) => format!("{PLATFORM}:msg:{id}"),
        None => key_of("msg", body),
    };
    let mut words = text.splitn(2, char::is_whitespace);
    let name = words.next().unwrap_or("").trim_start_matches('/').to_ascii_lowercase();
    let rest = words.next().unwrap_or("").trim().to_string();
    let command = crate::command::COMMANDS.contains(&name.as_str());
    let event = Box::new(Inbound {
        actor: Actor::new(PLATFORM, user.clone()),
        actor_name: m.sender_nick.unwrap_or(user),
        channel,
        trigger: None,
        reply: None,
        kind: InboundKind::Command {
            name: if command { name } else { "release".into() },
            text: if command { rest } else { "help".into() },
        },
    });
    Ok(Parsed::Event { key, event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mention_text_becomes_a_command_with_neutral_mentions() {
        let body = json!({
            "msgId": "m1", "msgtype": "text", "text": { "content": " role add qc @Bob payments" },
            "senderStaffId": "ada01", "senderNick": "Ada", "conversationType": "2",
            "conversationId": "cid1", "atUsers": [{ "dingtalkId": "$bot" }, { "dingtalkId": "$b", "staffId": "bob02" }],
        });
        let Ok(Parsed::Event { key, event }) = event(body.to_string().as_bytes(), 0) else {
            panic!("a command")
        };
        assert_eq!(key, "dingtalk:msg:m1");
        assert_eq!(event.actor, Actor::new("dingtalk", "ada01"));
        assert_eq!(event.channel, "cid1");
        assert_eq!(
            event.kind,
            InboundKind::Command {
                name: "role".into(),
                text: "add qc <@dingtalk:bob02> payments".into()
            }
        );
    }

    #[test]
    fn card_callbacks_carry_the_clicker_and_the_action() {
        let content = json!({ "cardPrivateData": { "actionIds": ["approve:1:1:0"], "params": {} } }).to_string();
        let body = json!({ "type": "actionCallback", "outTrackId": "rb-1", "userId": "tom01", "content": content });
        let Ok(Parsed::Event { event, .. }) = event(body.to_string().as_bytes(), 0) else {
            panic!("an action")
        };
        assert_eq!(event.actor.user_id, "tom01");
        assert!(
            matches!(&event.kind, InboundKind::Action { action, message: Some(l) } if action == "approve:1:1:0" && l.ts == "rb-1")
        );
        assert!(matches!(
            super::event(b"{\"outTrackId\":1}", 0),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(super::event(b"nope", 0), Err(ParseError::Malformed(_))));
    }
}
