//! `releasebot demo`: a scripted run on the embedded defaults and the local chat. Two
//! tickets are walked through every role exactly as people do it in the browser (the same
//! inbound events, forms and buttons); the first canary hits an injected fault at 10% and
//! rolls back with an alert, the second goes to 100% and is signed off by QC. The
//! transcript is printed as it goes; `--serve` then keeps the local chat open on the same
//! database.

use crate::app::App;
use crate::chat::local::{self, render};
use crate::chat::{Form, InboundKind, InputKind, Location, Message};
use crate::config::{Config, Settings};
use crate::server::local::{inbound, Session};
use crate::store::local as q;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the demo waits for one thing to happen before it says what is stuck.
const PATIENCE: Duration = Duration::from_secs(30);

/// The demo's configuration: the built-in one with a fast demo service as the default.
pub fn config(locale: &str) -> Result<Config, crate::config::ConfigErrors> {
    Config::parse_for(
        &format!(
            "default_service = \"demo\"\n{}\n{}",
            crate::config::DEFAULT_CONFIG,
            include_str!("../config/demo.toml")
        ),
        locale,
    )
}

/// A SQLite file's own files: the database, its write-ahead log and its shared memory.
fn sqlite_files(path: &std::path::Path) -> [std::path::PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| std::path::PathBuf::from(format!("{}{suffix}", path.display())))
}

/// The settings of a demo: a fresh SQLite file in the temporary directory unless a
/// database was named (and then that file, to remove after the demo), the local chat on.
pub fn settings(mut settings: Settings) -> (Settings, Option<std::path::PathBuf>) {
    let mut fresh = None;
    if settings.database_url == Settings::defaults().database_url {
        let path = std::env::temp_dir().join(format!("releasebot-demo-{}.db", std::process::id()));
        for file in sqlite_files(&path) {
            let _ = std::fs::remove_file(file);
        }
        settings.database_url = format!("sqlite://{}?mode=rwc", path.display());
        fresh = Some(path);
    }
    settings.local_chat = Some(true);
    (settings, fresh)
}

pub async fn run(settings: Settings, serve: bool) -> anyhow::Result<()> {
    let (settings, fresh) = self::settings(settings);
    let config = config(&settings.locale).map_err(|e| anyhow::anyhow!("the demo configuration: {e}"))?;
    let app = App::build(&settings, config, std::sync::Arc::new(crate::clock::SystemClock)).await?;
    println!(
        "releasebot demo — database {}",
        crate::store::redact_url(&settings.database_url)
    );
    let shutdown = CancellationToken::new();
    let workers = app.start(&settings, shutdown.clone());
    let started = std::time::Instant::now();
    let result = Script::new(&app).run().await;
    match &result {
        Ok(()) => println!("\n✔ demo finished in {:.1} s", started.elapsed().as_secs_f64()),
        Err(e) => eprintln!("\n✘ the demo stopped: {e:#}"),
    }
    if serve && result.is_ok() {
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        crate::app::announce_local_chat(&settings);
        println!("(Ctrl-C to stop)");
        let signal = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            signal.cancel();
        });
        axum::serve(listener, app.router())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await?;
    }
    shutdown.cancel();
    workers.join().await;
    app.state.bot.store.close().await;
    match fresh {
        // Its own temporary database goes with the demo, unless `--serve` kept it open.
        Some(path) if !serve => {
            for file in sqlite_files(&path) {
                if let Err(e) = std::fs::remove_file(&file) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        eprintln!("could not remove {}: {e}", file.display());
                    }
                }
            }
        }
        Some(path) => println!("the demo's database is kept at {}", path.display()),
        None => println!(
            "the demo's data is kept in {}",
            crate::store::redact_url(&settings.database_url)
        ),
    }
    result
}

/// The demo's script, acting through the local chat's own code paths.
pub struct Script<'a> {
    app: &'a App,
    /// The last message printed.
    seen: i64,
}

impl<'a> Script<'a> {
    pub fn new(app: &'a App) -> Self {
        Self { app, seen: 0 }
    }

    fn session(user: &str) -> Session {
        Session {
            sid: "demo".into(),
            user: user.into(),
        }
    }

    fn chat(&self) -> anyhow::Result<&crate::server::local::LocalChat> {
        self.app
            .state
            .local
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the local chat is off"))
    }

    /// Runs both tickets.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        say("Ticket 1: version 2.0.0 has an injected fault (4% of its requests fail)");
        let first = self.ticket("2.0.0").await?;
        self.release(first, "ROLLED_BACK").await?;
        say("Ticket 2: version 2.0.1 is healthy");
        let second = self.ticket("2.0.1").await?;
        self.release(second, "COMPLETED").await?;
        self.decide(
            second,
            "qc",
            &[("qc_evaluation", "good"), ("qc_notes", "Smooth canary.")],
        )
        .await?;
        self.wait_for("QC's sign-off", || async {
            let mut conn = self.app.state.bot.store.read.acquire().await?;
            let t = crate::store::tickets::get(&mut conn, crate::domain::ticket::TicketId(second)).await?;
            Ok(t.is_some_and(|t| t.status.key() == "released"))
        })
        .await?;
        self.delivered().await?;
        self.print_new().await?;
        let links = &self.app.state.bot.links;
        println!("\nPages:");
        for id in [first, second] {
            println!("  ticket REL-{id}: {}", links.url(crate::chat::links::Page::Ticket(id)));
        }
        Ok(())
    }

    /// Product submits a ticket; test, ops and ops again approve it (the last approval
    /// starts the release). Its id.
    async fn ticket(&mut self, version: &str) -> anyhow::Result<i64> {
        let product = Self::session("product");
        self.act(
            &product,
            local::DEFAULT_CHANNEL,
            InboundKind::Command {
                name: "release".into(),
                text: "new".into(),
            },
        )
        .await?;
        let planned = chrono::Utc::now() + chrono::Duration::minutes(10);
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(version.as_bytes()));
        let answers = [
            ("application", "web"),
            ("version", version),
            (
                "package_url",
                &format!("https://artifacts.example.com/web/{version}.tar.gz"),
            ),
            ("md5", &md5),
            ("planned_at", &planned.format("%Y-%m-%d %H:%M").to_string()),
            ("notes", "Submitted by releasebot demo."),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let answers: Vec<(&str, &str)> = answers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.fill_form(&product, &answers).await?;
        let id = self.wait_for_ticket(version).await?;
        self.print_new().await?;
        self.decide(
            id,
            "test",
            &[("evaluation", "pass"), ("test_summary", "Regression suite green.")],
        )
        .await?;
        self.decide(id, "ops", &[]).await?;
        self.decide(id, "ops", &[("release_summary", "Canary on the demo fleet.")])
            .await?;
        Ok(id)
    }

    /// Records what `s` does, as the local chat's routes do.
    async fn act(&self, s: &Session, channel: &str, kind: InboundKind) -> anyhow::Result<()> {
        self.app
            .state
            .bot
            .accept(
                &format!("local:demo:{}", rand::random::<u64>()),
                &inbound(s, channel, kind),
            )
            .await?;
        Ok(())
    }

    /// Waits for the form opened for `s`, fills it (required fields without an answer get
    /// the first option or "ok") and submits it.
    async fn fill_form(&mut self, s: &Session, answers: &[(&str, &str)]) -> anyhow::Result<()> {
        let store = self.chat()?.store().clone();
        let user = s.user.clone();
        let (id, form) = self
            .wait_for_value("a form", || {
                let store = store.clone();
                let user = user.clone();
                async move { q::open_form_of(&store, &user).await }
            })
            .await?;
        let form: Form = serde_json::from_str(&form)?;
        let mut values = BTreeMap::new();
        for f in &form.fields {
            let given = answers.iter().find(|(k, _)| *k == f.id).map(|(_, v)| v.to_string());
            let value = given.unwrap_or_else(|| match (&f.input, f.required) {
                (InputKind::Select { options }, true) => options.first().cloned().unwrap_or_default(),
                (_, true) => "ok".into(),
                _ => String::new(),
            });
            values.insert(f.id.clone(), value);
        }
        println!(
            "  {} fills in “{}”",
            local::display_name(&s.user),
            render::plain(&form.title)
        );
        let errors = crate::server::local::submit(&self.app.state.bot, s, &id, &form, &values).await?;
        if !errors.is_empty() {
            bail!("the form was refused: {errors:?}");
        }
        q::close_form(&store, &id, &s.user).await?;
        Ok(())
    }

    async fn wait_for_ticket(&mut self, version: &str) -> anyhow::Result<i64> {
        let bot = self.app.state.bot.clone();
        let version = version.to_string();
        self.wait_for_value("the ticket", || {
            let bot = bot.clone();
            let version = version.clone();
            async move {
                let mut conn = bot.store.read.acquire().await?;
                let product = crate::domain::Actor::new(local::PLATFORM, "product");
                let mine = crate::store::tickets::list(&mut conn, crate::store::tickets::ListFilter::Mine(&product), 5)
                    .await?;
                Ok(mine
                    .into_iter()
                    .find(|t| t.fields.get("version").map(String::as_str) == Some(version.as_str()))
                    .map(|t| t.id.0))
            }
        })
        .await
    }

    /// `user` presses Approve on the ticket's waiting stage and fills in its form, if any.
    async fn decide(&mut self, ticket: i64, user: &str, answers: &[(&str, &str)]) -> anyhow::Result<()> {
        let s = Self::session(user);
        let store = self.chat()?.store().clone();
        let prefix = format!("approve:{ticket}:");
        let (row, action) = self
            .wait_for_value("the stage's Approve button", || {
                let store = store.clone();
                let prefix = prefix.clone();
                async move {
                    for m in q::channel(&store, local::DEFAULT_CHANNEL, "", 50)
                        .await?
                        .into_iter()
                        .rev()
                    {
                        let msg: Message = serde_json::from_str(&m.message)?;
                        if let Some(b) = msg.buttons.iter().find(|b| b.action.starts_with(&prefix)) {
                            return Ok(Some((m, b.action.clone())));
                        }
                    }
                    Ok(None)
                }
            })
            .await?;
        self.print_new().await?;
        println!("  {} presses Approve on REL-{ticket}", local::display_name(user));
        self.act(
            &s,
            &row.channel,
            InboundKind::Action {
                action,
                message: Some(Location {
                    channel: row.channel.clone(),
                    ts: row.id.to_string(),
                }),
            },
        )
        .await?;
        // A stage with inputs opens its form; one without records the decision at once,
        // and its message changes.
        let form_opened = self
            .wait_for_value("the decision", || {
                let store = store.clone();
                let (id, version, user) = (row.id, row.version, s.user.clone());
                async move {
                    if q::open_form_of(&store, &user).await?.is_some() {
                        return Ok(Some(true));
                    }
                    let changed = q::get(&store, id).await?.is_some_and(|m| m.version > version);
                    Ok(changed.then_some(false))
                }
            })
            .await?;
        if form_opened {
            self.fill_form(&s, answers).await?;
            self.wait_for("the decision", || {
                let store = store.clone();
                let version = row.version;
                async move { Ok(q::get(&store, row.id).await?.is_some_and(|m| m.version > version)) }
            })
            .await?;
        }
        self.print_new().await
    }

    /// Waits for the ticket's release to end in `expected`, showing its progress.
    async fn release(&mut self, ticket: i64, expected: &str) -> anyhow::Result<()> {
        let bot = self.app.state.bot.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
        let spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let mut i = 0;
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let mut last = String::new();
        let row = loop {
            let mut conn = bot.store.read.acquire().await?;
            let row = crate::store::executions::for_ticket::<crate::executor::Run>(
                &mut conn,
                crate::domain::ticket::TicketId(ticket),
            )
            .await?;
            drop(conn);
            if let Some(r) = &row {
                if r.finished_at.is_some() {
                    break r.clone();
                }
                let step = r
                    .state
                    .exec
                    .steps
                    .iter()
                    .position(|s| s.status == crate::domain::execution::StepStatus::Running)
                    .and_then(|_| r.state.steps.iter().rposition(|s| s.started_at.is_some()));
                let line = format!(
                    "REL-{ticket} {} · traffic {}% · step {}/{}",
                    r.status,
                    r.state.traffic,
                    step.map(|s| s + 1).unwrap_or(0),
                    r.state.steps.len()
                );
                if tty {
                    print!("\r  {} {line}   ", spinner[i % spinner.len()]);
                    let _ = std::io::stdout().flush();
                } else if line != last {
                    println!("  … {line}");
                }
                last = line;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("REL-{ticket}'s release did not end within 50 s");
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(120)).await;
        };
        if tty {
            print!("\r{}\r", " ".repeat(60));
        }
        println!("  REL-{ticket}'s release ended: {}", row.status);
        if row.status != expected {
            bail!("REL-{ticket} ended {} where the demo expected {expected}", row.status);
        }
        // The report and the alerts reach the chat after the end.
        self.delivered().await?;
        self.print_new().await?;
        println!(
            "  release page: {}",
            bot.links.url(crate::chat::links::Page::Execution(row.id))
        );
        Ok(())
    }

    /// Waits until the chat has every message written so far.
    async fn delivered(&self) -> anyhow::Result<()> {
        let store = self.app.state.bot.store.clone();
        self.wait_for("the chat messages", || {
            let store = store.clone();
            async move { Ok(crate::store::outbox::depth(&store).await? == 0) }
        })
        .await
    }

    /// Prints the messages posted since the last call.
    async fn print_new(&mut self) -> anyhow::Result<()> {
        let rows = q::channel(self.chat()?.store(), local::DEFAULT_CHANNEL, "", 200).await?;
        let seen = self.seen;
        for r in rows.into_iter().filter(|r| r.id > seen) {
            self.seen = r.id;
            if r.visible_to.is_some() {
                continue;
            }
            let m: Message = serde_json::from_str(&r.message)?;
            println!("  [#{}] releasebot: {}", r.channel, render::plain(&m.title));
        }
        Ok(())
    }

    async fn wait_for<F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        self.wait_for_value(what, || {
            let f = check();
            async move { Ok(f.await?.then_some(())) }
        })
        .await
    }

    async fn wait_for_value<T, F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("waited {} s for {what}", PATIENCE.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn say(line: &str) {
    println!("\n▶ {line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_configuration_is_valid() {
        let c = super::config("zh-CN").expect("demo config");
        assert!(c.services.contains_key("demo"));
    }
}
