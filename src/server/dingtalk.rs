//! `POST /dingtalk/events`: the enterprise robot's messages (@-mention commands) and
//! interactive card callbacks, both signed with the app secret (`timestamp`, `sign`).

use super::verified::{header, Refusal, Scheme, Verified};
use super::{internal, AppState};
use crate::chat::dingtalk::parse::{self, Parsed};
use crate::chat::dingtalk::{verify, PLATFORM};
use crate::chat::{Inbound, InboundKind};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// DingTalk's signature: an HMAC of a timestamp with the app secret. DingTalk signs the
/// timestamp, not the body: a captured pair would carry any other body, so each pair is
/// accepted once, on every replica, for as long as it is fresh. The proof is that pair.
pub struct DingTalk;

impl Scheme for DingTalk {
    const NAME: &'static str = "DingTalk";
    type Proof = String;

    fn check(
        state: &AppState,
        headers: &HeaderMap,
        _body: &Bytes,
    ) -> Option<impl std::future::Future<Output = Result<String, Refusal>> + Send> {
        let secret = state.dingtalk_secret.as_ref()?;
        let now = state.bot.clock.now_ms();
        let timestamp = header(headers, "timestamp").unwrap_or_default().trim().to_string();
        let sign = header(headers, "sign").unwrap_or_default().trim().to_string();
        let checked = verify::verify(
            secret.expose(),
            header(headers, "timestamp"),
            header(headers, "sign"),
            now,
        );
        let store = state.bot.store.clone();
        Some(async move {
            checked.map_err(|_| Refusal::Signature("invalid signature"))?;
            let pair = format!("{timestamp}:{sign}");
            match crate::store::signatures::first_use(&store, PLATFORM, &pair, now).await {
                Ok(true) => Ok(pair),
                Ok(false) => Err(Refusal::Signature("replayed request")),
                Err(e) => Err(Refusal::Internal(e)),
            }
        })
    }
}

fn ok() -> Response {
    Json(json!({})).into_response()
}

pub async fn events(State(state): State<AppState>, Verified { body, proof: pair }: Verified<DingTalk>) -> Response {
    match receive(&state.bot, &body).await {
        Ok(Received::Recorded) => ok(),
        Ok(Received::Malformed(why)) => (StatusCode::BAD_REQUEST, why).into_response(),
        Err(e) => {
            // Nothing was recorded: the same request sent again must not look like a replay.
            if let Err(f) = crate::store::signatures::forget(&state.bot.store, PLATFORM, &pair).await {
                tracing::warn!(error = %format!("{f:#}"), "could not forget a DingTalk signature");
            }
            internal(e)
        }
    }
}

pub enum Received {
    Recorded,
    Malformed(String),
}

/// Records one DingTalk event (HTTP body or Stream frame data) for the bot.
pub async fn receive(bot: &crate::bot::Bot, body: &[u8]) -> anyhow::Result<Received> {
    let (key, mut event) = match parse::event(body, bot.clock.now_ms()) {
        Ok(Parsed::Event { key, event }) => (key, event),
        Ok(Parsed::Ignored) => return Ok(Received::Recorded),
        Err(parse::ParseError::Malformed(why)) => {
            tracing::warn!(reason = %why, "malformed DingTalk payload");
            return Ok(Received::Malformed(why));
        }
    };
    locate(bot, &mut event).await?;
    bot.accept(&key, &event).await?;
    Ok(Received::Recorded)
}

/// A card callback names only the card: answers go to the conversation the card is in.
async fn locate(bot: &crate::bot::Bot, event: &mut Inbound) -> anyhow::Result<()> {
    if let InboundKind::Action { message: Some(loc), .. } = &mut event.kind {
        let channel = crate::store::outbox::channel_of(&bot.store, PLATFORM, &loc.ts)
            .await?
            .unwrap_or_else(|| parse::direct_channel(&event.actor.user_id));
        loc.channel = channel.clone();
        event.channel = channel;
    }
    Ok(())
}
