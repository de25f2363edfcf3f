//! An in-process fake of the Slack Web API that records every call. The real
//! slack-morphism client talks to it over HTTP.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub auth: Option<String>,
    /// What the fake answered (success bodies only).
    pub response: Value,
}

/// A scripted answer instead of success.
#[derive(Debug, Clone)]
pub enum Failure {
    RateLimited { retry_after_secs: u64 },
    ServerError,
    Api(&'static str),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    failures: VecDeque<(String, Failure)>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    pub api_url: String,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            next_ts: 1,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/{method}", any(handle))
            .with_state(inner.clone());
        let addr = super::serve_fake(app).await;
        Self {
            inner,
            api_url: format!("http://{addr}/api"),
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
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse_body(&headers, &body);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut g = inner.lock().unwrap();
    g.calls.push(Call {
        method: method.clone(),
        body: body.clone(),
        auth,
        response: Value::Null,
    });
    if let Some(pos) = g.failures.iter().position(|(m, _)| *m == method) {
        let (_, failure) = g.failures.remove(pos).unwrap();
        return match failure {
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
        };
    }
    let channel = body.get("channel").cloned().unwrap_or(json!("C0"));
    let response = match method.as_str() {
        "chat.postMessage" => {
            let ts = format!("{}.000100", 1_700_000_000 + g.next_ts);
            g.next_ts += 1;
            json!({ "ok": true, "channel": channel, "ts": ts, "message": { "ts": ts, "text": body.get("text") } })
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
    Json(response).into_response()
}
