//! The `http` and `health` providers against local services, through a whole release.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Backend {
    webhooks: Mutex<Vec<(Option<String>, Value)>>,
    status_polls: AtomicU32,
    health_hits: AtomicU32,
}

async fn backend() -> (String, Arc<Backend>) {
    let state = Arc::new(Backend::default());
    let app = axum::Router::new()
        .route(
            "/deploy",
            post(
                |State(s): State<Arc<Backend>>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    s.webhooks.lock().unwrap().push((key, body));
                    StatusCode::ACCEPTED
                },
            ),
        )
        .route(
            "/deploy/status",
            get(|State(s): State<Arc<Backend>>| async move {
                let n = s.status_polls.fetch_add(1, Ordering::SeqCst);
                Json(json!({ "status": if n < 2 { "running" } else { "succeeded" } }))
            }),
        )
        .route(
            "/health",
            get(|State(s): State<Arc<Backend>>| async move {
                // Down for the first two probes, then up.
                if s.health_hits.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn a_webhook_deploy_is_polled_to_completion_and_health_needs_consecutive_successes() {
    let (base, state) = backend().await;
    let plan = format!(
        r#"
[plans.hooks]
name = "Webhook release"
template = "CUSTOM"
steps = [
  {{ id = "deploy", name = "Deploy via Jenkins", type = "DEPLOY", provider = "http", url = "{base}/deploy", status_url = "{base}/deploy/status", interval_secs = 10, timeout_secs = 600 }},
  {{ id = "health", name = "Health", type = "HEALTH_CHECK", provider = "health", url = "{base}/health", successes = 2, interval_secs = 5, requires = ["deploy"], timeout_secs = 300 }},
  {{ id = "shift", name = "All traffic", type = "TRAFFIC_SHIFT", weight = 100 }},
]
"#
    );
    let config = team_config().replace("plan = \"canary\"", "plan = \"hooks\"") + &plan;
    let bot = TestBot::with("en", &config).await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let start = bot.clock.now_ms();
    let mut calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
    // The deploy is polled and health checked on the test clock.
    calls.extend(bot.settle_through_time().await);

    let report = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("📋 REL-1"))
        .expect("a report");
    assert!(
        TestBot::text_of(report).contains("released"),
        "{}",
        TestBot::text_of(report)
    );
    let text = TestBot::text_of(report);
    insta::assert_snapshot!(without_token(&text), @"
    *📋 REL-1 · payments 2.1.0 released (simulated)*
    *Plan*
    Webhook release
    *Duration*
    35s
    *Traffic*
    new 100% · old 0%
    ✅ Deploy via Jenkins (09:00–09:00) — succeeded
    ✅ Health (09:00–09:00) — 2 consecutive successes
    ✅ All traffic (09:00–09:00) — traffic: new 100% · old 0%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");

    let hooks = state.webhooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "one webhook call");
    assert_eq!(hooks[0].0.as_deref(), Some("REL-1-deploy-1"), "with an idempotency key");
    assert_eq!(hooks[0].1["application"], "payments");
    assert_eq!(hooks[0].1["fields"]["md5"], MD5);
    assert_eq!(
        state.status_polls.load(Ordering::SeqCst),
        3,
        "polled until it succeeded"
    );
    assert_eq!(
        state.health_hits.load(Ordering::SeqCst),
        4,
        "two failures reset the count; then two in a row"
    );
    // Polling followed the configured intervals on the test clock: 2 × 10 s + 3 × 5 s.
    assert!(bot.clock.now_ms() - start >= 35_000);
    bot.finish().await;
}

async fn fake_prometheus(new_success: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let app = axum::Router::new().route(
        "/api/v1/query",
        get(move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                seen.lock().unwrap().push(query.clone());
                let value = match query.as_str() {
                    "new_ok" => new_success,
                    "old_ok" => "0.998",
                    "new_lat" => "0.12",
                    "old_lat" => "0.13",
                    _ => "NaN",
                };
                Json(json!({ "status": "success", "data": { "resultType": "vector", "result": [{ "metric": {}, "value": [1.0, value] }] } }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), queries)
}

fn prometheus_plan(url: &str) -> String {
    format!(
        r#"
[plans.prom]
name = "Canary watched by Prometheus"
template = "CANARY"
steps = [
  {{ id = "shift", name = "Shift 10%", type = "TRAFFIC_SHIFT", weight = 10, on_failure = "rollback" }},
  {{ id = "watch", name = "Watch", type = "MONITOR", provider = "prometheus", url = "{url}", duration_secs = 180, queries = {{ new_success = "new_ok", old_success = "old_ok", new_p95 = "new_lat", old_p95 = "old_lat" }}, thresholds = {{ min_success_rate = 99.5, max_p95_ms = 800 }}, on_failure = "rollback" }},
  {{ id = "all", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},
]
"#
    )
}

async fn release_with(config: &str) -> (TestBot, Vec<common::fake_slack::Call>) {
    let bot = TestBot::with("en", config).await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = bot.approve_to_release(&test_msg).await;
    (bot, calls)
}

#[tokio::test]
async fn prometheus_queries_decide_a_monitor_window() {
    let (url, queries) = fake_prometheus("0.999").await;
    let config = team_config().replace("plan = \"canary\"", "plan = \"prom\"") + &prometheus_plan(&url);
    let (bot, calls) = release_with(&config).await;
    let report = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("📋 REL-1"))
        .expect("a report");
    let text = TestBot::text_of(report);
    insta::assert_snapshot!(without_token(&text), @"
    *📋 REL-1 · payments 2.1.0 released (simulated)*
    *Plan*
    Canary watched by Prometheus
    *Duration*
    3m
    *Traffic*
    new 100% · old 0%
    ✅ Shift 10% (09:00–09:00) — traffic: new 10% · old 90%
    ✅ Watch (09:00–09:03) — healthy: new 99.9% / 120 ms · old 99.8% / 130 ms
    ✅ Shift 100% (09:03–09:03) — traffic: new 100% · old 0%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    // One sample a minute over three minutes, four queries each.
    let n = queries.lock().unwrap().len();
    assert!((12..=16).contains(&n), "{n} queries");
    bot.finish().await;

    let (url, _) = fake_prometheus("0.9").await;
    let config = team_config().replace("plan = \"canary\"", "plan = \"prom\"") + &prometheus_plan(&url);
    let (bot, calls) = release_with(&config).await;
    let alert = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("🚨 REL-1 · Watch failed"))
        .expect("an alert");
    assert!(TestBot::text_of(alert).contains("new version success 90.0% &lt; 99.5% (old 99.8%)"));
    assert!(calls
        .iter()
        .any(|c| TestBot::text_of(c).contains("release rolled back")));
    bot.finish().await;
}

#[tokio::test]
async fn a_script_deploys_batch_by_batch_with_only_the_tickets_variables() {
    // Something secret in the daemon's own environment must not reach scripts.
    std::env::set_var("RELEASEBOT_TEST_DAEMON_SECRET", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deploy.log");
    let command = format!(
        "echo \"$RELEASEBOT_BATCH $RELEASEBOT_TARGETS $RELEASEBOT_FIELD_VERSION ${{RELEASEBOT_TEST_DAEMON_SECRET:-none}}\" >> '{}'",
        out.display()
    );
    let plan = format!(
        r#"
[plans.batches]
name = "Batches"
template = "ROLLING"
steps = [
  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", command = {command:?}, batches = {{ first = 1, size = 2 }} }},
]
"#
    );
    let config = team_config().replace("plan = \"canary\"", "plan = \"batches\"") + &plan;
    let bot = TestBot::with("en", &config).await;
    let first = bot
        .submit_values(ALICE, &answers_with(&[("scope", "web-1,web-2,web-3")]))
        .await;
    let calls = bot.approve_to_release(&first).await;
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "1/2 web-1 2.1.0 none\n2/2 web-2,web-3 2.1.0 none\n",
        "a small first batch, then the rest; ticket fields as variables; no daemon secrets"
    );
    let report = calls.iter().find(|c| TestBot::text_of(c).contains("📋 REL-1")).unwrap();
    assert!(
        TestBot::text_of(report).contains("Deploy (") && TestBot::text_of(report).contains("all 2 batches succeeded")
    );
    bot.finish().await;
}

fn verify_plan() -> String {
    r#"
[plans.verify]
name = "Verify, then switch"
template = "CUSTOM"
steps = [
  { id = "verify", name = "Verify package", type = "VERIFY_PACKAGE", provider = "download", timeout_secs = 60, on_failure = "abort" },
  { id = "all", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100, requires = ["verify"] },
]
"#
    .to_string()
}

/// Serves `/pkg.tgz` with these bytes.
async fn package_server(bytes: &'static [u8]) -> String {
    let app = axum::Router::new().route("/pkg.tgz", get(move || async move { bytes }));
    format!("http://{}/pkg.tgz", serve_fake(app).await)
}

#[tokio::test]
async fn verify_package_downloads_the_build_and_checks_its_md5() {
    const PACKAGE: &[u8] = b"payments 2.1.0 build artefact\n";
    // md5 of PACKAGE, as `md5sum` prints it.
    let good = {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(PACKAGE))
    };
    let url = package_server(PACKAGE).await;
    let config = team_config().replace("plan = \"canary\"", "plan = \"verify\"") + &verify_plan();

    let bot = TestBot::with("en", &config).await;
    let first = bot
        .submit_values(
            ALICE,
            &answers_with(&[("package_url", &url), ("md5", &good.to_uppercase())]),
        )
        .await;
    let calls = bot.approve_to_release(&first).await;
    let report = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("📋 REL-1"))
        .expect("a report");
    let text = TestBot::text_of(report);
    assert!(text.contains("released"), "{text}");
    assert!(
        text.contains(&format!("package verified: {} bytes, MD5 {good}", PACKAGE.len())),
        "{text}"
    );

    let bot = TestBot::with("en", &config).await;
    let wrong = "0123456789abcdef0123456789abcdef";
    let first = bot
        .submit_values(ALICE, &answers_with(&[("package_url", &url), ("md5", wrong)]))
        .await;
    let calls = bot.approve_to_release(&first).await;
    let alert = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("🚨 REL-1 · Verify package failed"))
        .expect("an alert");
    let text = TestBot::text_of(alert);
    assert!(
        text.contains(&format!("MD5 mismatch: the ticket says {wrong}, the package is {good}")),
        "{text}"
    );
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("traffic: new 100%")),
        "nothing is switched to an unverified build"
    );
    bot.finish().await;
}
