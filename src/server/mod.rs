//! Startup and wiring: the HTTP routes, the workers, graceful shutdown.

pub mod dingtalk;
mod discord;
pub mod local;
pub mod pages;
pub mod verified;

use crate::bot::Bot;
use crate::chat::slack::{parse, verify};
use crate::config::Secret;
use crate::store::{self};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use verified::Verified;

/// Largest inbound body accepted.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub bot: Bot,
    pub slack_secret: Option<Secret>,
    pub discord: Option<Arc<crate::chat::discord::verify::Verifier>>,
    pub dingtalk_secret: Option<Secret>,
    /// Bearer token of the swimlane activity route (off when unset).
    pub activity_token: Option<Secret>,
    /// The workers `/readyz` answers for.
    pub health: crate::runtime::Health,
    /// The local chat in the browser, when it is on.
    pub local: Option<Arc<crate::server::local::LocalChat>>,
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(local::page))
        .route("/chat", get(local::page))
        .route("/chat/messages", get(local::messages))
        .route("/chat/events", get(local::events))
        .route("/chat/form", get(local::open_form).post(local::submit_form))
        .route("/chat/form/dismiss", post(local::dismiss_form))
        .route("/chat/as", post(local::act_as))
        .route("/chat/command", post(local::command))
        .route("/chat/action", post(local::action))
        .route("/executions/{id}", get(pages::execution))
        .route("/tickets/{id}", get(pages::ticket))
        .route("/slack/commands", post(slack_command))
        .route("/slack/interactions", post(slack_interaction))
        .route("/slack/events", post(slack_event))
        .route("/discord/interactions", post(discord::interactions))
        .route("/dingtalk/events", post(dingtalk::events))
        .route("/swimlanes/{name}/activity", post(swimlane_activity))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    layered(routes, state)
}

/// `routes` with the HTTP middleware every route has.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        // Innermost first: a panicking handler answers 500 (and is counted as one), every
        // request has a deadline, at most MAX_IN_FLIGHT are handled at once, each in a span.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // The path only: query strings carry page tokens.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// How long a request may take to be answered (the local chat's live updates stream
/// after their answer, so they are not cut).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Requests handled at once; more wait for a slot.
pub const MAX_IN_FLIGHT: usize = 4096;

/// A handler that panicked: logged with a reference, answered 500; the process goes on.
fn panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let why = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    internal(anyhow::anyhow!("a request handler panicked: {why}"))
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let m = &state.bot.metrics;
    m.inc(
        "releasebot_http_requests_total",
        &[("route", &route), ("status", &status)],
    );
    m.observe_with(
        "releasebot_http_request_duration_seconds",
        &[("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    res
}

/// Ready when the database answers and every worker runs and keeps up with its work.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = state.health.problems();
    if let Err(e) = state.bot.store.ping().await {
        tracing::warn!(error = %format!("{e:#}"), "database not reachable");
        problems.insert(0, "database not reachable".to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n")).into_response()
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let bot = &state.bot;
    let now = bot.now();
    let store = &bot.store;
    let lag = |oldest: anyhow::Result<Option<i64>>| match oldest {
        Ok(Some(t)) => ((now - t).max(0) as f64) / 1000.0,
        Ok(None) => 0.0,
        Err(_) => -1.0,
    };
    let m = &bot.metrics;
    m.set(
        "releasebot_outbox_depth",
        &[],
        store::outbox::depth(store).await.unwrap_or(-1) as f64,
    );
    m.set(
        "releasebot_inbox_pending",
        &[],
        store::inbox::pending(store).await.unwrap_or(-1) as f64,
    );
    m.set(
        "releasebot_outbox_lag_seconds",
        &[],
        lag(store::outbox::oldest_pending(store).await),
    );
    m.set(
        "releasebot_inbox_lag_seconds",
        &[],
        lag(store::inbox::oldest_pending(store).await),
    );
    crate::workers::scheduler::report_failures(m, store::firings::failing(store).await);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        m.render(),
    )
        .into_response()
}

/// Slack's signature: the v0 HMAC of the timestamp and the body, with the signing secret.
pub struct Slack;

impl verified::Scheme for Slack {
    const NAME: &'static str = "Slack";
    type Proof = ();

    fn check(
        state: &AppState,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Option<impl std::future::Future<Output = Result<(), verified::Refusal>> + Send> {
        let secret = state.slack_secret.as_ref()?;
        let now = state.bot.clock.now_ms() / 1000;
        let checked = verify::verify(
            secret.expose(),
            verified::header(headers, "x-slack-request-timestamp"),
            verified::header(headers, "x-slack-signature"),
            body,
            now,
        )
        .map_err(|_| verified::Refusal::Signature("invalid signature"));
        Some(std::future::ready(checked))
    }
}

async fn read_limited(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB").into_response())
}

fn bad_request(e: parse::ParseError) -> Response {
    let parse::ParseError::Malformed(why) = e;
    tracing::warn!(reason = %why, "malformed Slack payload");
    (StatusCode::BAD_REQUEST, why).into_response()
}

fn internal(e: anyhow::Error) -> Response {
    let reference = format!("{:08x}", rand::random::<u32>());
    tracing::error!(reference = %reference, error = %format!("{e:#}"), "inbound request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error, ref {reference}"),
    )
        .into_response()
}

async fn slack_command(State(state): State<AppState>, Verified { body, .. }: Verified<Slack>) -> Response {
    let (key, ev) = match parse::command(&body) {
        Ok(x) => x,
        Err(e) => return bad_request(e),
    };
    match state.bot.accept(&key, &ev).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => internal(e),
    }
}

async fn slack_interaction(State(state): State<AppState>, Verified { body, .. }: Verified<Slack>) -> Response {
    let (key, ev) = match parse::interaction(&body) {
        Ok(parse::Interaction::Event { key, event }) => (key, *event),
        Ok(parse::Interaction::Ignored) => return StatusCode::OK.into_response(),
        Err(e) => return bad_request(e),
    };
    // Form errors are answered inline, next to the fields, and nothing is recorded.
    if let crate::chat::InboundKind::FormSubmit { callback, values } = &ev.kind {
        match state.bot.precheck_form(callback, values).await {
            Ok(errors) if !errors.is_empty() => {
                let errors = crate::chat::markdown::unescape_values(errors);
                return Json(json!({ "response_action": "errors", "errors": errors })).into_response();
            }
            Ok(_) => {}
            Err(e) => return internal(e),
        }
    }
    match state.bot.accept(&key, &ev).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => internal(e),
    }
}

async fn slack_event(State(state): State<AppState>, Verified { body, .. }: Verified<Slack>) -> Response {
    match parse::event(&body) {
        Ok(parse::Event::UrlVerification(challenge)) => Json(json!({ "challenge": challenge })).into_response(),
        Ok(parse::Event::Command { key, event }) => match state.bot.accept(&key, &event).await {
            Ok(_) => StatusCode::OK.into_response(),
            Err(e) => internal(e),
        },
        Ok(parse::Event::Ignored { .. }) => StatusCode::OK.into_response(),
        Err(e) => bad_request(e),
    }
}

/// `POST /swimlanes/{name}/activity` (`Authorization: Bearer …`): a CI system reports a
/// deploy to a lane, which resets its idle clock. The body, if any, is a JSON object whose
/// `what` is kept in the audit trail.
async fn swimlane_activity(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(token) = &state.activity_token else {
        return (
            StatusCode::NOT_FOUND,
            "the activity route is off: set RELEASEBOT_ACTIVITY_TOKEN",
        )
            .into_response();
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        token.expose().as_bytes(),
    )) {
        return (StatusCode::UNAUTHORIZED, "invalid bearer token").into_response();
    }
    let body = match read_limited(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let what = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => v
                .get("what")
                .and_then(|w| w.as_str())
                .map(|w| crate::chat::truncate(w, 200, "…")),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object, like {\"what\": \"deploy web 1.4.2\"}",
                )
                    .into_response()
            }
        }
    };
    let lane = crate::domain::swimlane::sanitize(&name).unwrap_or(name);
    use crate::bot::swimlanes::Activity;
    match crate::bot::swimlanes::activity(&state.bot, &lane, what.as_deref()).await {
        Ok(Activity::Kept { until, was_pending }) => Json(json!({
            "lane": lane, "status": "active", "kept": true, "was_pending_deletion": was_pending,
            "next_reminder_at": crate::domain::fields::format_ms(until),
        }))
        .into_response(),
        Ok(Activity::NotFound) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no live swimlane is named {lane}") })),
        )
            .into_response(),
        Ok(Activity::NotActive(s)) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": format!("swimlane {lane} is {}: activity does not keep it", s.as_str()) })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}
