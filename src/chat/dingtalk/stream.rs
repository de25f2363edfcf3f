//! DingTalk Stream mode, for deployments without a public URL: open a connection
//! (`POST /v1.0/gateway/connections/open` → endpoint and ticket), read frames from the
//! websocket, hand robot messages and card callbacks to the same handler as the HTTP
//! route, acknowledge every frame, echo pings, and reconnect with backoff when the
//! server says "disconnect" or the connection drops.

use crate::config::DingTalkSettings;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// Topics releasebot subscribes to: messages to the robot, and card button callbacks.
pub const TOPICS: [&str; 2] = ["/v1.0/im/bot/messages/get", "/v1.0/card/instances/callback"];
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct Opened {
    endpoint: String,
    ticket: String,
}

#[derive(Debug, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub headers: serde_json::Map<String, Value>,
    #[serde(default)]
    pub data: String,
}

impl Frame {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// The acknowledgement DingTalk expects for a frame.
pub fn ack(frame: &Frame, data: &str) -> String {
    json!({
        "code": 200,
        "headers": { "contentType": "application/json", "messageId": frame.header("messageId") },
        "message": "OK",
        "data": data,
    })
    .to_string()
}

/// How one connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The server asked us to reconnect, or the socket closed.
    Reconnect,
    Shutdown,
}

async fn open(http: &reqwest::Client, s: &DingTalkSettings) -> anyhow::Result<String> {
    let subscriptions: Vec<Value> = TOPICS
        .iter()
        .map(|t| json!({ "type": "CALLBACK", "topic": t }))
        .collect();
    let res = http
        .post(format!(
            "{}/v1.0/gateway/connections/open",
            s.api_url.trim_end_matches('/')
        ))
        .json(&json!({
            "clientId": s.app_key,
            "clientSecret": s.app_secret.expose(),
            "subscriptions": subscriptions,
            "ua": "releasebot",
        }))
        .send()
        .await?;
    if !res.status().is_success() {
        anyhow::bail!("opening a DingTalk stream connection: HTTP {}", res.status().as_u16());
    }
    let o: Opened = res.json().await?;
    let sep = if o.endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{}{sep}ticket={}", o.endpoint, o.ticket))
}

/// One connection: frames until a disconnect, a drop, or shutdown.
pub async fn connect_once<H, F>(
    http: &reqwest::Client,
    s: &DingTalkSettings,
    handler: &H,
    shutdown: &CancellationToken,
) -> anyhow::Result<Ended>
where
    H: Fn(Vec<u8>) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let url = open(http, s).await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    tracing::info!("DingTalk stream connected");
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(Ended::Shutdown);
            }
        };
        let text = match msg {
            None => return Ok(Ended::Reconnect),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(WsMessage::Text(t))) => t.to_string(),
            Some(Ok(WsMessage::Ping(p))) => {
                ws.send(WsMessage::Pong(p)).await?;
                continue;
            }
            Some(Ok(WsMessage::Close(_))) => return Ok(Ended::Reconnect),
            Some(Ok(_)) => continue,
        };
        let frame: Frame = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable DingTalk stream frame");
                continue;
            }
        };
        match (frame.kind.as_str(), frame.header("topic")) {
            ("SYSTEM", "ping") => ws.send(WsMessage::text(ack(&frame, &frame.data))).await?,
            ("SYSTEM", "disconnect") => {
                tracing::info!("DingTalk asked the stream to reconnect");
                return Ok(Ended::Reconnect);
            }
            ("SYSTEM", _) => ws.send(WsMessage::text(ack(&frame, ""))).await?,
            _ => {
                // Recorded (deduplicated) before the acknowledgement, as over HTTP.
                if let Err(e) = handler(frame.data.clone().into_bytes()).await {
                    tracing::error!(error = %format!("{e:#}"), "a DingTalk stream event could not be recorded");
                    continue;
                }
                ws.send(WsMessage::text(ack(&frame, "{\"response\":null}"))).await?;
            }
        }
    }
}

/// Keeps a stream connection up until shutdown, reconnecting with backoff.
pub async fn run<H, F>(s: DingTalkSettings, handler: H, shutdown: CancellationToken)
where
    H: Fn(Vec<u8>) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(15)).build() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "DingTalk stream: no HTTP client");
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect_once(&http, &s, &handler, &shutdown).await {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Reconnect) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), wait_secs = backoff.as_secs(), "DingTalk stream dropped; reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!("DingTalk stream stopped");
}
