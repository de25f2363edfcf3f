//! The local chat over HTTP, as its page uses it: the app served on a real port with the
//! local chat on, a session (cookie and CSRF token), and posts as that session.
#![allow(dead_code)]

use super::TestBot;
use serde_json::Value;

/// The app with the local chat on, served on a real port for the browser.
pub async fn app(config: &str) -> (TestBot, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let public = base.clone();
    let bot = TestBot::with_settings("en", config, move |s, _| {
        s.local_chat = Some(true);
        s.public_url = public;
    })
    .await;
    let router = bot.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (bot, base)
}

/// Posts `body` to the local chat's `path` with this cookie and CSRF token.
pub async fn post_with(
    http: &reqwest::Client,
    url: String,
    cookie: &str,
    csrf: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(url)
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A session of the local chat over HTTP: its cookie and CSRF token.
pub async fn session(base: &str) -> (reqwest::Client, String, String, String) {
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/chat")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    (http, cookie, csrf, html)
}

/// Switches the session's person (`ops`, `qc`…): the new cookie.
pub async fn act_as(http: &reqwest::Client, base: &str, cookie: &str, csrf: &str, user: &str) -> String {
    let r = post_with(
        http,
        format!("{base}/chat/as"),
        cookie,
        csrf,
        &serde_json::json!({ "user": user }),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The messages of `channel` as the page shows them to the session's person.
pub async fn messages(http: &reqwest::Client, base: &str, cookie: &str, channel: &str) -> String {
    http.get(format!("{base}/chat/messages?channel={channel}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
