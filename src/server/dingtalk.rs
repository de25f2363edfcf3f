//! `POST /dingtalk/events`: the enterprise robot's messages (@-mention commands) and
//! interactive card callbacks, both signed with the app secret (`timestamp`, `sign`).

use super::{internal, read_limited, AppState};
use crate::chat::dingtalk::parse::{self, Parsed};
use crate::chat::dingtalk::{verify, PLATFORM};
use crate::chat::{Inbound, InboundKind};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A DingTalk request whose signature was checked (and taken: see below), with that
/// signature; the body is not parsed yet.
pub struct DingTalkVerified(pub Bytes, pub String);

impl FromRequest<AppState> for DingTalkVerified {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = &state.dingtalk_secret else {
            return Err((StatusCode::NOT_FOUND, "DingTalk is not configured").into_response());
        };
        let headers = req.headers().clone();
        let body = read_limited(req.into_body()).await?;
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now = state.bot.clock.now_ms();
        if let Err(e) = verify::verify(secret.expose(), header("timestamp"), header("sign"), now) {
            tracing::warn!(reason = ?e, "refused a DingTalk request with a bad signature");
            return Err((StatusCode::UNAUTHORIZED, "invalid signature").into_response());
        }
        // DingTalk signs the timestamp, not the body: a captured pair would carry any other
        // body. Each pair is accepted once, on every replica, for as long as it is fresh.
        let pair = format!(
            "{}:{}",
            header("timestamp").unwrap_or_default().trim(),
            header("sign").unwrap_or_default().trim()
        );
        match crate::store::signatures::first_use(&state.bot.store, PLATFORM, &pair, now).await {
            Ok(true) => Ok(DingTalkVerified(body, pair)),
            Ok(false) => {
                tracing::warn!("refused a replayed DingTalk request (its signature was used before)");
                Err((StatusCode::UNAUTHORIZED, "replayed request").into_response())
            }
            Err(e) => Err(internal(e)),
        }
    }
}

fn ok() -> Response {
    Json(json!({})).into_response()
}

pub async fn events(State(state): State<AppState>, DingTalkVerified(body, pair): DingTalkVerified) -> Response {
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
