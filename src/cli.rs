//! The command line: `releasebot serve | migrate | check | slack-manifest`.

use crate::command::Verb;
use crate::config::{Config, Settings};
use crate::store::Store;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "releasebot", version, about = "Run application releases from chat")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Apply migrations, then serve the chat endpoints and run the workers.
    Serve,
    /// A scripted run on the embedded defaults and the local chat: two tickets through
    /// every role, a canary that rolls back and one that reaches 100%.
    Demo {
        /// Then keep serving the local chat on the demo's database.
        #[arg(long)]
        serve: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, the messages and the settings; exit non-zero on any problem.
    Check,
    /// Print a Slack app manifest (JSON) for this deployment's public URL.
    SlackManifest,
    /// Register the slash commands (`/release`, `/role`, `/swimlane`, `/freeze`, `/lock`, `/unlock`) with Discord.
    DiscordRegister,
}

/// Every problem with the settings and the configuration, each on its own line.
pub fn check(settings: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    match settings.config.as_deref() {
        None => {}
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => problems.push(format!("{}: {e}", p.display())),
            Ok(text) => {
                if let Err(e) = Config::parse_for(&text, &settings.locale) {
                    problems.extend(e.0.into_iter().map(|m| format!("{}: {m}", p.display())));
                }
            }
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

/// The Discord slash commands, derived from the command grammar: each top-level command
/// with one subcommand per verb, each taking the rest of the line as `arguments`.
/// `service` is the default service's name (its help names it).
pub fn discord_commands(service: &str) -> serde_json::Value {
    let texts = crate::chat::Texts::new("en").ok();
    let commands: Vec<serde_json::Value> = crate::command::COMMANDS
        .iter()
        .map(|name| {
            let subs: Vec<serde_json::Value> = Verb::ALL
                .iter()
                .filter(|v| v.command() == *name)
                .map(|v| {
                    let usage = v.usage();
                    let args = usage.split_whitespace().skip(2).collect::<Vec<_>>().join(" ");
                    let description = texts
                        .as_ref()
                        .and_then(|t| t.render(v.help_key(), &serde_json::json!({ "service": service })).ok())
                        .map(|d| crate::chat::markdown::unescape(&d))
                        .unwrap_or_else(|| usage.to_string());
                    let mut sub = serde_json::json!({
                        "type": 1,
                        "name": v.word(),
                        "description": crate::chat::truncate(&description, 100, "…"),
                    });
                    if !args.is_empty() {
                        sub["options"] = serde_json::json!([{
                            "type": 3,
                            "name": "arguments",
                            "description": crate::chat::truncate(&args, 100, "…"),
                            "required": !args.starts_with('['),
                        }]);
                    }
                    sub
                })
                .collect();
            // A command of one verb (`/lock APP …`) takes the line itself, without a subcommand.
            match subs.as_slice() {
                [one] if one["name"] == "" => {
                    let mut c = one.clone();
                    c["name"] = serde_json::json!(name);
                    c
                }
                _ => serde_json::json!({ "name": name, "type": 1, "description": format!("releasebot: /{name} commands"), "options": subs }),
            }
        })
        .collect();
    serde_json::Value::Array(commands)
}

pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    crate::telemetry::init(&cli.settings.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Cmd::Serve => crate::server::serve(cli.settings).await.map(|_| ExitCode::SUCCESS),
            Cmd::Demo { serve } => crate::demo::run(cli.settings, serve).await.map(|_| ExitCode::SUCCESS),
            Cmd::Migrate => {
                Store::open(&cli.settings.database_url).await?;
                println!(
                    "migrations applied to {}",
                    crate::store::redact_url(&cli.settings.database_url)
                );
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Check => {
                let problems = check(&cli.settings);
                if problems.is_empty() {
                    println!("configuration OK");
                    Ok(ExitCode::SUCCESS)
                } else {
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    eprintln!("{} problem(s) found", problems.len());
                    Ok(ExitCode::from(1))
                }
            }
            Cmd::DiscordRegister => {
                let Some(d) = cli.settings.discord() else {
                    anyhow::bail!("set DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID first");
                };
                let config = Config::load(cli.settings.config.as_deref(), "en")?;
                let service = config.service_name(&config.default_service);
                let n = crate::chat::discord::client::register_commands(&d, &discord_commands(&service)).await?;
                println!("registered {n} Discord commands (/release, /role)");
                Ok(ExitCode::SUCCESS)
            }
            Cmd::SlackManifest => {
                use crate::chat::slack::manifest::{slack_manifest, slack_url_problem};
                if let Some(w) = slack_url_problem(&cli.settings.public_url) {
                    eprintln!("{w}");
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&slack_manifest(&cli.settings.public_url)?)?
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
