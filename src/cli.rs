//! The command line: `releasebot serve | migrate | check | slack-manifest`.

use crate::bot::command::Verb;
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
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, the messages and the settings; exit non-zero on any problem.
    Check,
    /// Print a Slack app manifest (JSON) for this deployment's public URL.
    SlackManifest,
}

/// Every problem with the settings and the configuration, each on its own line.
pub fn check(settings: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    match settings.config.as_deref() {
        None => {}
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => problems.push(format!("{}: {e}", p.display())),
            Ok(text) => {
                if let Err(e) = Config::parse(&text) {
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
    problems
}

/// A Slack app manifest with the slash commands, interactivity and events pointed at `public_url`.
pub fn slack_manifest(public_url: &str) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    let mut commands: Vec<serde_json::Value> = Vec::new();
    for command in ["release", "role"] {
        let usages: Vec<&str> = Verb::ALL
            .iter()
            .filter(|v| v.command() == command)
            .map(|v| v.usage())
            .collect();
        let hint = usages
            .iter()
            .map(|u| u.trim_start_matches(&format!("/{command} ")))
            .collect::<Vec<_>>()
            .join(" | ");
        commands.push(serde_json::json!({
            "command": format!("/{command}"),
            "url": format!("{base}/slack/commands"),
            "description": if command == "release" { "Release tickets and approvals" } else { "Manage who holds which role" },
            "usage_hint": crate::chat::truncate(&hint, 1000, "…"),
            "should_escape": true,
        }));
    }
    serde_json::json!({
        "display_information": { "name": "releasebot", "description": "Release tickets approved in chat" },
        "features": {
            "bot_user": { "display_name": "releasebot", "always_online": true },
            "slash_commands": commands,
        },
        "oauth_config": { "scopes": { "bot": ["commands", "chat:write", "chat:write.public", "im:write", "app_mentions:read"] } },
        "settings": {
            "interactivity": { "is_enabled": true, "request_url": format!("{base}/slack/interactions") },
            "event_subscriptions": { "request_url": format!("{base}/slack/events"), "bot_events": ["app_mention"] },
            "org_deploy_enabled": false,
            "socket_mode_enabled": false,
        }
    })
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
            Cmd::SlackManifest => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&slack_manifest(&cli.settings.public_url))?
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
