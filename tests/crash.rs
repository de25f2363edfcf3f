//! Crash safety with the real binary: a release is killed with SIGKILL mid-step, the
//! daemon restarts on the same SQLite file, the execution continues, and no completed
//! step runs again.

mod common;

use common::fake_slack::FakeSlack;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_releasebot");
const SECRET: &str = "crash-test-secret";

fn config(log: &Path) -> String {
    let log = log.display();
    format!(
        r#"
[roles.product]
members = ["slack:UP"]
[roles.ops]
members = ["slack:UO"]
[roles.admin]

[services.r]
name = "Release"
flow = "f"
plan = "p"

[flows.f]
name = "F"
[[flows.f.stages]]
id = "submit"
name = "Submit"
role = "product"
fields = [{{ id = "version", label = "Version", kind = "text" }}]
[[flows.f.stages]]
id = "release"
name = "Release"
role = "ops"
starts_execution = true

[plans.p]
name = "Crash plan"
template = "CUSTOM"
steps = [
  {{ id = "one", name = "One", type = "SCRIPT", provider = "script", command = "echo one >> '{log}'" }},
  {{ id = "watch", name = "Watch", type = "MONITOR", provider = "sim", duration_secs = 4, thresholds = {{ min_success_rate = 99.0 }} }},
  {{ id = "two", name = "Two", type = "SCRIPT", provider = "script", command = "echo two >> '{log}'" }},
]
"#
    )
}

/// A releasebot process, killed when dropped (so a failing test leaves none behind).
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, port: u16, slack: &FakeSlack, stderr: &str) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("rb.db").display()),
            )
            .env("RELEASEBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RELEASEBOT_CONFIG", dir.join("config.toml"))
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("SLACK_BOT_TOKEN", "xoxb-crash")
            .env("SLACK_API_URL", &slack.api_url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(stderr)).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Waits for something another process does, within a bound.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], showing a log file when it times out.
async fn eventually_or<T>(what: &str, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            let dir = log.parent().unwrap();
            let first = std::fs::read_to_string(dir.join("first.log")).unwrap_or_default();
            let db = format!("sqlite://{}?mode=ro", dir.join("rb.db").display());
            let out = Command::new("sqlite3").arg(dir.join("rb.db")).arg("select id, status, kind, channel_key, attempts, next_attempt_at, lease_until, last_error, substr(payload,1,80) from outbox; select * from outbox_channels; select id,status,attempts,error from inbox").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
            panic!(
                "timed out waiting for {what}:\n{first}\n---\n{}\n{db}\n{out}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(base: &str, path: &str, body: String) -> u16 {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = releasebot::chat::slack::verify::sign(SECRET, &ts, body.as_bytes());
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn payload(v: Value) -> String {
    serde_urlencoded::to_string([("payload", v.to_string())]).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("releasebot did not start");
}

#[tokio::test]
async fn a_release_killed_mid_step_resumes_without_repeating_completed_steps() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("steps.log");
    std::fs::write(dir.path().join("config.toml"), config(&log)).unwrap();
    let (mut child, _) = start_release(dir.path(), &slack).await;

    // Step one ran; the monitor is under way: kill -9.
    eventually("step one", || {
        std::fs::read_to_string(&log).ok().filter(|s| s.contains("one"))
    })
    .await;
    eventually("the monitor", || {
        slack
            .calls()
            .into_iter()
            .find(|c| c.body.to_string().contains("🔵 Watch"))
    })
    .await;
    child.kill();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "one\n",
        "killed before step two"
    );

    // Restart on the same database: the release continues where it was.
    let port = free_port();
    let mut child = spawn(dir.path(), port, &slack, "second.log");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let report = eventually_or("the report", &dir.path().join("second.log"), || {
        slack
            .calls_of("chat.postMessage")
            .into_iter()
            .find(|c| c.body.to_string().contains("📋 REL-1"))
    })
    .await;
    assert!(report.body.to_string().contains("9.9 released"), "{}", report.body);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "one\ntwo\n",
        "no completed step ran twice"
    );
    child.kill();
}

/// Drives REL-1 of the crash configuration to its release; returns the base URL's child.
async fn start_release(dir: &Path, slack: &FakeSlack) -> (Proc, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = spawn(dir, port, slack, "first.log");
    wait_healthy(&base).await;
    let cmd = "command=%2Frelease&text=new&user_id=UP&user_name=p&channel_id=C1&trigger_id=t.1".to_string();
    assert_eq!(post(&base, "/slack/commands", cmd).await, 200);
    let view = eventually("the form", || {
        slack.calls_of("views.open").first().map(|c| c.body["view"].clone())
    })
    .await;
    let submit = json!({
        "type": "view_submission", "user": {"id": "UP"}, "trigger_id": "t.2",
        "view": {"callback_id": view["callback_id"], "private_metadata": "C1",
                 "state": {"values": {"version": {"version": {"type": "plain_text_input", "value": "9.9"}}}}}
    });
    assert_eq!(post(&base, "/slack/interactions", payload(submit)).await, 200);
    let stage = eventually("the release stage", || {
        slack
            .calls_of("chat.postMessage")
            .into_iter()
            .find(|c| c.body.to_string().contains("approve:1:1:0"))
    })
    .await;
    let click = json!({
        "type": "block_actions", "user": {"id": "UO"}, "trigger_id": "t.3", "channel": {"id": "C1"},
        "container": {"message_ts": stage.response["ts"]}, "actions": [{"action_id": "approve:1:1:0", "value": "approve:1:1:0"}]
    });
    assert_eq!(post(&base, "/slack/interactions", payload(click)).await, 200);
    (child, base)
}

#[tokio::test]
async fn a_script_killed_mid_run_is_interrupted_not_rerun_and_retried_by_a_button() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("steps.log");
    let marker = dir.path().join("marker");
    let deploy = format!(
        "echo start >> '{log}'; if [ -f '{marker}' ]; then echo quick >> '{log}'; else touch '{marker}'; sleep 30; echo end >> '{log}'; fi",
        log = log.display(),
        marker = marker.display()
    );
    let text = config(&log).replace(
        r#"{ id = "one", name = "One", type = "SCRIPT", provider = "script", command = "#,
        &format!(
            r#"{{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", command = {deploy:?} }},
  {{ id = "one", name = "One", type = "SCRIPT", provider = "script", command = "#
        ),
    );
    assert!(text.contains("Deploy"));
    std::fs::write(dir.path().join("config.toml"), text).unwrap();
    let (mut child, _) = start_release(dir.path(), &slack).await;
    eventually("the deploy script", || {
        std::fs::read_to_string(&log).ok().filter(|s| s.contains("start"))
    })
    .await;
    child.kill(); // while the script sleeps

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(dir.path(), port, &slack, "second.log");
    wait_healthy(&base).await;
    let alert = eventually("the interruption alert", || {
        slack
            .calls_of("chat.postMessage")
            .into_iter()
            .find(|c| c.body.to_string().contains("Deploy was interrupted by a restart"))
    })
    .await;
    assert!(alert.body.to_string().contains("exec:retry:1"));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\n",
        "a restart never deploys twice by itself"
    );

    let click = json!({
        "type": "block_actions", "user": {"id": "UO"}, "trigger_id": "t.9", "channel": {"id": "C1"},
        "container": {"message_ts": alert.response["ts"]}, "actions": [{"action_id": "exec:retry:1", "value": "exec:retry:1"}]
    });
    assert_eq!(post(&base, "/slack/interactions", payload(click)).await, 200);
    eventually("the report", || {
        slack
            .calls_of("chat.postMessage")
            .into_iter()
            .find(|c| c.body.to_string().contains("📋 REL-1"))
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nstart\nquick\none\ntwo\n"
    );
    child.kill();
}
