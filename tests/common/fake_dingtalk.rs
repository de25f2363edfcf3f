//! An in-process fake of the DingTalk open API and of a group robot webhook that
//! records every call. releasebot's own DingTalk client talks to it over HTTP.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Call {
    /// `token`, `card_create`, `card_update`, `group_send`, `direct_send`, `webhook`.
    pub route: String,
    pub query: String,
    pub body: Value,
    pub token: Option<String>,
    /// The HTTP status the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    rate_limited: VecDeque<String>,
    /// Routes whose next call is carried out but never answered.
    hang: VecDeque<String>,
    /// Cards created, by `outTrackId`: updating another one is refused (4xx).
    cards: HashSet<String>,
    tokens: u64,
    next: u64,
    /// Where `connections/open` sends Stream clients.
    stream_endpoint: Option<String>,
}

#[derive(Clone)]
pub struct FakeDingTalk {
    inner: Arc<Mutex<Inner>>,
    called: Arc<Notify>,
    pub api_url: String,
    pub webhook_url: String,
}

impl FakeDingTalk {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let called = Arc::new(Notify::new());
        let app = Router::new()
            .fallback(handle)
            .with_state((inner.clone(), called.clone()));
        let addr = super::serve_fake(app).await;
        Self {
            inner,
            called,
            api_url: format!("http://{addr}"),
            webhook_url: format!("http://{addr}/robot/send?access_token=hook-token"),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Stream clients are sent to this websocket endpoint.
    pub fn set_stream_endpoint(&self, url: &str) {
        self.inner.lock().unwrap().stream_endpoint = Some(url.to_string());
    }

    /// The next call of `route` answers 429 with `Retry-After: 2`.
    pub fn rate_limit_next(&self, route: &str) {
        self.inner.lock().unwrap().rate_limited.push_back(route.to_string());
    }

    /// The next call of `route` is carried out (a card is created) but never answered.
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
    let route = match (method.as_str(), uri.path()) {
        ("POST", "/v1.0/oauth2/accessToken") => "token",
        ("POST", "/v1.0/card/instances/createAndDeliver") => "card_create",
        ("PUT", "/v1.0/card/instances") => "card_update",
        ("POST", "/v1.0/card/callbacks/register") => "callback_register",
        ("POST", "/topapi/v2/user/get") => "user_get",
        ("POST", "/v1.0/robot/groupMessages/send") => "group_send",
        ("POST", "/v1.0/robot/oToMessages/batchSend") => "direct_send",
        ("POST", "/robot/send") => "webhook",
        ("POST", "/v1.0/gateway/connections/open") => "stream_open",
        _ => "unknown",
    };
    // The new API takes the token in a header; the older `topapi` in the query.
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            uri.query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
                .map(str::to_string)
        });
    let mut g = inner.lock().unwrap();
    g.calls.push(Call {
        route: route.to_string(),
        query: uri.query().unwrap_or("").to_string(),
        body: body.clone(),
        token: token.clone(),
        status: 200,
    });
    if let Some(pos) = g.rate_limited.iter().position(|r| r == route) {
        g.rate_limited.remove(pos);
        if let Some(last) = g.calls.last_mut() {
            last.status = 429;
        }
        return (
            super::too_many_requests(json!({ "code": "Throttling", "message": "too many requests" })),
            false,
        );
    }
    if !matches!(route, "token" | "webhook" | "stream_open") && token.is_none() {
        return (
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "code": "InvalidAuthentication", "message": "no token" })),
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
    g.next += 1;
    let n = g.next;
    let track = body["outTrackId"].as_str().unwrap_or("").to_string();
    if route == "card_update" && !g.cards.contains(&track) {
        if let Some(last) = g.calls.last_mut() {
            last.status = 400;
        }
        return (
            (
                StatusCode::BAD_REQUEST,
                Json(json!({ "code": "param.cardInstanceNotExist", "message": "card instance not found" })),
            )
                .into_response(),
            false,
        );
    }
    if route == "card_create" {
        g.cards.insert(track);
    }
    let response = match route {
        "token" => {
            if body["appSecret"] != "dingtalk-app-secret" {
                return (
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({ "code": "invalidClientSecret", "message": "bad secret" })),
                    )
                        .into_response(),
                    false,
                );
            }
            g.tokens += 1;
            Json(json!({ "accessToken": format!("dt-token-{}", g.tokens), "expireIn": 7200 })).into_response()
        }
        "card_create" | "card_update" => Json(json!({ "success": true, "result": {} })).into_response(),
        // The address book: everyone but `nobody01` has a name.
        "user_get" if body["userid"] == "nobody01" => {
            Json(json!({ "errcode": 60121, "errmsg": "找不到该用户" })).into_response()
        }
        "user_get" => Json(json!({
            "errcode": 0,
            "result": { "userid": body["userid"], "name": format!("{} 同学", body["userid"].as_str().unwrap_or("")) },
        }))
        .into_response(),
        // DingTalk answers with what it registered.
        "callback_register" => Json(json!({
            "success": true,
            "result": { "callbackUrl": body["callbackUrl"], "apiSecret": body["apiSecret"] },
        }))
        .into_response(),
        "group_send" | "direct_send" => Json(json!({ "processQueryKey": format!("q-{n}") })).into_response(),
        "webhook" => Json(json!({ "errcode": 0, "errmsg": "ok" })).into_response(),
        "stream_open" if body["clientSecret"] == "dingtalk-app-secret" => {
            Json(json!({ "endpoint": g.stream_endpoint.clone().unwrap_or_default(), "ticket": "ticket-1" }))
                .into_response()
        }
        "stream_open" => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "code": "InvalidAuthentication" })),
        )
            .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "code": "NotFound", "message": "unknown route" })),
        )
            .into_response(),
    };
    (response, hang)
}
