//! What is particular to one platform: Discord's ping, command registration and
//! confirmations; DingTalk's text commands, access tokens and signed webhook; and
//! identities linked across platforms.

mod common;

use axum::http::StatusCode;
use common::platforms::{approved, everywhere_config, of_kind, settle, submitted, Decision, TEST_ANSWERS};
use common::platforms::{DingTalk, Discord, Kind, Platform, Who};
use common::*;
use releasebot::config::Secret;
use serde_json::json;
use sqlx::Row;

async fn team() -> TestBot {
    TestBot::with("en", &everywhere_config()).await
}

#[tokio::test]
async fn discord_pings_get_a_pong_and_only_when_signed() {
    let bot = team().await;
    let d = Discord::default();
    let ping = json!({ "id": "1", "application_id": "4242", "type": 1, "token": "t", "version": 1 });
    let r = d.send(&bot, &ping).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({ "type": 1 })));
    let r = d.send_raw(&bot, ping.to_string().into_bytes(), false).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "Discord probes with bad signatures");
    let r = bot
        .raw(
            "/discord/interactions",
            "application/json",
            ping.to_string().into_bytes(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a missing signature is refused too");
    bot.finish().await;
}

#[tokio::test]
async fn discord_register_sends_commands_derived_from_the_grammar() {
    let bot = team().await;
    let settings = bot.settings.discord().unwrap();
    let n = releasebot::chat::discord::client::register_commands(
        &settings,
        &releasebot::cli::discord_commands("App release"),
    )
    .await
    .unwrap();
    assert_eq!(n, 7, "/release, /role, /swimlane, /freeze, /lock, /unlock and /token");
    let call = bot.discord.calls().into_iter().find(|c| c.route == "register").unwrap();
    assert_eq!(call.auth.as_deref(), Some("Bot discord-bot-token"));
    let release = &call.body[0];
    assert_eq!(release["name"], "release");
    let swimlane = &call.body[2];
    assert_eq!(swimlane["name"], "swimlane");
    let lane_verbs: Vec<&str> = swimlane["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        lane_verbs,
        ["create", "list", "show", "renew", "delete", "apps", "deploy", "help"]
    );
    let subs: Vec<&str> = release["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for verb in [
        "new", "show", "list", "cancel", "plan", "status", "rollback", "approve", "reject", "help",
    ] {
        assert!(subs.contains(&verb), "{verb} in {subs:?}");
    }
    for o in release["options"].as_array().unwrap() {
        assert!(o["description"].as_str().unwrap().chars().count() <= 100);
    }
    let show = release["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "show")
        .unwrap();
    assert_eq!(show["options"][0]["required"], true, "REL-ID is required");
    bot.finish().await;
}

#[tokio::test]
async fn discord_asks_before_a_button_with_a_confirmation() {
    let bot = team().await;
    let d = Discord::default();
    d.submit_release(&bot, Who::Alice, &valid_release(MD5)).await;
    let seen = settle(&bot, &d, 0).await;
    let test = seen.iter().find(|s| s.kind == Kind::Post).unwrap().clone();
    d.decide(
        &bot,
        Who::Tom,
        &test,
        Decision::Reject,
        &[("comment", "crashes on start")],
    )
    .await;
    bot.settle().await;
    let sent_back = bot
        .discord
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.route == "send_message" && c.body.to_string().contains("withdraw:1"))
        .expect("the submitter gets Resubmit / Withdraw");
    let ids = sent_back.body["components"].to_string();
    assert!(ids.contains("confirm:withdraw:1"), "Withdraw asks first: {ids}");

    let msg_id = sent_back.response["id"].as_str().unwrap().to_string();
    let r = d
        .send(&bot, &d.click_payload(Who::Alice, &msg_id, "confirm:withdraw:1"))
        .await;
    let v = r.json();
    assert_eq!(v["type"], 4);
    assert_eq!(v["data"]["flags"], 64, "the question is private");
    assert!(v["data"]["content"].as_str().unwrap().contains("Are you sure?"));
    let r = d.send(&bot, &d.click_payload(Who::Alice, "1", "dismiss")).await;
    assert_eq!(r.json()["type"], 7);
    assert_eq!(r.json()["data"]["content"], "Nothing was done.");
    bot.settle().await;
    let before = d.log(&bot).len();
    d.send(&bot, &d.click_payload(Who::Alice, "1", "withdraw:1")).await;
    let seen = settle(&bot, &d, before).await;
    assert!(
        seen.iter()
            .any(|s| s.text.contains("withdrawn") || s.text.contains("closed")),
        "{seen:#?}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn dingtalk_text_commands_get_usage_and_help_in_the_conversation() {
    let bot = team().await;
    let t = DingTalk::default();
    t.command(&bot, Who::Alice, "release shw REL-1").await;
    let seen = settle(&bot, &t, 0).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].channel,
        common::platforms::DINGTALK_GROUP,
        "answered where it was asked"
    );
    assert!(
        seen[0].text.contains("`shw` is not a `/release` command"),
        "{}",
        seen[0].text
    );

    let before = t.log(&bot).len();
    t.command(&bot, Who::Alice, "hello robot").await;
    let seen = settle(&bot, &t, before).await;
    // DingTalk has no slash commands: the help says how commands are typed there.
    let help = &seen[0].text;
    assert!(!help.contains("`/release"), "no slash commands on DingTalk: {help}");
    insta::assert_snapshot!(without_token(help), @"
    release commands
    #### release commands

    `release new [service] [field=value …]` — open the request form (default service: App release), or submit it at once with field=value answers
    `release show REL-ID` — a ticket's fields, current stage and timeline
    `release list [mine|pending|all]` — tickets waiting for a decision (default), yours, or all
    `release cancel REL-ID [reason]` — withdraw a ticket before release (submitter or admin)
    `release plan REL-ID` — dry run: the steps, gates, thresholds, targets and expected duration of a ticket's release plan
    `release status REL-ID` — the release's progress: steps, traffic split, success rate and latency
    `release rollback REL-ID [--to BASELINE]` — roll a release back: during it, like the Rollback button; after it, to the baseline it started from (or --to a recorded baseline)
    `release baselines APPLICATION [ENVIRONMENT]` — the recorded baselines (version, replicas, config) of an application in an environment (default prod)
    `release scale APPLICATION [ENVIRONMENT] REPLICAS` — scale an application's Kubernetes Deployment now (ops): recorded as a change, run as a one-step release — freezes and locks apply, a failure restores the replicas
    `release restart APPLICATION [ENVIRONMENT]` — restart an application's pods on Kubernetes now, as kubectl rollout restart does (ops): recorded as a change, its rollout waited for
    `release help` — this help
    `release approve REL-ID [field=value …]` — approve the ticket's current stage by command, with the stage's inputs as field=value
    `release reject REL-ID reason` — reject the ticket's current stage by command, with the reason
    `release resubmit REL-ID [field=value …]` — resubmit a ticket sent back to you; the answers given replace the earlier ones
    `release override REL-ID reason` — let one release through freezes and locks (reason required; announced and audited)

    > On DingTalk, @-mention the robot, then type the command without the slash, e.g. `@releasebot release new`.
    ");

    // A form becomes the command to send, field by field.
    let before = t.log(&bot).len();
    t.command(&bot, Who::Alice, "release new").await;
    let seen = settle(&bot, &t, before).await;
    let text = &seen[0].text;
    insta::assert_snapshot!(without_token(text), @r#"
    To fill in New App release, @-mention the robot and send this command with your answers:
    #### To fill in **New App release**, @-mention the robot and send this command with your answers:

    **Application**: `application=` (required) — at most 2000 characters

    **Version**: `version=` (required) — e.g. 2.1.0 — at most 2000 characters

    **Package URL**: `package_url=` (required) — http(s) URL of the build in the artifact repository — at most 2000 characters

    **Package MD5**: `md5=` (required) — 32 hexadecimal characters — at most 2000 characters

    **Release scope**: `scope=` (optional) — hosts (web-1,web-2) or a percentage; empty for all — at most 2000 characters

    **Planned time**: `planned_at=` (required) — YYYY-MM-DD HH:MM (UTC), or with an offset: 2026-12-01T22:00+08:00 — at most 2000 characters

    **Notes**: `notes=` (optional) — at most 2000 characters

    `release new app-release application=… version=… package_url=… md5=… scope=… planned_at=… notes=…`

    > Put answers with spaces in double quotes: notes="two words".
    "#);

    // Bad answers are named, and nothing is created.
    let before = t.log(&bot).len();
    t.command(
        &bot,
        Who::Alice,
        "release new application=payments version=1 package_url=ftp://x md5=abc planned_at=\"2030-01-01 10:00\"",
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(seen[0].text.contains("not accepted"), "{}", seen[0].text);
    assert!(
        seen[0].text.contains("32"),
        "the MD5 problem is named: {}",
        seen[0].text
    );
    assert!(of_kind(&t.log(&bot), Kind::Post).is_empty(), "no ticket");
    bot.finish().await;
}

#[tokio::test]
async fn a_captured_dingtalk_request_cannot_be_replayed_with_another_body() {
    let bot = team().await;
    let t = DingTalk::default();
    let sign = |ts: &str| releasebot::chat::dingtalk::verify::sign(DINGTALK_SECRET, ts);
    let send = |body: serde_json::Value, ts: String| {
        let headers = [("sign", sign(&ts)), ("timestamp", ts)];
        let bot = &bot;
        async move {
            bot.raw(
                "/dingtalk/events",
                "application/json",
                body.to_string().into_bytes(),
                &headers,
            )
            .await
            .status
        }
    };
    let ts = bot.clock.now_ms().to_string();
    assert_eq!(
        send(t.text_payload(Who::Alice, "release list"), ts.clone()).await,
        StatusCode::OK
    );
    let recorded = bot.inbox_rows().await;
    // DingTalk signs only the timestamp: the captured pair with someone else's body.
    let forged = t.text_payload_as("mallory01", "role add admin dingtalk:mallory01");
    assert_eq!(send(forged, ts).await, StatusCode::UNAUTHORIZED);
    assert_eq!(bot.inbox_rows().await, recorded, "nothing of the replay is recorded");
    // Five minutes is all a request gets.
    let old = (bot.clock.now_ms() - 5 * 60_000 - 1).to_string();
    assert_eq!(
        send(t.text_payload(Who::Alice, "release list"), old).await,
        StatusCode::UNAUTHORIZED
    );
    let fresh = (bot.clock.now_ms() - 4 * 60_000).to_string();
    assert_eq!(
        send(t.text_payload(Who::Alice, "release list"), fresh).await,
        StatusCode::OK
    );
    bot.finish().await;
}

#[tokio::test]
async fn dingtalk_fetches_one_access_token_for_many_callers() {
    let bot = team().await;
    // The app's own client registered its card callback (with a token of its own) first.
    bot.dingtalk.wait_for("callback_register", 1).await;
    let before = bot.dingtalk.calls().iter().filter(|c| c.route == "token").count();
    let chat = std::sync::Arc::new(
        releasebot::chat::dingtalk::DingTalkChat::new(&bot.settings.dingtalk().unwrap(), bot.clock.clone()).unwrap(),
    );
    let tokens = futures::future::join_all((0..20).map(|_| {
        let c = chat.clone();
        async move { c.access_token().await.unwrap() }
    }))
    .await;
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    let fetched = bot.dingtalk.calls().iter().filter(|c| c.route == "token").count();
    assert_eq!(fetched, before + 1, "refreshed once under concurrency, then cached");
    assert_eq!(
        bot.dingtalk.calls()[0].body["appSecret"],
        "dingtalk-app-secret",
        "the token request carries the app credentials"
    );
    let mut wrong = bot.settings.dingtalk().unwrap();
    wrong.app_secret = Secret::new("nope");
    let chat = releasebot::chat::dingtalk::DingTalkChat::new(&wrong, bot.clock.clone()).unwrap();
    assert!(chat.access_token().await.is_err());
    bot.finish().await;
}

#[tokio::test]
async fn dingtalk_announcements_go_to_the_signed_webhook_paced_for_the_robot() {
    let bot = TestBot::with_settings("en", &everywhere_config(), |s, fakes| {
        s.dingtalk_webhook_url = Some(Secret::new(fakes.dingtalk_webhook.clone()));
        s.dingtalk_webhook_secret = Some(Secret::new("SEChook"));
    })
    .await;
    let t = DingTalk::default();
    let test = submitted(&bot, &t).await;
    let coordinate = approved(&bot, &t, Who::Tom, &test, &TEST_ANSWERS, "Resource coordination").await;
    let release = approved(&bot, &t, Who::Oscar, &coordinate, &[], "— Release").await;
    t.decide(
        &bot,
        Who::Olga,
        &release,
        Decision::Approve,
        &[("release_summary", "go")],
    )
    .await;
    bot.settle().await;

    let hooks: Vec<_> = bot
        .dingtalk
        .calls()
        .into_iter()
        .filter(|c| c.route == "webhook")
        .collect();
    assert!(!hooks.is_empty(), "traffic notices and the report are announced");
    for h in &hooks {
        let q: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(h.query.as_bytes()).into_owned().collect();
        assert_eq!(q["access_token"], "hook-token");
        let ts = &q["timestamp"];
        assert_eq!(
            q["sign"],
            releasebot::chat::dingtalk::verify::sign("SEChook", ts),
            "signed, encoded once"
        );
        assert_eq!(h.body["msgtype"], "markdown");
    }
    assert!(hooks
        .iter()
        .any(|h| h.body["markdown"]["text"].as_str().unwrap().contains("REL-1")));

    let rows =
        sqlx::query("SELECT sent_at FROM outbox WHERE platform = 'dingtalk' AND status = 'sent' ORDER BY sent_at")
            .fetch_all(&bot.app.state.bot.store.pool)
            .await
            .unwrap();
    let times: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
    assert!(times.len() > 10);
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 3_000,
            "at most 20 messages a minute per robot: {times:?}"
        );
    }
    bot.finish().await;
}

#[tokio::test]
async fn a_linked_identity_approves_from_another_platform() {
    let bot = team().await;
    let t = DingTalk::default();
    t.submit_release(&bot, Who::Alice, &valid_release(MD5)).await;
    let seen = settle(&bot, &t, 0).await;
    let test = seen.iter().find(|s| s.kind == Kind::Post).unwrap().clone();

    // Tom's second account on DingTalk holds no role yet.
    let before = t.log(&bot).len();
    t.post(
        &bot,
        &t.callback_payload_as("tom-mobile", &test.id, &test.action("approve:")),
        DINGTALK_SECRET,
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(
        seen.iter().any(|s| s.text.contains("You need the **test** role")),
        "{seen:#?}"
    );

    // The admin links it to Tom's Slack identity, from Slack.
    bot.clock.advance_ms(60_000);
    bot.command(ADA, &format!("/role link <@{TOM}> dingtalk:tom-mobile"))
        .await;
    let calls = bot.settle().await;
    let answer = ephemerals_to(&calls, ADA).join("\n");
    assert!(answer.contains("are now one person"), "{answer}");
    bot.command(ADA, "/role list").await;
    let calls = bot.settle().await;
    let list = ephemerals_to(&calls, ADA).join("\n");
    assert!(list.contains(&format!("<@{TOM}> = @tom-mobile (dingtalk)")), "{list}");

    let before = t.log(&bot).len();
    t.post(
        &bot,
        &t.callback_payload_as("tom-mobile", &test.id, &test.action("approve:")),
        DINGTALK_SECRET,
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(
        seen.iter()
            .any(|s| s.kind == Kind::Private && s.text.contains("release approve REL-1")),
        "the form is asked for: {seen:#?}"
    );
    let before = t.log(&bot).len();
    t.post(
        &bot,
        &t.text_payload_as("tom-mobile", "release approve REL-1 evaluation=pass test_summary=ok"),
        DINGTALK_SECRET,
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(
        seen.iter()
            .any(|s| s.kind == Kind::Update && s.id == test.id && s.text.contains("Approved by @tom-mobile")),
        "{seen:#?}"
    );

    // Linking needs an admin.
    let before = t.log(&bot).len();
    t.command(&bot, Who::Tom, "role link dingtalk:tom01 slack:UNOBODY")
        .await;
    let seen = settle(&bot, &t, before).await;
    assert!(seen[0].text.contains("admin"), "{}", seen[0].text);
    bot.finish().await;
}

#[tokio::test]
async fn linked_identities_are_one_person_for_separation_of_duties_and_countersign() {
    // Alice may test as well; coordination needs two different ops people.
    let config = everywhere_config()
        .replace(
            "[roles.test]\nmembers = [",
            &format!("[roles.test]\nmembers = [\"slack:{ALICE}\", "),
        )
        .replace(
            "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\n",
            "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\napprovals_required = 2\n",
        );
    assert!(config.contains("approvals_required = 2") && config.contains(&format!("\"slack:{ALICE}\", ")));
    let bot = TestBot::with("en", &config).await;
    let t = DingTalk::default();
    for (who, other) in [(ALICE, "alice-mobile"), (OSCAR, "oscar-mobile")] {
        bot.command(ADA, &format!("/role link <@{who}> dingtalk:{other}")).await;
        let answer = ephemerals_to(&bot.settle().await, ADA).join("\n");
        assert!(answer.contains("are now one person"), "{answer}");
    }
    let test_msg = bot.submit_release(ALICE, MD5).await;

    // Alice approving her own ticket from her other account is Alice approving it.
    let before = t.log(&bot).len();
    t.post(
        &bot,
        &t.text_payload_as("alice-mobile", "release approve REL-1 evaluation=pass test_summary=ok"),
        DINGTALK_SECRET,
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(seen.iter().any(|s| s.text.contains("You submitted REL-1")), "{seen:#?}");

    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let coordinate = posts(&calls)[0].clone();
    let calls = approve(&bot, OSCAR, &coordinate, &[]).await;
    assert!(posts(&calls).is_empty(), "one of two approvals");

    // Oscar's second account is still Oscar: the stage waits for someone else.
    let before = t.log(&bot).len();
    t.post(
        &bot,
        &t.text_payload_as("oscar-mobile", "release approve REL-1"),
        DINGTALK_SECRET,
    )
    .await;
    let seen = settle(&bot, &t, before).await;
    assert!(
        seen.iter()
            .any(|s| s.text.contains("You already approved this stage of REL-1")),
        "{seen:#?}"
    );
    let calls = approve(&bot, OLGA, &coordinate, &[]).await;
    assert!(
        TestBot::text_of(posts(&calls)[0]).contains("Release"),
        "the second person moves it on"
    );
    bot.finish().await;
}

/// A DingTalk Stream gateway on a local websocket: sends `frames`, then collects what
/// the client answers until it closes.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn stream_gateway(
    frames: Vec<serde_json::Value>,
) -> (String, tokio::task::JoinHandle<(String, Vec<serde_json::Value>)>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/connect", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut path = String::new();
        let mut ws = tokio_tungstenite::accept_hdr_async(
            tcp,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                path = req.uri().to_string();
                Ok(res)
            },
        )
        .await
        .unwrap();
        for f in frames {
            ws.send(Message::text(f.to_string())).await.unwrap();
        }
        let mut answers = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                answers.push(serde_json::from_str(&t).unwrap());
            }
        }
        (path, answers)
    });
    (url, task)
}

#[tokio::test]
async fn dingtalk_stream_mode_receives_acks_pings_and_reconnects_on_request() {
    let bot = team().await;
    let t = DingTalk::default();
    let event = t.text_payload(Who::Alice, "release help");
    let (url, gateway) = stream_gateway(vec![
        json!({ "specVersion": "1.0", "type": "SYSTEM", "headers": { "topic": "ping", "messageId": "p1" }, "data": "{\"opaque\":\"x\"}" }),
        json!({ "specVersion": "1.0", "type": "CALLBACK", "headers": { "topic": "/v1.0/im/bot/messages/get", "messageId": "m1" }, "data": event.to_string() }),
        json!({ "specVersion": "1.0", "type": "CALLBACK", "headers": { "topic": "/v1.0/im/bot/messages/get", "messageId": "m2" }, "data": event.to_string() }),
        json!({ "specVersion": "1.0", "type": "SYSTEM", "headers": { "topic": "disconnect", "messageId": "d1" }, "data": "" }),
    ])
    .await;
    bot.dingtalk.set_stream_endpoint(&url);
    let settings = bot.settings.dingtalk().unwrap();
    let http = reqwest::Client::new();
    let handler = |body: Vec<u8>| {
        let b = bot.app.state.bot.clone();
        async move { releasebot::server::dingtalk::receive(&b, &body).await.map(|_| ()) }
    };
    let ended = releasebot::chat::dingtalk::stream::connect_once(&http, &settings, &handler, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        ended,
        releasebot::chat::dingtalk::stream::Ended::Reconnect,
        "disconnect asks for a new connection"
    );
    let (path, answers) = gateway.await.unwrap();
    assert!(path.ends_with("?ticket=ticket-1"), "{path}");
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0]["headers"]["messageId"], "p1");
    assert_eq!(answers[0]["data"], "{\"opaque\":\"x\"}", "pings are echoed");
    assert_eq!(answers[1]["code"], 200);
    assert_eq!(answers[1]["headers"]["messageId"], "m1", "every frame is acknowledged");
    assert_eq!(answers[2]["headers"]["messageId"], "m2");
    let open = bot
        .dingtalk
        .calls()
        .into_iter()
        .find(|c| c.route == "stream_open")
        .unwrap();
    assert_eq!(open.body["clientId"], "dingtalk-app-key");
    assert_eq!(open.body["subscriptions"].as_array().unwrap().len(), 2);

    assert_eq!(bot.inbox_rows().await, 1, "the redelivered frame is recorded once");
    let seen = settle(&bot, &t, 0).await;
    assert_eq!(seen.len(), 1);
    assert!(seen[0].text.contains("release commands"), "{}", seen[0].text);
    bot.finish().await;
}

#[tokio::test]
async fn discord_guild_interactions_name_the_member() {
    // In a server, Discord sends the member (with its user) and no top-level user.
    let bot = team().await;
    let d = Discord::default();
    let mut p = d.command_payload(Who::Alice, "/release help");
    p.as_object_mut().unwrap().remove("user");
    p["guild_id"] = json!("77");
    p["guild_locale"] = json!("en-US");
    p["member"] = json!({
        "user": common::fake_discord::user_json("1001"),
        "nick": "Alice (PM)", "roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "flags": 0, "pending": false, "permissions": "0",
    });
    let r = d.send(&bot, &p).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["type"], 4, "{}", r.body);
    assert!(r.body.contains("/release commands"));
    use sqlx::Row;
    let row = sqlx::query("SELECT payload FROM inbox")
        .fetch_one(&bot.app.state.bot.store.pool)
        .await
        .unwrap();
    let payload: String = row.get(0);
    assert!(payload.contains("\"user_id\":\"1001\""), "{payload}");
    assert!(
        payload.contains("Alice (PM)"),
        "the member's nickname names them: {payload}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_stage_goes_to_its_channel_on_the_submitters_platform() {
    let config = everywhere_config().replace(
        "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\n",
        "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\nchannel = { slack = \"COPS\", dingtalk = \"cidOPS\" }\n",
    );
    let bot = TestBot::with("en", &config).await;
    let t = DingTalk::default();
    let test = submitted(&bot, &t).await;
    assert_eq!(test.channel, common::platforms::DINGTALK_GROUP);
    let coordinate = approved(&bot, &t, Who::Tom, &test, &TEST_ANSWERS, "Resource coordination").await;
    assert_eq!(coordinate.channel, "cidOPS", "the ops group on DingTalk");

    let d = Discord::default();
    let test = submitted(&bot, &d).await;
    let coordinate = approved(&bot, &d, Who::Tom, &test, &TEST_ANSWERS, "Resource coordination").await;
    assert_eq!(
        coordinate.channel,
        common::platforms::DISCORD_CHANNEL,
        "no Discord channel configured: the ticket's own"
    );
    bot.finish().await;
}

/// DingTalk delivers card presses where the card says: releasebot registers its callback
/// URL under its route key at start (HTTP mode) and names that key on every card; in
/// Stream mode the cards ask for Stream callbacks instead.
#[tokio::test]
async fn dingtalk_card_presses_come_back_over_http_or_stream() {
    let bot = TestBot::with_settings("en", &everywhere_config(), |s, _| {
        s.public_url = "https://rb.example.com".into();
    })
    .await;
    bot.dingtalk.wait_for("callback_register", 1).await;
    let calls = bot.dingtalk.calls();
    let register = calls.iter().find(|c| c.route == "callback_register").unwrap();
    assert_eq!(register.body["callbackRouteKey"], "releasebot");
    assert_eq!(register.body["callbackUrl"], "https://rb.example.com/dingtalk/events");
    assert_eq!(
        register.body["apiSecret"], DINGTALK_SECRET,
        "callbacks are signed with the app secret"
    );
    let t = DingTalk::default();
    submitted(&bot, &t).await;
    let card = bot
        .dingtalk
        .calls()
        .into_iter()
        .find(|c| c.route == "card_create")
        .unwrap();
    assert_eq!(card.body["callbackType"], "HTTP");
    assert_eq!(card.body["callbackRouteKey"], "releasebot");

    let stream = TestBot::with_settings("en", &everywhere_config(), |s, _| s.dingtalk_stream = true).await;
    let t = DingTalk::default();
    submitted(&stream, &t).await;
    let card = stream
        .dingtalk
        .calls()
        .into_iter()
        .find(|c| c.route == "card_create")
        .unwrap();
    assert_eq!(card.body["callbackType"], "STREAM");
    assert!(card.body.get("callbackRouteKey").is_none(), "{}", card.body);
    assert!(stream.dingtalk.calls().iter().all(|c| c.route != "callback_register"));
    assert!(releasebot::chat::dingtalk::stream::TOPICS.contains(&"/v1.0/card/instances/callback"));
    bot.finish().await;
}

/// Card titles (and so notification previews) show people as DingTalk shows them, never
/// internal mention tokens, and are cut at a word, not mid-timestamp.
#[test]
fn dingtalk_titles_carry_no_mention_tokens_and_are_cut_at_a_word() {
    let m = releasebot::chat::Message {
        title: format!(
            "REL-1 sent back to <@dingtalk:staff01> by <@dingtalk:staff02> at 2026-11-21 09:00 UTC because {}",
            "the package checksum did not match what the build server published"
        ),
        ..Default::default()
    };
    let t = releasebot::chat::dingtalk::client::title(&m);
    assert!(!t.contains("<@"), "{t}");
    assert!(t.contains("@staff01"), "{t}");
    assert!(
        t.chars().count() <= releasebot::chat::dingtalk::client::MAX_TITLE,
        "{t}"
    );
    assert!(t.ends_with('…'));
    // Cut at a word: what is kept is the start of the title, followed there by a space.
    let kept = t.trim_end_matches('…');
    let full = releasebot::chat::dingtalk::client::text(&m.title);
    assert!(full.starts_with(kept), "{t}");
    assert!(full[kept.len()..].starts_with(' '), "{t}");
}

/// People appear on DingTalk as its address book names them (read once, then cached),
/// not as staff ids; someone it cannot name keeps the id.
#[tokio::test]
async fn dingtalk_names_people_as_its_address_book_does() {
    let bot = team().await;
    let t = DingTalk::default();
    let test = submitted(&bot, &t).await;
    insta::assert_snapshot!(without_token(&test.text), @"
    REL-1 · App release — Test confirmation
    #### REL-1 · App release — Test confirmation

    **Requested by**: @alice01 同学

    **Application**: payments

    **Version**: 2.1.0

    **Package URL**: https://repo.example.com/payments-2.1.0.tgz

    **Package MD5**: 0123456789abcdef0123456789abcdef

    **Release scope**: web-1,web-2

    **Planned time**: 2030-01-15 22:00 UTC

    **Notes**: Fixes &lt;!channel&gt; &amp; the refund bug

    > ⚪ Waiting for **test**: @tom01 同学 @tina01 同学
    [Ticket page](http://127.0.0.1:3000/tickets/1?t=[token])
    ");
    assert!(!test.text.contains("<@"), "{}", test.text);
    approved(&bot, &t, Who::Tom, &test, &TEST_ANSWERS, "Resource coordination").await;
    let lookups = |id: &str| {
        bot.dingtalk
            .calls()
            .iter()
            .filter(|c| c.route == "user_get" && c.body["userid"] == id)
            .count()
    };
    assert_eq!(lookups("alice01"), 1, "looked up once, then cached");
    let m = releasebot::chat::Message {
        title: "ping <@dingtalk:nobody01>".into(),
        ..Default::default()
    };
    assert_eq!(releasebot::chat::dingtalk::client::title(&m), "ping @nobody01");
    bot.finish().await;
}
