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

// ------------------------------------------------------------------ the `kubernetes` provider

use common::fake_kubernetes::{self as fake, digest_of};

/// The team's configuration releasing payments with a rolling update of its Deployment.
fn rolling(url: &str) -> String {
    team_config().replace("plan = \"canary\"", "plan = \"k8s\"")
        + &format!(
            r#"
[plans.k8s]
name = "Rolling on Kubernetes"
template = "ROLLING"
steps = [
  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "kubernetes", namespace = "{{application}}", deployment = "{{application}}", container = "app", api_url = "{url}", token_env = "RELEASEBOT_TEST_KUBE_TOKEN", timeout_secs = 600, on_failure = "rollback" }},
  {{ id = "health", name = "Health check", type = "HEALTH_CHECK", provider = "kubernetes", namespace = "{{application}}", deployment = "{{application}}", container = "app", api_url = "{url}", token_env = "RELEASEBOT_TEST_KUBE_TOKEN", on_failure = "rollback" }},
]
"#
        )
}

/// A bot on `config` that takes REL-1 through every stage to its release; what it sent.
async fn released(config: &str) -> (TestBot, Vec<common::fake_slack::Call>) {
    let bot = TestBot::with("en", config).await;
    let stage = bot.submit_release(ALICE, MD5).await;
    let calls = bot.approve_to_release(&stage).await;
    (bot, calls)
}

/// The text of the message among `calls` that has `needle`, page tokens redacted.
fn text_with(calls: &[common::fake_slack::Call], needle: &str) -> String {
    let found = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains(needle))
        .unwrap_or_else(|| panic!("no message with {needle:?}"));
    without_token(&TestBot::text_of(found))
}

/// Every request the provider made is one its Role allows (`executor::kubernetes::RBAC`):
/// the Role in `deploy/kubernetes/` lists exactly what releasebot uses.
fn assert_allowed_by_the_role(cluster: &fake::Shared) {
    use releasebot::executor::kubernetes::RBAC;
    for (method, path, _) in &cluster.lock().unwrap().calls {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // /api/v1/namespaces/NS/RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/…
        let (group, rest) = match parts[0] {
            "api" => ("", &parts[2..]),
            _ => (parts[1], &parts[3..]),
        };
        let resource = match rest.get(4) {
            Some(sub) => format!("{}/{sub}", rest[2]),
            None => rest[2].to_string(),
        };
        let named = rest.len() > 3;
        let verb = match (method.as_str(), named) {
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            (m, _) => panic!("unexpected method {m}"),
        };
        assert!(
            RBAC.iter()
                .any(|(g, r, verbs)| *g == group && *r == resource && verbs.contains(&verb)),
            "{method} {path}: {verb} on {group}/{resource} is not in the Role"
        );
    }
}

#[test]
fn the_role_in_deploy_is_the_one_the_provider_needs() {
    let written = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/role.yaml")).unwrap();
    assert_eq!(written, releasebot::executor::kubernetes::role_yaml("payments"));
}

/// A Deployment change as the fake records it.
fn change(name: &str, replicas: i64, image: &str) -> (String, i64, String) {
    (name.to_string(), replicas, image.to_string())
}

async fn cluster_with_payments() -> (String, fake::Shared) {
    std::env::set_var("RELEASEBOT_TEST_KUBE_TOKEN", "kube-token");
    let (url, cluster) = fake::start().await;
    cluster.lock().unwrap().deployments.insert(
        ("payments".into(), "payments".into()),
        fake::deployment("payments", "payments", "app", "registry.example.com/payments:2.0.0", 3),
    );
    (url, cluster)
}

fn image(cluster: &fake::Shared) -> (String, i64) {
    let c = cluster.lock().unwrap();
    let d = &c.deployments[&("payments".to_string(), "payments".to_string())];
    (
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string(),
        d["spec"]["replicas"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_rolling_release_sets_the_image_once_and_waits_for_the_rollout() {
    let (url, cluster) = cluster_with_payments().await;
    let (bot, calls) = released(&rolling(&url)).await;
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.1.0 released*
    *Plan*
    Rolling on Kubernetes
    *Duration*
    2s
    *Traffic*
    new 100% · old 0%
    ✅ Deploy (09:00–09:00) — deployment payments runs registry.example.com/payments:2.1.0 on every replica
    ✅ Health check (09:00–09:00) — deployment payments: 3 replica(s) ready, none failing
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_eq!(image(&cluster), ("registry.example.com/payments:2.1.0".to_string(), 3));
    let patches: Vec<(String, String, Option<String>)> = cluster
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .cloned()
        .collect();
    assert_eq!(
        patches,
        [(
            "PATCH".to_string(),
            "/apis/apps/v1/namespaces/payments/deployments/payments?fieldManager=releasebot".to_string(),
            Some("application/strategic-merge-patch+json".to_string())
        )],
        "one patch, under releasebot's field manager"
    );
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn a_version_that_cannot_start_is_rolled_back_to_the_digest_that_ran() {
    let (url, cluster) = cluster_with_payments().await;
    cluster
        .lock()
        .unwrap()
        .unpullable
        .insert("registry.example.com/payments:2.1.0".into());
    let (bot, calls) = released(&rolling(&url)).await;
    insta::assert_snapshot!(text_with(&calls, "🚨 REL-1"), @r#"
    *🚨 REL-1 · Deploy failed*
    *Evidence*
    pod payments-new-0, container app: ImagePullBackOff: Back-off pulling image "registry.example.com/payments:2.1.0": manifest unknown
    *What happens now*
    Rolling back automatically to the old version.
    ```
    pulling image
    Back-off pulling image for pod payments-new-0
    ```
    On call: <@UOSCAR> <@UOLGA>
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    "#);
    // Back on exactly what ran before: the image by the digest its pods reported.
    assert_eq!(image(&cluster), (digest_of("registry.example.com/payments:2.0.0"), 3));
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @r#"
    *📋 REL-1 · payments 2.1.0: release rolled back*
    *Plan*
    Rolling on Kubernetes
    *Duration*
    6s
    *Traffic*
    new 0% · old 100%
    ❌ Deploy (09:00–09:00) — pod payments-new-0, container app: ImagePullBackOff: Back-off pulling image "registry.example.com/payments:2.1.0": manifest unknown
    ⚪ Health check
    ↩️ Rollback — deployment payments back on registry.example.com/payments@sha256:3dc34fba73f64aa82671703212c84f55d07ef1828a9fa0961c0684be558b0e12 with 3 replica(s)
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    "#);
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn an_unreachable_api_server_fails_the_deploy_by_its_policy_saying_so() {
    std::env::set_var("RELEASEBOT_TEST_KUBE_TOKEN", "kube-token");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (bot, calls) = released(&rolling(&url)).await;
    let alert = text_with(&calls, "🚨 REL-1");
    assert!(
        alert.contains("the Kubernetes API could not be reached") && alert.contains("Rolling back automatically"),
        "{alert}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_missing_permission_is_named_in_the_channel() {
    let (url, cluster) = cluster_with_payments().await;
    cluster.lock().unwrap().forbid_patch = true;
    let (bot, calls) = released(&rolling(&url)).await;
    insta::assert_snapshot!(text_with(&calls, "🚨 REL-1"), @r#"
    *🚨 REL-1 · Deploy failed*
    *Evidence*
    Kubernetes refused to patch deployments in namespace payments: the service account lacks that permission (deployments.apps "payments" is forbidden: User "system:serviceaccount:releasebot:releasebot" cannot patch resource "deployments" in API group "apps" in the namespace "payments")
    *What happens now*
    Rolling back automatically to the old version.
    On call: <@UOSCAR> <@UOLGA>
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    "#);
    assert_eq!(image(&cluster), ("registry.example.com/payments:2.0.0".to_string(), 3));
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_rollout_waits_for_it_without_patching_again() {
    let (url, cluster) = cluster_with_payments().await;
    let config = rolling(&url);
    let mut bot = TestBot::with("en", &config).await;
    let test = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    // The release starts: the image is set, and the rollout is under way (the cluster
    // is slow) when the process stops.
    cluster.lock().unwrap().hold = true;
    let calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
    assert!(!calls.iter().any(|c| TestBot::text_of(c).contains("📋 REL-1")));
    assert_eq!(image(&cluster).0, "registry.example.com/payments:2.1.0");
    bot.restart_with(&config).await;
    cluster.lock().unwrap().hold = false;
    let calls = bot.settle_through_time().await;
    assert!(
        calls
            .iter()
            .any(|c| TestBot::text_of(c).contains("📋 REL-1 · payments 2.1.0 released")),
        "{calls:#?}"
    );
    let patches = cluster
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .count();
    assert_eq!(patches, 1, "the image was set once");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

/// The team's configuration releasing payments as a pod-ratio canary: 10 %, 50 %, 100 %.
fn pod_ratio(url: &str) -> String {
    let k8s = format!(
        "provider = \"kubernetes\", namespace = \"payments\", deployment = \"payments\", container = \"app\", api_url = \"{url}\", token_env = \"RELEASEBOT_TEST_KUBE_TOKEN\""
    );
    team_config().replace("plan = \"canary\"", "plan = \"pods\"")
        + &format!(
            r#"
[plans.pods]
name = "Canary by pods"
template = "CANARY"
steps = [
  {{ id = "deploy", name = "Start the canary", type = "DEPLOY", {k8s}, strategy = "canary", on_failure = "rollback" }},
  {{ id = "shift-10", name = "10%", type = "TRAFFIC_SHIFT", weight = 10, {k8s}, strategy = "canary", on_failure = "rollback" }},
  {{ id = "health", name = "Canary healthy", type = "HEALTH_CHECK", {k8s}, strategy = "canary", on_failure = "rollback" }},
  {{ id = "shift-50", name = "50%", type = "TRAFFIC_SHIFT", weight = 50, {k8s}, strategy = "canary", on_failure = "rollback" }},
  {{ id = "shift-100", name = "100%", type = "TRAFFIC_SHIFT", weight = 100, {k8s}, strategy = "canary", on_failure = "rollback" }},
]
"#
        )
}

async fn cluster_with_stable_payments(replicas: i64) -> (String, fake::Shared) {
    std::env::set_var("RELEASEBOT_TEST_KUBE_TOKEN", "kube-token");
    let (url, cluster) = fake::start().await;
    let mut d = fake::deployment(
        "payments",
        "payments",
        "app",
        "registry.example.com/payments:2.0.0",
        replicas,
    );
    d["spec"]["selector"]["matchLabels"]["track"] = serde_json::json!("stable");
    d["spec"]["template"]["metadata"]["labels"]["track"] = serde_json::json!("stable");
    cluster
        .lock()
        .unwrap()
        .deployments
        .insert(("payments".into(), "payments".into()), d);
    (url, cluster)
}

#[tokio::test]
async fn a_pod_ratio_canary_moves_ten_replicas_nine_one_five_five_none_ten_then_promotes() {
    let (url, cluster) = cluster_with_stable_payments(10).await;
    let (bot, calls) = released(&pod_ratio(&url)).await;
    let new = "registry.example.com/payments:2.1.0";
    let old = "registry.example.com/payments:2.0.0";
    assert_eq!(
        cluster.lock().unwrap().changes,
        [
            change("payments-canary", 0, new),
            // 10 %
            change("payments-canary", 1, new),
            change("payments", 9, old),
            // 50 %
            change("payments-canary", 5, new),
            change("payments", 5, old),
            // 100 %, then the stable Deployment takes the new version and the canary goes.
            change("payments-canary", 10, new),
            change("payments", 0, old),
            change("payments", 10, new),
            change("payments-canary", 0, "deleted"),
        ]
    );
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.1.0 released*
    *Plan*
    Canary by pods
    *Duration*
    8s
    *Traffic*
    new 100% · old 0%
    ✅ Start the canary (09:00–09:00) — canary payments-canary runs registry.example.com/payments:2.1.0, no traffic yet
    ✅ 10% (09:00–09:00) — traffic: new 10% · old 90%
    ✅ Canary healthy (09:00–09:00) — deployment payments-canary: 1 replica(s) ready, none failing
    ✅ 50% (09:00–09:00) — traffic: new 50% · old 50%
    ✅ 100% (09:00–09:00) — deployment payments runs registry.example.com/payments:2.1.0 on its 10 replica(s); the canary is removed
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn a_canary_needs_a_track_label_to_keep_its_pods_apart() {
    let (url, cluster) = cluster_with_payments().await;
    let (bot, calls) = released(&pod_ratio(&url)).await;
    insta::assert_snapshot!(text_with(&calls, "🚨 REL-1"), @"
    *🚨 REL-1 · Start the canary failed*
    *Evidence*
    deployment payments selects its pods by app=payments: a pod-ratio canary needs a `track` label in the stable selector (track=stable), or the canary's pods would be the stable Deployment's too
    *What happens now*
    Rolling back automatically to the old version.
    On call: <@UOSCAR> <@UOLGA>
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn a_canary_that_cannot_start_is_removed_and_the_stable_replicas_restored() {
    let (url, cluster) = cluster_with_stable_payments(10).await;
    cluster
        .lock()
        .unwrap()
        .unpullable
        .insert("registry.example.com/payments:2.1.0".into());
    let (bot, calls) = released(&pod_ratio(&url)).await;
    let new = "registry.example.com/payments:2.1.0";
    let old = "registry.example.com/payments:2.0.0";
    assert_eq!(
        cluster.lock().unwrap().changes,
        [
            change("payments-canary", 0, new),
            change("payments-canary", 1, new),
            change("payments", 9, old),
            // The canary's pod cannot pull its image: the rollout stalls, and the release
            // is rolled back — the canary removed, the stable Deployment whole again, on
            // the digest its pods ran.
            change("payments-canary", 0, "deleted"),
            change("payments", 10, &digest_of(old)),
        ]
    );
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @r#"
    *📋 REL-1 · payments 2.1.0: release rolled back*
    *Plan*
    Canary by pods
    *Duration*
    4s
    *Traffic*
    new 0% · old 100%
    ✅ Start the canary (09:00–09:00) — canary payments-canary runs registry.example.com/payments:2.1.0, no traffic yet
    ❌ 10% (09:00–09:00) — pod payments-canary-new-0, container app: ImagePullBackOff: Back-off pulling image "registry.example.com/payments:2.1.0": manifest unknown
    ⚪ Canary healthy
    ⚪ 50%
    ⚪ 100%
    ↩️ Rollback — deployment payments back on registry.example.com/payments@sha256:3dc34fba73f64aa82671703212c84f55d07ef1828a9fa0961c0684be558b0e12 with 10 replica(s)
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    "#);
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn an_ingress_nginx_canary_is_weighted_and_set_back_to_zero_on_rollback() {
    let (url, cluster) = cluster_with_payments().await;
    {
        let mut c = cluster.lock().unwrap();
        c.deployments.insert(
            ("payments".into(), "payments-canary".into()),
            fake::deployment(
                "payments",
                "payments-canary",
                "app",
                "registry.example.com/payments:2.0.0",
                1,
            ),
        );
        c.ingresses.insert(
            ("payments".into(), "payments-canary".into()),
            serde_json::json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                "metadata": { "name": "payments-canary", "namespace": "payments", "annotations": {} } }),
        );
    }
    let k8s = format!(
        "provider = \"kubernetes\", namespace = \"payments\", container = \"app\", api_url = \"{url}\", token_env = \"RELEASEBOT_TEST_KUBE_TOKEN\""
    );
    let config = team_config().replace("plan = \"canary\"", "plan = \"ingress\"")
        + &format!(
            r#"
[plans.ingress]
name = "Canary through ingress-nginx"
template = "CANARY"
steps = [
  {{ id = "deploy", name = "Deploy the canary", type = "DEPLOY", deployment = "payments-canary", {k8s}, on_failure = "rollback" }},
  {{ id = "shift-10", name = "10%", type = "TRAFFIC_SHIFT", weight = 10, deployment = "payments", ingress = "payments-canary", {k8s}, on_failure = "rollback" }},
  {{ id = "watch", name = "Watch", type = "MONITOR", duration_secs = 300, thresholds = {{ min_success_rate = 99.5 }}, on_failure = "rollback" }},
  {{ id = "shift-100", name = "100%", type = "TRAFFIC_SHIFT", weight = 100, deployment = "payments", ingress = "payments-canary", {k8s}, on_failure = "rollback" }},
]

[sim]
new_error_rate = 5.0
"#
        );
    let (bot, calls) = released(&config).await;
    let weights: Vec<(String, i64, String)> = cluster
        .lock()
        .unwrap()
        .changes
        .iter()
        .filter(|(_, _, what)| what == "canary-weight")
        .cloned()
        .collect();
    assert_eq!(
        weights,
        [
            change("payments-canary", 10, "canary-weight"),
            change("payments-canary", 0, "canary-weight")
        ],
        "10 %, then back to 0 when the monitor failed"
    );
    let annotations = cluster.lock().unwrap().ingresses[&("payments".to_string(), "payments-canary".to_string())]
        ["metadata"]["annotations"]
        .clone();
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.1.0: release rolled back (simulated)*
    *Plan*
    Canary through ingress-nginx
    *Duration*
    2s
    *Traffic*
    new 0% · old 100%
    ✅ Deploy the canary (09:00–09:00) — deployment payments-canary runs registry.example.com/payments:2.1.0 on every replica
    ✅ 10% (09:00–09:00) — traffic: new 10% · old 90%
    ❌ Watch (09:00–09:00) — new version success 95.0% &lt; 99.5% (old 99.9%)
    ⚪ 100%
    ↩️ Rollback — traffic: new 0% · old 100%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

/// payments behind an HTTPRoute of Gateway `edge`, its canary through the route's weights.
fn gateway(url: &str, cluster: &fake::Shared) -> String {
    cluster.lock().unwrap().routes.insert(
        ("payments".into(), "payments".into()),
        serde_json::json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": "payments", "namespace": "payments", "generation": 1 },
            "spec": { "parentRefs": [{ "name": "edge" }], "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "backendRefs": [{ "name": "payments-stable", "port": 8080, "weight": 100 },
                                { "name": "payments-canary", "port": 8080, "weight": 0 }] }] } }),
    );
    let k8s = format!(
        "provider = \"kubernetes\", namespace = \"payments\", deployment = \"payments\", container = \"app\", route = \"payments\", backend = \"payments-canary\", api_url = \"{url}\", token_env = \"RELEASEBOT_TEST_KUBE_TOKEN\""
    );
    team_config().replace("plan = \"canary\"", "plan = \"gateway\"")
        + &format!(
            r#"
[plans.gateway]
name = "Canary through the Gateway API"
template = "CANARY"
steps = [
  {{ id = "shift-10", name = "10%", type = "TRAFFIC_SHIFT", weight = 10, {k8s}, on_failure = "rollback" }},
  {{ id = "shift-50", name = "50%", type = "TRAFFIC_SHIFT", weight = 50, {k8s}, on_failure = "rollback" }},
  {{ id = "watch", name = "Watch", type = "MONITOR", duration_secs = 300, thresholds = {{ min_success_rate = 99.5 }}, on_failure = "rollback" }},
  {{ id = "shift-100", name = "100%", type = "TRAFFIC_SHIFT", weight = 100, {k8s}, on_failure = "rollback" }},
]

[sim]
new_error_rate = 5.0
"#
        )
}

#[tokio::test]
async fn a_route_whose_gateway_cannot_resolve_the_new_backend_fails_the_shift_saying_so() {
    let (url, cluster) = cluster_with_payments().await;
    let config = gateway(&url, &cluster);
    cluster
        .lock()
        .unwrap()
        .missing_backends
        .insert("payments-canary".into());
    let (bot, calls) = released(&config).await;
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @r#"
    *📋 REL-1 · payments 2.1.0: release rolled back (simulated)*
    *Plan*
    Canary through the Gateway API
    *Duration*
    0s
    *Traffic*
    new 0% · old 100%
    ❌ 10% (09:00–09:00) — gateway edge did not take route payments: ResolvedRefs is False (BackendNotFound: Service "payments-canary" not found)
    ⚪ 50%
    ⚪ Watch
    ⚪ 100%
    ↩️ Rollback — traffic: new 0% · old 100%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    "#);
    bot.finish().await;
}

#[tokio::test]
async fn gateway_api_weights_follow_the_shifts_and_return_to_the_old_backend() {
    let (url, cluster) = cluster_with_payments().await;
    let config = gateway(&url, &cluster);
    let (bot, calls) = released(&config).await;
    let weights: Vec<String> = cluster
        .lock()
        .unwrap()
        .changes
        .iter()
        .map(|(_, _, w)| w.clone())
        .collect();
    assert_eq!(
        weights,
        [
            "payments-stable=90,payments-canary=10",
            "payments-stable=50,payments-canary=50",
            "payments-stable=100,payments-canary=0"
        ]
    );
    // The whole rule went back, its matches and ports too (the list is replaced whole).
    let rule =
        cluster.lock().unwrap().routes[&("payments".to_string(), "payments".to_string())]["spec"]["rules"][0].clone();
    assert_eq!(rule["matches"][0]["path"]["value"], "/");
    assert_eq!(rule["backendRefs"][1]["port"], 8080);
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.1.0: release rolled back (simulated)*
    *Plan*
    Canary through the Gateway API
    *Duration*
    0s
    *Traffic*
    new 0% · old 100%
    ✅ 10% (09:00–09:00) — traffic: new 10% · old 90%
    ✅ 50% (09:00–09:00) — traffic: new 50% · old 50%
    ❌ Watch (09:00–09:00) — new version success 95.0% &lt; 99.5% (old 99.9%)
    ⚪ 100%
    ↩️ Rollback — traffic: new 0% · old 100%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn blue_green_readies_the_idle_slot_switches_the_service_and_switches_back() {
    let (url, cluster) = cluster_with_payments().await;
    {
        let mut c = cluster.lock().unwrap();
        let mut blue = fake::deployment(
            "payments",
            "payments-blue",
            "app",
            "registry.example.com/payments:2.0.0",
            3,
        );
        blue["spec"]["selector"]["matchLabels"]["slot"] = serde_json::json!("blue");
        blue["spec"]["template"]["metadata"]["labels"]["slot"] = serde_json::json!("blue");
        c.deployments.insert(("payments".into(), "payments-blue".into()), blue);
        c.services.insert(
            ("payments".into(), "payments".into()),
            serde_json::json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "payments", "namespace": "payments" },
                "spec": { "selector": { "app": "payments-blue", "slot": "blue" }, "ports": [{ "port": 80, "targetPort": 8080 }] } }),
        );
    }
    let k8s = format!(
        "provider = \"kubernetes\", namespace = \"payments\", deployment = \"payments\", container = \"app\", strategy = \"blue-green\", service = \"payments\", api_url = \"{url}\", token_env = \"RELEASEBOT_TEST_KUBE_TOKEN\""
    );
    let config = team_config().replace("plan = \"canary\"", "plan = \"bg\"")
        + &format!(
            r#"
[plans.bg]
name = "Blue-green on Kubernetes"
template = "BLUE_GREEN"
steps = [
  {{ id = "deploy", name = "Ready green", type = "DEPLOY", {k8s}, on_failure = "rollback" }},
  {{ id = "health", name = "Green healthy", type = "HEALTH_CHECK", {k8s}, on_failure = "rollback" }},
  {{ id = "switch", name = "Switch", type = "TRAFFIC_SHIFT", weight = 100, {k8s}, on_failure = "rollback" }},
  {{ id = "watch", name = "Watch", type = "MONITOR", duration_secs = 300, thresholds = {{ min_success_rate = 99.5 }}, on_failure = "rollback" }},
]

[sim]
new_error_rate = 5.0
"#
        );
    let (bot, calls) = released(&config).await;
    assert_eq!(
        cluster.lock().unwrap().changes,
        [
            change("payments-green", 3, "registry.example.com/payments:2.1.0"),
            change("payments", 0, "slot=green"),
            // The new version failed its watch: every request goes back to blue.
            change("payments", 0, "slot=blue"),
        ]
    );
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.1.0: release rolled back (simulated)*
    *Plan*
    Blue-green on Kubernetes
    *Duration*
    2s
    *Traffic*
    new 0% · old 100%
    ✅ Ready green (09:00–09:00) — deployment payments-green runs registry.example.com/payments:2.1.0 beside the live payments-blue, no traffic yet
    ✅ Green healthy (09:00–09:00) — deployment payments-green: 3 replica(s) ready, none failing
    ✅ Switch (09:00–09:00) — service payments now sends every request to payments-green
    ❌ Watch (09:00–09:00) — new version success 95.0% &lt; 99.5% (old 99.9%)
    ↩️ Rollback — service payments now sends every request to payments-blue
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

// ------------------------------------------------------------------ the `argo-rollouts` provider

use common::fake_argo;

/// The team's configuration releasing payments through its Argo Rollout.
fn argo(url: &str) -> String {
    team_config().replace("plan = \"canary\"", "plan = \"argo\"")
        + &format!(
            r#"
[plans.argo]
name = "Argo Rollout"
template = "CANARY"
steps = [
  {{ id = "rollout", name = "Roll out", type = "DEPLOY", provider = "argo-rollouts", namespace = "{{application}}", rollout = "{{application}}", container = "app", api_url = "{url}", token_env = "RELEASEBOT_TEST_KUBE_TOKEN", timeout_secs = 3600, on_failure = "rollback" }},
]
"#
        )
}

/// A cluster whose payments Rollout runs 2.0.0: 20 % → pause → 50 % → analysis.
async fn cluster_with_a_rollout() -> (String, fake::Shared) {
    std::env::set_var("RELEASEBOT_TEST_KUBE_TOKEN", "kube-token");
    let (url, cluster) = fake::start().await;
    let steps = json!([{ "setWeight": 20 }, { "pause": {} }, { "setWeight": 50 },
                       { "analysis": { "templates": [{ "templateName": "success-rate" }] } }]);
    cluster.lock().unwrap().rollouts.insert(
        ("payments".into(), "payments".into()),
        fake_argo::rollout(
            "payments",
            "payments",
            "app",
            "registry.example.com/payments:2.0.0",
            4,
            steps,
        ),
    );
    (url, cluster)
}

/// REL-1 approved to its release, the clock left where the release started.
async fn approved(config: &str) -> (TestBot, Vec<common::fake_slack::Call>) {
    let bot = TestBot::with("en", config).await;
    let stage = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &stage, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let mut calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
    calls.extend(bot.settle().await);
    (bot, calls)
}

fn rollout_field(cluster: &fake::Shared, field: &str) -> Value {
    let c = cluster.lock().unwrap();
    let ro = &c.rollouts[&("payments".to_string(), "payments".to_string())];
    field.split('.').fold(ro.clone(), |v, k| match k.parse::<usize>() {
        Ok(i) => v[i].clone(),
        Err(_) => v[k].clone(),
    })
}

/// The progress message as it stands now, and its buttons.
fn progress_now(bot: &TestBot) -> (String, Vec<String>) {
    let calls = bot.slack.calls();
    let last = calls
        .iter()
        .rev()
        .find(|c| TestBot::text_of(c).contains("🚀 REL-1"))
        .expect("the progress message");
    (without_token(&TestBot::text_of(last)), TestBot::buttons_of(last))
}

#[tokio::test]
async fn an_argo_rollout_is_mirrored_paused_promoted_and_aborted_from_chat() {
    let (url, cluster) = cluster_with_a_rollout().await;
    let (bot, calls) = approved(&argo(&url)).await;
    let progress = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("🚀 REL-1"))
        .expect("the progress message")
        .clone();
    assert_eq!(
        rollout_field(&cluster, "spec.template.spec.containers"),
        json!([{ "name": "app", "image": "registry.example.com/payments:2.1.0" },
               { "name": "sidecar", "image": "envoyproxy/envoy:v1.31" }]),
        "the image set, the other container untouched"
    );
    // The controller takes the first step and stops at the pause; the next look shows it.
    bot.advance_to_next_due().await;
    bot.settle().await;
    let (text, buttons) = progress_now(&bot);
    insta::assert_snapshot!(text, @"
    *🚀 REL-1 · payments 2.1.0 — Argo Rollout*
    *Status*
    🔵 running
    *Traffic*
    new 20% · old 80%
    *Argo Rollout*
    payments: step 2/4 · Paused · canary 20% · paused: CanaryPauseStep
    *Elapsed*
    4s
    *Remaining*
    about 4m 56s
    🔵 Roll out (09:00–)
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    Pause
    Promote
    Abort
    Cancel
    The Argo Rollout goes back to its stable version at once; the release then fails and its plan rolls it back.
    Abort REL-1?
    Abort
    Rollback
    Cancel
    Traffic returns to the old version and its baseline is restored.
    Roll back REL-1?
    Rollback
    ");
    assert_eq!(
        buttons,
        ["exec:pause:1", "exec:promote:1", "exec:abort:1", "exec:rollback:1"]
    );

    // Someone without the ops role cannot steer it.
    bot.click(ALICE, "exec:pause:1", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    assert!(
        ephemerals_to(&calls, ALICE)[0].contains("You need the *ops* role"),
        "{calls:#?}"
    );
    assert_eq!(rollout_field(&cluster, "spec.paused"), Value::Null);

    bot.click(OSCAR, "exec:pause:1", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    insta::assert_snapshot!(without_token(&ephemerals_to(&calls, OSCAR)[0]), @"
    *⏳ Pause is being passed to the Argo Rollout that *Roll out* watches for REL-1; the progress message shows when the Rollout has taken it.*
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_eq!(rollout_field(&cluster, "spec.paused"), json!(true));
    let (text, buttons) = progress_now(&bot);
    assert!(
        text.contains("paused: paused, CanaryPauseStep · last command: pause — <@UOSCAR>"),
        "{text}"
    );
    assert_eq!(
        buttons,
        ["exec:resume:1", "exec:promote:1", "exec:abort:1", "exec:rollback:1"]
    );

    bot.click(OSCAR, "exec:resume:1", &ts_of(&progress)).await;
    bot.settle().await;
    assert_eq!(rollout_field(&cluster, "spec.paused"), json!(false));

    // Promote clears the pause condition (through the status subresource): on to 50 %
    // and the analysis, which runs.
    bot.click(OSCAR, "exec:promote:1", &ts_of(&progress)).await;
    bot.settle().await;
    bot.advance_to_next_due().await;
    bot.settle().await;
    let (text, _) = progress_now(&bot);
    assert!(
        text.contains("payments: step 4/4 · Progressing · canary 50% · analysis payments-")
            && text.contains(": Running · last command: promote — <@UOSCAR>"),
        "{text}"
    );
    assert!(text.contains("new 50% · old 50%"), "{text}");

    // Abort: the Rollout goes back to its stable pods, the release fails by its policy and
    // is rolled back — the image set back, the Rollout healthy on 2.0.0 again.
    bot.click(OSCAR, "exec:abort:1", &ts_of(&progress)).await;
    bot.settle().await;
    let (text, buttons) = progress_now(&bot);
    insta::assert_snapshot!(text, @"
    *🚀 REL-1 · payments 2.1.0 — Argo Rollout*
    *Status*
    ↩️ rolled back
    *Traffic*
    new 0% · old 100%
    *Argo Rollout*
    payments: step 4/4 · Healthy · last command: abort — <@UOSCAR>
    *Elapsed*
    7s
    ❌ Roll out (09:00–09:00) — rollout payments was aborted or degraded (analysis: payments-987845c4e2-3: Running)
    ↩️ Rollback — rollout payments back on its stable version registry.example.com/payments:2.0.0
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert!(buttons.is_empty());
    assert_eq!(rollout_field(&cluster, "status.phase"), json!("Healthy"));
    assert_eq!(
        rollout_field(&cluster, "spec.template.spec.containers.0.image"),
        json!("registry.example.com/payments:2.0.0")
    );
    let patches: Vec<(String, String, Option<String>)> = cluster
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .cloned()
        .collect();
    insta::assert_debug_snapshot!(patches, @r#"
    [
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments/status?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments/status?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
        (
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/payments?fieldManager=releasebot",
            Some(
                "application/merge-patch+json",
            ),
        ),
    ]
    "#);
    assert_eq!(
        cluster
            .lock()
            .unwrap()
            .changes
            .iter()
            .map(|c| c.2.as_str())
            .collect::<Vec<_>>(),
        [
            "registry.example.com/payments:2.1.0",
            "spec {\"paused\":true}",
            "spec {\"paused\":false}",
            "status {\"pauseConditions\":null}",
            "status {\"abort\":true}",
            "registry.example.com/payments:2.0.0"
        ],
        "each command once, as the kubectl plugin makes it"
    );
    assert_allowed_by_the_role(&cluster);
    bot.command(OSCAR, "/release show REL-1").await;
    let show = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(
        show.contains("<@UOSCAR> promoted the Argo Rollout to its next step (slack)"),
        "{show}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn an_argo_rollout_whose_analysis_passes_is_released_at_full_traffic() {
    let (url, cluster) = cluster_with_a_rollout().await;
    cluster.lock().unwrap().analysis = "Successful".into();
    // Someone else changes the Rollout while releasebot sets the image: it reads again.
    cluster.lock().unwrap().conflict_next = true;
    let (bot, calls) = approved(&argo(&url)).await;
    let progress = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("🚀 REL-1"))
        .expect("the progress message")
        .clone();
    bot.advance_to_next_due().await;
    bot.click(OLGA, "exec:promote:1", &ts_of(&progress)).await;
    bot.settle().await;
    bot.settle_through_time().await;
    let (text, buttons) = progress_now(&bot);
    insta::assert_snapshot!(text, @"
    *🚀 REL-1 · payments 2.1.0 — Argo Rollout*
    *Status*
    ✅ completed
    *Traffic*
    new 100% · old 0%
    *Argo Rollout*
    payments: step 4/4 · Healthy · analysis payments-987845c4e2-3: Successful · last command: promote — <@UOLGA>
    *Elapsed*
    6s
    ✅ Roll out (09:00–09:00) — rollout payments is healthy on registry.example.com/payments:2.1.0 (4 step(s) done)
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert!(buttons.is_empty());
    assert_eq!(rollout_field(&cluster, "status.phase"), json!("Healthy"));
    let image_patches = cluster
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(m, p, _)| m == "PATCH" && !p.contains("/status"))
        .count();
    assert_eq!(
        image_patches, 2,
        "the 409 answered by reading the Rollout again and patching once more"
    );
    bot.finish().await;
}

// ------------------------------------------------------------------ baselines on Kubernetes

/// `version` of payments submitted by Alice and approved to its release; what was sent.
async fn release_version(bot: &TestBot, version: &str) -> Vec<common::fake_slack::Call> {
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    let mut values = valid_release(MD5);
    for v in values.iter_mut().filter(|(k, _)| *k == "version") {
        v.1 = version;
    }
    assert_eq!(bot.submit(ALICE, &modal, &values).await.status, StatusCode::OK);
    let calls = bot.settle().await;
    let stage = calls
        .into_iter()
        .find(|c| c.method == "chat.postMessage")
        .expect("the first stage is posted");
    bot.approve_to_release(&stage).await
}

#[tokio::test]
async fn baselines_record_digests_and_config_and_a_rollback_to_one_redeploys_its_digest() {
    let (url, cluster) = cluster_with_payments().await;
    {
        let mut c = cluster.lock().unwrap();
        let d = c
            .deployments
            .get_mut(&("payments".to_string(), "payments".to_string()))
            .unwrap();
        let pod = &mut d["spec"]["template"]["spec"];
        pod["volumes"] = json!([{ "name": "cfg", "configMap": { "name": "payments-config" } }]);
        pod["containers"][0]["envFrom"] = json!([{ "secretRef": { "name": "payments-db" } }]);
    }
    let bot = TestBot::with("en", &rolling(&url)).await;
    release_version(&bot, "2.1.0").await;
    release_version(&bot, "2.2.0").await;
    assert_eq!(image(&cluster), ("registry.example.com/payments:2.2.0".to_string(), 3));
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    let list = list.replace(&digest_of("registry.example.com/payments:2.0.0"), "[2.0.0 digest]");
    let list = list.replace(&digest_of("registry.example.com/payments:2.1.0"), "[2.1.0 digest]");
    let list = list.replace(&digest_of("registry.example.com/payments:2.2.0"), "[2.2.0 digest]");
    insta::assert_snapshot!(list, @"
    *Baselines of payments in prod*
    #4 · after REL-2 · version 2.2.0 · 3 replicas · config - · 2026-11-21 09:00 UTC · image [2.2.0 digest] · uses configmap/payments-config, secret/payments-db
    #3 · before REL-2 · version 2.1.0 · 3 replicas · config - · 2026-11-21 09:00 UTC · image [2.1.0 digest] · uses configmap/payments-config, secret/payments-db
    #2 · after REL-1 · version 2.1.0 · 3 replicas · config - · 2026-11-21 09:00 UTC · image [2.1.0 digest] · uses configmap/payments-config, secret/payments-db
    #1 · before REL-1 · version unknown · 3 replicas · config - · 2026-11-21 09:00 UTC · image [2.0.0 digest] · uses configmap/payments-config, secret/payments-db
    ");

    // Back to what REL-1 left (#2): its digest, not the tag, which may have moved since.
    bot.command(OSCAR, "/release rollback REL-2 --to 2").await;
    let calls = bot.settle_through_time().await;
    assert_eq!(
        image(&cluster),
        (digest_of("registry.example.com/payments:2.1.0"), 3),
        "the digest REL-1's pods ran"
    );
    let said = text_with(&calls, "REL-2 rolled back to baseline #2")
        .replace(&digest_of("registry.example.com/payments:2.1.0"), "[2.1.0 digest]");
    insta::assert_snapshot!(said, @"
    *↩️ REL-2 rolled back to baseline #2 (version 2.1.0): version 2.1.0 redeployed (deployment payments runs [2.1.0 digest] on every replica); nothing else to set back*
    Asked for by <@UOSCAR>
    <http://127.0.0.1:3000/tickets/2?t=[token]|Ticket page>
    ");
    bot.finish().await;
}

// ------------------------------------------------------------------ scale and restart

/// payments runs on the fake cluster as its [applications.kubernetes] target says.
fn with_target(url: &str) -> String {
    rolling(url)
        + &format!(
            "\n[[applications]]\nname = \"payments\"\nenvironments = [\"prod\"]\n[applications.kubernetes]\nnamespace = \"payments\"\ndeployment = \"payments\"\ncontainer = \"app\"\napi_url = \"{url}\"\ntoken_env = \"RELEASEBOT_TEST_KUBE_TOKEN\"\n"
        )
}

#[tokio::test]
async fn scale_and_restart_are_change_records_run_at_once_and_a_lock_holds_them() {
    let (url, cluster) = cluster_with_payments().await;
    let bot = TestBot::with("en", &with_target(&url)).await;

    // Only ops.
    bot.command(ALICE, "/release scale payments 5").await;
    let refused = ephemerals_to(&bot.settle().await, ALICE).pop().unwrap();
    assert!(refused.contains("ops"), "{refused}");
    bot.command(OSCAR, "/release scale payments prod 5000").await;
    let refused = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    insta::assert_snapshot!(refused, @"
    *`5000` is not a number of replicas: give a whole number from 0 to 1000.*
    Usage: `/release scale APPLICATION [ENVIRONMENT] REPLICAS`
    ");

    bot.command(OSCAR, "/release scale payments prod 5").await;
    let calls = bot.settle_through_time().await;
    insta::assert_snapshot!(without_token(&ephemerals_to(&calls, OSCAR)[0]), @"
    *REL-1: scale to 5 replica(s) of payments in prod has started; its progress message is in the channel.*
    <http://127.0.0.1:3000/tickets/1?t=[token]|Ticket page>
    ");
    assert_eq!(image(&cluster), ("registry.example.com/payments:2.0.0".to_string(), 5));
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments unknown released*
    *Plan*
    Change: scale to 5 replica(s)
    *Duration*
    2s
    *Traffic*
    new 100% · old 0%
    ✅ scale to 5 replica(s) (09:00–09:00) — deployment payments scaled from 3 to 5 replica(s), 5 ready
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");

    bot.command(OSCAR, "/release restart payments").await;
    let calls = bot.settle_through_time().await;
    insta::assert_snapshot!(text_with(&calls, "📋 REL-2"), @"
    *📋 REL-2 · payments unknown released*
    *Plan*
    Change: restart every pod
    *Duration*
    2s
    *Traffic*
    new 100% · old 0%
    ✅ restart every pod (09:00–09:00) — deployment payments restarted: 5 new pod(s) ready
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    ");
    assert_eq!(
        cluster
            .lock()
            .unwrap()
            .changes
            .iter()
            .map(|c| (c.1, c.2.as_str()))
            .collect::<Vec<_>>(),
        [
            (5, "registry.example.com/payments:2.0.0"),
            (5, "restartedAt 2026-11-21T09:00:02Z")
        ],
        "one patch each"
    );

    // A lock holds a change as it holds a release.
    bot.command(OSCAR, "/lock payments prod database migration").await;
    bot.settle().await;
    bot.command(OLGA, "/release scale payments 2").await;
    let refused = ephemerals_to(&bot.settle().await, OLGA).pop().unwrap();
    insta::assert_snapshot!(refused, @"
    *scale to 2 replica(s) of payments in prod cannot run now. Nothing was changed.*
    🔒 payments/prod locked by <@UOSCAR> since 2026-11-21 09:00 UTC: database migration
    ");
    assert_eq!(image(&cluster).1, 5, "nothing was changed");

    bot.command(OSCAR, "/release show REL-1").await;
    let show = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(
        show.contains("<@UOSCAR> asked for a change in prod: scale to 5 replica(s) (slack)"),
        "{show}"
    );
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

// ------------------------------------------------------------------ releasebot on a cluster

#[test]
fn the_manifests_in_deploy_run_releasebot_as_the_service_account_its_role_binds() {
    use k8s_openapi::api::apps::v1::Deployment;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/");
    let text = std::fs::read_to_string(format!("{dir}releasebot.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let named = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    assert_eq!(
        named("ServiceAccount", "releasebot")["metadata"]["namespace"],
        "releasebot"
    );
    let d: Deployment = serde_json::from_value(named("Deployment", "releasebot")).unwrap();
    let pod = d.spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("releasebot"));
    // What the pod refers to exists beside it.
    let c = &pod.containers[0];
    for e in c.env_from.iter().flatten() {
        named("Secret", &e.secret_ref.as_ref().unwrap().name);
    }
    for v in pod.volumes.iter().flatten() {
        if let Some(p) = &v.persistent_volume_claim {
            named("PersistentVolumeClaim", &p.claim_name);
        }
        if let Some(m) = &v.config_map {
            named("ConfigMap", &m.name);
        }
    }
    let env = |n: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env("RELEASEBOT_LISTEN").as_deref(),
        Some("0.0.0.0:3000"),
        "reachable in the pod"
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 3000);
    let readiness = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    // SQLite on a ReadWriteOnce volume: never two pods at once.
    assert_eq!(d.spec.replicas, Some(1));
    assert_eq!(d.spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let service = named("Service", "releasebot");
    assert_eq!(service["spec"]["selector"], json!(d.spec.selector.match_labels));
    // The Role's binding names this ServiceAccount.
    let role = std::fs::read_to_string(format!("{dir}role.yaml")).unwrap();
    let role: Vec<Value> = serde_saphyr::from_multiple(&role).unwrap();
    assert_eq!(
        role[1]["subjects"][0],
        json!({ "kind": "ServiceAccount", "name": "releasebot", "namespace": "releasebot" })
    );
}

// ------------------------------------------------------------------ swimlanes

#[tokio::test]
async fn a_lanes_application_is_deployed_into_the_lanes_namespace_as_a_copy_of_its_own() {
    let (url, cluster) = cluster_with_payments().await;
    let bot = TestBot::with("en", &with_target(&url)).await;
    bot.command(ALICE, "/swimlane create login-v2 payments").await;
    bot.settle().await;
    // Not one of the lane's applications.
    bot.command(ALICE, "/swimlane deploy login-v2 orders 1.0.0").await;
    let refused = ephemerals_to(&bot.settle().await, ALICE).pop().unwrap();
    insta::assert_snapshot!(refused, @"*orders is not one of *login-v2*'s applications (payments): add it with `/swimlane apps login-v2 add orders` first.*");

    // A day later, the deploy is the lane's activity: its deletion moves a day on.
    bot.clock.set_ms(bot.clock.now_ms() + 86_400_000);
    bot.command(ALICE, "/swimlane deploy login-v2 payments 2.3.0-rc1").await;
    let calls = bot.settle_through_time().await;
    insta::assert_snapshot!(text_with(&calls, "📋 REL-1"), @"
    *📋 REL-1 · payments 2.3.0-rc1 released*
    *Plan*
    Change: deploy 2.3.0-rc1 into lane login-v2
    *Duration*
    2s
    *Traffic*
    new 100% · old 0%
    ✅ deploy 2.3.0-rc1 into lane login-v2 (09:00–09:00) — deployment payments runs registry.example.com/payments:2.3.0-rc1 on every replica
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    {
        let c = cluster.lock().unwrap();
        // The lane's namespace: `[swimlanes] namespace`, "{lane}" by default.
        let copy = &c.deployments[&("login-v2".to_string(), "payments".to_string())];
        assert_eq!(copy["spec"]["replicas"], 1);
        assert_eq!(
            copy["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/payments:2.3.0-rc1"
        );
        assert_eq!(copy["metadata"]["labels"]["app.kubernetes.io/managed-by"], "releasebot");
        let home = &c.deployments[&("payments".to_string(), "payments".to_string())];
        assert_eq!(
            home["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/payments:2.0.0",
            "the application's own Deployment is untouched"
        );
    }
    bot.command(ALICE, "/swimlane show login-v2").await;
    let show = ephemerals_to(&bot.settle().await, ALICE).pop().unwrap();
    insta::assert_snapshot!(without_token(&show), @"
    *🏊 Swimlane *login-v2* · active*
    *Owner*
    <@UALICE>
    *Namespace*
    `login-v2`
    *Branch*
    `feature/login-v2`
    *Applications*
    payments
    *Internal domains*
    `payments.login-v2`
    *Deleted*
    2026-11-29 09:00 UTC unless renewed or used (idle period 6d)
    ");
    bot.finish().await;
}

// ------------------------------------------------------------------ on the local chat

#[tokio::test]
async fn on_the_local_chat_ops_scales_the_deployment_and_reads_the_outcome_there() {
    use common::local_chat::{act_as, app, messages, post_with, session};
    let (url, cluster) = cluster_with_payments().await;
    let (bot, base) = app(&with_target(&url)).await;
    let (http, cookie, csrf, _) = session(&base).await;
    let cookie = act_as(&http, &base, &cookie, &csrf, "ops").await;
    let r = post_with(
        &http,
        format!("{base}/chat/command"),
        &cookie,
        &csrf,
        &json!({ "channel": "releases", "text": "/release scale payments 4", "nonce": "k8s-1" }),
    )
    .await;
    assert_eq!(r.status(), 202);
    bot.settle_through_time().await;
    assert_eq!(image(&cluster).1, 4);
    let page = messages(&http, &base, &cookie, "releases").await;
    for said in [
        "REL-1 · payments unknown released",
        "deployment payments scaled from 3 to 4 replica(s), 4 ready",
    ] {
        assert!(page.contains(said), "{said:?} in {page}");
    }
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}

#[tokio::test]
async fn a_scale_whose_new_pods_cannot_start_is_rolled_back_to_the_recorded_replicas() {
    let (url, cluster) = cluster_with_payments().await;
    // The image the Deployment runs can no longer be pulled: new pods never start.
    cluster
        .lock()
        .unwrap()
        .unpullable
        .insert("registry.example.com/payments:2.0.0".into());
    let bot = TestBot::with("en", &with_target(&url)).await;
    bot.command(OSCAR, "/release scale payments 6").await;
    let calls = bot.settle_through_time().await;
    let alert = text_with(&calls, "🚨 REL-1");
    assert!(
        alert.contains("ImagePullBackOff") && alert.contains("Rolling back automatically"),
        "{alert}"
    );
    assert_eq!(image(&cluster).1, 3, "the replicas it had");
    let replicas: Vec<i64> = cluster.lock().unwrap().changes.iter().map(|c| c.1).collect();
    assert_eq!(replicas, [6, 3], "scaled, then set back");
    bot.finish().await;
}

#[tokio::test]
async fn on_the_local_chat_a_ticket_goes_through_its_stages_and_rolls_out_on_kubernetes() {
    use common::local_chat::{act_as, app, messages, post_with, session};
    let (url, cluster) = cluster_with_payments().await;
    let (bot, base) = app(&rolling(&url)).await;
    let (http, cookie, csrf, _) = session(&base).await;
    let say = |user: &'static str, line: &'static str, nonce: &'static str| {
        let (http, base, cookie, csrf) = (http.clone(), base.clone(), cookie.clone(), csrf.clone());
        async move {
            let cookie = act_as(&http, &base, &cookie, &csrf, user).await;
            let body = json!({ "channel": "releases", "text": line, "nonce": nonce });
            let r = post_with(&http, format!("{base}/chat/command"), &cookie, &csrf, &body).await;
            assert_eq!(r.status(), 202, "{line}");
            cookie
        }
    };
    say(
        "product",
        "/release new application=payments version=2.1.0 package_url=https://repo.example.com/payments-2.1.0.tgz md5=9e107d9d372bb6826bd81d3542a419d6 planned_at=\"2030-01-15 22:00\"",
        "n1",
    )
    .await;
    bot.settle().await;
    say("test", "/release approve REL-1 evaluation=pass test_summary=ok", "n2").await;
    bot.settle().await;
    say("ops", "/release approve REL-1", "n3").await;
    bot.settle().await;
    let cookie = say("ops", "/release approve REL-1 release_summary=go", "n4").await;
    bot.settle_through_time().await;
    assert_eq!(image(&cluster), ("registry.example.com/payments:2.1.0".to_string(), 3));
    let page = messages(&http, &base, &cookie, "releases").await;
    assert!(
        page.contains("deployment payments runs registry.example.com/payments:2.1.0 on every replica"),
        "{page}"
    );
    assert_allowed_by_the_role(&cluster);
    bot.finish().await;
}
