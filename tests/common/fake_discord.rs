//! An in-process fake of the Discord HTTP API (the routes releasebot uses) that records
//! every call. serenity's real HTTP client talks to it through its proxy setting.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Call {
    /// `send_message`, `edit_message`, `followup`, `create_dm`, `register`, or `METHOD path`.
    pub route: String,
    /// The channel (messages), the interaction token (followups).
    pub target: String,
    /// The message id, for edits.
    pub message: String,
    pub body: Value,
    pub auth: Option<String>,
    pub response: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Routes whose next call answers 429.
    rate_limited: VecDeque<String>,
    /// Routes whose next call is carried out but never answered.
    hang: VecDeque<String>,
    /// Messages created with `enforce_nonce`, by nonce: Discord returns the existing
    /// message when the same author sends the same nonce again within a few minutes.
    nonces: HashMap<String, Value>,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeDiscord {
    inner: Arc<Mutex<Inner>>,
    called: Arc<Notify>,
    pub api_url: String,
}

pub fn user_json(id: &str) -> Value {
    json!({ "id": id, "username": format!("user{id}"), "discriminator": "0", "global_name": null, "avatar": null, "bot": false })
}

pub fn message_json(id: &str, channel: &str, body: &Value) -> Value {
    json!({
        "id": id, "channel_id": channel, "author": user_json("999"),
        "content": body.get("content").cloned().unwrap_or(json!("")),
        "timestamp": "2026-11-21T09:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
        "components": body.get("components").cloned().unwrap_or(json!([])),
        "pinned": false, "type": 0, "flags": body.get("flags").cloned().unwrap_or(json!(0)),
    })
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            next_id: 5000,
            ..Default::default()
        }));
        let called = Arc::new(Notify::new());
        let app = Router::new()
            .fallback(handle)
            .with_state((inner.clone(), called.clone()));
        let addr = super::serve_fake(app).await;
        Self {
            inner,
            called,
            api_url: format!("http://{addr}/api/v10"),
        }
    }

    /// The next call of `route` is carried out (a message is created) but never answered.
    pub fn hang_next(&self, route: &str) {
        self.inner.lock().unwrap().hang.push_back(route.to_string());
    }

    /// Waits until `route` was called `n` times.
    pub async fn wait_for(&self, route: &str, n: usize) {
        loop {
            let called = self.called.notified();
            tokio::pin!(called);
            called.as_mut().enable();
            if self.calls().iter().filter(|c| c.route == route).count() >= n {
                return;
            }
            called.await;
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The next call of `route` answers 429.
    pub fn rate_limit_next(&self, route: &str) {
        self.inner.lock().unwrap().rate_limited.push_back(route.to_string());
    }
}

async fn handle(
    State((inner, called)): State<(Arc<Mutex<Inner>>, Arc<Notify>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, hang) = answer(&inner, method, uri, headers, body);
    called.notify_waiters();
    if hang {
        std::future::pending::<()>().await;
    }
    response
}

/// The answer to one call, and whether the caller never gets it.
fn answer(inner: &Mutex<Inner>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> (Response, bool) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().trim_start_matches("/api/v10/").to_string();
    let parts: Vec<&str> = path.split('/').collect();
    let (route, target, message) = match (method.as_str(), parts.as_slice()) {
        ("POST", ["channels", c, "messages"]) => ("send_message", c.to_string(), String::new()),
        ("PATCH", ["channels", c, "messages", m]) => ("edit_message", c.to_string(), m.to_string()),
        ("POST", ["webhooks", _, token]) => ("followup", token.to_string(), String::new()),
        ("POST", ["users", "@me", "channels"]) => ("create_dm", String::new(), String::new()),
        ("PUT", ["applications", _, "commands"]) => ("register", String::new(), String::new()),
        _ => ("unknown", path.clone(), String::new()),
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut g = inner.lock().unwrap();
    g.calls.push(Call {
        route: route.to_string(),
        target: target.clone(),
        message: message.clone(),
        body: body.clone(),
        auth,
        response: Value::Null,
    });
    if let Some(pos) = g.rate_limited.iter().position(|r| r == route) {
        g.rate_limited.remove(pos);
        return (
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "2"), ("content-type", "application/json")],
                json!({ "message": "You are being rate limited.", "retry_after": 2.0, "global": false, "code": 0 })
                    .to_string(),
            )
                .into_response(),
            false,
        );
    }
    let hang = g
        .hang
        .iter()
        .position(|r| r == route)
        .map(|pos| g.hang.remove(pos))
        .is_some();
    g.next_id += 1;
    let id = g.next_id.to_string();
    let nonce = body["nonce"]
        .as_str()
        .filter(|_| body["enforce_nonce"] == true)
        .map(str::to_string);
    let response = match route {
        "send_message" => match nonce.as_ref().and_then(|n| g.nonces.get(n)) {
            Some(existing) => existing.clone(),
            None => {
                let m = message_json(&id, &target, &body);
                if let Some(n) = nonce {
                    g.nonces.insert(n, m.clone());
                }
                m
            }
        },
        "edit_message" => message_json(&message, &target, &body),
        "followup" => message_json(&id, "900", &body),
        "create_dm" => {
            let user = body["recipient_id"].as_str().unwrap_or("1").to_string();
            json!({ "id": format!("7{user}"), "type": 1, "last_message_id": null, "recipients": [user_json(&user)] })
        }
        "register" => {
            let cmds: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!((8000 + i).to_string());
                    c["application_id"] = json!("4242");
                    c["version"] = json!("1");
                    c["default_member_permissions"] = Value::Null;
                    c
                })
                .collect();
            json!(cmds)
        }
        _ => {
            return (
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "message": "Unknown route", "code": 0 })),
                )
                    .into_response(),
                false,
            );
        }
    };
    if let Some(last) = g.calls.last_mut() {
        last.response = response.clone();
    }
    (Json(response).into_response(), hang)
}
