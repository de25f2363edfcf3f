//! An in-process fake of the Slack Web API that records every call. The real
//! slack-morphism client talks to it over HTTP.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub auth: Option<String>,
    /// What the fake answered (success bodies only).
    pub response: Value,
    /// When it arrived, on the test's clock.
    pub at_ms: i64,
}

/// A scripted answer instead of success.
#[derive(Debug, Clone)]
pub enum Failure {
    RateLimited {
        retry_after_secs: u64,
    },
    ServerError,
    Api(&'static str),
    /// Does what was asked (a message is posted), then never answers: as if the
    /// connection, or releasebot, died before the answer arrived.
    AcceptThenHang,
}

struct Inner {
    /// Slack's `ts` is the time of posting: the fake takes it from this clock.
    clock: releasebot::clock::SharedClock,
    calls: Vec<Call>,
    failures: VecDeque<(String, Failure)>,
    next_ts: u64,
    /// The messages of each channel, oldest first (for `conversations.history`).
    history: HashMap<String, Vec<Value>>,
}

#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    /// Fired at every call.
    called: Arc<Notify>,
    pub api_url: String,
}

impl FakeSlack {
    pub async fn start() -> Self {
        Self::with_clock(Arc::new(releasebot::clock::SystemClock)).await
    }

    /// A fake whose message timestamps come from `clock` (the test's).
    pub async fn with_clock(clock: releasebot::clock::SharedClock) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            clock,
            calls: Vec::new(),
            failures: VecDeque::new(),
            next_ts: 1,
            history: HashMap::new(),
        }));
        let called = Arc::new(Notify::new());
        let app = Router::new()
            .route("/api/{method}", any(handle))
            .with_state((inner.clone(), called.clone()));
        let addr = super::serve_fake(app).await;
        Self {
            inner,
            called,
            api_url: format!("http://{addr}/api"),
        }
    }

    /// Waits until `method` was called `n` times.
    pub async fn wait_for(&self, method: &str, n: usize) {
        loop {
            let called = self.called.notified();
            tokio::pin!(called);
            called.as_mut().enable();
            if self.calls_of(method).len() >= n {
                return;
            }
            called.await;
        }
    }

    /// The next call of `method` fails this way (once).
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.inner
            .lock()
            .unwrap()
            .failures
            .push_back((method.to_string(), failure));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.method == method).collect()
    }

    /// Forgets the calls so far.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut self.inner.lock().unwrap().calls)
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Value {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.contains("json") {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }
}

async fn handle(
    State((inner, called)): State<(Arc<Mutex<Inner>>, Arc<Notify>)>,
    Path(method): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut body = parse_body(&headers, &body);
    // GET methods (conversations.history) carry their arguments in the query.
    if let (Some(q), true) = (
        uri.query(),
        body.is_null() || body.as_object().is_some_and(|o| o.is_empty()),
    ) {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap_or_default();
        body = Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    }
    let response = answer(&inner, &method, headers, body);
    called.notify_waiters();
    match response {
        Some(r) => r,
        None => std::future::pending().await,
    }
}

/// The answer to one call; `None` for a call that gets none.
fn answer(inner: &Mutex<Inner>, method: &str, headers: HeaderMap, body: Value) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut g = inner.lock().unwrap();
    let at_ms = g.clock.now_ms();
    g.calls.push(Call {
        method: method.to_string(),
        body: body.clone(),
        auth,
        response: Value::Null,
        at_ms,
    });
    if let Some(pos) = g.failures.iter().position(|(m, _)| *m == method) {
        let (_, failure) = g.failures.remove(pos).unwrap();
        return Some(match failure {
            Failure::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", retry_after_secs.to_string()),
                    ("content-type", "application/json".to_string()),
                ],
                json!({ "ok": false, "error": "ratelimited" }).to_string(),
            )
                .into_response(),
            Failure::ServerError => (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
            Failure::Api(code) => Json(json!({ "ok": false, "error": code })).into_response(),
            Failure::AcceptThenHang => {
                accept_then_hang(&mut g, method, &body);
                return None;
            }
        });
    }
    let channel = body.get("channel").cloned().unwrap_or(json!("C0"));
    let response = match method {
        "chat.postMessage" => post(&mut g, &body),
        "conversations.history" => {
            let oldest: f64 = body["oldest"].as_str().and_then(|o| o.parse().ok()).unwrap_or(0.0);
            let with_metadata = body["include_all_metadata"] == "true";
            let channel = body["channel"].as_str().unwrap_or("").to_string();
            let mut messages: Vec<Value> = g
                .history
                .get(&channel)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m["ts"].as_str().and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0) >= oldest)
                .map(|mut m| {
                    if !with_metadata {
                        m.as_object_mut().map(|o| o.remove("metadata"));
                    }
                    m
                })
                .collect();
            messages.reverse();
            json!({ "ok": true, "messages": messages, "has_more": false })
        }
        "chat.update" => {
            json!({ "ok": true, "channel": channel, "ts": body.get("ts"), "message": { "text": body.get("text") } })
        }
        "chat.postEphemeral" => json!({ "ok": true, "message_ts": "1.1" }),
        "views.open" => {
            let mut view = body.get("view").cloned().unwrap_or(json!({}));
            view["id"] = json!("V1");
            view["team_id"] = json!("T1");
            view["hash"] = json!("h1");
            view["state"] = json!({ "values": {} });
            json!({ "ok": true, "view": view })
        }
        _ => json!({ "ok": false, "error": "unknown_method" }),
    };
    if let Some(last) = g.calls.last_mut() {
        last.response = response.clone();
    }
    Some(Json(response).into_response())
}

/// Posts a message: it is in the channel's history from now on.
fn post(g: &mut Inner, body: &Value) -> Value {
    let channel = body.get("channel").cloned().unwrap_or(json!("C0"));
    let ts = format!("{}.{:06}", g.clock.now_ms() / 1000, g.next_ts);
    g.next_ts += 1;
    let mut message = json!({ "type": "message", "ts": ts, "text": body.get("text"), "bot_id": "B1" });
    if let Some(m) = body.get("metadata") {
        message["metadata"] = m.clone();
    }
    g.history
        .entry(channel.as_str().unwrap_or("C0").to_string())
        .or_default()
        .push(message);
    json!({ "ok": true, "channel": channel, "ts": ts, "message": { "ts": ts, "text": body.get("text") } })
}

/// Carries out the call (a post is in the channel) and records the answer it would have
/// had; the caller never gets it.
fn accept_then_hang(g: &mut Inner, method: &str, body: &Value) {
    let response = match method {
        "chat.postMessage" => post(g, body),
        _ => json!({ "ok": true }),
    };
    if let Some(last) = g.calls.last_mut() {
        last.response = response;
    }
}
