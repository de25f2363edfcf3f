//! Startup and wiring: the HTTP routes, the workers, graceful shutdown.

pub mod dingtalk;
mod discord;
pub mod local;
pub mod pages;

use crate::bot::Bot;
use crate::chat::slack::{self, parse, verify};
use crate::chat::ChatClient;
use crate::chat::Texts;
use crate::clock::SharedClock;
use crate::config::{Config, Secret, Settings};
use crate::metrics::Metrics;
use crate::outbox::OutboxWorker;
use crate::store::{self, Store};
use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    pub local: Option<Arc<crate::chat::local::LocalChat>>,
}

/// Everything `serve` runs, built once; tests drive the workers by hand.
pub struct App {
    pub state: AppState,
    pub inbox: crate::inbox::InboxWorker,
    pub outbox: OutboxWorker,
    pub executor: crate::executor::Executor,
    pub scheduler: crate::scheduler::Scheduler,
    pub pruner: crate::runtime::Pruner,
}

impl App {
    pub async fn build(settings: &Settings, config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let texts = Texts::new(&settings.locale)?;
        let store = Store::open(&settings.database_url).await?;
        let metrics = Arc::new(Metrics::default());
        let mut clients: HashMap<String, Arc<dyn ChatClient>> = HashMap::new();
        let slack = settings.slack();
        if let Some((_, token)) = &slack {
            clients.insert(
                slack::PLATFORM.to_string(),
                Arc::new(slack::SlackChat::new(&settings.slack_api_url, token)?),
            );
        }
        let mut discord_verifier = None;
        if let Some(d) = settings.discord() {
            discord_verifier = Some(Arc::new(crate::chat::discord::verify::verifier(&d.public_key)?));
            clients.insert(
                crate::chat::discord::PLATFORM.to_string(),
                Arc::new(crate::chat::discord::DiscordChat::new(
                    &d.api_url,
                    &d.token,
                    &d.application_id,
                )?),
            );
        }
        let dingtalk = settings.dingtalk();
        if let Some(d) = &dingtalk {
            let chat = Arc::new(crate::chat::dingtalk::DingTalkChat::new(d, clock.clone())?);
            tokio::spawn(register_card_callback(chat.clone()));
            clients.insert(crate::chat::dingtalk::PLATFORM.to_string(), chat);
        }
        let links = Arc::new(
            crate::store::secrets::links(
                &store,
                &settings.public_url,
                settings.link_secret.as_ref().map(|s| s.expose()),
                clock.now_ms(),
            )
            .await
            .context("the page links' key")?,
        );
        let local_on = settings
            .local_chat
            .unwrap_or(clients.is_empty() && !settings.dingtalk_stream);
        let local = if local_on {
            let chat = Arc::new(crate::chat::local::LocalChat::new(store.clone(), clock.clone()));
            clients.insert(crate::chat::local::PLATFORM.to_string(), chat.clone());
            seed_local_people(&store, &config, clock.now_ms()).await?;
            Some(chat)
        } else {
            None
        };
        let outbox_notify = Arc::new(Notify::new());
        let inbox_notify = Arc::new(Notify::new());
        if store.backend == store::Backend::Sqlite {
            // This process is the database's only user: every lease of a previous run is
            // stale, so nothing waits for it to expire.
            let now = clock.now_ms();
            let freed = store::lease::release_all(&store, &store::lease::INBOX, now).await?
                + store::lease::release_all(&store, &store::lease::OUTBOX_CHANNELS, now).await?
                + store::lease::release_all(&store, &store::lease::FIRINGS, now).await?;
            let executions = store::executions::release_all_leases(&store).await?;
            if freed + executions > 0 {
                tracing::warn!(
                    events_and_queues = freed,
                    executions,
                    "took over the work a previous run left"
                );
            }
        }
        let sim = config.sim.clone();
        let executor_config = config.executor.clone();
        let retention = config.runtime.retention;
        let intake = crate::inbox::Intake::start(store.clone(), clock.clone(), inbox_notify.clone(), metrics.clone());
        let bot = Bot {
            store: store.clone(),
            config: Arc::new(config),
            texts: texts.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            outbox_notify: outbox_notify.clone(),
            inbox_notify,
            scheduler_notify: Arc::new(Notify::new()),
            executions: Arc::new(crate::executor::Wakers::default()),
            intake,
            roles: Arc::new(crate::bot::roles::RolesCache::default()),
            links: links.clone(),
            hooks: Arc::new(crate::bot::Hooks::default()),
        };
        let executor = crate::executor::Executor::new(
            bot.exec_deps(),
            sim,
            executor_config.concurrency,
            executor_config.stop_grace.0,
        );
        let inbox = crate::inbox::InboxWorker::new(bot.clone());
        let scheduler = crate::scheduler::Scheduler::new(bot.clone());
        scheduler.sync().await.context("planning the cron jobs")?;
        let outbox = OutboxWorker::new(
            store.clone(),
            clients,
            texts,
            bot.config.clone(),
            clock.clone(),
            metrics,
            outbox_notify,
            Some(links),
        )
        .yielding_to(bot.intake.pressure.clone());
        let pruner = crate::runtime::Pruner::new(store, clock, retention);
        let health = crate::runtime::Health {
            workers: vec![
                inbox.heartbeat.clone(),
                outbox.heartbeat.clone(),
                executor.heartbeat.clone(),
                scheduler.heartbeat.clone(),
            ],
        };
        Ok(Self {
            state: AppState {
                bot,
                slack_secret: slack.map(|(s, _)| s),
                discord: discord_verifier,
                dingtalk_secret: dingtalk.map(|d| d.app_secret),
                activity_token: settings
                    .activity_token
                    .clone()
                    .filter(|t| !t.expose().trim().is_empty()),
                health,
                local,
            },
            inbox,
            outbox,
            executor,
            scheduler,
            pruner,
        })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Starts the workers (supervised) until `shutdown`.
    pub fn start(&self, settings: &Settings, shutdown: CancellationToken) -> Workers {
        let grace = self.state.bot.config.runtime.shutdown_grace.0;
        /// One supervised worker: `$w.run(shutdown, grace)`, restarted if it panics.
        macro_rules! worker {
            ($w:expr) => {{
                let w = $w.clone();
                let s = shutdown.clone();
                crate::runtime::supervise($w.heartbeat.clone(), shutdown.clone(), move || {
                    w.clone().run(s.clone(), grace)
                })
            }};
        }
        let inbox = worker!(self.inbox);
        let outbox = worker!(self.outbox);
        let executor = worker!(self.executor);
        let scheduler = worker!(self.scheduler);
        let pruner = tokio::spawn(self.pruner.clone().run(shutdown.clone()));
        let stream = match settings.dingtalk().filter(|_| settings.dingtalk_stream) {
            Some(d) => {
                let bot = self.state.bot.clone();
                let handler = move |body: Vec<u8>| {
                    let bot = bot.clone();
                    async move { dingtalk::receive(&bot, &body).await.map(|_| ()) }
                };
                Some(tokio::spawn(crate::chat::dingtalk::stream::run(
                    d,
                    handler,
                    shutdown.clone(),
                )))
            }
            None => None,
        };
        Workers {
            tasks: [
                Some(inbox),
                Some(executor),
                Some(scheduler),
                stream,
                Some(outbox),
                Some(pruner),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

/// The running workers of an [`App`].
pub struct Workers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Waits for every worker to stop (after the shutdown token fired), in start order.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Registers DingTalk's card callback URL, again every minute until DingTalk takes it.
async fn register_card_callback(chat: Arc<crate::chat::dingtalk::DingTalkChat>) {
    loop {
        match chat.register_card_callback().await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = ?e, "registering the DingTalk card callback URL failed; card buttons do not work until it succeeds (retrying in a minute)");
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
        }
    }
}

/// Gives the local chat's people their roles (those the configuration has), once.
async fn seed_local_people(store: &Store, config: &Config, now: i64) -> anyhow::Result<()> {
    use crate::store::roles::{self, Member};
    let mut tx = store.begin().await?;
    let existing = roles::all(&mut tx).await?;
    let by = crate::domain::Actor::new("releasebot", "local-chat");
    for (user, role) in crate::chat::local::USERS {
        let m = Member {
            role: role.to_string(),
            actor: crate::domain::Actor::new(crate::chat::local::PLATFORM, *user),
            application: String::new(),
        };
        if config.roles.contains_key(*role) && !existing.contains(&m) {
            roles::add(&mut tx, &m, &by, now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
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
    (
        [(
            axum::http::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        m.render(),
    )
        .into_response()
}

/// A Slack request whose signature was checked; the body is not parsed yet.
pub struct SlackVerified(pub Bytes);

impl FromRequest<AppState> for SlackVerified {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = &state.slack_secret else {
            return Err((StatusCode::NOT_FOUND, "Slack is not configured").into_response());
        };
        let headers: HeaderMap = req.headers().clone();
        let body = read_limited(req.into_body()).await?;
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now = state.bot.clock.now_ms() / 1000;
        match verify::verify(
            secret.expose(),
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            &body,
            now,
        ) {
            Ok(()) => Ok(SlackVerified(body)),
            Err(e) => {
                tracing::warn!(reason = ?e, "refused a Slack request with a bad signature");
                Err((StatusCode::UNAUTHORIZED, "invalid signature").into_response())
            }
        }
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

async fn slack_command(State(state): State<AppState>, SlackVerified(body): SlackVerified) -> Response {
    let (key, ev) = match parse::command(&body) {
        Ok(x) => x,
        Err(e) => return bad_request(e),
    };
    match state.bot.accept(&key, &ev).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => internal(e),
    }
}

async fn slack_interaction(State(state): State<AppState>, SlackVerified(body): SlackVerified) -> Response {
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

async fn slack_event(State(state): State<AppState>, SlackVerified(body): SlackVerified) -> Response {
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

/// `releasebot serve`: migrations, HTTP server, workers, and a graceful stop on SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Exactly what `releasebot check` finds stops the start, all of it at once.
    let problems = crate::cli::check(&settings);
    if !problems.is_empty() {
        anyhow::bail!(
            "{} problem(s) in the settings or the configuration:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    let config = Config::load(settings.config.as_deref(), &settings.locale)?;
    let app = App::build(&settings, config, Arc::new(crate::clock::SystemClock)).await?;
    tracing::info!(
        database = %store::redact_url(&settings.database_url),
        slack = app.state.slack_secret.is_some(),
        discord = app.state.discord.is_some(),
        dingtalk = app.state.dingtalk_secret.is_some(),
        locale = %settings.locale,
        "releasebot starting"
    );
    if app.state.local.is_some() {
        announce_local_chat(&settings);
    } else if app.state.slack_secret.is_none() && app.state.discord.is_none() && app.state.dingtalk_secret.is_none() {
        tracing::warn!("no chat platform is configured and RELEASEBOT_LOCAL_CHAT=false: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (Slack), DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID (Discord), or DINGTALK_APP_KEY and DINGTALK_APP_SECRET (DingTalk)");
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let shutdown = CancellationToken::new();
    let router = app.router();
    let grace = app.state.bot.config.runtime.shutdown_grace.0;
    let workers = app.start(&settings, shutdown.clone());
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new work; finishing what is under way"
        );
        signal.cancel();
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    // Work under way finishes within the grace; what waits stays for the next start.
    workers.join().await;
    app.state.bot.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Prints where the local chat is, and warns when anyone on the network could open it.
pub fn announce_local_chat(settings: &Settings) {
    println!(
        "releasebot's local chat: open {}/",
        settings.public_url.trim_end_matches('/')
    );
    let loopback = settings
        .listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    if !loopback {
        tracing::warn!(
            listen = %settings.listen,
            "the local chat lets whoever opens it act as any of its people (admin included): keep it on a loopback address or set RELEASEBOT_LOCAL_CHAT=false"
        );
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
