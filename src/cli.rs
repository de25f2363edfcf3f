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
            Cmd::Serve => crate::app::serve(cli.settings).await.map(|_| ExitCode::SUCCESS),
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
                let problems = crate::app::check(&cli.settings);
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
