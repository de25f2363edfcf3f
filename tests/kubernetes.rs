//! The `kubernetes` swimlane hook, run by the real `kube` client against a fake of the
//! Kubernetes API's namespace endpoints: a lane's namespace is created labelled with
//! lane, owner and expiry; one that exists already counts as created; deleting one that
//! is gone counts as deleted; a failing API is retried and reported.

mod common;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Cluster {
    namespaces: BTreeMap<String, Value>,
    calls: Vec<(String, String, Option<String>)>,
    /// Answer the next request with 500.
    fail_next: bool,
}

type Shared = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn auth(h: &HeaderMap) -> Option<String> {
    h.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn create(State(c): State<Shared>, h: HeaderMap, Json(ns): Json<Value>) -> Response {
    let mut c = c.lock().unwrap();
    let name = ns["metadata"]["name"].as_str().unwrap_or_default().to_string();
    c.calls.push(("POST".into(), name.clone(), auth(&h)));
    if std::mem::take(&mut c.fail_next) {
        return status(500, "InternalError", "etcd is unavailable".into());
    }
    if c.namespaces.contains_key(&name) {
        return status(409, "AlreadyExists", format!("namespaces \"{name}\" already exists"));
    }
    let mut stored = ns.clone();
    stored["kind"] = json!("Namespace");
    stored["apiVersion"] = json!("v1");
    stored["status"] = json!({ "phase": "Active" });
    c.namespaces.insert(name, stored.clone());
    (StatusCode::CREATED, Json(stored)).into_response()
}

async fn remove(State(c): State<Shared>, h: HeaderMap, Path(name): Path<String>) -> Response {
    let mut c = c.lock().unwrap();
    c.calls.push(("DELETE".into(), name.clone(), auth(&h)));
    if std::mem::take(&mut c.fail_next) {
        return status(500, "InternalError", "etcd is unavailable".into());
    }
    match c.namespaces.remove(&name) {
        Some(mut ns) => {
            ns["status"] = json!({ "phase": "Terminating" });
            (StatusCode::OK, Json(ns)).into_response()
        }
        None => status(404, "NotFound", format!("namespaces \"{name}\" not found")),
    }
}

async fn fake_kubernetes() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/namespaces", post(create))
        .route("/api/v1/namespaces/{name}", delete(remove))
        .with_state(shared.clone());
    let addr = serve_fake(app).await;
    (format!("http://{addr}"), shared)
}

#[tokio::test]
async fn the_kubernetes_hook_creates_and_deletes_the_lanes_namespace_idempotently() {
    let (url, cluster) = fake_kubernetes().await;
    // The token comes from the variable the configuration names (never from the file).
    std::env::set_var("RELEASEBOT_TEST_KUBE_TOKEN", "kube-token");
    let config = format!(
        "{}\n[swimlanes]\nnamespace = \"lane-{{lane}}\"\nhook_backoff = \"10s\"\n[[swimlanes.hooks]]\nprovider = \"kubernetes\"\napi_url = \"{url}\"\ntoken_env = \"RELEASEBOT_TEST_KUBE_TOKEN\"\n",
        team_config()
    );
    let bot = TestBot::with("en", &config).await;
    // Someone made the namespace by hand already: creating it again is not a failure.
    cluster.lock().unwrap().namespaces.insert(
        "lane-login-v2".into(),
        json!({ "metadata": { "name": "lane-login-v2" } }),
    );
    bot.command(ALICE, "/swimlane create login-v2 web").await;
    bot.command(ALICE, "/swimlane create checkout").await;
    let calls = bot.settle().await;
    let texts: Vec<String> = updates(&calls).iter().map(|c| TestBot::text_of(c)).collect();
    assert!(
        texts.iter().any(|t| t.contains("login-v2* · active"))
            && texts.iter().any(|t| t.contains("checkout* · active")),
        "both lanes are active: {texts:#?}"
    );
    {
        let c = cluster.lock().unwrap();
        // The two lanes are provisioned at once: in either order.
        let mut calls = c.calls.clone();
        calls.sort();
        assert_eq!(
            calls,
            [
                (
                    "POST".to_string(),
                    "lane-checkout".to_string(),
                    Some("Bearer kube-token".to_string())
                ),
                (
                    "POST".to_string(),
                    "lane-login-v2".to_string(),
                    Some("Bearer kube-token".to_string())
                ),
            ]
        );
        let labels = &c.namespaces["lane-checkout"]["metadata"]["labels"];
        assert_eq!(labels["releasebot.io/swimlane"], "checkout");
        assert_eq!(labels["releasebot.io/owner"], "slack.UALICE");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "releasebot");
        let expires: i64 = labels["releasebot.io/expires"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            expires * 1000,
            START_MS + 7 * 86_400_000,
            "deleted on day 7 unless used"
        );
    }

    // The API fails once: the deletion is reported and retried, then the namespace goes.
    cluster.lock().unwrap().fail_next = true;
    bot.command(ALICE, "/swimlane delete checkout --confirm").await;
    let calls = bot.settle().await;
    let failed: Vec<String> = posts(&calls)
        .iter()
        .map(|c| TestBot::text_of(c))
        .filter(|t| t.contains("failed (attempt 1)"))
        .collect();
    assert_eq!(failed.len(), 1, "{calls:#?}");
    assert!(
        failed[0].contains("kubernetes: deleting namespace lane-checkout"),
        "{}",
        failed[0]
    );
    assert!(cluster.lock().unwrap().namespaces.contains_key("lane-checkout"));
    bot.clock.set_ms(bot.clock.now_ms() + 10_000);
    let calls = bot.settle().await;
    assert!(updates(&calls)
        .iter()
        .any(|c| TestBot::text_of(c).contains("was deleted at")));
    assert!(!cluster.lock().unwrap().namespaces.contains_key("lane-checkout"));

    // Gone already (deleted by hand): deleting the lane still succeeds.
    cluster.lock().unwrap().namespaces.clear();
    bot.command(ALICE, "/swimlane delete login-v2 --confirm").await;
    let calls = bot.settle().await;
    assert!(
        updates(&calls)
            .iter()
            .any(|c| TestBot::text_of(c).contains("was deleted at")),
        "{calls:#?}"
    );
    let deletes = cluster
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(m, n, _)| m == "DELETE" && n == "lane-login-v2")
        .count();
    assert_eq!(deletes, 1);
    bot.finish().await;
}
