//! Discord interactions (already signature-checked) to neutral events.

use super::PLATFORM;
use crate::chat::{Inbound, InboundKind, Location};
use crate::domain::Actor;
use serenity::all::{ActionRowComponent, CommandDataOption, CommandDataOptionValue, Interaction, Member, User};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Malformed(String),
}

/// Whether the interaction came from a slash command or a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A slash command.
    Command,
    /// A button or select on a message.
    Component,
    /// A form's (modal's) last page submitted.
    Modal,
}

/// Who interacted, where, and the token to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub actor: Actor,
    pub actor_name: String,
    pub channel: String,
    pub token: String,
    pub interaction_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Ping,
    /// A neutral event for the bot.
    Event {
        key: String,
        event: Box<Inbound>,
        source: Source,
    },
    /// A step of a form answered in several modals (`form:DRAFT:PAGE`): a button asking
    /// for page `page`, or the answers of page `page` when `answers` is set.
    FormStep {
        ctx: Context,
        draft: String,
        page: usize,
        answers: Option<BTreeMap<String, String>>,
    },
    Ignored,
}

/// The custom id of a form page: `form:DRAFT:PAGE` (pages count from 1).
pub fn form_step_id(draft: &str, page: usize) -> String {
    format!("form:{draft}:{page}")
}

fn form_step(custom_id: &str) -> Option<(String, usize)> {
    let rest = custom_id.strip_prefix("form:")?;
    let (draft, page) = rest.rsplit_once(':')?;
    let page: usize = page.parse().ok()?;
    (!draft.is_empty() && page >= 1).then(|| (draft.to_string(), page))
}

/// Mentions as Discord writes them (`<@123>`, `<@!123>`) to neutral tokens.
pub fn neutral_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let id_part = after.strip_prefix('!').unwrap_or(after);
        let digits: String = id_part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() && id_part[digits.len()..].starts_with('>') {
            out.push_str(&format!("<@{PLATFORM}:{digits}>"));
            rest = &id_part[digits.len() + 1..];
        } else {
            out.push_str("<@");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn name_of(user: &User, member: Option<&Member>) -> String {
    member
        .and_then(|m| m.nick.clone())
        .or_else(|| user.global_name.clone())
        .unwrap_or_else(|| user.name.clone())
}

fn option_text(o: &CommandDataOption, out: &mut Vec<String>) {
    match &o.value {
        CommandDataOptionValue::SubCommand(opts) | CommandDataOptionValue::SubCommandGroup(opts) => {
            out.push(o.name.clone());
            for x in opts {
                option_text(x, out);
            }
        }
        CommandDataOptionValue::String(s) => out.push(neutral_mentions(s)),
        CommandDataOptionValue::Integer(i) => out.push(i.to_string()),
        CommandDataOptionValue::User(u) => out.push(format!("<@{PLATFORM}:{u}>")),
        CommandDataOptionValue::Boolean(b) => out.push(b.to_string()),
        _ => {}
    }
}

pub fn interaction(body: &[u8]) -> Result<Parsed, ParseError> {
    let i: Interaction =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(format!("not a Discord interaction: {e}")))?;
    let ctx = |user: &User, member: Option<&Member>, channel: String, token: &str, id: String| Context {
        actor: Actor::new(PLATFORM, user.id.to_string()),
        actor_name: name_of(user, member),
        channel,
        token: token.to_string(),
        interaction_id: id,
    };
    let event = |c: Context, kind: InboundKind, source: Source| Parsed::Event {
        key: format!("{PLATFORM}:{}", c.interaction_id),
        event: Box::new(Inbound {
            actor: c.actor,
            actor_name: c.actor_name,
            channel: c.channel,
            trigger: Some(c.token.clone()),
            reply: Some(c.token),
            kind,
        }),
        source,
    };
    match i {
        Interaction::Ping(_) => Ok(Parsed::Ping),
        Interaction::Command(c) => {
            let cx = ctx(
                &c.user,
                c.member.as_deref(),
                c.channel_id.to_string(),
                &c.token,
                c.id.to_string(),
            );
            let mut words = Vec::new();
            for o in &c.data.options {
                option_text(o, &mut words);
            }
            let kind = InboundKind::Command {
                name: c.data.name.clone(),
                text: words.join(" "),
            };
            Ok(event(cx, kind, Source::Command))
        }
        Interaction::Component(c) => {
            let cx = ctx(
                &c.user,
                c.member.as_ref(),
                c.channel_id.to_string(),
                &c.token,
                c.id.to_string(),
            );
            if let Some((draft, page)) = form_step(&c.data.custom_id) {
                return Ok(Parsed::FormStep {
                    ctx: cx,
                    draft,
                    page,
                    answers: None,
                });
            }
            let kind = InboundKind::Action {
                action: c.data.custom_id.clone(),
                message: Some(Location {
                    channel: c.channel_id.to_string(),
                    ts: c.message.id.to_string(),
                }),
            };
            Ok(event(cx, kind, Source::Component))
        }
        Interaction::Modal(m) => {
            let cx = ctx(
                &m.user,
                m.member.as_ref(),
                m.channel_id.to_string(),
                &m.token,
                m.id.to_string(),
            );
            let Some((draft, page)) = form_step(&m.data.custom_id) else {
                return Ok(Parsed::Ignored);
            };
            let mut answers = BTreeMap::new();
            for row in &m.data.components {
                for comp in &row.components {
                    if let ActionRowComponent::InputText(t) = comp {
                        answers.insert(t.custom_id.clone(), t.value.clone().unwrap_or_default());
                    }
                }
            }
            Ok(Parsed::FormStep {
                ctx: cx,
                draft,
                page,
                answers: Some(answers),
            })
        }
        _ => Ok(Parsed::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_become_neutral() {
        assert_eq!(
            neutral_mentions("add qc <@42> <@!7> <@x> <@"),
            "add qc <@discord:42> <@discord:7> <@x> <@"
        );
    }

    #[test]
    fn form_step_ids_round_trip() {
        assert_eq!(form_step(&form_step_id("ab12", 2)), Some(("ab12".into(), 2)));
        assert_eq!(form_step("form:ab12:0"), None);
        assert_eq!(form_step("approve:1:1:0"), None);
    }
}
