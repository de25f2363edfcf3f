//! Outbound Discord calls through serenity's HTTP client.

use super::render;
use crate::chat::{ChatClient, Delivery, MessageRef, Reconciled, SendError};
use crate::chat::{Location, Outbound, Texts};
use crate::config::Secret;
use async_trait::async_trait;
use serde_json::{json, Value};
use serenity::all::{ApplicationId, ChannelId, HttpBuilder, MessageId};
use serenity::http::{Http, HttpError};
use std::num::NonZeroU64;

/// The public API base; any other base (a proxy, a test fake) turns serenity's own rate
/// limiter off, because it ignores the proxy. The outbox then paces and honours 429s.
pub const DEFAULT_API_URL: &str = "https://discord.com/api/v10";

pub struct DiscordChat {
    pub http: Http,
}

impl DiscordChat {
    pub fn new(api_url: &str, token: &Secret, application_id: &str) -> anyhow::Result<Self> {
        let app: NonZeroU64 = application_id
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("DISCORD_APPLICATION_ID must be a number"))?;
        let mut b = HttpBuilder::new(token.expose()).application_id(ApplicationId::from(app));
        let api_url = api_url.trim_end_matches('/');
        if api_url != DEFAULT_API_URL {
            // serenity writes `https://discord.com/api/v10/...` and swaps the host for the proxy.
            let base = api_url
                .strip_suffix("/api/v10")
                .ok_or_else(|| anyhow::anyhow!("DISCORD_API_URL must end in /api/v10 (got {api_url})"))?;
            b = b.proxy(base).ratelimiter_disabled(true);
        }
        Ok(Self { http: b.build() })
    }

    async fn dm(&self, user: &str, body: &Value) -> Result<Location, SendError> {
        let channel = timed(self.http.create_private_channel(&json!({ "recipient_id": user }))).await?;
        let msg = timed(self.http.send_message(channel.id, Vec::new(), body)).await?;
        Ok(Location {
            channel: channel.id.to_string(),
            ts: msg.id.to_string(),
        })
    }
}

fn id(s: &str) -> Result<NonZeroU64, SendError> {
    s.trim()
        .parse()
        .map_err(|_| SendError::Permanent(format!("not a Discord id: {s:?}")))
}

fn status_of(e: &serenity::Error) -> Option<u16> {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => Some(r.status_code.as_u16()),
        _ => None,
    }
}

fn classify(e: serenity::Error) -> SendError {
    match &e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            let code = r.status_code.as_u16();
            let what = format!("HTTP {code}: {}", r.error.message);
            match code {
                429 => SendError::RateLimited(None),
                500..=599 => SendError::Transient(what),
                _ => SendError::Permanent(what),
            }
        }
        // Not the error's text: its URL may carry an interaction token.
        serenity::Error::Http(HttpError::Request(r)) => SendError::Transient(
            if r.is_timeout() {
                "Discord request timed out"
            } else if r.is_connect() {
                "could not connect to Discord"
            } else {
                "Discord request failed"
            }
            .into(),
        ),
        _ => SendError::Permanent(e.to_string()),
    }
}

async fn timed<T>(f: impl std::future::Future<Output = serenity::Result<T>>) -> Result<T, SendError> {
    crate::chat::timed(f, classify).await
}

const TOKEN_EXPIRED: &str = "the interaction token has expired";

/// A follow-up to an interaction; an expired token is told apart from other refusals.
async fn timed_followup(http: &Http, token: &str, body: &Value) -> Result<(), SendError> {
    let classify_followup = |e: serenity::Error| match status_of(&e) {
        Some(401 | 404) => SendError::Permanent(TOKEN_EXPIRED.into()),
        _ => classify(e),
    };
    crate::chat::timed(http.create_followup_message(token, body, Vec::new()), classify_followup)
        .await
        .map(|_| ())
}

#[async_trait]
impl ChatClient for DiscordChat {
    /// Posts carry the delivery key as their `nonce` with `enforce_nonce`: sent again,
    /// Discord returns the message the lost attempt created instead of a second one.
    async fn reconcile(&self, _texts: &Texts, _delivery: Delivery, out: &Outbound) -> Result<Reconciled, SendError> {
        Ok(match out {
            Outbound::Post { .. } | Outbound::Direct { .. } => Reconciled::SendAgain,
            _ => Reconciled::Unknown,
        })
    }

    async fn send(
        &self,
        texts: &Texts,
        delivery: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        let body =
            |m: &crate::chat::Message| render::message(m, texts).map_err(|e| SendError::Permanent(format!("{e:#}")));
        match out {
            Outbound::Post { channel, message } => {
                let ch = ChannelId::from(id(channel)?);
                let mut b = body(message)?;
                // Sent again with the same nonce, Discord returns the first message
                // instead of posting a second one.
                b["nonce"] = json!(delivery.key());
                b["enforce_nonce"] = json!(true);
                let msg = timed(self.http.send_message(ch, Vec::new(), &b)).await?;
                Ok(Some(Location {
                    channel: channel.clone(),
                    ts: msg.id.to_string(),
                }))
            }
            Outbound::Reply { channel, message } => {
                let ch = ChannelId::from(id(existing.map(|p| p.channel.as_str()).unwrap_or(channel))?);
                let mut b = body(message)?;
                if let Some(parent) = existing {
                    b["message_reference"] = json!({ "message_id": parent.ts, "fail_if_not_exists": false });
                }
                timed(self.http.send_message(ch, Vec::new(), &b)).await?;
                Ok(None)
            }
            Outbound::Update { message, .. } => {
                let r = existing.ok_or_else(|| SendError::Permanent("no message to edit".into()))?;
                let (ch, mid) = (ChannelId::from(id(&r.channel)?), MessageId::from(id(&r.ts)?));
                timed(self.http.edit_message(ch, mid, &body(message)?, Vec::new())).await?;
                Ok(None)
            }
            Outbound::Direct { user, message } => {
                let mut b = body(message)?;
                b["nonce"] = json!(delivery.key());
                b["enforce_nonce"] = json!(true);
                self.dm(user, &b).await.map(Some)
            }
            Outbound::Ephemeral {
                user, message, reply, ..
            } => {
                let mut b = render::ephemeral(message, texts).map_err(|e| SendError::Permanent(format!("{e:#}")))?;
                if let Some(token) = reply {
                    match timed_followup(&self.http, token, &b).await {
                        Ok(()) => return Ok(None),
                        // The interaction token expired (15 min): answer in a direct message.
                        Err(SendError::Permanent(e)) if e == TOKEN_EXPIRED => {}
                        Err(e) => return Err(e),
                    }
                }
                b["flags"] = json!(0);
                self.dm(user, &b).await.map(|_| None)
            }
            Outbound::Progress { .. } => Err(SendError::Permanent(crate::chat::UNDRAWN.into())),
            // Modals open only as the answer to an interaction, which the route gives when
            // the bot is quick enough; otherwise the user is asked to try again.
            Outbound::OpenForm { trigger, .. } => {
                let m = crate::chat::Message {
                    title: texts
                        .plain("form_too_slow")
                        .map_err(|e| SendError::Permanent(format!("{e:#}")))?,
                    ..Default::default()
                };
                let b = render::ephemeral(&m, texts).map_err(|e| SendError::Permanent(format!("{e:#}")))?;
                match timed_followup(&self.http, trigger, &b).await {
                    Err(SendError::Permanent(e)) if e == TOKEN_EXPIRED => Ok(None),
                    other => other.map(|_| None),
                }
            }
        }
    }
}

/// Registers (overwrites) the application's global slash commands; returns how many.
pub async fn register_commands(settings: &crate::config::DiscordSettings, commands: &Value) -> anyhow::Result<usize> {
    let chat = DiscordChat::new(&settings.api_url, &settings.token, &settings.application_id)?;
    let registered = chat
        .http
        .create_global_commands(commands)
        .await
        .map_err(|e| anyhow::anyhow!("registering the commands with Discord: {e}"))?;
    Ok(registered.len())
}
