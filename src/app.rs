//! The application, wired: every part built once from the settings and the configuration
//! ([`App::build`]), its workers started and stopped together, and `serve` itself.

use crate::bot::Bot;
use crate::chat::slack;
use crate::chat::ChatClient;
use crate::chat::Texts;
use crate::clock::SharedClock;
use crate::config::{Config, Settings};
use crate::metrics::Metrics;
use crate::server::dingtalk;
use crate::server::{router, AppState};
use crate::store::{self, Store};
use crate::workers::outbox::OutboxWorker;
use anyhow::Context;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Everything `serve` runs, built once; tests drive the workers by hand.
pub struct App {
    pub state: AppState,
    pub inbox: crate::workers::inbox::InboxWorker,
    pub outbox: OutboxWorker,
    pub executor: crate::executor::Executor,
    pub scheduler: crate::workers::scheduler::Scheduler,
    pub pruner: crate::workers::pruner::Pruner,
}

impl App {
    pub async fn build(settings: &Settings, config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let texts = Texts::new(&settings.locale)?;
        let store = Store::open(&settings.database_url).await?;
        let metrics = Arc::new(Metrics::default());
        let Platforms {
            mut clients,
            slack,
            discord_verifier,
            dingtalk,
        } = platforms(settings, &clock)?;
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
            let chat = Arc::new(crate::server::local::LocalChat::new(store.clone(), clock.clone()));
            clients.insert(crate::chat::local::PLATFORM.to_string(), chat.clone());
            seed_local_people(&store, &config, clock.now_ms()).await?;
            Some(chat)
        } else {
            None
        };
        let outbox_notify = Arc::new(Notify::new());
        let inbox_notify = Arc::new(Notify::new());
        take_over_leases(&store, clock.now_ms()).await?;
        let sim = config.sim.clone();
        let executor_config = config.executor.clone();
        let retention = config.runtime.retention;
        let intake = crate::inbox::Intake::start(store.clone(), clock.clone(), inbox_notify.clone(), metrics.clone());
        let core = crate::shared::Core {
            store: store.clone(),
            config: Arc::new(config),
            texts,
            clock: clock.clone(),
            metrics: metrics.clone(),
            outbox_notify,
            inbox_notify,
            scheduler_notify: Arc::new(Notify::new()),
            executions: Arc::new(crate::shared::Wakers::default()),
        };
        let bot = Bot {
            core: core.clone(),
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
        let inbox = crate::workers::inbox::InboxWorker::new(bot.clone());
        let scheduler = crate::workers::scheduler::Scheduler::new(bot.clone());
        scheduler.sync().await.context("planning the cron jobs")?;
        let outbox = OutboxWorker::new(&core, clients, Some(links)).yielding_to(bot.intake.pressure.clone());
        let pruner = crate::workers::pruner::Pruner::new(store, clock, retention);
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

/// The platforms whose credentials are set: their clients, and what their routes verify.
struct Platforms {
    clients: HashMap<String, Arc<dyn ChatClient>>,
    slack: Option<(crate::config::Secret, crate::config::Secret)>,
    discord_verifier: Option<Arc<crate::chat::discord::verify::Verifier>>,
    dingtalk: Option<crate::config::DingTalkSettings>,
}

fn platforms(settings: &Settings, clock: &SharedClock) -> anyhow::Result<Platforms> {
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
    Ok(Platforms {
        clients,
        slack,
        discord_verifier,
        dingtalk,
    })
}

/// On SQLite this process is the database's only user: every lease of a previous run is
/// stale, so nothing waits for it to expire.
async fn take_over_leases(store: &Store, now: i64) -> anyhow::Result<()> {
    if store.backend == store::Backend::Sqlite {
        let freed = store::lease::release_all(store, &store::lease::INBOX, now).await?
            + store::lease::release_all(store, &store::lease::OUTBOX_CHANNELS, now).await?
            + store::lease::release_all(store, &store::lease::FIRINGS, now).await?;
        let executions = store::executions::release_all_leases(store).await?;
        if freed + executions > 0 {
            tracing::warn!(
                events_and_queues = freed,
                executions,
                "took over the work a previous run left"
            );
        }
    }
    Ok(())
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

/// Every problem with the settings and the configuration, each on its own line.
pub fn check(settings: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    match settings.config.as_deref() {
        None => {}
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => problems.push(format!("{}: {e}", p.display())),
            Ok(text) => match Config::parse_for(&text, &settings.locale) {
                Err(e) => problems.extend(e.0.into_iter().map(|m| format!("{}: {m}", p.display()))),
                Ok(config) => problems.extend(
                    crate::executor::kubernetes::access_problems(&config)
                        .into_iter()
                        .map(|m| format!("{}: {m}", p.display())),
                ),
            },
        },
    }
    problems.extend(crate::chat::Texts::check());
    if let Err(e) = crate::chat::Texts::new(&settings.locale) {
        problems.push(format!("RELEASEBOT_LOCALE: {e}"));
    }
    if settings.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(format!(
            "RELEASEBOT_LISTEN: \"{}\" is not an address like 127.0.0.1:3000",
            settings.listen
        ));
    }
    if !(settings.database_url.starts_with("sqlite:")
        || settings.database_url.starts_with("postgres://")
        || settings.database_url.starts_with("postgresql://"))
    {
        problems.push("DATABASE_URL: must start with sqlite: or postgres://".to_string());
    }
    if url::Url::parse(&settings.public_url).is_err() {
        problems.push(format!(
            "RELEASEBOT_PUBLIC_URL: \"{}\" is not a URL",
            settings.public_url
        ));
    }
    match (&settings.slack_signing_secret, &settings.slack_bot_token) {
        (Some(_), None) => problems.push("SLACK_BOT_TOKEN: required when SLACK_SIGNING_SECRET is set".to_string()),
        (None, Some(_)) => problems.push("SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set".to_string()),
        _ => {}
    }
    let discord = [
        ("DISCORD_PUBLIC_KEY", settings.discord_public_key.is_some()),
        ("DISCORD_BOT_TOKEN", settings.discord_bot_token.is_some()),
        ("DISCORD_APPLICATION_ID", settings.discord_application_id.is_some()),
    ];
    if discord.iter().any(|(_, set)| *set) {
        for (name, _) in discord.iter().filter(|(_, set)| !set) {
            problems.push(format!("{name}: required when any DISCORD_ variable is set"));
        }
    }
    if let Some(k) = &settings.discord_public_key {
        if let Err(e) = crate::chat::discord::verify::verifier(k) {
            problems.push(e.to_string());
        }
    }
    match (&settings.dingtalk_app_key, &settings.dingtalk_app_secret) {
        (Some(_), None) => problems.push("DINGTALK_APP_SECRET: required when DINGTALK_APP_KEY is set".to_string()),
        (None, Some(_)) => problems.push("DINGTALK_APP_KEY: required when DINGTALK_APP_SECRET is set".to_string()),
        _ => {}
    }
    if settings.dingtalk_webhook_secret.is_some() && settings.dingtalk_webhook_url.is_none() {
        problems.push("DINGTALK_WEBHOOK_URL: required when DINGTALK_WEBHOOK_SECRET is set".to_string());
    }
    // The platform clients, built as `serve` builds them (no request is made).
    if let Some((_, token)) = settings.slack() {
        if let Err(e) = crate::chat::slack::SlackChat::new(&settings.slack_api_url, &token) {
            problems.push(format!("SLACK_API_URL: {e:#}"));
        }
    }
    if let Some(d) = settings.discord() {
        if let Err(e) = crate::chat::discord::DiscordChat::new(&d.api_url, &d.token, &d.application_id) {
            problems.push(format!("DISCORD_API_URL: {e:#}"));
        }
    }
    if let Some(d) = settings.dingtalk() {
        let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        if let Err(e) = crate::chat::dingtalk::DingTalkChat::new(&d, clock) {
            problems.push(format!("DINGTALK_API_URL: {e:#}"));
        }
    }
    problems
}

/// `releasebot serve`: migrations, HTTP server, workers, and a graceful stop on SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Exactly what `releasebot check` finds stops the start, all of it at once.
    let problems = check(&settings);
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
