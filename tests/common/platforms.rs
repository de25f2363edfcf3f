//! The neutral side of the conformance suite: one `Platform` per chat platform drives
//! the real router with that platform's signed requests and reads what its fake API
//! received (plus, on Discord, what the interaction responses carried) as neutral
//! [`Seen`] records. Tests written against this run unchanged on every platform.

use super::fake_discord::{message_json, user_json};
use super::*;
use async_trait::async_trait;
use axum::http::StatusCode;
use ed25519_dalek::Signer;
use serde_json::{json, Value};
use std::sync::Mutex;

/// The team: one person per role, the same people on every platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Alice,
    Tom,
    Tina,
    Oscar,
    Olga,
    Quinn,
    Ada,
    Nobody,
}

impl Who {
    fn slack(self) -> &'static str {
        match self {
            Who::Alice => ALICE,
            Who::Tom => TOM,
            Who::Tina => TINA,
            Who::Oscar => OSCAR,
            Who::Olga => OLGA,
            Who::Quinn => QUINN,
            Who::Ada => ADA,
            Who::Nobody => NOBODY,
        }
    }
    fn discord(self) -> &'static str {
        match self {
            Who::Alice => "1001",
            Who::Tom => "1002",
            Who::Tina => "1003",
            Who::Oscar => "1004",
            Who::Olga => "1005",
            Who::Quinn => "1006",
            Who::Ada => "1007",
            Who::Nobody => "1008",
        }
    }
    fn dingtalk(self) -> &'static str {
        match self {
            Who::Alice => "alice01",
            Who::Tom => "tom01",
            Who::Tina => "tina01",
            Who::Oscar => "oscar01",
            Who::Olga => "olga01",
            Who::Quinn => "quinn01",
            Who::Ada => "ada01",
            Who::Nobody => "nobody01",
        }
    }
}

/// The built-in configuration with the team's members on all three platforms.
pub fn everywhere_config() -> String {
    let members = |ws: &[Who]| -> String {
        let all: Vec<String> = ws
            .iter()
            .flat_map(|w| {
                [
                    format!("\"slack:{}\"", w.slack()),
                    format!("\"discord:{}\"", w.discord()),
                    format!("\"dingtalk:{}\"", w.dingtalk()),
                ]
            })
            .collect();
        format!("members = [{}]\n", all.join(", "))
    };
    DEFAULT_CONFIG
        .replace(
            "[roles.product]\n",
            &format!("[roles.product]\n{}", members(&[Who::Alice])),
        )
        .replace(
            "[roles.test]\n",
            &format!("[roles.test]\n{}", members(&[Who::Tom, Who::Tina])),
        )
        .replace(
            "[roles.ops]\n",
            &format!("[roles.ops]\n{}", members(&[Who::Oscar, Who::Olga])),
        )
        .replace("[roles.qc]\n", &format!("[roles.qc]\n{}", members(&[Who::Quinn])))
        .replace("[roles.admin]\n", &format!("[roles.admin]\n{}", members(&[Who::Ada])))
        + CALENDAR
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new message in a channel.
    Post,
    /// An edit of a posted message (`id` names it).
    Update,
    /// An answer meant for one user (ephemeral, interaction reply, or robot reply).
    Private,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub kind: Kind,
    pub channel: String,
    /// The platform's id of the message (posts and updates).
    pub id: String,
    pub text: String,
    /// The semantic actions of its buttons.
    pub actions: Vec<String>,
}

impl Seen {
    pub fn action(&self, prefix: &str) -> String {
        self.actions
            .iter()
            .find(|a| a.starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| panic!("no {prefix} button on {self:#?}"))
    }

    /// `REL-n` of the ticket the message is about.
    pub fn ticket(&self) -> String {
        let i = self.text.find("REL-").expect("a ticket id in the message");
        let digits: String = self.text[i + 4..].chars().take_while(|c| c.is_ascii_digit()).collect();
        format!("REL-{digits}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

#[async_trait]
pub trait Platform: Send + Sync {
    fn name(&self) -> &'static str;
    fn id(&self, who: Who) -> String;
    /// Everything seen so far, in order.
    fn log(&self, bot: &TestBot) -> Vec<Seen>;
    /// `line` typed by `who` (`/release new`, `/role list`, …).
    async fn command(&self, bot: &TestBot, who: Who, line: &str) -> StatusCode;
    /// `who` presses the button `action` on `msg`; `twice` delivers the same request again.
    async fn click(&self, bot: &TestBot, who: Who, msg: &Seen, action: &str, twice: bool) -> StatusCode;
    /// `who` asks for a release with these answers (the platform's form, or its command).
    async fn submit_release(&self, bot: &TestBot, who: Who, values: &[(&str, &str)]);
    /// `who` decides the stage of `msg`, answering the form the platform shows.
    async fn decide(&self, bot: &TestBot, who: Who, msg: &Seen, decision: Decision, answers: &[(&str, &str)]);
    /// A request with a forged signature; returns the status.
    async fn forged(&self, bot: &TestBot) -> StatusCode;
    /// The platform answers the next new message with 429.
    fn rate_limit_next_post(&self, bot: &TestBot);
    /// How many requests the platform's API received that deliver messages.
    fn deliveries(&self, bot: &TestBot) -> usize;
    /// The platform creates the next new message but its answer never arrives.
    fn hang_next_post(&self, bot: &TestBot);
    /// Waits until the platform received `n` requests that deliver messages.
    async fn deliveries_reach(&self, bot: &TestBot, n: usize);
}

/// Runs the workers, then returns what was seen since `before` entries.
pub async fn settle(bot: &TestBot, p: &dyn Platform, before: usize) -> Vec<Seen> {
    bot.settle().await;
    p.log(bot)[before..].to_vec()
}

/// Runs the workers and lets time pass until nothing waits for a time (a release's
/// monitors, retries, timers), then returns what was seen since `before` entries.
pub async fn settle_through_time(bot: &TestBot, p: &dyn Platform, before: usize) -> Vec<Seen> {
    bot.settle_through_time().await;
    p.log(bot)[before..].to_vec()
}

/// Ends a conformance test: whatever is still due runs, and the test fails if that
/// delivered anything on `p` (a message nobody looked at), then as `TestBot::finish`.
pub async fn finish(bot: TestBot, p: &dyn Platform) {
    let before = p.log(&bot).len();
    let unread = settle(&bot, p, before).await;
    assert!(
        unread.is_empty(),
        "{}: the test ended with messages nobody looked at: {unread:#?}",
        p.name()
    );
    bot.finish().await;
}

/// The delivered post whose text has `what`.
pub fn post_about<'a>(seen: &'a [Seen], what: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.kind == Kind::Post && s.text.contains(what) && !s.id.is_empty())
        .unwrap_or_else(|| panic!("a message about {what:?} in {seen:#?}"))
}

/// Every stage of REL-1 approved in turn (test, coordination, release, QC), each on the
/// latest message carrying its Approve button; what was seen at the end.
pub async fn approve_every_stage(bot: &TestBot, p: &dyn Platform) -> Vec<Seen> {
    type Step<'a> = (Who, &'a str, Vec<(&'a str, &'a str)>);
    let steps: [Step; 4] = [
        (Who::Tom, "approve:1:1:", TEST_ANSWERS.to_vec()),
        (Who::Oscar, "approve:1:2:", vec![]),
        (Who::Olga, "approve:1:3:", vec![("release_summary", "go")]),
        (
            Who::Quinn,
            "approve:1:4:",
            vec![("qc_evaluation", "poor"), ("qc_notes", "rolled back")],
        ),
    ];
    let mut seen = p.log(bot);
    for (who, action, answers) in steps {
        let msg: Seen = seen
            .iter()
            .rev()
            .find(|s| s.kind == Kind::Post && s.actions.iter().any(|a| a.starts_with(action)))
            .unwrap_or_else(|| panic!("{}: a message with {action}", p.name()))
            .clone();
        p.decide(bot, who, &msg, Decision::Approve, &answers).await;
        // The release stage's release runs on the test clock.
        seen = settle_through_time(bot, p, 0).await;
    }
    seen
}

/// Alice asks for the default release; returns the test stage's message.
pub async fn submitted(bot: &TestBot, p: &dyn Platform) -> Seen {
    let before = p.log(bot).len();
    p.submit_release(bot, Who::Alice, &valid_release(MD5)).await;
    let seen = settle(bot, p, before).await;
    post_about(&seen, "Test confirmation").clone()
}

/// `who` approves `msg` answering its form; returns the next message, about `next`.
pub async fn approved(
    bot: &TestBot,
    p: &dyn Platform,
    who: Who,
    msg: &Seen,
    answers: &[(&str, &str)],
    next: &str,
) -> Seen {
    let before = p.log(bot).len();
    p.decide(bot, who, msg, Decision::Approve, answers).await;
    let seen = settle(bot, p, before).await;
    post_about(&seen, next).clone()
}

/// The test answers of the default flow.
pub const TEST_ANSWERS: [(&str, &str); 2] = [("evaluation", "pass"), ("test_summary", "All green")];

pub fn of_kind(seen: &[Seen], kind: Kind) -> Vec<Seen> {
    seen.iter().filter(|s| s.kind == kind).cloned().collect()
}

fn quote(v: &str) -> String {
    if v.contains(char::is_whitespace) || v.is_empty() {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "custom_id" | "type" | "style"))
            .for_each(|(_, x)| collect_text(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------- Slack

pub struct Slack;

#[async_trait]
impl Platform for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }
    fn id(&self, who: Who) -> String {
        who.slack().to_string()
    }
    fn log(&self, bot: &TestBot) -> Vec<Seen> {
        bot.slack
            .calls()
            .iter()
            .filter_map(|c| {
                let kind = match c.method.as_str() {
                    "chat.postMessage" => Kind::Post,
                    "chat.update" => Kind::Update,
                    "chat.postEphemeral" => Kind::Private,
                    _ => return None,
                };
                Some(Seen {
                    kind,
                    channel: c.body["channel"].as_str().unwrap_or("").to_string(),
                    id: ts_of(c),
                    text: TestBot::text_of(c),
                    actions: TestBot::buttons_of(c),
                })
            })
            .collect()
    }
    async fn command(&self, bot: &TestBot, who: Who, line: &str) -> StatusCode {
        bot.command(who.slack(), line).await.status
    }
    async fn click(&self, bot: &TestBot, who: Who, msg: &Seen, action: &str, twice: bool) -> StatusCode {
        if !twice {
            return bot.click(who.slack(), action, &msg.id).await.status;
        }
        let payload = json!({
            "type": "block_actions",
            "user": { "id": who.slack(), "username": "x" },
            "trigger_id": "trigger.retry",
            "channel": { "id": CHANNEL },
            "container": { "type": "message", "message_ts": msg.id, "channel_id": CHANNEL },
            "message": { "ts": msg.id },
            "actions": [{ "type": "button", "action_id": action, "value": action, "block_id": "b", "action_ts": "1" }],
        });
        let body = bot.interaction_body(payload);
        let first = bot
            .signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body.clone(),
                &[],
            )
            .await;
        let again = bot
            .signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body,
                &[("x-slack-retry-num", "1".to_string())],
            )
            .await;
        assert_eq!(first.status, again.status);
        again.status
    }
    async fn submit_release(&self, bot: &TestBot, who: Who, values: &[(&str, &str)]) {
        bot.command(who.slack(), "/release new").await;
        bot.settle().await;
        let modal = bot.last_modal();
        let r = bot.submit(who.slack(), &modal, values).await;
        assert_eq!(r.body, "", "the form is accepted");
    }
    async fn decide(&self, bot: &TestBot, who: Who, msg: &Seen, decision: Decision, answers: &[(&str, &str)]) {
        let prefix = if decision == Decision::Approve {
            "approve:"
        } else {
            "reject:"
        };
        let opened = bot.slack.calls_of("views.open").len();
        bot.click(who.slack(), &msg.action(prefix), &msg.id).await;
        bot.settle().await;
        if bot.slack.calls_of("views.open").len() > opened {
            let modal = bot.last_modal();
            let r = bot.submit(who.slack(), &modal, answers).await;
            assert_eq!(r.body, "", "the form is accepted");
        }
    }
    async fn forged(&self, bot: &TestBot) -> StatusCode {
        let body = bot.command_body(ALICE, "/release", "list");
        let ts = (bot.clock.now_ms() / 1000).to_string();
        let sig = verify::sign("wrong-secret", &ts, &body);
        bot.raw(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body,
            &[("x-slack-request-timestamp", ts), ("x-slack-signature", sig)],
        )
        .await
        .status
    }
    fn rate_limit_next_post(&self, bot: &TestBot) {
        bot.slack.fail_next(
            "chat.postMessage",
            fake_slack::Failure::RateLimited { retry_after_secs: 2 },
        );
    }
    fn deliveries(&self, bot: &TestBot) -> usize {
        bot.slack.calls_of("chat.postMessage").len()
    }
    fn hang_next_post(&self, bot: &TestBot) {
        bot.slack
            .fail_next("chat.postMessage", fake_slack::Failure::AcceptThenHang);
    }
    async fn deliveries_reach(&self, bot: &TestBot, n: usize) {
        bot.slack.wait_for("chat.postMessage", n).await;
    }
}

// ---------------------------------------------------------------- Discord

/// The guild channel where the team works.
pub const DISCORD_CHANNEL: &str = "900";

#[derive(Default)]
pub struct Discord {
    /// Answers that came back in interaction responses, after this many API calls.
    replies: Mutex<Vec<(usize, Seen)>>,
    /// Every interaction response, as Discord received it.
    pub responses: Mutex<Vec<Value>>,
    next: std::sync::atomic::AtomicU64,
}

impl Discord {
    fn next_id(&self) -> u64 {
        3_000 + self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    fn base(&self, kind: u8, who: Who, data: Value) -> Value {
        let id = self.next_id();
        json!({
            "id": id.to_string(), "application_id": "4242", "type": kind, "data": data,
            "channel_id": DISCORD_CHANNEL, "channel": { "id": DISCORD_CHANNEL, "type": 0 },
            "user": user_json(who.discord()),
            "token": format!("itoken-{id}"), "version": 1, "locale": "en-US",
            "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {},
            "context": 1, "attachment_size_limit": 10_485_760,
        })
    }

    /// Sends a signed interaction; records a private answer it carried.
    pub async fn send(&self, bot: &TestBot, payload: &Value) -> Reply {
        let body = payload.to_string().into_bytes();
        let r = self.send_raw(bot, body.clone(), true).await;
        self.note(bot, &r);
        r
    }

    pub async fn send_raw(&self, bot: &TestBot, body: Vec<u8>, good: bool) -> Reply {
        let ts = (bot.clock.now_ms() / 1000).to_string();
        let mut msg = ts.clone().into_bytes();
        msg.extend_from_slice(&body);
        let key = if good {
            bot.discord_key.clone()
        } else {
            ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
        };
        let sig = hex::encode(key.sign(&msg).to_bytes());
        bot.raw(
            "/discord/interactions",
            "application/json",
            body,
            &[("x-signature-ed25519", sig), ("x-signature-timestamp", ts)],
        )
        .await
    }

    fn note(&self, bot: &TestBot, r: &Reply) {
        let v = r.json();
        self.responses.lock().unwrap().push(v.clone());
        if v["type"] == 4 || v["type"] == 7 {
            let mut text = String::new();
            collect_text(&v["data"]["content"], &mut text);
            collect_text(&v["data"]["embeds"], &mut text);
            collect_text(&v["data"]["components"], &mut text);
            let seen = Seen {
                kind: Kind::Private,
                channel: DISCORD_CHANNEL.into(),
                id: String::new(),
                text,
                actions: actions_of(&v["data"]["components"]),
            };
            self.replies.lock().unwrap().push((bot.discord.calls().len(), seen));
        }
    }

    pub fn command_payload(&self, who: Who, line: &str) -> Value {
        let line = line.trim_start_matches('/');
        let mut words = line.splitn(3, ' ');
        let name = words.next().unwrap_or("");
        let sub = words.next();
        let args = words.next();
        let options = match sub {
            None => json!([]),
            Some(s) => {
                let inner = match args {
                    Some(a) => json!([{ "name": "arguments", "type": 3, "value": a }]),
                    None => json!([]),
                };
                json!([{ "name": s, "type": 1, "options": inner }])
            }
        };
        self.base(
            2,
            who,
            json!({ "id": "8000", "name": name, "type": 1, "options": options }),
        )
    }

    pub fn click_payload(&self, who: Who, message_id: &str, custom_id: &str) -> Value {
        let mut p = self.base(3, who, json!({ "custom_id": custom_id, "component_type": 2 }));
        p["message"] = message_json(message_id, DISCORD_CHANNEL, &json!({}));
        p
    }

    /// `who` asks for a release through the form's pages; the last answer it got.
    pub async fn try_release(&self, bot: &TestBot, who: Who, values: &[(&str, &str)]) -> Reply {
        let p = self.command_payload(who, "/release new");
        let r = self.send(bot, &p).await;
        assert_eq!(r.json()["type"], 9, "a modal opens: {}", r.body);
        self.fill(bot, who, r, values).await
    }

    /// Answers every modal in turn (pressing Continue between pages) until the form is done.
    async fn fill(&self, bot: &TestBot, who: Who, mut reply: Reply, answers: &[(&str, &str)]) -> Reply {
        for _ in 0..10 {
            let v = reply.json();
            if v["type"] == 9 {
                let modal = &v["data"];
                let rows: Vec<Value> = modal["components"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| {
                        let input = &row["components"][0];
                        let id = input["custom_id"].as_str().unwrap();
                        let value = answers
                            .iter()
                            .find(|(k, _)| *k == id)
                            .map(|(_, v)| v.to_string())
                            .or_else(|| input["value"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        json!({ "type": 1, "components": [{ "type": 4, "custom_id": id, "value": value }] })
                    })
                    .collect();
                let payload = self.base(5, who, json!({ "custom_id": modal["custom_id"], "components": rows }));
                reply = self.send(bot, &payload).await;
                continue;
            }
            let next = actions_of(&v["data"]["components"])
                .into_iter()
                .find(|a| a.starts_with("form:") && v["type"] == 4 && !reply.body.contains("not accepted"));
            match next {
                Some(step) => {
                    let payload = self.click_payload(who, "1", &step);
                    reply = self.send(bot, &payload).await;
                }
                None => return reply,
            }
        }
        panic!("the form never ended")
    }
}

fn actions_of(components: &Value) -> Vec<String> {
    components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["custom_id"].as_str().map(str::to_string))
        .collect()
}

fn discord_seen(c: &fake_discord::Call) -> Option<Seen> {
    let kind = match c.route.as_str() {
        "send_message" => Kind::Post,
        "edit_message" => Kind::Update,
        "followup" => Kind::Private,
        _ => return None,
    };
    let mut text = String::new();
    collect_text(&c.body["content"], &mut text);
    collect_text(&c.body["embeds"], &mut text);
    collect_text(&c.body["components"], &mut text);
    let private = c.body["flags"].as_u64() == Some(64);
    Some(Seen {
        kind: if private { Kind::Private } else { kind },
        channel: c.target.clone(),
        id: match kind {
            Kind::Update => c.message.clone(),
            _ => c.response["id"].as_str().unwrap_or("").to_string(),
        },
        text,
        actions: actions_of(&c.body["components"])
            .into_iter()
            .map(|a| a.trim_start_matches("confirm:").to_string())
            .collect(),
    })
}

#[async_trait]
impl Platform for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }
    fn id(&self, who: Who) -> String {
        who.discord().to_string()
    }
    fn log(&self, bot: &TestBot) -> Vec<Seen> {
        let calls = bot.discord.calls();
        let replies = self.replies.lock().unwrap().clone();
        let mut out = Vec::new();
        let mut r = replies.iter().peekable();
        for (i, c) in calls.iter().enumerate() {
            while let Some((_, s)) = r.next_if(|(at, _)| *at <= i) {
                out.push(s.clone());
            }
            out.extend(discord_seen(c));
        }
        out.extend(r.map(|(_, s)| s.clone()));
        out
    }
    async fn command(&self, bot: &TestBot, who: Who, line: &str) -> StatusCode {
        let p = self.command_payload(who, line);
        self.send(bot, &p).await.status
    }
    async fn click(&self, bot: &TestBot, who: Who, msg: &Seen, action: &str, twice: bool) -> StatusCode {
        let p = self.click_payload(who, &msg.id, action);
        let first = self.send(bot, &p).await;
        if twice {
            let again = self.send(bot, &p).await;
            assert_eq!(first.status, again.status);
        }
        first.status
    }
    async fn submit_release(&self, bot: &TestBot, who: Who, values: &[(&str, &str)]) {
        let done = self.try_release(bot, who, values).await;
        assert!(
            !done.body.contains("not accepted"),
            "the form is accepted: {}",
            done.body
        );
    }
    async fn decide(&self, bot: &TestBot, who: Who, msg: &Seen, decision: Decision, answers: &[(&str, &str)]) {
        let prefix = if decision == Decision::Approve {
            "approve:"
        } else {
            "reject:"
        };
        let p = self.click_payload(who, &msg.id, &msg.action(prefix));
        let r = self.send(bot, &p).await;
        let done = self.fill(bot, who, r, answers).await;
        assert!(
            !done.body.contains("not accepted"),
            "the form is accepted: {}",
            done.body
        );
    }
    async fn forged(&self, bot: &TestBot) -> StatusCode {
        let p = self.command_payload(Who::Alice, "/release list");
        self.send_raw(bot, p.to_string().into_bytes(), false).await.status
    }
    fn rate_limit_next_post(&self, bot: &TestBot) {
        bot.discord.rate_limit_next("send_message");
    }
    fn deliveries(&self, bot: &TestBot) -> usize {
        bot.discord.calls().iter().filter(|c| c.route == "send_message").count()
    }
    fn hang_next_post(&self, bot: &TestBot) {
        bot.discord.hang_next("send_message");
    }
    async fn deliveries_reach(&self, bot: &TestBot, n: usize) {
        bot.discord.wait_for("send_message", n).await;
    }
}

// ---------------------------------------------------------------- DingTalk

/// The group conversation where the team works.
pub const DINGTALK_GROUP: &str = "cidRELEASE==";

#[derive(Default)]
pub struct DingTalk {
    next: std::sync::atomic::AtomicU64,
    /// Requests sent: each is stamped a millisecond apart, as DingTalk's own are (a
    /// timestamp and its signature are accepted once).
    sent: std::sync::atomic::AtomicU64,
}

impl DingTalk {
    pub async fn post(&self, bot: &TestBot, body: &Value, secret: &str) -> Reply {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as i64;
        let ts = (bot.clock.now_ms() - n % 60_000).to_string();
        let sign = releasebot::chat::dingtalk::verify::sign(secret, &ts);
        bot.raw(
            "/dingtalk/events",
            "application/json",
            body.to_string().into_bytes(),
            &[("timestamp", ts), ("sign", sign)],
        )
        .await
    }

    pub fn text_payload(&self, who: Who, text: &str) -> Value {
        self.text_payload_as(who.dingtalk(), text)
    }

    /// A message to the robot from any DingTalk user id.
    pub fn text_payload_as(&self, user: &str, text: &str) -> Value {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json!({
            "msgId": format!("msg{n}"), "msgtype": "text", "text": { "content": format!(" {text}") },
            "senderStaffId": user, "senderNick": user, "conversationType": "2",
            "conversationId": DINGTALK_GROUP, "chatbotUserId": "$bot",
            "sessionWebhook": "https://oapi.dingtalk.invalid/robot/sendBySession?session=x",
            "atUsers": [{ "dingtalkId": "$bot" }],
        })
    }

    pub fn callback_payload(&self, who: Who, track: &str, action: &str) -> Value {
        self.callback_payload_as(who.dingtalk(), track, action)
    }

    /// A card button pressed by any DingTalk user id.
    pub fn callback_payload_as(&self, user: &str, track: &str, action: &str) -> Value {
        let content = json!({ "cardPrivateData": { "actionIds": [action], "params": {} } }).to_string();
        json!({ "type": "actionCallback", "outTrackId": track, "userId": user, "corpId": "corp1", "content": content })
    }
}

fn dingtalk_seen(c: &fake_dingtalk::Call) -> Option<Seen> {
    let params = |v: &Value| -> (String, Vec<String>) {
        let p = &v["cardData"]["cardParamMap"];
        let text = format!(
            "{}\n{}",
            p["title"].as_str().unwrap_or(""),
            p["markdown"].as_str().unwrap_or("")
        );
        let buttons: Vec<Value> = serde_json::from_str(p["buttons"].as_str().unwrap_or("[]")).unwrap_or_default();
        let actions = buttons
            .iter()
            .filter_map(|b| b["actionId"].as_str().map(str::to_string))
            .collect();
        (text, actions)
    };
    match c.route.as_str() {
        _ if c.status != 200 => None,
        "card_create" => {
            let (text, actions) = params(&c.body);
            let space = c.body["openSpaceId"].as_str().unwrap_or("");
            Some(Seen {
                kind: Kind::Post,
                channel: space.rsplit('.').next().unwrap_or("").to_string(),
                id: c.body["outTrackId"].as_str().unwrap_or("").to_string(),
                text,
                actions,
            })
        }
        "card_update" => {
            let (text, actions) = params(&c.body);
            Some(Seen {
                kind: Kind::Update,
                channel: String::new(),
                id: c.body["outTrackId"].as_str().unwrap_or("").to_string(),
                text,
                actions,
            })
        }
        "group_send" | "direct_send" => {
            let p: Value = serde_json::from_str(c.body["msgParam"].as_str().unwrap_or("{}")).unwrap_or_default();
            Some(Seen {
                kind: Kind::Private,
                channel: c.body["openConversationId"].as_str().unwrap_or("").to_string(),
                id: String::new(),
                text: format!(
                    "{}\n{}",
                    p["title"].as_str().unwrap_or(""),
                    p["text"].as_str().unwrap_or("")
                ),
                actions: Vec::new(),
            })
        }
        "webhook" => Some(Seen {
            kind: Kind::Post,
            channel: "webhook".into(),
            id: String::new(),
            text: c.body["markdown"]["text"].as_str().unwrap_or("").to_string(),
            actions: Vec::new(),
        }),
        _ => None,
    }
}

#[async_trait]
impl Platform for DingTalk {
    fn name(&self) -> &'static str {
        "dingtalk"
    }
    fn id(&self, who: Who) -> String {
        who.dingtalk().to_string()
    }
    fn log(&self, bot: &TestBot) -> Vec<Seen> {
        bot.dingtalk.calls().iter().filter_map(dingtalk_seen).collect()
    }
    async fn command(&self, bot: &TestBot, who: Who, line: &str) -> StatusCode {
        let p = self.text_payload(who, line.trim_start_matches('/'));
        self.post(bot, &p, DINGTALK_SECRET).await.status
    }
    async fn click(&self, bot: &TestBot, who: Who, msg: &Seen, action: &str, twice: bool) -> StatusCode {
        let p = self.callback_payload(who, &msg.id, action);
        let first = self.post(bot, &p, DINGTALK_SECRET).await;
        if twice {
            let again = self.post(bot, &p, DINGTALK_SECRET).await;
            assert_eq!(first.status, again.status);
        }
        first.status
    }
    async fn submit_release(&self, bot: &TestBot, who: Who, values: &[(&str, &str)]) {
        let args: Vec<String> = values.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
        let p = self.text_payload(who, &format!("release new {}", args.join(" ")));
        assert_eq!(self.post(bot, &p, DINGTALK_SECRET).await.status, StatusCode::OK);
    }
    async fn decide(&self, bot: &TestBot, who: Who, msg: &Seen, decision: Decision, answers: &[(&str, &str)]) {
        let prefix = if decision == Decision::Approve {
            "approve:"
        } else {
            "reject:"
        };
        let before = self.log(bot).len();
        self.click(bot, who, msg, &msg.action(prefix), false).await;
        bot.settle().await;
        let asked = self.log(bot)[before..]
            .iter()
            .any(|s| s.kind == Kind::Private && s.text.contains(&format!("release {}", &prefix[..prefix.len() - 1])));
        if asked {
            let line = match decision {
                Decision::Approve => {
                    let args: Vec<String> = answers.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
                    format!("release approve {} {}", msg.ticket(), args.join(" "))
                }
                Decision::Reject => {
                    let reason = answers
                        .iter()
                        .find(|(k, _)| *k == "comment")
                        .map(|(_, v)| *v)
                        .unwrap_or("no");
                    format!("release reject {} {reason}", msg.ticket())
                }
            };
            let p = self.text_payload(who, &line);
            self.post(bot, &p, DINGTALK_SECRET).await;
        }
    }
    async fn forged(&self, bot: &TestBot) -> StatusCode {
        let p = self.text_payload(Who::Alice, "release list");
        self.post(bot, &p, "not-the-secret").await.status
    }
    fn rate_limit_next_post(&self, bot: &TestBot) {
        bot.dingtalk.rate_limit_next("card_create");
    }
    fn deliveries(&self, bot: &TestBot) -> usize {
        bot.dingtalk.calls().iter().filter(|c| c.route == "card_create").count()
    }
    fn hang_next_post(&self, bot: &TestBot) {
        bot.dingtalk.hang_next("card_create");
    }
    async fn deliveries_reach(&self, bot: &TestBot, n: usize) {
        bot.dingtalk.wait_for("card_create", n).await;
    }
}
