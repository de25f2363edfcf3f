//! The command line: `releasebot serve | demo | migrate | check | slack-manifest | discord-register | token`.

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
    /// Register the slash commands (`/release`, `/role`, `/swimlane`, `/freeze`, `/lock`, `/unlock`, `/token`) with Discord.
    DiscordRegister,
    /// API tokens for pipelines (`/api/v1`): create (shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token for these applications and print it (it is shown only this once).
    Create {
        name: String,
        /// The applications it may open releases of, comma-separated (`*`: all).
        #[arg(long, value_delimiter = ',', required = true)]
        applications: Vec<String>,
    },
    /// The live tokens: name, applications, creator, created, last used.
    List,
    /// Revoke a token: it is refused from now on.
    Revoke { name: String },
}

/// `releasebot token …`: run by an operator on the database, audited as `cli`.
async fn token(settings: &Settings, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    use crate::domain::token;
    use crate::store::tokens;
    let store = Store::open(&settings.database_url).await?;
    let mut conn = store.pool.acquire().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let by = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "operator".into()));
    let audit = |action: &str, detail: serde_json::Value| crate::store::audit::AuditEntry {
        ticket: None,
        at: now,
        platform: "cli".into(),
        actor: by.clone(),
        action: action.into(),
        detail,
    };
    match cmd {
        TokenCmd::Create { name, applications } => {
            if !token::valid_name(&name) {
                eprintln!("\"{name}\" is not a token name: lowercase letters, digits, '-' and '_', at most 64");
                return Ok(ExitCode::from(2));
            }
            let secret = token::new_secret();
            let Some(id) = tokens::create(&mut conn, &name, &applications, &token::hash(&secret), &by, now).await?
            else {
                eprintln!("a token named \"{name}\" exists already (revoke it first, or choose another name)");
                return Ok(ExitCode::from(1));
            };
            let detail = serde_json::json!({ "name": name, "applications": applications });
            crate::store::audit::append(&mut conn, &audit("token_created", detail)).await?;
            println!("{}", token::format(id, &secret));
            eprintln!(
                "token {name} for {}: keep it now, it is not shown again",
                applications.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::List => {
            for t in tokens::live(&mut conn).await? {
                let when = |ms: Option<i64>| {
                    ms.map(crate::domain::fields::format_ms)
                        .unwrap_or_else(|| "never".into())
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}",
                    t.name,
                    t.applications.join(","),
                    t.created_by,
                    crate::domain::fields::format_ms(t.created_at),
                    when(t.last_used_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Revoke { name } => {
            if !tokens::revoke(&mut conn, &name, &by, now).await? {
                eprintln!("no live token named \"{name}\"");
                return Ok(ExitCode::from(1));
            }
            crate::store::audit::append(&mut conn, &audit("token_revoked", serde_json::json!({ "name": name })))
                .await?;
            println!("token {name} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
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
            Cmd::Token(cmd) => token(&cli.settings, cmd).await,
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
