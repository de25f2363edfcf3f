//! The platform-neutral message model, the inbound event model, and the wording
//! (handlebars templates from `messages/`). One sub-module per platform holds its
//! signature checks, payload parsing, renderer and API client.

pub mod actions;
pub mod client;
pub mod dingtalk;
pub mod discord;
pub mod links;
pub mod local;
pub mod markdown;
pub mod slack;
pub mod texts;

use crate::domain::Actor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use client::{timed, ChatClient, Delivery, MessageRef, Reconciled, SendError};
pub use texts::Texts;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    Default,
    Primary,
    Danger,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    pub title: String,
    pub text: String,
    pub ok: String,
    pub cancel: String,
}

/// A button carries a semantic action (see `bot::actions`), never a platform id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub action: String,
    pub style: ButtonStyle,
    pub confirm: Option<Confirm>,
}

/// A chat message. Text may contain mention tokens `<@platform:user>`, which each
/// renderer turns into its platform's mention; user-supplied text arrives escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Message {
    pub title: String,
    pub fields: Vec<Field>,
    pub body: Option<String>,
    pub context: Option<String>,
    pub buttons: Vec<Button>,
    /// The ticket or release this message is about: delivery adds a link to its page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<crate::chat::links::Page>,
    /// The link to that page (set on delivery, rendered by each platform's renderer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

/// A link under a message: to the page of the ticket or release it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub label: String,
}

impl Message {
    /// The context line, with the page link (neutral `<url|label>`) after it.
    pub fn context_with_link(&self) -> Option<String> {
        let link = self.link.as_ref().map(|l| format!("<{}|{}>", l.url, l.label));
        match (self.context.as_deref().filter(|c| !c.is_empty()), link) {
            (Some(c), Some(l)) => Some(format!("{c}\n{l}")),
            (Some(c), None) => Some(c.to_string()),
            (None, l) => l,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Text,
    Multiline,
    Select { options: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    pub id: String,
    pub label: String,
    pub input: InputKind,
    pub required: bool,
    pub hint: Option<String>,
    pub initial: Option<String>,
    /// The longest answer the product accepts (declared to the platform, so that typing
    /// stops where validation would refuse); `None` for a choice.
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// A form (Slack and Discord modal). `callback` names what submitting does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    pub title: String,
    pub submit: String,
    pub cancel: String,
    pub callback: String,
    /// Where answers to the submission go (the channel the form was opened from).
    pub reply_channel: String,
    pub intro: Option<String>,
    pub fields: Vec<FormField>,
}

/// One outbound effect, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    /// A new message in a channel; the outbox row's `msg_key` names it for later edits.
    Post { channel: String, message: Message },
    /// Replace the message named by the row's `msg_key`.
    Update { channel: String, message: Message },
    /// Visible to one user only.
    Ephemeral {
        channel: String,
        user: String,
        message: Message,
        /// The platform's handle for answering the interaction (Discord's interaction
        /// token; DingTalk's session webhook), when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
    },
    /// A direct message to a user.
    Direct { user: String, message: Message },
    /// A message under another one (the outbox row's `msg_key` names the parent): in its
    /// thread on Slack, as a reply on Discord, as a plain message in `channel` on DingTalk
    /// (or wherever the parent was never posted).
    Reply { channel: String, message: Message },
    /// Open a form in answer to an interaction; where it cannot open any more, the person
    /// (`user`, in `channel`) is asked to press again.
    OpenForm {
        trigger: String,
        form: Form,
        #[serde(default)]
        channel: String,
        #[serde(default)]
        user: String,
    },
    /// An execution's live progress message (the outbox row's `msg_key` names it), drawn
    /// from the execution's latest state when it is delivered: posted the first time,
    /// edited after. The outbox turns it into a `Post` or an `Update` before a client
    /// sees it; until then, one waiting is enough however many moves follow it.
    Progress { channel: String, execution: i64 },
}

/// What a client answers to an [`Outbound::Progress`] (the outbox draws it first).
pub const UNDRAWN: &str = "a progress message is drawn by the outbox before it is sent";

impl Outbound {
    /// The message it carries, if any (a form carries none).
    pub fn message_mut(&mut self) -> Option<&mut Message> {
        match self {
            Outbound::Post { message, .. }
            | Outbound::Update { message, .. }
            | Outbound::Ephemeral { message, .. }
            | Outbound::Direct { message, .. }
            | Outbound::Reply { message, .. } => Some(message),
            Outbound::OpenForm { .. } | Outbound::Progress { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Outbound::Post { .. } => "post",
            Outbound::Update { .. } => "update",
            Outbound::Ephemeral { .. } => "ephemeral",
            Outbound::Direct { .. } => "direct",
            Outbound::Reply { .. } => "reply",
            Outbound::OpenForm { .. } => "open_form",
            Outbound::Progress { .. } => "progress",
        }
    }
}

/// Where a message lives on its platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub channel: String,
    pub ts: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    /// `name` is `release` or `role`; `text` the rest of the line.
    Command { name: String, text: String },
    /// A button press.
    Action { action: String, message: Option<Location> },
    /// A submitted form.
    FormSubmit {
        callback: String,
        values: BTreeMap<String, String>,
    },
    /// Something releasebot itself reports (an execution ended …), recorded by a lower
    /// layer for the handlers.
    System(crate::domain::events::SystemEvent),
}

/// A platform-neutral inbound event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub actor: Actor,
    pub actor_name: String,
    /// Where answers go.
    pub channel: String,
    /// Lets the bot open a form in answer (Slack `trigger_id`, Discord interaction token);
    /// `None` on platforms without forms: the bot then says which command to send.
    pub trigger: Option<String>,
    /// Lets the bot answer privately (Discord interaction token, DingTalk session webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    pub kind: InboundKind,
}

/// The mention of a stored actor (`platform:user`), or the stored text escaped when it
/// names no actor.
pub fn mention_stored(actor: &str) -> String {
    Actor::parse(actor)
        .map(|a| mention(&a))
        .unwrap_or_else(|| texts::escape(actor))
}

/// The mention token of a user, rendered by each platform.
/// The neutral mention of `actor` (platforms render it as a real mention). An id that is
/// not of its platform's shape (stored before ids were checked) is never spliced into a
/// mention: it is named as escaped text, so that it cannot ping or format anything.
pub fn mention(actor: &Actor) -> String {
    if actor.is_well_formed() {
        format!("<@{}:{}>", actor.platform, actor.user_id)
    } else {
        format!(
            "@{} ({})",
            texts::escape(&actor.user_id),
            texts::escape(&actor.platform)
        )
    }
}

/// Cuts `s` to at most `max` characters, ending with `marker` when it had to cut.
pub fn truncate(s: &str, max: usize, marker: &str) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(marker.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(marker);
    out
}

/// `source` rendered by `render`, within `max` characters: when the rendering is too
/// long, the source is cut (never the rendering, whose escapes a cut would break) at the
/// longest prefix whose rendering fits with `marker` after it.
pub fn fit(source: &str, max: usize, marker: &str, render: impl Fn(&str) -> String) -> String {
    fit_by(source, max, marker, render, |s| s.chars().count())
}

/// [`fit`], with the size a platform counts (`measure`: characters, bytes, …).
pub fn fit_by(
    source: &str,
    max: usize,
    marker: &str,
    render: impl Fn(&str) -> String,
    measure: impl Fn(&str) -> usize,
) -> String {
    let whole = render(source);
    if measure(&whole) <= max {
        return whole;
    }
    let room = max.saturating_sub(measure(marker));
    // bounds[k]: where the first k characters end.
    let bounds: Vec<usize> = source
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(source.len()))
        .collect();
    // The longest prefix that fits (a rendering grows with its source).
    let (mut lo, mut hi) = (0usize, bounds.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if measure(&render(&source[..bounds[mid]])) <= room {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let cut = bounds[lo];
    let mut out = render(&source[..cut]);
    out.push_str(marker);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_falls_in_the_source_never_inside_an_escape() {
        let escape = |s: &str| s.replace('_', "<!date^00000000^{_}|_>");
        let source = format!("pay{}", "_gateway".repeat(20));
        let out = fit(&source, 60, "…", escape);
        assert!(out.chars().count() <= 60, "{out}");
        assert!(
            out.ends_with("<!date^00000000^{_}|_>…") || out.ends_with("y…") || out.ends_with("…"),
            "{out}"
        );
        // Whatever precedes the marker is a whole rendering of a prefix.
        let kept = out.trim_end_matches('…');
        assert_eq!(kept.matches("<!date").count(), kept.matches("|_>").count(), "{out}");
        assert_eq!(fit("short", 60, "…", escape), "short");
    }

    #[test]
    fn truncation_is_visible_and_within_limit() {
        assert_eq!(truncate("hello", 5, "…"), "hello");
        let t = truncate("hello world", 8, "… (cut)");
        assert_eq!(t, "h… (cut)");
        assert_eq!(t.chars().count(), 8);
        assert_eq!(truncate("日本語テキスト", 4, "…"), "日本語…");
    }
}
