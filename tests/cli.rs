//! The real binary: `check`, `migrate`, `slack-manifest`, `token`, and a smoke test of
//! `serve` over a real TCP socket with a graceful SIGTERM stop; and API tokens as chat
//! manages them.

mod common;

use common::fake_slack::FakeSlack;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_releasebot");

fn releasebot(args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn check_finds_the_kubeconfig_contexts_and_token_variables_the_kubernetes_targets_name() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod.example:6443\nusers:\n- name: releasebot\n  user:\n    token: t\ncontexts:\n- name: prod-cluster\n  context:\n    cluster: prod\n    user: releasebot\ncurrent-context: prod-cluster\n",
    )
    .unwrap();
    let config = dir.path().join("releasebot.toml");
    std::fs::write(
        &config,
        releasebot::config::DEFAULT_CONFIG.to_string()
            + "\n[[applications]]\nname = \"payments\"\nenvironments = [\"staging\", \"prod\"]\n[applications.kubernetes]\nnamespace = \"payments\"\ndeployment = \"payments\"\ncontainer = \"app\"\ncontext = \"prod-cluster\"\n[applications.kubernetes.environments.staging]\ncontext = \"staging-cluster\"\n[[applications]]\nname = \"orders\"\n[applications.kubernetes]\napi_url = \"https://orders.example:6443\"\ntoken_env = \"ORDERS_KUBE_TOKEN\"\n",
    )
    .unwrap();
    let out = releasebot(
        &["check"],
        &[
            ("RELEASEBOT_CONFIG", config.display().to_string()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = config.display().to_string();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("{path}: applications.orders.kubernetes.token_env: ORDERS_KUBE_TOKEN (the Kubernetes token) is not set"),
            format!("{path}: applications.payments.kubernetes.environments.staging.context: the kubeconfig has no context \"staging-cluster\" (it has: prod-cluster)"),
            "2 problem(s) found".to_string(),
        ]
    );
}

#[test]
fn check_accepts_the_defaults_and_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = releasebot(&["check"], &[("HOME", dir.path().display().to_string())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configuration OK\n");

    let bad = dir.path().join("bad.toml");
    let text = releasebot::config::DEFAULT_CONFIG.replacen("role = \"ops\"", "role = \"opz\"", 1)
        + "\n[services.x]\nname = \"X\"\nflow = \"nope\"\n";
    std::fs::write(&bad, text).unwrap();
    let out = releasebot(
        &["check"],
        &[
            ("RELEASEBOT_CONFIG", bad.display().to_string()),
            ("RELEASEBOT_LOCALE", "fr".into()),
            ("SLACK_BOT_TOKEN", "xoxb-1".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = bad.display().to_string();
    for want in [
        format!("{path}: flows.app-release.stages[2].role: unknown role \"opz\""),
        format!("{path}: services.x.flow: unknown flow \"nope\""),
        "RELEASEBOT_LOCALE: unknown locale \"fr\" (expected one of en, zh-CN)".to_string(),
        "SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set".to_string(),
        "4 problem(s) found".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("xoxb-1"), "secrets never reach the output");

    let out = releasebot(
        &["check"],
        &[
            ("DISCORD_PUBLIC_KEY", "not-hex".into()),
            ("DISCORD_BOT_TOKEN", "discord-secret-token".into()),
            ("DINGTALK_APP_SECRET", "dingtalk-secret".into()),
            ("DINGTALK_WEBHOOK_SECRET", "SECwebhook".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "DISCORD_APPLICATION_ID: required when any DISCORD_ variable is set",
        "DISCORD_PUBLIC_KEY must be 64 hexadecimal characters",
        "DINGTALK_APP_KEY: required when DINGTALK_APP_SECRET is set",
        "DINGTALK_WEBHOOK_URL: required when DINGTALK_WEBHOOK_SECRET is set",
        "4 problem(s) found",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    for secret in ["discord-secret-token", "dingtalk-secret", "SECwebhook"] {
        assert!(!err.contains(secret), "secrets never reach the output");
    }
}

#[test]
fn migrate_creates_the_database_and_the_manifest_points_at_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rb.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let out = releasebot(&["migrate"], &[("DATABASE_URL", url.clone())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(db.exists());
    let out = releasebot(&["migrate"], &[("DATABASE_URL", url)]);
    assert!(out.status.success(), "migrations apply once");
    let out = releasebot(&["migrate"], &[("DATABASE_URL", "mysql://x".into())]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL must start with sqlite: or postgres://"));

    let out = releasebot(
        &["slack-manifest"],
        &[("RELEASEBOT_PUBLIC_URL", "https://rb.example.com/".into())],
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        manifest["settings"]["interactivity"]["request_url"],
        "https://rb.example.com/slack/interactions"
    );
    assert_eq!(manifest["features"]["slash_commands"][0]["command"], "/release");
    assert_eq!(manifest["features"]["slash_commands"][0]["should_escape"], true);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    // Slack shows a short usage hint next to each command.
    for c in manifest["features"]["slash_commands"].as_array().unwrap() {
        let hint = c["usage_hint"].as_str().unwrap();
        assert!(hint.chars().count() <= 100, "{hint}");
    }
    let release = &manifest["features"]["slash_commands"][0]["usage_hint"];
    assert!(release.as_str().unwrap().starts_with("new | show | list"), "{release}");
    // The manifest parses as Slack's typed model.
    let _: slack_morphism::prelude::SlackAppManifest = serde_json::from_value(manifest.clone()).unwrap();

    // A URL Slack cannot call is printed with a warning that says so.
    for url in [
        "http://127.0.0.1:3000",
        "https://localhost:8443",
        "http://rb.example.com",
    ] {
        let out = releasebot(&["slack-manifest"], &[("RELEASEBOT_PUBLIC_URL", url.into())]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Slack calls only public HTTPS URLs"), "{url}: {err}");
    }
}

/// Waits for a condition that another process makes true, within a bound.
async fn eventually<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn serve_answers_over_tcp_and_stops_gracefully() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let secret = "smoke-signing-secret-0123";
    let discord_key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let token = "xoxb-smoke-token-4567";
    let log = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("rb.db").display()),
        )
        .env("RELEASEBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLACK_SIGNING_SECRET", secret)
        .env("SLACK_BOT_TOKEN", token)
        .env("SLACK_API_URL", &slack.api_url)
        .env(
            "DISCORD_PUBLIC_KEY",
            hex::encode(discord_key.verifying_key().to_bytes()),
        )
        .env("DISCORD_BOT_TOKEN", "discord-smoke-token-89")
        .env("DISCORD_APPLICATION_ID", "4242")
        .env("DINGTALK_APP_KEY", "dingtalk-smoke-key")
        .env("DINGTALK_APP_SECRET", "dingtalk-smoke-secret-01")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("/healthz", || {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move { http.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false) }
    })
    .await;
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ready"
    );

    // A signed slash command over the socket is acknowledged, then answered in Slack.
    let body = "command=%2Frelease&text=help&user_id=U1&user_name=u&channel_id=C1&trigger_id=t.1";
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = releasebot::chat::slack::verify::sign(secret, &ts, body.as_bytes());
    let res = http
        .post(format!("{base}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let unsigned = http
        .post(format!("{base}/slack/commands"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // Discord's endpoint check: a signed ping gets a pong, an unsigned one 401.
    let ping = r#"{"id":"1","application_id":"4242","type":1,"token":"t","version":1}"#;
    let mut signed = ts.clone().into_bytes();
    signed.extend_from_slice(ping.as_bytes());
    use ed25519_dalek::Signer;
    let sig = hex::encode(discord_key.sign(&signed).to_bytes());
    let res = http
        .post(format!("{base}/discord/interactions"))
        .header("x-signature-ed25519", sig)
        .header("x-signature-timestamp", &ts)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), r#"{"type":1}"#);
    let res = http
        .post(format!("{base}/discord/interactions"))
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    eventually("the help answer in Slack", || {
        let slack = slack.clone();
        async move { !slack.calls_of("chat.postEphemeral").is_empty() }
    })
    .await;
    let help = common::TestBot::text_of(&slack.calls_of("chat.postEphemeral")[0]);
    assert!(help.contains("/release new [service]"), "{help}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("releasebot_http_requests_total{route=\"/slack/commands\",status=\"200\"} 1"),
        "{metrics}"
    );

    // SIGTERM: the server stops accepting and exits cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("slack=true"), "{log}");
    assert!(log.contains("discord=true") && log.contains("dingtalk=true"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(secret)
            && !log.contains(token)
            && !log.contains("discord-smoke-token-89")
            && !log.contains("dingtalk-smoke-secret-01"),
        "secrets never reach the logs"
    );
}

#[test]
fn help_hides_secrets_and_options_go_anywhere_and_check_refuses_what_serve_would() {
    let dir = tempfile::tempdir().unwrap();
    let db = "postgres://releasebot:hunter2@db.internal/releasebot".to_string();
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let out = releasebot(args, &[("DATABASE_URL", db.clone())]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(!help.contains("hunter2"), "{args:?} shows a password:\n{help}");
        assert!(
            help.contains("--listen") && help.contains("--database-url"),
            "{args:?}:\n{help}"
        );
    }

    // An option after the subcommand is that option.
    let out = releasebot(
        &["check", "--locale", "fr"],
        &[("HOME", dir.path().display().to_string())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RELEASEBOT_LOCALE: unknown locale \"fr\""));

    // What `serve` would refuse, `check` refuses, and `serve` refuses it before anything.
    let discord = [
        ("DISCORD_PUBLIC_KEY", "0".repeat(64)),
        ("DISCORD_BOT_TOKEN", "discord-secret-token".to_string()),
        ("DISCORD_APPLICATION_ID", "42".to_string()),
        ("DISCORD_API_URL", "https://discord.example/api".to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display()),
        ),
    ];
    for args in [&["check"][..], &["serve"][..]] {
        let out = releasebot(args, &discord);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("DISCORD_API_URL: DISCORD_API_URL must end in /api/v10"),
            "{args:?}:\n{err}"
        );
        assert!(!err.contains("discord-secret-token"));
    }
    assert!(
        !dir.path().join("x.db").exists(),
        "serve stopped before touching the database"
    );
}

#[test]
fn demo_walks_two_tickets_through_every_role_in_under_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let out = releasebot(
        &["demo"],
        &[
            ("HOME", dir.path().display().to_string()),
            ("TMPDIR", dir.path().display().to_string()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Product fills in",
        "Test presses Approve on REL-1",
        "Ops presses Approve on REL-1",
        "Monitor 5 seconds failed",
        "REL-1's release ended: ROLLED_BACK",
        "REL-2's release ended: COMPLETED",
        "QC presses Approve on REL-2",
        "REL-2 · Demo release: released, and every stage is approved",
        "/executions/2?t=",
        "/tickets/1?t=",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
    // A fresh database in the temporary directory, not the working directory's.
    assert!(
        stdout.contains(&format!("database sqlite://{}/releasebot-demo-", dir.path().display())),
        "{stdout}"
    );
    let secs: f64 = stdout
        .split("demo finished in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the demo's time in:\n{stdout}"));
    assert!(secs < 60.0, "the demo took {secs} s");
    // Its temporary database went with it.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("releasebot-demo-"))
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}

#[tokio::test]
async fn serve_without_platforms_opens_the_local_chat_and_prints_its_url() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("rb.db").display()),
        )
        .env("RELEASEBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("RELEASEBOT_PUBLIC_URL", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = std::io::BufReader::new(stdout).lines().next().unwrap().unwrap();
    assert_eq!(first, format!("releasebot's local chat: open {base}/"));
    let http = reqwest::Client::new();
    eventually("/healthz", || {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move { http.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false) }
    })
    .await;
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly"));
    assert!(page.text().await.unwrap().contains("id=\"composer\""));
    let unsigned = http
        .post(format!("{base}/chat/command"))
        .json(&serde_json::json!({ "channel": "releases", "text": "/release new", "nonce": "1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn token_create_shows_the_token_once_keeps_only_its_hash_and_revoke_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rb.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let env = [("DATABASE_URL", url.clone()), ("USER", "ops-oncall".to_string())];
    let out = releasebot(
        &[
            "token",
            "create",
            "gitlab-payments",
            "--applications",
            "payments,orders",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (id, secret) = releasebot::domain::token::parse(&token).expect("a token");
    assert_eq!(id, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is not shown again"));

    // Only the hash of its secret is in the database (its file and its write-ahead log).
    let bytes: Vec<u8> = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(secret), "the secret is not stored");
    assert!(has(&releasebot::domain::token::hash(secret)), "its hash is");

    let out = releasebot(
        &["token", "create", "gitlab-payments", "--applications", "billing"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a token named \"gitlab-payments\" exists already"));
    let out = releasebot(&["token", "create", "GitLab", "--applications", "billing"], &env);
    assert_eq!(out.status.code(), Some(2));
    let out = releasebot(&["token", "create", "jenkins"], &env);
    assert!(!out.status.success(), "the applications are required");

    let out = releasebot(&["token", "list"], &env);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.starts_with("gitlab-payments\tpayments,orders\tcli:ops-oncall\tcreated ")
            && listed.contains("last used never"),
        "{listed}"
    );
    assert!(!listed.contains(secret));

    let out = releasebot(&["token", "revoke", "gitlab-payments"], &env);
    assert!(out.status.success());
    let out = releasebot(&["token", "list"], &env);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "revoked tokens are not live");
    let out = releasebot(&["token", "revoke", "gitlab-payments"], &env);
    assert_eq!(out.status.code(), Some(1));
    // The name is free again; the revoked token stays for the audit trail.
    let out = releasebot(
        &["token", "create", "gitlab-payments", "--applications", "payments"],
        &env,
    );
    assert!(out.status.success());
    let again = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(releasebot::domain::token::parse(&again).unwrap().0, id, "a new token");
}

#[tokio::test]
async fn in_chat_an_admin_lists_and_revokes_tokens_and_is_told_how_to_make_one() {
    use common::{ephemerals_to, team_config, TestBot, ADA, OSCAR, START_MS};
    let bot = TestBot::with("en", &team_config()).await;
    let mut conn = bot.app.state.bot.store.pool.acquire().await.unwrap();
    let secret = releasebot::domain::token::new_secret();
    let hash = releasebot::domain::token::hash(&secret);
    let apps = vec!["payments".to_string()];
    releasebot::store::tokens::create(&mut conn, "gitlab-payments", &apps, &hash, "cli:ops", START_MS)
        .await
        .unwrap();
    drop(conn);
    bot.command(OSCAR, "/token list").await;
    let refused = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(refused.contains("Only an admin may manage API tokens"), "{refused}");
    bot.command(ADA, "/token list").await;
    let listed = ephemerals_to(&bot.settle().await, ADA).pop().unwrap();
    insta::assert_snapshot!(listed, @"
    *API tokens*
    `gitlab-payments` · payments · made by @ops (cli) at 2026-11-21 09:00 UTC · last used never
    ");
    bot.command(ADA, "/token create jenkins payments orders").await;
    let told = ephemerals_to(&bot.settle().await, ADA).pop().unwrap();
    insta::assert_snapshot!(told, @"*A token is shown only once, so it is made on the server rather than in chat (here it would stay in releasebot's outgoing messages): run `releasebot token create jenkins --applications payments,orders` where releasebot runs, and put what it prints in your pipeline's secret variables.*");
    bot.command(ADA, "/token revoke gitlab-payments").await;
    let revoked = ephemerals_to(&bot.settle().await, ADA).pop().unwrap();
    assert!(revoked.contains("API token `gitlab-payments` is revoked"), "{revoked}");
    bot.command(ADA, "/token list").await;
    assert!(ephemerals_to(&bot.settle().await, ADA)
        .pop()
        .unwrap()
        .contains("No live API tokens."));
    bot.command(ADA, "/token revoke gitlab-payments").await;
    assert!(ephemerals_to(&bot.settle().await, ADA)
        .pop()
        .unwrap()
        .contains("There is no live API token named `gitlab-payments`"));
    bot.finish().await;
}
