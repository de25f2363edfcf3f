//! Outbound Slack calls through slack-morphism's Web API client.

use crate::chat::{ChatClient, Delivery, MessageRef, Reconciled, SendError};
use crate::chat::{Location, Outbound, Texts};
use crate::config::Secret;
use async_trait::async_trait;
use serde_json::json;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

type Connector = SlackClientHyperHttpsConnector;

/// The metadata event type of releasebot's messages, carrying the outbox delivery key.
pub const METADATA_EVENT: &str = "releasebot_delivery";

/// Errors of `chat.postEphemeral` that a direct message avoids.
const NOT_IN_CHANNEL: &[&str] = &["not_in_channel", "channel_not_found", "user_not_in_channel"];
/// `views.open` refusals meaning the interaction's trigger can no longer open anything.
const TRIGGER_GONE: &[&str] = &["expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id"];

pub struct SlackChat {
    client: SlackClient<Connector>,
    token: SlackApiToken,
}

impl SlackChat {
    /// `api_url` is the Web API base (`https://slack.com/api`); tests point it at a fake.
    pub fn new(api_url: &str, token: &Secret) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        // A trailing slash would produce `//chat.postMessage`.
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url.trim_end_matches('/'));
        let token_value: SlackApiTokenValue = token.expose().to_string().into();
        Ok(Self {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(token_value),
        })
    }
}

fn classify(e: SlackClientError) -> SendError {
    match e {
        SlackClientError::RateLimitError(r) => SendError::RateLimited(r.retry_after),
        SlackClientError::ApiError(a) => match a.code.as_str() {
            "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                SendError::Transient(a.code)
            }
            _ => SendError::Permanent(a.code),
        },
        SlackClientError::HttpError(h) if h.status_code.is_server_error() => {
            SendError::Transient(format!("HTTP {}", h.status_code))
        }
        SlackClientError::HttpError(h) => SendError::Permanent(format!("HTTP {}", h.status_code)),
        SlackClientError::ProtocolError(p) => SendError::Permanent(format!("unexpected answer: {p}")),
        other => SendError::Transient(other.to_string()),
    }
}

fn model<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, SendError> {
    serde_json::from_value(v).map_err(|e| SendError::Permanent(format!("building the Slack request: {e}")))
}

async fn timed<T>(f: impl std::future::Future<Output = ClientResult<T>>) -> Result<T, SendError> {
    crate::chat::timed(f, classify).await
}

/// Pages of a channel's history read when looking for a message whose answer was lost.
const HISTORY_PAGES: usize = 5;

#[async_trait]
impl ChatClient for SlackChat {
    /// Looks for the message in the channel's history by the delivery key in its metadata
    /// (posted with the message). Without the history scopes the answer is unknown.
    async fn reconcile(&self, _texts: &Texts, delivery: Delivery, out: &Outbound) -> Result<Reconciled, SendError> {
        let Outbound::Post { channel, .. } = out else {
            return Ok(Reconciled::Unknown);
        };
        let session = self.client.open_session(&self.token);
        let key = delivery.key();
        let oldest = format!("{}.000000", (delivery.created_at / 1000 - 60).max(0));
        let mut cursor: Option<SlackCursorId> = None;
        for _ in 0..HISTORY_PAGES {
            let req = SlackApiConversationsHistoryRequest {
                channel: Some(channel.clone().into()),
                cursor: cursor.clone(),
                latest: None,
                limit: Some(200),
                oldest: Some(SlackTs(oldest.clone())),
                inclusive: Some(true),
                include_all_metadata: Some(true),
            };
            let res = match timed(session.conversations_history(&req)).await {
                Ok(r) => r,
                // No history scope, not in the channel …: the platform cannot tell us.
                Err(SendError::Permanent(why)) => {
                    tracing::warn!(error = %why, "Slack history is not readable; a lost answer cannot be reconciled");
                    return Ok(Reconciled::Unknown);
                }
                Err(e) => return Err(e),
            };
            let found = res.messages.iter().find(|m| {
                m.content.metadata.as_ref().is_some_and(|md| {
                    md.event_type == METADATA_EVENT
                        && md
                            .event_payload
                            .as_ref()
                            .and_then(|p| p.get("delivery"))
                            .is_some_and(|d| *d == key)
                })
            });
            if let Some(m) = found {
                return Ok(Reconciled::Delivered(Some(Location {
                    channel: channel.clone(),
                    ts: m.origin.ts.to_string(),
                })));
            }
            cursor = res
                .response_metadata
                .and_then(|r| r.next_cursor)
                .filter(|c| !c.to_string().is_empty());
            if cursor.is_none() || !res.has_more.unwrap_or(false) {
                return Ok(Reconciled::SendAgain);
            }
        }
        Ok(Reconciled::Unknown)
    }

    async fn send(
        &self,
        texts: &Texts,
        delivery: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        let session = self.client.open_session(&self.token);
        let content = |m: &crate::chat::Message| -> Result<serde_json::Value, SendError> {
            let blocks = super::render::blocks(m, texts).map_err(|e| SendError::Permanent(format!("{e:#}")))?;
            Ok(json!({ "text": super::render::fallback_text(m), "blocks": blocks }))
        };
        match out {
            Outbound::Post { channel, message } | Outbound::Direct { user: channel, message } => {
                let mut req = content(message)?;
                req["channel"] = json!(channel);
                // Finds the message again if this attempt's answer is lost (see `reconcile`).
                req["metadata"] =
                    json!({ "event_type": METADATA_EVENT, "event_payload": { "delivery": delivery.key() } });
                let req: SlackApiChatPostMessageRequest = model(req)?;
                let res = timed(session.chat_post_message(&req)).await?;
                Ok(Some(Location {
                    channel: res.channel.to_string(),
                    ts: res.ts.to_string(),
                }))
            }
            Outbound::Reply { channel, message } => {
                let mut req = content(message)?;
                match existing {
                    Some(parent) => {
                        req["channel"] = json!(parent.channel);
                        req["thread_ts"] = json!(parent.ts);
                    }
                    None => req["channel"] = json!(channel),
                }
                let req: SlackApiChatPostMessageRequest = model(req)?;
                timed(session.chat_post_message(&req)).await?;
                Ok(None)
            }
            Outbound::Update { message, .. } => {
                let r = existing.ok_or_else(|| SendError::Permanent("no message to edit".into()))?;
                let mut req = content(message)?;
                req["channel"] = json!(r.channel);
                req["ts"] = json!(r.ts);
                let req: SlackApiChatUpdateRequest = model(req)?;
                timed(session.chat_update(&req)).await?;
                Ok(None)
            }
            Outbound::Ephemeral {
                channel, user, message, ..
            } => {
                let mut req = content(message)?;
                req["channel"] = json!(channel);
                req["user"] = json!(user);
                let eph: SlackApiChatPostEphemeralRequest = model(req.clone())?;
                match timed(session.chat_post_ephemeral(&eph)).await {
                    // The bot is not in that conversation: answer in the user's DM instead.
                    Err(SendError::Permanent(code)) if NOT_IN_CHANNEL.contains(&code.as_str()) => {
                        req["channel"] = json!(user);
                        let dm: SlackApiChatPostMessageRequest = model(req)?;
                        timed(session.chat_post_message(&dm)).await?;
                        Ok(None)
                    }
                    other => other.map(|_| None),
                }
            }
            Outbound::Progress { .. } => Err(SendError::Permanent(crate::chat::UNDRAWN.into())),
            Outbound::OpenForm {
                trigger,
                form,
                channel,
                user,
            } => {
                let req: SlackApiViewsOpenRequest =
                    model(json!({ "trigger_id": trigger, "view": super::render::modal(form) }))?;
                match timed(session.views_open(&req)).await {
                    // A trigger lives 3 seconds: too late, the person is asked to press again
                    // (privately, where they pressed) instead of waiting for a form that never comes.
                    Err(SendError::Permanent(code)) if TRIGGER_GONE.contains(&code.as_str()) && !user.is_empty() => {
                        let message = crate::chat::Message {
                            title: texts
                                .plain("form_too_slow")
                                .map_err(|e| SendError::Permanent(format!("{e:#}")))?,
                            ..Default::default()
                        };
                        let answer = Outbound::Ephemeral {
                            channel: channel.clone(),
                            user: user.clone(),
                            message,
                            reply: None,
                        };
                        Box::pin(self.send(texts, delivery, &answer, None)).await
                    }
                    other => other.map(|_| None),
                }
            }
        }
    }
}
