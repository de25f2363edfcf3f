//! End to end in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
//! driven over WebDriver): the local chat and the release page, as a person uses them.
//! The bot's workers are driven by the test (`settle`); the test waits only for the
//! browser to show what the server sent. Screenshots go to `target/browser/`; any console
//! error of the pages fails the test. Without Chromium the test is skipped, except in CI
//! (`CI` set), where that is a failure.

mod common;

use common::local_chat::{app, post_with, session};
use common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session; `None` when they are not installed.
    async fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the browser tests: install chromium and chromium-driver"
            );
            eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
            return None;
        }
        let port = free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        // chromedriver is a separate process: wait for it to listen.
        let mut up = false;
        for _ in 0..200 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "chromedriver did not start");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--lang=en-US"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {res}"))
            .to_string();
        Some(Self {
            process,
            base,
            session,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        if std::env::var_os("WD_DEBUG").is_some() {
            eprintln!("find {css}: {v}");
        }
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits (up to 10 s) for the page to show an element matching `css`.
    async fn wait_for(&self, css: &str) -> String {
        for _ in 0..200 {
            if let Some(e) = self.find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.screenshot("timeout").await;
        panic!("the page never showed {css}");
    }

    /// Waits (up to 10 s) for `script` (a JS expression) to be true in the page.
    async fn wait_until(&self, script: &str) {
        for _ in 0..200 {
            if self.eval(script).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.screenshot("timeout").await;
        panic!("the page never got to: {script}");
    }

    async fn eval(&self, expr: &str) -> Value {
        self.post(
            "/execute/sync",
            json!({ "script": format!("return ({expr});"), "args": [] }),
        )
        .await
    }

    async fn click(&self, css: &str) {
        let e = self.wait_for(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({ "text": text })).await;
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.get("/screenshot").await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(b) = png.as_str() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
        }
    }

    /// The console errors the pages logged so far.
    async fn console_errors(&self) -> Vec<String> {
        let logs = self.post("/se/log", json!({ "type": "browser" })).await;
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE")
            .map(|l| l["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// Switches person with the page's switcher (the page reloads as them).
async fn act_as(d: &Driver, user: &str) {
    d.click(&format!("#as option[value=\"{user}\"]")).await;
    d.wait_until(&format!("document.body.dataset.user === \"{user}\""))
        .await;
    d.wait_for("#messages").await;
}

/// Waits (up to 10 s) until the server recorded one more inbound event than `before`.
async fn recorded(bot: &TestBot, before: i64) {
    for _ in 0..200 {
        if bot.inbox_rows().await > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the press never reached the server");
}

/// Presses the latest button whose action starts with `prefix`, and waits until the
/// server has the press.
async fn press(d: &Driver, bot: &TestBot, prefix: &str) {
    let before = bot.inbox_rows().await;
    press_only(d, prefix).await;
    recorded(bot, before).await;
}

/// Presses the latest button whose action starts with `prefix`.
async fn press_only(d: &Driver, prefix: &str) {
    let css = format!("button[data-action^=\"{prefix}\"]:not([disabled])");
    d.wait_for(&css).await;
    d.eval(&format!(
        "(() => {{ const b = [...document.querySelectorAll('{css}')].pop(); b.click(); return true; }})()"
    ))
    .await;
}

/// Fills the open form's fields (by id) and submits it.
async fn fill_and_submit(d: &Driver, values: &[(&str, &str)]) {
    d.wait_for("#dialog[open] form[data-form]").await;
    for (id, v) in values {
        let tag = d.eval(&format!("document.getElementById('f-{id}').tagName")).await;
        if tag == json!("SELECT") {
            d.click(&format!("#f-{id} option[value=\"{v}\"]")).await;
        } else {
            d.type_into(&format!("#f-{id}"), v).await;
        }
    }
    d.click("#dialog form[data-form] button[type=submit]").await;
}

#[tokio::test]
async fn a_ticket_walked_through_every_role_in_the_browser_and_rolled_back_from_the_chat() {
    let Some(d) = Driver::start().await else {
        return;
    };
    // Blue-green: the release waits at its approval gate, so there is a live release to watch.
    let config = team_config().replace("plan = \"canary\"", "plan = \"blue-green\"");
    let (bot, base) = app(&config).await;
    d.goto(&format!("{base}/chat")).await;
    d.wait_for("#composer").await;
    assert_eq!(d.eval("document.body.dataset.user").await, json!("product"));
    // The composer completes commands from the command grammar.
    assert_eq!(
        d.eval("[...document.querySelectorAll('#commands option')].some(o => o.value === '/release new')")
            .await,
        json!(true)
    );

    // Product opens the form from the composer.
    d.type_into("#line", "/release new").await;
    d.click("#composer button[type=submit]").await;
    d.wait_until("document.getElementById('line').value === ''").await;
    bot.settle().await;
    d.wait_for("#dialog[open] #f-md5").await;
    d.screenshot("01-new-ticket-form").await;

    // One invalid field: the error shows next to it, and nothing is recorded.
    let mut values = valid_release(MD5);
    values.retain(|(k, _)| *k != "md5");
    values.push(("md5", "not-an-md5"));
    fill_and_submit(&d, &values).await;
    d.wait_until("document.getElementById('e-md5').textContent.length > 0")
        .await;
    let error = d.eval("document.getElementById('e-md5').textContent").await;
    assert!(error.as_str().unwrap().contains("32"), "{error}");
    d.screenshot("02-inline-error").await;
    assert_eq!(bot.inbox_rows().await, 1, "only the command was recorded");

    d.type_into("#f-md5", MD5).await;
    d.click("#dialog form[data-form] button[type=submit]").await;
    d.wait_until("!document.getElementById('dialog').open").await;
    bot.settle().await;
    d.wait_for("button[data-action^=\"approve:1:1:\"]").await;

    // Test confirms.
    act_as(&d, "test").await;
    press(&d, &bot, "approve:1:1:").await;
    bot.settle().await;
    fill_and_submit(&d, &[("evaluation", "pass"), ("test_summary", "All green")]).await;
    d.wait_until("!document.getElementById('dialog').open").await;
    bot.settle().await;

    // Ops coordinates, then releases.
    act_as(&d, "ops").await;
    press(&d, &bot, "approve:1:2:").await;
    bot.settle().await;
    d.wait_for("button[data-action^=\"approve:1:3:\"]").await;
    press(&d, &bot, "approve:1:3:").await;
    bot.settle().await;
    fill_and_submit(&d, &[("release_summary", "Blue-green to prod")]).await;
    d.wait_until("!document.getElementById('dialog').open").await;
    bot.settle().await;

    // The progress message links to the release page; the release waits at its gate.
    d.wait_for("button[data-action=\"exec:continue:1\"]").await;
    d.screenshot("03-chat-release-waiting").await;
    let chat = d.get("/window").await;
    let href = d
        .eval("[...document.querySelectorAll('a[href*=\"/executions/\"]')].pop().href")
        .await;
    let href = href.as_str().expect("a link to the release page").to_string();
    assert!(href.starts_with(&format!("{base}/executions/1?t=")), "{href}");

    d.post("/window/new", json!({ "type": "tab" })).await;
    let handles = d.get("/window/handles").await;
    let page = handles
        .as_array()
        .unwrap()
        .iter()
        .find(|h| **h != chat)
        .unwrap()
        .clone();
    d.post("/window", json!({ "handle": page })).await;
    d.goto(&href).await;
    d.wait_for(".badge.RUNNING").await;
    d.wait_for(".charts svg").await;
    assert_eq!(
        d.eval("document.getElementById('main').dataset.live").await,
        json!("true")
    );
    d.screenshot("04-execution-page-running").await;

    // Rollback pressed in the chat (confirmed in its dialog) …
    d.post("/window", json!({ "handle": chat })).await;
    let before = bot.inbox_rows().await;
    press_only(&d, "exec:rollback:1").await;
    d.wait_for("#confirm[open]").await;
    d.click("#confirm-ok").await;
    d.wait_until("!document.getElementById('confirm').open").await;
    recorded(&bot, before).await;
    bot.settle().await;

    // … and the open release page shows it without being reloaded.
    d.post("/window", json!({ "handle": page })).await;
    d.eval("(window.__same_page = true)").await;
    d.wait_for(".badge.ROLLED_BACK").await;
    assert_eq!(
        d.eval("window.__same_page === true").await,
        json!(true),
        "the page was not reloaded"
    );
    d.screenshot("05-execution-page-rolled-back").await;

    // QC evaluates the rolled-back release in the chat.
    d.post("/window", json!({ "handle": chat })).await;
    act_as(&d, "qc").await;
    press(&d, &bot, "approve:1:4:").await;
    bot.settle().await;
    fill_and_submit(
        &d,
        &[("qc_evaluation", "poor"), ("qc_notes", "Rolled back at the gate")],
    )
    .await;
    d.wait_until("!document.getElementById('dialog').open").await;
    bot.settle().await;

    // The ticket page, from the release page's link: every role's decision is there.
    d.post("/window", json!({ "handle": page })).await;
    d.click("a[href*=\"/tickets/1?t=\"]").await;
    d.wait_for("table.steps").await;
    let body = d.eval("document.body.innerText").await;
    let body = body.as_str().unwrap();
    for who in ["@Test", "@Ops", "@QC", "Rolled back at the gate"] {
        assert!(body.contains(who), "{who} in {body}");
    }
    d.screenshot("06-ticket-page").await;

    let errors = d.console_errors().await;
    d.quit().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    bot.finish().await;
}

#[tokio::test]
async fn the_local_chat_refuses_requests_without_session_or_csrf_token() {
    let (bot, base) = app(&team_config()).await;
    let http = reqwest::Client::new();
    let body = json!({ "channel": "releases", "text": "/release new", "nonce": "n1" });
    // No cookie at all.
    let r = http
        .post(format!("{base}/chat/command"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A session, but no CSRF token, or a forged one.
    let (http, cookie, csrf, _) = session(&base).await;
    for token in ["", "0123456789abcdef0123456789abcdef"] {
        let r = post_with(&http, format!("{base}/chat/command"), &cookie, token, &body).await;
        assert_eq!(r.status(), 401);
    }
    // A cookie whose person was changed by hand is not a session.
    let forged = cookie.replace(".product.", ".admin.");
    let r = post_with(&http, format!("{base}/chat/command"), &forged, &csrf, &body).await;
    assert_eq!(r.status(), 401);
    assert_eq!(bot.inbox_rows().await, 0, "nothing was recorded");
    // With both, the command is recorded once, however often it is sent.
    for _ in 0..2 {
        let r = post_with(&http, format!("{base}/chat/command"), &cookie, &csrf, &body).await;
        assert_eq!(r.status(), 202);
    }
    assert_eq!(bot.inbox_rows().await, 1);
    // Text that is not a command says which commands there are.
    let r = post_with(
        &http,
        format!("{base}/chat/command"),
        &cookie,
        &csrf,
        &json!({ "channel": "releases", "text": "hello", "nonce": "n2" }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("/release"), "{v}");
    bot.finish().await;
}

#[tokio::test]
async fn pages_without_their_token_show_nothing() {
    let (bot, base) = app(&team_config()).await;
    let http = reqwest::Client::new();
    let links = bot.app.state.bot.links.clone();
    let url = links.url(releasebot::chat::links::Page::Ticket(1));
    assert!(url.starts_with(&format!("{base}/tickets/1?t=")));
    for bad in [
        format!("{base}/tickets/1"),
        format!("{base}/tickets/1?t=00"),
        format!(
            "{base}/tickets/2?t={}",
            links.token(releasebot::chat::links::Page::Ticket(1))
        ),
        format!(
            "{base}/executions/1?t={}",
            links.token(releasebot::chat::links::Page::Ticket(1))
        ),
    ] {
        let r = http.get(&bad).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    bot.finish().await;
}

#[tokio::test]
async fn the_local_chat_speaks_the_configured_language() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bot = TestBot::with_settings("zh-CN", &team_config(), |s, _| s.local_chat = Some(true)).await;
    let router = bot.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (http, cookie, csrf, html) = session(&base).await;
    assert!(html.contains("<html lang=\"zh-CN\">"));
    for words in ["releasebot — 本地聊天", "当前身份", "频道", "发送", "还没有消息"] {
        assert!(html.contains(words), "{words} in {html}");
    }
    let r = post_with(
        &http,
        format!("{base}/chat/command"),
        &cookie,
        &csrf,
        &json!({ "channel": "releases", "text": "/release new", "nonce": "zh" }),
    )
    .await;
    assert_eq!(r.status(), 202);
    bot.settle().await;
    let form = http
        .get(format!("{base}/chat/form"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("提交") && form.contains("取消"), "{form}");
    // Its answer to a field left empty is in Chinese too, next to the field.
    let id = form
        .split("data-form=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let r: Value = post_with(
        &http,
        format!("{base}/chat/form"),
        &cookie,
        &csrf,
        &json!({ "id": id, "values": { "md5": "zz" } }),
    )
    .await
    .json()
    .await
    .unwrap();
    let md5 = r["errors"]["md5"].as_str().unwrap_or_default();
    assert!(md5.contains("32"), "{r}");
    assert!(
        r["errors"]["version"].as_str().unwrap_or_default().contains("必填"),
        "{r}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn beside_real_platforms_the_local_chat_is_off_unless_asked_for() {
    // TestBot configures Slack, Discord and DingTalk.
    let bot = TestBot::start().await;
    for path in ["/", "/chat", "/chat/messages"] {
        let page = bot.raw_get(path).await;
        assert!(page.contains("the local chat is off"), "{path}: {page}");
    }
    let on = TestBot::with_settings("en", &team_config(), |s, _| s.local_chat = Some(true)).await;
    assert!(on.raw_get("/").await.contains("id=\"composer\""));
    bot.finish().await;
}
