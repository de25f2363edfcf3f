//! Outbound DingTalk calls: an access token cached until shortly before it expires
//! (refreshed once however many callers need it), interactive cards for messages with
//! buttons (updated in place), robot markdown messages, and the signed group webhook.

use super::{verify, PLATFORM};
use crate::chat::markdown::{to_markdown, unescape, Flavor};
use crate::chat::{fit, fit_by, ButtonStyle, Location, Message, Outbound, Texts};
use crate::chat::{ChatClient, Delivery, MessageRef, Reconciled, SendError};
use crate::config::{DingTalkSettings, Secret};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A token is renewed this long before DingTalk says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Markdown of one message (DingTalk cuts around 5,000 characters).
/// DingTalk takes a robot message's `msgParam` up to 15,000 bytes (as JSON text); the
/// markdown keeps this much of it, the rest being the title and the JSON around them.
pub const MAX_MSG_PARAM_BYTES: usize = 15_000;
pub const MAX_MARKDOWN_BYTES: usize = MAX_MSG_PARAM_BYTES - 1_000;
/// The most of one field's value a message shows (the page shows the rest).
const MAX_FIELD_CHARS: usize = 1_000;
pub const MAX_TITLE: usize = 100;
/// Buttons on one card.
pub const MAX_BUTTONS: usize = 10;
/// The card template of the deployment (see the README): variables `title`,
/// `markdown` and `buttons` (a JSON list of `{text, actionId, style}`).
pub const DEFAULT_CARD_TEMPLATE: &str = "releasebot.card";

/// How long a person's name is trusted.
const NAME_TTL: Duration = Duration::from_secs(3600);
/// How long a failed name lookup is not tried again.
const NAME_RETRY: Duration = Duration::from_secs(300);

/// DingTalk robots take about 20 messages a minute, then are throttled for 10 minutes:
/// one message every 3 s per robot, whatever the conversation.
pub const ROBOT_PACE_MS: i64 = 3_000;

pub struct DingTalkChat {
    /// When the robot may send next (ms).
    next_slot: std::sync::Mutex<i64>,
    http: reqwest::Client,
    api_url: String,
    app_key: String,
    app_secret: Secret,
    robot_code: String,
    card_template: String,
    /// `callbackType` and `callbackRouteKey` of the cards.
    callback: (&'static str, Option<String>),
    /// The card callback to register (HTTP mode): route key and URL.
    register: Option<(String, String)>,
    webhook: Option<(Secret, Option<Secret>)>,
    token: Mutex<Option<(String, Instant)>>,
    oapi_url: String,
    /// People's names by staff id, until when they are trusted (a failed lookup is
    /// remembered briefly as "no name": the id is shown).
    names: std::sync::Mutex<std::collections::HashMap<String, (Option<String>, Instant)>>,
    clock: crate::clock::SharedClock,
}

/// Neutral text to DingTalk markdown; DingTalk users are named by their id.
pub fn text(s: &str) -> String {
    markup(s, Flavor::DingTalk)
}

fn markup(s: &str, flavor: Flavor) -> String {
    to_markdown(s, flavor, &|platform, user| {
        if platform == PLATFORM {
            format!("@{user}")
        } else {
            format!("@{user} ({platform})")
        }
    })
}

/// The DingTalk users a message addresses (title, body, context; not its data fields).
pub fn mentioned(m: &Message) -> Vec<String> {
    mention_ids(std::iter::once(&m.title).chain(m.body.iter()).chain(m.context.iter()))
}

/// The DingTalk users mentioned in these texts, each once.
fn mention_ids<'a>(texts: impl Iterator<Item = &'a String>) -> Vec<String> {
    let token = format!("<@{PLATFORM}:");
    let mut out: Vec<String> = texts
        .flat_map(|s| {
            s.match_indices(&token)
                .filter_map(|(i, _)| {
                    let rest = &s[i + token.len()..];
                    rest.find('>').map(|end| rest[..end].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A message as one markdown text: title, fields, body, context.
pub fn markdown(m: &Message, texts: &Texts) -> Result<String, SendError> {
    let marker = texts
        .plain("truncated")
        .map_err(|e| SendError::Permanent(format!("{e:#}")))?;
    // The context and the page link are kept whole: the page is where the whole text
    // can still be read. The fields and the body are cut, in their source, to fit.
    let tail = m
        .context_with_link()
        .map(|c| format!("\n> {}\n", text(&c)))
        .unwrap_or_default();
    let cut_line = format!("\n{marker}\n");
    let fits = |out: &str, more: &str| {
        json_len(out) + json_len(more) + json_len(&cut_line) + json_len(&tail) <= MAX_MARKDOWN_BYTES
    };
    let mut out = format!("#### {}\n", fit(&m.title, MAX_FIELD_CHARS, &marker, text));
    let mut cut = false;
    for f in &m.fields {
        let value = fit(&f.value, MAX_FIELD_CHARS, &marker, text);
        let line = format!("\n**{}**: {value}\n", fit(&f.label, MAX_FIELD_CHARS, &marker, text));
        if !fits(&out, &line) {
            cut = true;
            break;
        }
        out.push_str(&line);
    }
    match m.body.as_deref().filter(|b| !b.is_empty()) {
        _ if cut => out.push_str(&cut_line),
        Some(b) => {
            let room = MAX_MARKDOWN_BYTES.saturating_sub(json_len(&out) + json_len(&tail));
            out.push_str(&fit_by(b, room, &marker, |s| format!("\n{}\n", text(s)), json_len));
        }
        None => {}
    }
    out.push_str(&tail);
    Ok(out)
}

/// The bytes `s` takes as a JSON string (how DingTalk counts a message's size).
fn json_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len(), |j| j.len())
}

/// The short title DingTalk shows in notifications: plain text (people as `@id`, never
/// a mention token), cut at a word when too long.
pub fn title(m: &Message) -> String {
    let plain = markup(&m.title, Flavor::Plain);
    let first = plain.lines().next().unwrap_or("").trim();
    if first.chars().count() <= MAX_TITLE {
        return first.to_string();
    }
    let room: String = first.chars().take(MAX_TITLE - 1).collect();
    let cut = match room.rfind(' ') {
        Some(i) if i > room.len() / 2 => room[..i].trim_end(),
        _ => room.as_str(),
    };
    format!("{cut}…")
}

/// The card's variables: title, markdown, and the buttons (action ids of our actions).
pub fn card_params(m: &Message, texts: &Texts) -> Result<Value, SendError> {
    let buttons: Vec<Value> = m
        .buttons
        .iter()
        .take(MAX_BUTTONS)
        .map(|b| {
            let style = match b.style {
                ButtonStyle::Primary => "primary",
                ButtonStyle::Danger => "danger",
                ButtonStyle::Default => "default",
            };
            json!({ "text": unescape(&b.label), "actionId": b.action, "style": style })
        })
        .collect();
    Ok(json!({
        "title": title(m),
        "markdown": markdown(m, texts)?,
        "buttons": serde_json::to_string(&buttons).unwrap_or_else(|_| "[]".into()),
    }))
}

fn open_space(channel: &str) -> Value {
    match channel.strip_prefix("dm:") {
        Some(user) => json!({ "openSpaceId": format!("dtv1.card//IM_ROBOT.{user}") }),
        None => json!({ "openSpaceId": format!("dtv1.card//IM_GROUP.{channel}") }),
    }
}

impl DingTalkChat {
    pub fn new(s: &DingTalkSettings, clock: crate::clock::SharedClock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
        Ok(Self {
            next_slot: std::sync::Mutex::new(0),
            http,
            api_url: s.api_url.trim_end_matches('/').to_string(),
            app_key: s.app_key.clone(),
            app_secret: s.app_secret.clone(),
            robot_code: s.robot_code.clone(),
            card_template: s.card_template.clone(),
            callback: if s.stream {
                ("STREAM", None)
            } else {
                ("HTTP", Some(s.callback_route_key.clone()))
            },
            register: (!s.stream).then(|| (s.callback_route_key.clone(), s.callback_url.clone())),
            webhook: s.webhook_url.clone().map(|u| (u, s.webhook_secret.clone())),
            token: Mutex::new(None),
            oapi_url: s.oapi_url.trim_end_matches('/').to_string(),
            names: std::sync::Mutex::new(std::collections::HashMap::new()),
            clock,
        })
    }

    /// A person's name in DingTalk's address book (cached for an hour), if it can be read.
    pub async fn display_name(&self, user: &str) -> Option<String> {
        if let Some((name, until)) = self.names.lock().ok()?.get(user).cloned() {
            if Instant::now() < until {
                return name;
            }
        }
        let name = self.fetch_name(user).await;
        let ttl = if name.is_some() { NAME_TTL } else { NAME_RETRY };
        if let Ok(mut n) = self.names.lock() {
            n.insert(user.to_string(), (name.clone(), Instant::now() + ttl));
        }
        name
    }

    async fn fetch_name(&self, user: &str) -> Option<String> {
        let token = self.access_token().await.ok()?;
        let res = self
            .http
            .post(format!("{}/topapi/v2/user/get", self.oapi_url))
            .query(&[("access_token", token)])
            .json(&json!({ "userid": user }))
            .send()
            .await
            .ok()?;
        let v: Value = res.json().await.ok()?;
        if v["errcode"].as_i64().unwrap_or(-1) != 0 {
            return None;
        }
        v["result"]["name"]
            .as_str()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }

    /// The message with DingTalk people named as DingTalk shows them (`@张三`), not by id.
    async fn with_names(&self, m: &Message) -> Message {
        let ids = mention_ids(
            std::iter::once(&m.title)
                .chain(m.fields.iter().flat_map(|f| [&f.label, &f.value]))
                .chain(m.body.iter())
                .chain(m.context.iter()),
        );
        let mut out = m.clone();
        for id in ids {
            let Some(name) = self.display_name(&id).await else {
                continue;
            };
            let from = format!("<@{PLATFORM}:{id}>");
            let to = format!("@{}", crate::chat::texts::escape(&name));
            let swap = |s: &mut String| *s = s.replace(&from, &to);
            swap(&mut out.title);
            for f in &mut out.fields {
                swap(&mut f.label);
                swap(&mut f.value);
            }
            if let Some(b) = &mut out.body {
                swap(b);
            }
            if let Some(c) = &mut out.context {
                swap(c);
            }
        }
        out
    }

    /// Takes the robot's next sending slot, or says how long to wait for it: the outbox
    /// then holds the message and tries again, without holding up other platforms.
    fn pace(&self) -> Result<(), SendError> {
        let now = self.clock.now_ms();
        let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
        if now < *next {
            return Err(SendError::RateLimited(Some(Duration::from_millis(
                (*next - now) as u64,
            ))));
        }
        *next = now + ROBOT_PACE_MS;
        Ok(())
    }

    /// The access token: cached, and refreshed by one caller while the others wait.
    pub async fn access_token(&self) -> Result<String, SendError> {
        let mut slot = self.token.lock().await;
        if let Some((t, until)) = slot.as_ref() {
            if Instant::now() + TOKEN_MARGIN < *until {
                return Ok(t.clone());
            }
        }
        let res = self
            .http
            .post(format!("{}/v1.0/oauth2/accessToken", self.api_url))
            .json(&json!({ "appKey": self.app_key, "appSecret": self.app_secret.expose() }))
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("DingTalk token: {e}")))?;
        let v = answer(res).await?;
        let token = v["accessToken"]
            .as_str()
            .ok_or_else(|| SendError::Permanent("DingTalk token: no accessToken in the answer".into()))?
            .to_string();
        let ttl = v["expireIn"].as_u64().unwrap_or(7200);
        *slot = Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
        Ok(token)
    }

    /// Registers the card callback URL (HTTP mode), so that presses on cards reach
    /// `/dingtalk/events`; signed with the app secret (`apiSecret`), like every callback.
    /// Nothing to do in Stream mode.
    pub async fn register_card_callback(&self) -> Result<(), SendError> {
        let Some((key, url)) = &self.register else {
            return Ok(());
        };
        let body = json!({
            "callbackRouteKey": key,
            "callbackUrl": url,
            "apiSecret": self.app_secret.expose(),
            "forceUpdate": true,
        });
        self.call(reqwest::Method::POST, "/v1.0/card/callbacks/register", &body)
            .await
            .map(|_| ())
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value, SendError> {
        let token = self.access_token().await?;
        let res = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .header("x-acs-dingtalk-access-token", token)
            .json(body)
            .send()
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        if res.status().as_u16() == 401 {
            // The token was revoked early: forget it so that the retry fetches a new one.
            *self.token.lock().await = None;
            return Err(SendError::Transient("DingTalk: access token refused".into()));
        }
        answer(res).await
    }

    async fn robot_markdown(&self, channel: &str, m: &Message, texts: &Texts) -> Result<Option<String>, SendError> {
        let param = json!({ "title": title(m), "text": markdown(m, texts)? }).to_string();
        let v = match channel.strip_prefix("dm:") {
            Some(user) => {
                let body = json!({ "robotCode": self.robot_code, "userIds": [user], "msgKey": "sampleMarkdown", "msgParam": param });
                self.call(reqwest::Method::POST, "/v1.0/robot/oToMessages/batchSend", &body)
                    .await?
            }
            None => {
                let body = json!({ "robotCode": self.robot_code, "openConversationId": channel, "msgKey": "sampleMarkdown", "msgParam": param });
                self.call(reqwest::Method::POST, "/v1.0/robot/groupMessages/send", &body)
                    .await?
            }
        };
        Ok(v["processQueryKey"].as_str().map(str::to_string))
    }

    async fn webhook(&self, m: &Message, texts: &Texts, at: &[String]) -> Result<(), SendError> {
        let Some((url, secret)) = &self.webhook else {
            return Err(SendError::Permanent("no DingTalk webhook configured".into()));
        };
        let url = verify::signed_webhook(url.expose(), secret.as_ref().map(Secret::expose), self.clock.now_ms());
        // Whom the message addresses is notified (`at`), as a mention does elsewhere.
        let body = json!({
            "msgtype": "markdown",
            "markdown": { "title": title(m), "text": markdown(m, texts)? },
            "at": { "atUserIds": at, "isAtAll": false },
        });
        let res = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("DingTalk webhook: {}", e.without_url())))?;
        let v = answer(res).await?;
        match v["errcode"].as_i64().unwrap_or(0) {
            0 => Ok(()),
            // "Sending too fast": the robot is throttled for a while.
            130101 => Err(SendError::RateLimited(Some(Duration::from_secs(60)))),
            code => Err(SendError::Permanent(format!(
                "DingTalk webhook error {code}: {}",
                v["errmsg"].as_str().unwrap_or("")
            ))),
        }
    }
}

/// The JSON answer, or the error it stands for.
async fn answer(res: reqwest::Response) -> Result<Value, SendError> {
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = res.text().await.map_err(|e| SendError::Transient(e.to_string()))?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let what = || {
        format!(
            "DingTalk HTTP {}: {}",
            status.as_u16(),
            v["message"].as_str().unwrap_or("")
        )
    };
    match status.as_u16() {
        200..=299 => Ok(v),
        429 => Err(SendError::RateLimited(retry_after)),
        403 if v["code"].as_str().is_some_and(|c| c.contains("QpsLimit")) => Err(SendError::RateLimited(retry_after)),
        500..=599 => Err(SendError::Transient(what())),
        _ => Err(SendError::Permanent(what())),
    }
}

#[async_trait]
impl ChatClient for DingTalkChat {
    /// A card is named by its `outTrackId` (the delivery key): updating it with the same
    /// content succeeds only if the lost attempt created it. Plain robot messages carry no
    /// id to look for (and no buttons, so a second copy misleads nobody).
    async fn reconcile(&self, texts: &Texts, delivery: Delivery, out: &Outbound) -> Result<Reconciled, SendError> {
        let Outbound::Post { channel, message } = out else {
            return Ok(Reconciled::Unknown);
        };
        if message.buttons.is_empty() {
            return Ok(Reconciled::Unknown);
        }
        let track = delivery.key();
        let body = json!({
            "outTrackId": track,
            "cardData": { "cardParamMap": card_params(message, texts)? },
            "cardUpdateOptions": { "updateCardDataByKey": true },
        });
        match self.call(reqwest::Method::PUT, "/v1.0/card/instances", &body).await {
            Ok(_) => Ok(Reconciled::Delivered(Some(Location {
                channel: channel.clone(),
                ts: track,
            }))),
            // DingTalk does not know the card: the lost attempt never created it.
            Err(SendError::Permanent(_)) => Ok(Reconciled::SendAgain),
            Err(e) => Err(e),
        }
    }

    async fn send(
        &self,
        texts: &Texts,
        delivery: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        if !matches!(out, Outbound::OpenForm { .. }) {
            self.pace()?;
        }
        // Whom the message addresses, by id (notified where the API allows it), then the
        // message as people read it: names, not ids.
        let at = match out {
            Outbound::Post { message, .. } => mentioned(message),
            _ => Vec::new(),
        };
        let mut named = out.clone();
        if let Some(m) = named.message_mut() {
            let with_names = self.with_names(m).await;
            *m = with_names;
        }
        let out = &named;
        match out {
            // Messages with buttons are interactive cards (updatable); announcements go to
            // the group webhook when one is configured, else as robot messages.
            Outbound::Post { channel, message } if !message.buttons.is_empty() => {
                // Stable across attempts: an attempt whose answer was lost is found by it.
                let track = delivery.key();
                let mut body = json!({
                    "cardTemplateId": self.card_template,
                    "outTrackId": track,
                    "callbackType": self.callback.0,
                    "cardData": { "cardParamMap": card_params(message, texts)? },
                    "imGroupOpenDeliverModel": { "robotCode": self.robot_code },
                    "imRobotOpenDeliverModel": { "spaceType": "IM_ROBOT" },
                    "imGroupOpenSpaceModel": { "supportForward": true },
                });
                if let (Some(o), Some(space)) = (body.as_object_mut(), open_space(channel).as_object()) {
                    o.extend(space.clone());
                }
                if let Some(key) = &self.callback.1 {
                    body["callbackRouteKey"] = json!(key);
                }
                self.call(reqwest::Method::POST, "/v1.0/card/instances/createAndDeliver", &body)
                    .await?;
                Ok(Some(Location {
                    channel: channel.clone(),
                    ts: track,
                }))
            }
            Outbound::Post { channel, message } => {
                if self.webhook.is_some() {
                    self.webhook(message, texts, &at).await?;
                    return Ok(Some(Location {
                        channel: channel.clone(),
                        ts: String::new(),
                    }));
                }
                let key = self.robot_markdown(channel, message, texts).await?;
                Ok(Some(Location {
                    channel: channel.clone(),
                    ts: key.unwrap_or_default(),
                }))
            }
            Outbound::Update { channel, message } => {
                let track = existing
                    .map(|r| r.ts.clone())
                    .filter(|t| t.starts_with("rb-"))
                    .ok_or_else(|| SendError::Permanent("no DingTalk card to update".into()));
                match track {
                    Ok(track) => {
                        let body = json!({
                            "outTrackId": track,
                            "cardData": { "cardParamMap": card_params(message, texts)? },
                            "cardUpdateOptions": { "updateCardDataByKey": true },
                        });
                        self.call(reqwest::Method::PUT, "/v1.0/card/instances", &body).await?;
                    }
                    // A plain message cannot be edited on DingTalk: the new state is posted.
                    Err(_) => {
                        self.robot_markdown(channel, message, texts).await?;
                    }
                }
                Ok(None)
            }
            Outbound::Reply { channel, message } => {
                // DingTalk has no threads: the reply is a message in the conversation.
                self.robot_markdown(channel, message, texts).await?;
                Ok(None)
            }
            Outbound::Ephemeral { channel, message, .. } => {
                // DingTalk has no private messages in a group: answer in the conversation.
                self.robot_markdown(channel, message, texts).await?;
                Ok(None)
            }
            Outbound::Direct { user, message } => {
                self.robot_markdown(&super::parse::direct_channel(user), message, texts)
                    .await?;
                Ok(None)
            }
            Outbound::Progress { .. } => Err(SendError::Permanent(crate::chat::UNDRAWN.into())),
            Outbound::OpenForm { .. } => Err(SendError::Permanent(
                "DingTalk has no forms: the bot asks for a command instead".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Button, Field};

    #[test]
    fn long_messages_are_cut_visibly_and_buttons_capped() {
        let texts = Texts::new("zh-CN").unwrap();
        let m = Message {
            title: format!("*REL-1* <@dingtalk:tom01> {}", "标".repeat(300)),
            fields: (0..50)
                .map(|i| Field {
                    label: format!("f{i}"),
                    value: "v".repeat(500),
                })
                .collect(),
            body: Some("&lt;b&gt;".into()),
            context: None,
            buttons: (0..15)
                .map(|i| Button {
                    label: format!("b{i}"),
                    action: format!("approve:{i}:1:0"),
                    style: ButtonStyle::Primary,
                    confirm: None,
                })
                .collect(),
            page: None,
            link: None,
        };
        let md = markdown(&m, &texts).unwrap();
        assert!(json_len(&md) <= MAX_MARKDOWN_BYTES, "{}", json_len(&md));
        assert!(md.trim_end().ends_with(&texts.plain("truncated").unwrap()));
        assert!(md.starts_with("#### **REL-1** @tom01"));
        assert!(title(&m).chars().count() <= MAX_TITLE);
        assert_eq!(mentioned(&m), vec!["tom01".to_string()]);
        let p = card_params(&m, &texts).unwrap();
        let buttons: Vec<Value> = serde_json::from_str(p["buttons"].as_str().unwrap()).unwrap();
        assert_eq!(buttons.len(), MAX_BUTTONS);
        assert_eq!(buttons[0]["actionId"], "approve:0:1:0");
    }
}
