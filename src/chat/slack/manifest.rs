//! The Slack app manifest of a deployment, in slack-morphism's typed model.

use crate::command::Verb;

/// A Slack app manifest (slack-morphism's typed model) with the slash commands,
/// interactivity and events pointed at `public_url`.
pub fn slack_manifest(public_url: &str) -> anyhow::Result<slack_morphism::prelude::SlackAppManifest> {
    use slack_morphism::prelude::*;
    let base = public_url.trim_end_matches('/');
    let url = |path: &str| -> anyhow::Result<url::Url> {
        url::Url::parse(&format!("{base}{path}")).map_err(|e| anyhow::anyhow!("RELEASEBOT_PUBLIC_URL: {e}"))
    };
    let mut commands = Vec::new();
    for command in crate::command::COMMANDS {
        commands.push(SlackAppManifestFeaturesSlashCommand {
            command: format!("/{command}"),
            description: match command {
                "release" => "Release tickets and approvals",
                "role" => "Manage who holds which role",
                "swimlane" => "Expiring feature environments (swimlanes)",
                "freeze" => "Release freezes",
                "lock" => "Lock an application's releases",
                "token" => "API tokens for pipelines",
                _ => "Unlock an application's releases",
            }
            .to_string(),
            should_escape: Some(true),
            url: Some(url("/slack/commands")?),
            usage_hint: Some(usage_hint(command)),
        });
    }
    let scopes = [
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "app_mentions:read",
        "channels:history",
        "groups:history",
    ];
    Ok(SlackAppManifest {
        metadata: None,
        display_information: SlackAppManifestDisplayInformation {
            name: "releasebot".into(),
            description: Some("Release tickets approved in chat".into()),
            background_color: None,
            long_description: None,
        },
        features: Some(SlackAppManifestFeatures {
            app_home: None,
            bot_user: Some(SlackAppManifestFeaturesBotUser {
                display_name: "releasebot".into(),
                always_online: true,
            }),
            shortcuts: None,
            slash_commands: Some(commands),
            unfurl_domains: None,
            workflow_steps: None,
        }),
        oauth_config: Some(SlackAppManifestOAuthConfig {
            redirect_urls: None,
            scopes: Some(SlackAppManifestOAuthConfigScopes {
                bot: Some(scopes.iter().map(|s| SlackApiTokenScope(s.to_string())).collect()),
                user: None,
            }),
        }),
        settings: Some(SlackAppManifestSettings {
            allowed_ip_address_ranges: None,
            interactivity: Some(SlackAppManifestSettingsInteractivity {
                is_enabled: true,
                request_url: Some(url("/slack/interactions")?),
                message_menu_options_url: None,
            }),
            event_subscriptions: Some(SlackAppManifestSettingsEventSubscriptions {
                request_url: Some(url("/slack/events")?),
                bot_events: Some(vec![SlackEventType("app_mention".into())]),
                user_events: None,
            }),
            org_deploy_enabled: Some(false),
            socket_mode_enabled: Some(false),
        }),
    })
}

/// The longest usage hint Slack shows in full next to a command.
pub const USAGE_HINT_MAX: usize = 100;

/// A command's usage hint: its verbs (`new | show | list | … | help`: whole words, as
/// many as fit), or its one usage.
fn usage_hint(command: &str) -> String {
    let verbs: Vec<&Verb> = Verb::ALL.iter().filter(|v| v.command() == command).collect();
    if let [one] = verbs.as_slice() {
        if one.word().is_empty() {
            let usage = one.usage().trim_start_matches(&format!("/{command} "));
            return crate::chat::truncate(usage, USAGE_HINT_MAX, "…");
        }
    }
    let words: Vec<&str> = verbs.iter().map(|v| v.word()).filter(|w| *w != "help").collect();
    let mut hint = String::new();
    for w in &words {
        if hint.chars().count() + w.len() + " | … | help".len() + 3 > USAGE_HINT_MAX {
            hint.push_str(" | …");
            break;
        }
        if !hint.is_empty() {
            hint.push_str(" | ");
        }
        hint.push_str(w);
    }
    if verbs.iter().any(|v| v.word() == "help") {
        hint.push_str(" | help");
    }
    hint
}

/// Why Slack cannot reach `public_url`, if it cannot: Slack calls only public HTTPS URLs.
pub fn slack_url_problem(public_url: &str) -> Option<String> {
    let u = url::Url::parse(public_url).ok()?;
    let local = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".local"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    };
    if u.scheme() != "https" || local {
        Some(format!(
            "warning: Slack calls only public HTTPS URLs, and {public_url} is not one: set RELEASEBOT_PUBLIC_URL to the HTTPS address of a reverse proxy or tunnel in front of releasebot before installing this manifest"
        ))
    } else {
        None
    }
}
