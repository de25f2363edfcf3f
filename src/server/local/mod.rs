//! The local chat's routes: the page, its live updates (server-sent events), and what
//! people do in it (commands, button presses, forms, switching person). Every request
//! that changes something carries the signed session cookie and its CSRF token; without
//! them nothing changes (401). What people do is recorded as inbound events, exactly as
//! Slack's are: roles, deduplication and the outbox apply unchanged.

mod client;

use super::AppState;
use crate::chat::local::{self, render};
use crate::chat::{Form, Inbound, InboundKind, Location};
use crate::domain::Actor;
use crate::store::local as q;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
pub use client::{Change, LocalChat};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const COOKIE: &str = "releasebot_chat";
/// Messages a channel shows.
const SHOWN: i64 = 200;

/// The person a browser acts as, from its signed cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub sid: String,
    pub user: String,
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn session_of(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let v = cookie_value(headers)?;
    let mut parts = v.splitn(3, '.');
    let (sid, user, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if !local::USERS.iter().any(|(u, _)| *u == user) {
        return None;
    }
    state
        .bot
        .links
        .verify(&format!("chat-session:{sid}:{user}"), sig)
        .then(|| Session {
            sid: sid.to_string(),
            user: user.to_string(),
        })
}

fn set_cookie(state: &AppState, s: &Session) -> String {
    let sig = state.bot.links.sign(&format!("chat-session:{}:{}", s.sid, s.user));
    format!("{COOKIE}={}.{}.{sig}; Path=/; HttpOnly; SameSite=Strict", s.sid, s.user)
}

fn csrf(state: &AppState, s: &Session) -> String {
    state.bot.links.sign(&format!("chat-csrf:{}", s.sid))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "no valid session and CSRF token: open /chat to start one",
    )
        .into_response()
}

fn off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the local chat is off: set RELEASEBOT_LOCAL_CHAT=true (it is on by default when no platform is configured)",
    )
        .into_response()
}

/// The local chat, when it is on (404 otherwise).
pub struct On(pub Arc<LocalChat>);

impl FromRequestParts<AppState> for On {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Response> {
        state.local.clone().map(On).ok_or_else(off)
    }
}

/// The person of a request that reads: a valid session cookie (401 otherwise).
pub struct Viewer(pub Session);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        session_of(state, &parts.headers).map(Viewer).ok_or_else(unauthorized)
    }
}

/// The person of a request that changes something: session cookie and CSRF token both
/// valid (401 otherwise). Extracted before the body, which is not read without it.
pub struct Acting(pub Session);

impl FromRequestParts<AppState> for Acting {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let s = session_of(state, &parts.headers).ok_or_else(unauthorized)?;
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !state.bot.links.verify(&format!("chat-csrf:{}", s.sid), given) {
            return Err(unauthorized());
        }
        Ok(Acting(s))
    }
}

fn valid_channel(c: &str) -> bool {
    (1..=64).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'.'))
}

/// A sentence of the pages' chrome (its key when the catalogue lacks it).
pub(crate) fn text(state: &AppState, key: &str) -> String {
    state.bot.texts.plain(key).unwrap_or_else(|_| key.to_string())
}

/// The `lang` of the pages.
pub(crate) fn lang(state: &AppState) -> &'static str {
    if state.bot.texts.locale().starts_with("zh") {
        "zh-CN"
    } else {
        "en"
    }
}

#[derive(Deserialize)]
pub struct ChannelQuery {
    c: Option<String>,
}

fn channel_of(q: &ChannelQuery, user: &str) -> String {
    let c = q.c.clone().unwrap_or_else(|| local::DEFAULT_CHANNEL.to_string());
    // Another person's direct messages are not shown.
    if !valid_channel(&c) || (c.starts_with('@') && c != local::dm_channel(user)) {
        return local::DEFAULT_CHANNEL.to_string();
    }
    c
}

/// `GET /` and `GET /chat`: the page (a session starts here, as the product owner).
pub async fn page(
    State(state): State<AppState>,
    On(chat): On,
    headers: HeaderMap,
    Query(q): Query<ChannelQuery>,
) -> Response {
    let (session, fresh) = match session_of(&state, &headers) {
        Some(s) => (s, false),
        None => (
            Session {
                sid: hex::encode(rand::random::<[u8; 16]>()),
                user: local::USERS[0].0.to_string(),
            },
            true,
        ),
    };
    let channel = channel_of(&q, &session.user);
    let body = match page_html(&state, &chat, &session, &channel).await {
        Ok(b) => b,
        Err(e) => return super::internal(e),
    };
    let mut res = Html(body).into_response();
    if fresh {
        if let Ok(v) = set_cookie(&state, &session).parse() {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    res
}

async fn messages_html(chat: &LocalChat, state: &AppState, channel: &str, user: &str) -> anyhow::Result<String> {
    let rows = q::channel(chat.store(), channel, user, SHOWN).await?;
    let only_you = text(state, "local_only_you");
    let mut out = String::new();
    for r in &rows {
        let Ok(m) = serde_json::from_str::<crate::chat::Message>(&r.message) else {
            continue;
        };
        out.push_str(&render::message(
            &m,
            r.id,
            r.version,
            r.visible_to
                .as_ref()
                .filter(|_| !channel.starts_with('@'))
                .map(|_| only_you.as_str()),
            r.parent.is_some(),
        ));
    }
    if rows.is_empty() {
        out.push_str(&format!(
            "<p class=\"empty\">{}</p>",
            render::esc(&text(state, "local_empty"))
        ));
    }
    Ok(out)
}

async fn page_html(state: &AppState, chat: &LocalChat, s: &Session, channel: &str) -> anyhow::Result<String> {
    let mut channels = vec![local::DEFAULT_CHANNEL.to_string()];
    for c in q::channels(chat.store()).await? {
        if !c.starts_with('@') && !channels.contains(&c) {
            channels.push(c);
        }
    }
    let mut nav = String::new();
    for c in &channels {
        let current = if c == channel { " aria-current=\"page\"" } else { "" };
        nav.push_str(&format!(
            "<a href=\"/chat?c={}\" data-channel=\"{}\"{current}># {}</a>",
            render::esc(c),
            render::esc(c),
            render::esc(c)
        ));
    }
    let dm = local::dm_channel(&s.user);
    let current = if dm == channel { " aria-current=\"page\"" } else { "" };
    let dms = format!(
        "<a href=\"/chat?c={}\" data-channel=\"{}\"{current}>{}</a>",
        render::esc(&dm),
        render::esc(&dm),
        render::esc(&text(state, "local_dm_with_bot"))
    );
    let people: String = local::USERS
        .iter()
        .map(|(u, role)| {
            let sel = if *u == s.user { " selected" } else { "" };
            format!(
                "<option value=\"{u}\"{sel}>{} ({role})</option>",
                render::esc(&local::display_name(u))
            )
        })
        .collect();
    let commands: String = crate::command::Verb::ALL
        .iter()
        .map(|v| {
            let usage = v.usage();
            let start = format!("/{} {}", v.command(), v.word());
            format!(
                "<option value=\"{}\" label=\"{}\"></option>",
                render::esc(start.trim_end()),
                render::esc(usage)
            )
        })
        .collect();
    let messages = messages_html(chat, state, channel, &s.user).await?;
    let lang = lang(state);
    let title = if channel.starts_with('@') {
        text(state, "local_dm_with_bot")
    } else {
        format!("# {channel}")
    };
    Ok(format!(
        include_str!("../local.html"),
        lang = lang,
        css = PAGE_CSS,
        js = CHAT_JS,
        csrf = render::esc(&csrf(state, s)),
        channel = render::esc(channel),
        user = render::esc(&s.user),
        app_title = render::esc(&text(state, "local_title")),
        channels_label = render::esc(&text(state, "local_channels")),
        direct_label = render::esc(&text(state, "local_direct")),
        act_as = render::esc(&text(state, "local_act_as")),
        hint = render::esc(&text(state, "local_hint")),
        nav = nav,
        dms = dms,
        people = people,
        heading = render::esc(&title),
        messages = messages,
        placeholder = render::esc(&text(state, "local_placeholder")),
        send = render::esc(&text(state, "local_send")),
        commands = commands,
    ))
}

/// `GET /chat/messages?c=`: a channel's messages (the page refreshes them live).
pub async fn messages(
    State(state): State<AppState>,
    On(chat): On,
    Viewer(s): Viewer,
    Query(q): Query<ChannelQuery>,
) -> Response {
    let channel = channel_of(&q, &s.user);
    match messages_html(&chat, &state, &channel, &s.user).await {
        Ok(h) => Html(h).into_response(),
        Err(e) => super::internal(e),
    }
}

/// `GET /chat/events`: server-sent events naming what changed (`channel`, `form`).
pub async fn events(On(chat): On, Viewer(s): Viewer) -> Response {
    let rx = chat.subscribe();
    let user = s.user;
    let stream = futures::stream::unfold(rx, move |mut rx| {
        let user = user.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(Change::Channel(c)) if !c.starts_with('@') || c == local::dm_channel(&user) => {
                        return Some((
                            Ok::<_, std::convert::Infallible>(Event::default().event("channel").data(c)),
                            rx,
                        ));
                    }
                    Ok(Change::Form(u)) if u == user => {
                        return Some((Ok(Event::default().event("form").data(u)), rx));
                    }
                    Ok(_) => continue,
                    // Fell behind: the page reloads what it shows.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("lagged").data("")), rx));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `GET /chat/form`: the person's open form, if any (204 when none).
pub async fn open_form(On(chat): On, Viewer(s): Viewer) -> Response {
    match q::open_form_of(chat.store(), &s.user).await {
        Ok(Some((id, form))) => match serde_json::from_str::<Form>(&form) {
            Ok(f) => Html(render::form(&f, &id, &BTreeMap::new(), &BTreeMap::new())).into_response(),
            Err(e) => super::internal(e.into()),
        },
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => super::internal(e),
    }
}

pub fn inbound(s: &Session, channel: &str, kind: InboundKind) -> Inbound {
    Inbound {
        actor: Actor::new(local::PLATFORM, &s.user),
        actor_name: local::display_name(&s.user),
        channel: channel.to_string(),
        // Forms open in the page: any press may open one.
        trigger: Some(format!("lf-{}", hex::encode(rand::random::<[u8; 12]>()))),
        reply: None,
        kind,
    }
}

fn recorded(new: bool) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "recorded": true, "duplicate": !new })),
    )
        .into_response()
}

/// A refusal the page shows as text.
fn refused(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "error": crate::chat::markdown::unescape(&message) })),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct AsBody {
    user: String,
}

/// `POST /chat/as`: act as another seeded person.
pub async fn act_as(State(state): State<AppState>, _: On, Acting(s): Acting, Json(b): Json<AsBody>) -> Response {
    if !local::USERS.iter().any(|(u, _)| *u == b.user) {
        return refused(StatusCode::BAD_REQUEST, format!("no person \"{}\" here", b.user));
    }
    let next = Session {
        sid: s.sid,
        user: b.user,
    };
    let mut res = (StatusCode::OK, Json(json!({ "user": next.user }))).into_response();
    if let Ok(v) = set_cookie(&state, &next).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct CommandBody {
    channel: String,
    text: String,
    /// Names this submission: sending it again records it once.
    nonce: String,
}

/// Splits `/release new web` into the command and the rest of the line.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let rest = line.strip_prefix('/')?;
    let (name, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    crate::command::COMMANDS
        .contains(&name)
        .then(|| (name.to_string(), text.trim().to_string()))
}

/// `POST /chat/command`: a line typed in the composer.
pub async fn command(State(state): State<AppState>, _: On, Acting(s): Acting, Json(b): Json<CommandBody>) -> Response {
    let channel = channel_of(&ChannelQuery { c: Some(b.channel) }, &s.user);
    let Some((name, text)) = parse_line(&b.text) else {
        let commands = crate::command::COMMANDS
            .iter()
            .map(|c| format!("/{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = state
            .bot
            .texts
            .render("local_not_a_command", &json!({ "commands": commands }))
            .unwrap_or(commands);
        return refused(StatusCode::BAD_REQUEST, message);
    };
    if b.nonce.is_empty() || b.nonce.len() > 64 {
        return refused(StatusCode::BAD_REQUEST, "nonce: 1 to 64 characters".into());
    }
    let ev = inbound(&s, &channel, InboundKind::Command { name, text });
    match state.bot.accept(&format!("local:cmd:{}:{}", s.sid, b.nonce), &ev).await {
        Ok(new) => recorded(new),
        Err(e) => super::internal(e),
    }
}

#[derive(Deserialize)]
pub struct ActionBody {
    message: i64,
    version: i64,
    action: String,
}

/// `POST /chat/action`: a button pressed on a message.
pub async fn action(
    State(state): State<AppState>,
    On(chat): On,
    Acting(s): Acting,
    Json(b): Json<ActionBody>,
) -> Response {
    let row = match q::get(chat.store(), b.message).await {
        Ok(Some(r)) if r.visible_to.as_ref().is_none_or(|u| *u == s.user) => r,
        Ok(_) => return refused(StatusCode::NOT_FOUND, format!("no message {}", b.message)),
        Err(e) => return super::internal(e),
    };
    let has_button = serde_json::from_str::<crate::chat::Message>(&row.message)
        .map(|m| m.buttons.iter().any(|x| x.action == b.action))
        .unwrap_or(false);
    if !has_button {
        // The message changed since the page showed it: the button is gone.
        return refused(StatusCode::CONFLICT, text(&state, "local_button_gone"));
    }
    let ev = inbound(
        &s,
        &row.channel,
        InboundKind::Action {
            action: b.action.clone(),
            message: Some(Location {
                channel: row.channel.clone(),
                ts: row.id.to_string(),
            }),
        },
    );
    // A double click (the same press of the same rendering) is one event.
    let key = format!("local:act:{}:{}:{}:{}", s.user, row.id, b.version, b.action);
    match state.bot.accept(&key, &ev).await {
        Ok(new) => recorded(new),
        Err(e) => super::internal(e),
    }
}

#[derive(Deserialize)]
pub struct FormBody {
    id: String,
    #[serde(default)]
    values: BTreeMap<String, String>,
}

/// `POST /chat/form`: a form submitted. Errors come back next to their fields
/// (`{"errors": {field: message}}`) and nothing is recorded; a valid submission closes
/// the form.
pub async fn submit_form(
    State(state): State<AppState>,
    On(chat): On,
    Acting(s): Acting,
    Json(b): Json<FormBody>,
) -> Response {
    let form = match q::form(chat.store(), &b.id, &s.user).await {
        Ok(Some(f)) => f,
        Ok(None) => return refused(StatusCode::GONE, text(&state, "form_expired")),
        Err(e) => return super::internal(e),
    };
    let form: Form = match serde_json::from_str(&form) {
        Ok(f) => f,
        Err(e) => return super::internal(e.into()),
    };
    match submit(&state.bot, &s, &b.id, &form, &b.values).await {
        Ok(errors) if errors.is_empty() => {
            if let Err(e) = q::close_form(chat.store(), &b.id, &s.user).await {
                return super::internal(e);
            }
            recorded(true)
        }
        // Answered like Slack's `response_action: errors`: the form stays open with them.
        Ok(errors) => {
            let errors = crate::chat::markdown::unescape_values(errors);
            (StatusCode::OK, Json(json!({ "recorded": false, "errors": errors }))).into_response()
        }
        Err(e) => super::internal(e),
    }
}

/// Checks and records a form's answers (the fields it has, trimmed); the errors by field
/// when they are not valid, and then nothing is recorded.
pub async fn submit(
    bot: &crate::bot::Bot,
    s: &Session,
    id: &str,
    form: &Form,
    given: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for f in &form.fields {
        let v = given.get(&f.id).map(|v| v.trim().to_string()).unwrap_or_default();
        if f.required && v.is_empty() {
            errors.insert(
                f.id.clone(),
                bot.texts.render("field_error_required", &json!({ "label": f.label }))?,
            );
        }
        values.insert(f.id.clone(), v);
    }
    for (k, v) in bot.precheck_form(&form.callback, &values).await? {
        errors.entry(k).or_insert(v);
    }
    if !errors.is_empty() {
        return Ok(errors);
    }
    let ev = inbound(
        s,
        &form.reply_channel,
        InboundKind::FormSubmit {
            callback: form.callback.clone(),
            values,
        },
    );
    bot.accept(&format!("local:form:{id}"), &ev).await?;
    Ok(errors)
}

#[derive(Deserialize)]
pub struct DismissBody {
    id: String,
}

/// `POST /chat/form/dismiss`: the form was cancelled.
pub async fn dismiss_form(On(chat): On, Acting(s): Acting, Json(b): Json<DismissBody>) -> Response {
    match q::close_form(chat.store(), &b.id, &s.user).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => super::internal(e),
    }
}

/// The pages' shared style (chat and release pages).
pub const PAGE_CSS: &str = include_str!("../page.css");
const CHAT_JS: &str = include_str!("../chat.js");
