//! End to end with real nginx in front of two instances of a small HTTP service: the
//! executor shifts real traffic by weights through nginx, the `probe` provider measures
//! the real responses, and a new version that answers 500 is rolled back to 100% old.
//! Needs the `nginx` binary (installed by `.ci/run`); under `CI` a missing nginx fails.

mod common;

use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn nginx_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/bin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/bin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

async fn service(body: &'static str, status: StatusCode) -> String {
    let app = axum::Router::new().route("/", get(move || async move { (status, body) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         include {d}/upstream.conf;\n  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; }} }}\n}}\n"
    )
}

/// Bodies of `n` requests through nginx.
async fn through(port: u16, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let body = match http.get(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => format!("error: {e}"),
        };
        out.push(body);
    }
    out
}

#[tokio::test]
async fn real_traffic_shifts_through_nginx_and_a_failing_version_is_rolled_back() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the nginx end-to-end test: install nginx"
        );
        eprintln!("nginx is not installed: skipping the nginx end-to-end test");
        return;
    };
    let old = service("old", StatusCode::OK).await;
    let new = service("new", StatusCode::INTERNAL_SERVER_ERROR).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let upstream = dir.path().join("upstream.conf");
    std::fs::write(
        &upstream,
        format!("upstream app {{\n    server {old} weight=100;\n}}\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port)).unwrap();
    let _nginx = Nginx(
        Command::new(&nginx)
            .args([
                "-c",
                &conf.display().to_string(),
                "-p",
                &dir.path().display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while through(port, 1).await[0] != "old" {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let reload = format!(
        "{} -c {} -p {} -s reload",
        nginx.display(),
        conf.display(),
        dir.path().display()
    );
    let plan = format!(
        r#"
[plans.nginx-canary]
name = "Canary through nginx"
template = "CANARY"
steps = [
  {{ id = "shift-10", name = "Shift 10%", type = "TRAFFIC_SHIFT", provider = "nginx", weight = 10, upstream_file = "{up}", upstream_name = "app", old_server = "{old}", new_server = "{new}", reload_command = "{reload}", on_failure = "rollback" }},
  {{ id = "settle", name = "Let nginx load the weights", type = "SCRIPT", provider = "script", command = "sleep 1" }},
  {{ id = "watch", name = "Watch the new version", type = "MONITOR", provider = "probe", duration_secs = 120, old_url = "http://127.0.0.1:{port}/", new_url = "http://{new}/", requests = 10, thresholds = {{ min_success_rate = 99.0 }}, on_failure = "rollback" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", provider = "nginx", weight = 100, upstream_file = "{up}", upstream_name = "app", old_server = "{old}", new_server = "{new}", reload_command = "{reload}", on_failure = "rollback" }},
]
"#,
        up = upstream.display()
    );
    let config = team_config().replace("plan = \"canary\"", "plan = \"nginx-canary\"") + &plan;
    let bot = TestBot::with("en", &config).await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;

    // The probe's "old" side goes through nginx: at 10% one request in ten reaches the
    // failing new version, which shows as a 90% success rate.
    let alert = calls
        .iter()
        .find(|c| TestBot::text_of(c).contains("🚨 REL-1 · Watch the new version failed"))
        .expect("an alert");
    let text = TestBot::text_of(alert);
    assert!(
        text.contains("new version success 0.0% &lt; 99.0% (old 90.0%)"),
        "the probe measured the real answers: {text}"
    );
    let progress = calls
        .iter()
        .rev()
        .find(|c| TestBot::text_of(c).contains("Canary through nginx"))
        .unwrap();
    let text = TestBot::text_of(progress);
    insta::assert_snapshot!(without_token(&text), @"
    *📋 REL-1 · payments 2.1.0: release rolled back*
    *Plan*
    Canary through nginx
    *Duration*
    0s
    *Traffic*
    new 0% · old 100%
    ✅ Shift 10% (09:00–09:00) — traffic: new 10% · old 90%
    ✅ Let nginx load the weights (09:00–09:00) — exit code 0
    ❌ Watch the new version (09:00–09:00) — new version success 0.0% &lt; 99.0% (old 90.0%)
    ⚪ Shift 100%
    ↩️ Rollback — traffic back to the old version
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_eq!(
        std::fs::read_to_string(&upstream).unwrap(),
        format!("upstream app {{\n    server {old} weight=100;\n}}\n")
    );

    // nginx now sends every request to the old version.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bodies = through(port, 20).await;
        if bodies.iter().all(|b| b == "old") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "traffic did not return to the old version: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bot.finish().await;
}
