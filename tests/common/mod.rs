//! `TestBot`: the app on a fresh database, its Slack client pointed at a fake Slack,
//! signed requests sent through the real router, workers driven by hand.

#![allow(dead_code)]

pub mod fake_argo;
pub mod fake_dingtalk;
pub mod fake_discord;
pub mod fake_kubernetes;
pub mod fake_slack;
pub mod local_chat;
pub mod platforms;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_slack::{Call, FakeSlack};
use http_body_util::BodyExt;
use releasebot::app::App;
use releasebot::chat::slack::verify;
pub use releasebot::clock::Clock;
use releasebot::clock::ManualClock;
use releasebot::config::{Config, Secret, Settings, DEFAULT_CONFIG};
use releasebot::executor::Wait;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

pub const SECRET: &str = "test-signing-secret";
pub const DINGTALK_SECRET: &str = "dingtalk-app-secret";
pub const CHANNEL: &str = "CREL";

/// 2026-11-21 09:00:00 UTC.
pub const START_MS: i64 = 1_795_251_600_000;

pub const ALICE: &str = "UALICE"; // product
pub const TOM: &str = "UTOM"; // test
pub const TINA: &str = "UTINA"; // test
pub const OSCAR: &str = "UOSCAR"; // ops
pub const OLGA: &str = "UOLGA"; // ops
pub const QUINN: &str = "UQUINN"; // qc
pub const ADA: &str = "UADA"; // admin
pub const NOBODY: &str = "UNOBODY"; // no role

/// The built-in configuration with one or two members per role.
pub fn team_config() -> String {
    DEFAULT_CONFIG
        .replace(
            "[roles.product]\n",
            &format!("[roles.product]\nmembers = [\"slack:{ALICE}\"]\n"),
        )
        .replace(
            "[roles.test]\n",
            &format!("[roles.test]\nmembers = [\"slack:{TOM}\", \"slack:{TINA}\"]\n"),
        )
        .replace(
            "[roles.ops]\n",
            &format!("[roles.ops]\nmembers = [\"slack:{OSCAR}\", \"slack:{OLGA}\"]\n"),
        )
        .replace("[roles.qc]\n", &format!("[roles.qc]\nmembers = [\"slack:{QUINN}\"]\n"))
        .replace(
            "[roles.admin]\n",
            &format!("[roles.admin]\nmembers = [\"slack:{ADA}\"]\n"),
        )
        + CALENDAR
}

/// The tests' tickets are planned for 2030: their releases start when approved (tests of
/// scheduled releases turn this back on).
pub const CALENDAR: &str = "\n[calendar]\nhold_until_planned = false\n";

/// Serves a fake platform API on a free loopback port; returns its address.
pub async fn serve_fake(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A 429 with `Retry-After: 2` and a JSON body, as the platforms send them.
pub fn too_many_requests(body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "2"), ("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Addresses of the fakes, for settings that point at them.
pub struct Fakes {
    pub dingtalk_webhook: String,
}

pub struct TestBot {
    pub settings: Settings,
    pub app: App,
    pub router: axum::Router,
    pub slack: FakeSlack,
    pub discord: fake_discord::FakeDiscord,
    pub dingtalk: fake_dingtalk::FakeDingTalk,
    /// Signs Discord interactions; its public key is the app's DISCORD_PUBLIC_KEY.
    pub discord_key: ed25519_dalek::SigningKey,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    trigger: std::sync::atomic::AtomicU64,
    /// Executions `settle` leaves running (see [`TestBot::leave_running`]).
    leave: std::sync::Mutex<Vec<i64>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How long `settle` waits for the executor's tasks before failing the test.
const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl TestBot {
    pub async fn start() -> Self {
        Self::with("en", &team_config()).await
    }

    pub async fn with(locale: &str, config: &str) -> Self {
        Self::with_settings(locale, config, |_, _| {}).await
    }

    /// Like [`TestBot::with`], with settings changed by `tweak` before the app starts.
    pub async fn with_settings(locale: &str, config: &str, tweak: impl FnOnce(&mut Settings, &Fakes)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START_MS);
        let slack = FakeSlack::with_clock(clock.clone()).await;
        let mut settings = Settings::defaults();
        settings.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("releasebot.db").display());
        settings.locale = locale.to_string();
        settings.slack_signing_secret = Some(Secret::new(SECRET));
        settings.slack_bot_token = Some(Secret::new("xoxb-test-token"));
        settings.slack_api_url = slack.api_url.clone();
        let discord = fake_discord::FakeDiscord::start().await;
        let discord_key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        settings.discord_public_key = Some(hex::encode(discord_key.verifying_key().to_bytes()));
        settings.discord_bot_token = Some(Secret::new("discord-bot-token"));
        settings.discord_application_id = Some("4242".into());
        settings.discord_api_url = discord.api_url.clone();
        let dingtalk = fake_dingtalk::FakeDingTalk::start().await;
        settings.dingtalk_app_key = Some("dingtalk-app-key".into());
        settings.dingtalk_app_secret = Some(Secret::new(DINGTALK_SECRET));
        settings.dingtalk_robot_code = Some("robot-code".into());
        settings.dingtalk_api_url = dingtalk.api_url.clone();
        settings.dingtalk_oapi_url = dingtalk.api_url.clone();
        // A fixed key: the page links in snapshots stay the same from run to run.
        settings.link_secret = Some(Secret::new("test-link-secret"));
        tweak(
            &mut settings,
            &Fakes {
                dingtalk_webhook: dingtalk.webhook_url.clone(),
            },
        );
        let config = Config::parse_for(config, locale).expect("test configuration");
        let app = App::build(&settings, config, clock.clone()).await.expect("app starts");
        let router = app.router();
        // The test drives the workers: one idle round of each is their start.
        app.inbox.drain().await.expect("inbox");
        app.executor.drain(Wait::All).await.expect("executor");
        app.outbox.round().await.expect("outbox");
        app.scheduler.drain().await.expect("scheduler");
        Self {
            settings,
            app,
            router,
            slack,
            discord,
            dingtalk,
            discord_key,
            clock,
            dir,
            trigger: std::sync::atomic::AtomicU64::new(1),
            leave: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Restarts the app on the same database with another configuration.
    pub async fn restart_with(&mut self, config: &str) {
        let config = Config::parse_for(config, &self.settings.locale).expect("test configuration");
        self.app = App::build(&self.settings, config, self.clock.clone())
            .await
            .expect("app restarts");
        self.router = self.app.router();
    }

    fn next_trigger(&self) -> String {
        format!(
            "trigger.{}",
            self.trigger.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    }

    pub fn sign(&self, body: &[u8]) -> (String, String) {
        let ts = (self.clock.now_ms() / 1000).to_string();
        let sig = verify::sign(SECRET, &ts, body);
        (ts, sig)
    }

    /// Sends a request through the router with the given headers.
    pub async fn raw(&self, path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Reply {
        let mut req = Request::post(path).header("content-type", content_type);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            body: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    /// Sends a correctly signed request.
    pub async fn signed(&self, path: &str, content_type: &str, body: Vec<u8>, extra: &[(&str, String)]) -> Reply {
        let (ts, sig) = self.sign(&body);
        let mut headers = vec![("x-slack-request-timestamp", ts), ("x-slack-signature", sig)];
        headers.extend(extra.iter().cloned());
        self.raw(path, content_type, body, &headers).await
    }

    pub fn command_body(&self, user: &str, command: &str, text: &str) -> Vec<u8> {
        serde_urlencoded::to_string([
            ("command", command.to_string()),
            ("text", text.to_string()),
            ("user_id", user.to_string()),
            ("user_name", user.to_lowercase()),
            ("channel_id", CHANNEL.to_string()),
            ("team_id", "T1".to_string()),
            ("trigger_id", self.next_trigger()),
            ("response_url", "https://hooks.slack.invalid/x".to_string()),
        ])
        .unwrap()
        .into_bytes()
    }

    /// `/release …` or `/role …` typed by `user` in the release channel.
    pub async fn command(&self, user: &str, line: &str) -> Reply {
        let (command, text) = line.split_once(' ').unwrap_or((line, ""));
        let body = self.command_body(user, command, text);
        self.signed("/slack/commands", "application/x-www-form-urlencoded", body, &[])
            .await
    }

    pub fn interaction_body(&self, payload: Value) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap()
            .into_bytes()
    }

    /// `user` presses the button carrying `action` on the message at `ts`.
    pub async fn click(&self, user: &str, action: &str, ts: &str) -> Reply {
        let payload = json!({
            "type": "block_actions",
            "user": { "id": user, "username": user.to_lowercase() },
            "trigger_id": self.next_trigger(),
            "channel": { "id": CHANNEL },
            "container": { "type": "message", "message_ts": ts, "channel_id": CHANNEL },
            "message": { "ts": ts },
            "actions": [{ "type": "button", "action_id": action, "value": action, "block_id": "b", "action_ts": "1" }],
        });
        let body = self.interaction_body(payload);
        self.signed("/slack/interactions", "application/x-www-form-urlencoded", body, &[])
            .await
    }

    pub fn submission_payload(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Value {
        let mut state = serde_json::Map::new();
        for (id, v) in values {
            let is_select = view["blocks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| b["block_id"] == *id && b["element"]["type"] == "static_select");
            let entry = if is_select {
                json!({ "type": "static_select", "selected_option": { "value": v } })
            } else {
                json!({ "type": "plain_text_input", "value": v })
            };
            state.insert(id.to_string(), json!({ *id: entry }));
        }
        json!({
            "type": "view_submission",
            "user": { "id": user, "username": user.to_lowercase() },
            "trigger_id": self.next_trigger(),
            "view": {
                "id": "V1", "type": "modal",
                "callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
                "state": { "values": state },
            },
        })
    }

    /// `user` submits the modal `view` (as Slack received it in views.open) with these answers.
    pub async fn submit(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Reply {
        let body = self.interaction_body(self.submission_payload(user, view, values));
        self.signed("/slack/interactions", "application/x-www-form-urlencoded", body, &[])
            .await
    }

    /// Runs the inbox, the executor and the outbox until nothing is left, moving the clock
    /// over pacing, retry delays and monitor windows. Returns the Slack calls made meanwhile.
    /// Runs everything due now — events, executions, firings, deliveries — until nothing
    /// is left to do; the clock moves only as far as paced deliveries need (a channel's
    /// messages go out one a second), never to an execution's or a firing's time. The
    /// calls Slack received.
    pub async fn settle(&self) -> Vec<Call> {
        self.settle_at(false).await
    }

    /// Like [`TestBot::settle`], and then lets time pass: the clock jumps to each next due
    /// time (a monitor's sample, a retry, a deadline) and everything due then runs, until
    /// nothing waits for a time. The test says so where a release or a timer must run on.
    pub async fn settle_through_time(&self) -> Vec<Call> {
        self.settle_at(true).await
    }

    /// Moves the clock to the next due time, if anything waits for one, and settles there;
    /// the new time.
    pub async fn advance_to_next_due(&self) -> Option<i64> {
        let next = self.next_due().await.filter(|t| *t > self.clock.now_ms())?;
        self.clock.set_ms(next);
        self.settle().await;
        Some(next)
    }

    async fn settle_at(&self, through_time: bool) -> Vec<Call> {
        let leave = self.leave.lock().unwrap().clone();
        let wait = if leave.is_empty() {
            Wait::All
        } else {
            Wait::Except(leave)
        };
        let before = self.slack.calls().len();
        for _ in 0..100_000 {
            let fired = self.app.scheduler.drain().await.expect("scheduler");
            let handled = self.app.inbox.drain().await.expect("inbox") + fired;
            // A step the test holds (a script reading a fifo) must be left running with
            // `leave_running`; one that is not fails the test here instead of hanging it.
            let moved = tokio::time::timeout(STUCK_AFTER, self.app.executor.drain(wait.clone()))
                .await
                .unwrap_or_else(|_| panic!("settle: the executor's tasks still run after {STUCK_AFTER:?} (a step the test holds? use leave_running)"))
                .expect("executor");
            let delivered = self.app.outbox.round().await.expect("outbox");
            if handled == 0 && moved == 0 && delivered.attempted() == 0 {
                // Paced deliveries go out as the platform's pace allows; an execution's
                // or a firing's time comes only when the test lets time pass.
                let next = if through_time {
                    self.next_due().await
                } else {
                    releasebot::store::outbox::next_wake(&self.app.state.bot.store)
                        .await
                        .unwrap()
                };
                match next {
                    Some(t) if t > self.clock.now_ms() => self.clock.set_ms(t),
                    _ => break,
                }
            }
        }
        self.slack.calls()[before..].to_vec()
    }

    /// From now on, [`TestBot::settle`] leaves the tasks of these executions running (a
    /// long step the test lets go on) and waits for everything else; `&[]` waits for all.
    pub fn leave_running(&self, executions: &[i64]) {
        *self.leave.lock().unwrap() = executions.to_vec();
    }

    /// When the next queued thing falls due: an outbox queue, an event given back, or an
    /// execution waiting for a time (not one whose task is running).
    pub async fn next_due(&self) -> Option<i64> {
        use sqlx::Row;
        let store = &self.app.state.bot.store;
        let outbox = releasebot::store::outbox::next_wake(store).await.unwrap();
        let inbox = releasebot::store::lease::next_due(store, &releasebot::store::lease::INBOX, None)
            .await
            .unwrap();
        let executions: Option<i64> = sqlx::query(
            "SELECT MIN(due_at) AS t FROM executions WHERE finished_at IS NULL AND lease_owner IS NULL AND due_at < $1",
        )
        .bind(releasebot::domain::execution::NEVER)
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get("t")
        .unwrap();
        [outbox, inbox, executions].into_iter().flatten().min()
    }

    /// Ends a test the way bors's `finish` does: whatever is still due runs, and the test
    /// fails if that delivered anything (a message the test never looked at), if a
    /// delivery failed, or if an event's handler failed.
    pub async fn finish(self) {
        use sqlx::Row;
        let unread = self.settle().await;
        let unread: Vec<String> = unread
            .iter()
            .filter(|c| c.method != "views.open")
            .map(|c| format!("{} {}", c.method, TestBot::text_of(c)))
            .collect();
        assert!(
            unread.is_empty(),
            "the test ended with deliveries nobody looked at: {unread:#?}"
        );
        let failed = self.outbox_failures().await;
        assert!(failed.is_empty(), "deliveries failed: {failed:#?}");
        let events: Vec<String> = sqlx::query("SELECT error FROM inbox WHERE status = 'failed'")
            .fetch_all(&self.app.state.bot.store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<Option<String>, _>(0).unwrap_or_default())
            .collect();
        assert!(events.is_empty(), "handlers failed: {events:#?}");
    }

    /// The last modal Slack was asked to open.
    pub fn last_modal(&self) -> Value {
        self.slack
            .calls_of("views.open")
            .last()
            .expect("a modal was opened")
            .body["view"]
            .clone()
    }

    /// The text of every block of a chat call, joined, for assertions.
    pub fn text_of(call: &Call) -> String {
        let mut out = String::new();
        collect_text(&call.body["blocks"], &mut out);
        out
    }

    /// Actions (button values) of a chat call.
    pub fn buttons_of(call: &Call) -> Vec<String> {
        call.body["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["value"].as_str().map(str::to_string))
            .collect()
    }

    /// Outbox items the platform refused for good, with the reason.
    pub async fn outbox_failures(&self) -> Vec<String> {
        use sqlx::Row;
        sqlx::query("SELECT kind, last_error FROM outbox WHERE status = 'failed'")
            .fetch_all(&self.app.state.bot.store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.get::<String, _>(0),
                    r.get::<Option<String>, _>(1).unwrap_or_default()
                )
            })
            .collect()
    }

    pub async fn inbox_rows(&self) -> i64 {
        use sqlx::Row;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox")
            .fetch_one(&self.app.state.bot.store.pool)
            .await
            .unwrap();
        row.try_get::<i64, _>("n").unwrap()
    }

    /// Submits the default release form as `user` and settles; returns the first stage message.
    pub async fn submit_release(&self, user: &str, md5: &str) -> Call {
        let r = self.command(user, "/release new").await;
        assert_eq!(r.status, StatusCode::OK);
        self.settle().await;
        let modal = self.last_modal();
        let r = self.submit(user, &modal, &valid_release(md5)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body, "", "no inline errors");
        let calls = self.settle().await;
        calls
            .into_iter()
            .find(|c| c.method == "chat.postMessage")
            .expect("the first stage is posted")
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(t)) = m.get("text") {
                out.push_str(t);
                out.push('\n');
            }
            for (k, x) in m {
                if k != "text" || !x.is_string() {
                    collect_text(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        _ => {}
    }
}

pub const MD5: &str = "0123456789abcdef0123456789abcdef";

pub fn valid_release(md5: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("application", "payments"),
        ("version", "2.1.0"),
        ("package_url", "https://repo.example.com/payments-2.1.0.tgz"),
        ("md5", md5),
        ("scope", "web-1,web-2"),
        ("planned_at", "2030-01-15 22:00"),
        ("notes", "Fixes <!channel> & the refund bug"),
    ]
}

/// A request body for a snapshot: the delivery key a post carries (it names the outbox
/// item, so it changes whenever a test writes one more) becomes `[delivery]`.
pub fn snapshot_body(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(k) = b.pointer_mut("/metadata/event_payload/delivery") {
        assert!(k.as_str().is_some_and(|k| k.starts_with("rb-")), "a delivery key: {k}");
        *k = json!("[delivery]");
    }
    if let Some(n) = b.get_mut("nonce") {
        assert!(n.as_str().is_some_and(|k| k.starts_with("rb-")), "a delivery key: {n}");
        *n = json!("[delivery]");
    }
    b
}

/// Where a posted message landed (its `ts`), or which message an update edits.
pub fn ts_of(call: &Call) -> String {
    call.response["ts"]
        .as_str()
        .or_else(|| call.body["ts"].as_str())
        .map(str::to_string)
        .unwrap_or_default()
}

impl TestBot {
    pub async fn raw_get(&self, path: &str) -> String {
        let res = self
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).to_string()
    }
}

pub fn ephemerals_to(calls: &[fake_slack::Call], user: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == "chat.postEphemeral" && c.body["user"] == user)
        .map(TestBot::text_of)
        .collect()
}

pub fn posts(calls: &[fake_slack::Call]) -> Vec<&fake_slack::Call> {
    calls.iter().filter(|c| c.method == "chat.postMessage").collect()
}

pub fn updates(calls: &[fake_slack::Call]) -> Vec<&fake_slack::Call> {
    calls.iter().filter(|c| c.method == "chat.update").collect()
}

/// Approves the stage message `stage_msg` as `user`, answering its form if it has one.
pub async fn approve(
    bot: &TestBot,
    user: &str,
    stage_msg: &fake_slack::Call,
    answers: &[(&str, &str)],
) -> Vec<fake_slack::Call> {
    let approve = TestBot::buttons_of(stage_msg)
        .into_iter()
        .find(|b| b.starts_with("approve:"))
        .expect("an Approve button");
    let r = bot.click(user, &approve, &ts_of(stage_msg)).await;
    assert_eq!(r.status, StatusCode::OK);
    let calls = bot.settle().await;
    if calls.iter().any(|c| c.method == "views.open") {
        let modal = bot.last_modal();
        let r = bot.submit(user, &modal, answers).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "", "the form is accepted");
        return bot.settle().await;
    }
    calls
}

/// `text` with a page link's token (a signature with the database's key) replaced by
/// `[token]`, for snapshots.
pub fn without_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("?t=") {
        out.push_str(&rest[..at]);
        out.push_str("?t=[token]");
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `text` without its page tokens and with the time a progress message says has elapsed
/// replaced by `[elapsed]`: where real processes run beside the test's clock, that time
/// depends on how the runs interleave.
pub fn without_token_or_elapsed(text: &str) -> String {
    let text = without_token(text);
    let mut out = Vec::new();
    let mut after_elapsed = false;
    for line in text.lines() {
        out.push(if after_elapsed { "[elapsed]" } else { line });
        after_elapsed = line == "*Elapsed*";
    }
    out.join("\n")
}

/// The valid release answers with some of them replaced (or added).
pub fn answers_with<'a>(changes: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut values: Vec<(&'static str, &'a str)> = valid_release(MD5);
    for (k, v) in changes {
        values.retain(|(key, _)| key != k);
        values.push((k, v));
    }
    values
}

impl TestBot {
    /// `user` opens the form and submits these answers; returns the first stage message.
    pub async fn submit_values(&self, user: &str, values: &[(&str, &str)]) -> fake_slack::Call {
        self.command(user, "/release new").await;
        self.settle().await;
        let modal = self.last_modal();
        let r = self.submit(user, &modal, values).await;
        assert_eq!(r.body, "", "the form is accepted");
        let calls = self.settle().await;
        posts(&calls)
            .first()
            .map(|c| (*c).clone())
            .expect("the first stage is posted")
    }

    /// Test confirms, ops coordinates and ops releases; returns what Slack received after
    /// the release stage was approved (the release itself, on the test clock).
    pub async fn approve_to_release(&self, first_stage: &fake_slack::Call) -> Vec<fake_slack::Call> {
        let calls = approve(
            self,
            TOM,
            first_stage,
            &[("evaluation", "pass"), ("test_summary", "ok")],
        )
        .await;
        let calls = approve(self, OSCAR, &posts(&calls)[0].clone(), &[]).await;
        let mut calls = approve(self, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
        // The release runs on: its monitors' windows pass on the test clock.
        calls.extend(self.settle_through_time().await);
        calls
    }
}
