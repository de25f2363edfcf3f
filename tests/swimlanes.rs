//! Swimlanes on the scheduler's clock, on Slack: created in chat, announced after the
//! idle period exactly once, renewed, or deleted with their hooks at the deadline; hooks
//! that fail are retried and reported; activity reported by CI resets the clock; a
//! restart during a firing neither loses nor repeats it; the daily expiring list.

mod common;

use axum::http::StatusCode;
use common::*;
use releasebot::store::firings;

const DAY: i64 = 86_400_000;

/// The team's configuration with swimlanes whose script hooks append to `log`.
fn lanes_config(dir: &std::path::Path, extra: &str) -> String {
    let log = dir.join("hooks.log");
    format!(
        "{}\n[swimlanes]\nidle = \"6d\"\ngrace = \"1d\"\nexternal_domain = \"{{app}}-{{lane}}.example.com\"\nhook_backoff = \"30s\"\n{extra}\n\
         [[swimlanes.hooks]]\nprovider = \"script\"\ncreate = \"echo create $RELEASEBOT_LANE_NAMESPACE >> {log}\"\n\
         delete = \"echo delete $RELEASEBOT_LANE_NAMESPACE >> {log}\"\n",
        team_config(),
        log = log.display()
    )
}

fn hook_log(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn lanes_bot(extra: &str) -> (TestBot, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bot = TestBot::with("en", &lanes_config(dir.path(), extra)).await;
    (bot, dir)
}

/// Sets the clock to `ms` after the tests' start.
fn at(bot: &TestBot, ms: i64) {
    bot.clock.set_ms(START_MS + ms);
}

fn about<'a>(calls: &'a [fake_slack::Call], what: &str) -> Vec<&'a fake_slack::Call> {
    calls.iter().filter(|c| TestBot::text_of(c).contains(what)).collect()
}

/// Alice creates `login-v2` for `web`; returns the calls of its creation.
async fn created(bot: &TestBot) -> Vec<fake_slack::Call> {
    let r = bot
        .command(ALICE, "/swimlane create login-v2 web --for \"new login page\"")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    bot.settle().await
}

#[tokio::test]
async fn a_lane_nobody_renews_is_announced_once_and_deleted_with_its_hooks_on_day_seven() {
    let (bot, dir) = lanes_bot("").await;
    // A name that is not a namespace name is shown as it would be, and nothing is created.
    bot.command(ALICE, "/swimlane create Login_V2 web").await;
    let calls = bot.settle().await;
    let said = ephemerals_to(&calls, ALICE);
    insta::assert_snapshot!(said[0], @"*`Login_V2` is not a namespace name; the lane would be *login-v2*. Nothing was created: send `/swimlane create login-v2 web` to create it.*");
    assert!(posts(&calls).is_empty(), "nothing is created before the name is seen");

    let calls = created(&bot).await;
    let card = posts(&calls)[0];
    assert!(
        TestBot::text_of(card).contains("Swimlane *login-v2*"),
        "{}",
        TestBot::text_of(card)
    );
    let active = updates(&calls);
    let text = TestBot::text_of(active.last().unwrap());
    insta::assert_snapshot!(text, @r"
    *🏊 Swimlane *login-v2* · active*
    *Owner*
    <@UALICE>
    *Namespace*
    `login-v2`
    *Branch*
    `feature/login-v2`
    *Applications*
    web
    *Internal domains*
    `web.login-v2`
    *External domains*
    `web-login-v2.example.com`
    *For*
    new login page
    *Deleted*
    2026-11-28 09:00 UTC unless renewed or used (idle period 6d)
    ");
    assert_eq!(hook_log(dir.path()), ["create login-v2"], "the create hook ran once");

    // Six days idle, less a moment: nothing yet.
    at(&bot, 6 * DAY - 1);
    assert!(posts(&bot.settle().await).is_empty());
    at(&bot, 6 * DAY);
    let calls = bot.settle().await;
    let prompts = about(&calls, "has been idle for 6d");
    assert_eq!(
        prompts.len(),
        2,
        "one message in the channel, one to the owner: {calls:#?}"
    );
    assert_eq!(prompts[0].body["channel"], CHANNEL);
    assert_eq!(prompts[1].body["channel"], ALICE);
    assert!(TestBot::text_of(prompts[0]).contains("deleted at 2026-11-28 09:00 UTC"));
    assert_eq!(TestBot::buttons_of(prompts[0]), ["lane:renew:1", "lane:delete:1"]);
    let prompt_ts = ts_of(prompts[0]);
    // Exactly once: later rounds of the scheduler say nothing more.
    at(&bot, 6 * DAY + DAY / 2);
    assert!(bot.settle().await.is_empty(), "the prompt is not repeated");

    at(&bot, 7 * DAY);
    let calls = bot.settle().await;
    let deleted: Vec<_> = updates(&calls)
        .into_iter()
        .filter(|c| ts_of(c) == prompt_ts)
        .map(TestBot::text_of)
        .collect();
    assert!(
        deleted
            .last()
            .unwrap()
            .contains("was deleted at 2026-11-28 09:00 UTC (nobody renewed it)"),
        "the deletion edits the prompt: {deleted:?}"
    );
    assert_eq!(
        hook_log(dir.path()),
        ["create login-v2", "delete login-v2"],
        "the delete hook ran once"
    );
    assert!(posts(&calls).is_empty(), "{calls:#?}");

    at(&bot, 14 * DAY);
    assert!(bot.settle().await.is_empty(), "a deleted lane has no timer");
    bot.command(ALICE, "/swimlane show login-v2").await;
    let said = ephemerals_to(&bot.settle().await, ALICE);
    assert!(said[0].contains("No live swimlane is named *login-v2*"), "{said:?}");
    // Its name is free again.
    created(&bot).await;
    assert_eq!(hook_log(dir.path()).len(), 3);
    bot.finish().await;
}

#[tokio::test]
async fn renewing_cancels_the_deletion_and_edits_the_prompt() {
    let (bot, dir) = lanes_bot("").await;
    created(&bot).await;
    at(&bot, 6 * DAY);
    let calls = bot.settle().await;
    let prompt = about(&calls, "has been idle")[0].clone();
    // Someone without a say is refused; nothing changes.
    bot.click(NOBODY, "lane:renew:1", &ts_of(&prompt)).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, NOBODY)[0].contains("Only the owner of *login-v2*"));
    assert!(updates(&calls).is_empty());

    bot.click(ALICE, "lane:renew:1", &ts_of(&prompt)).await;
    let calls = bot.settle().await;
    let edited = updates(&calls);
    assert_eq!(edited.len(), 2, "the channel's prompt and the owner's copy: {calls:#?}");
    assert!(TestBot::text_of(edited[0]).contains("renewed by <@UALICE>"));
    assert!(TestBot::buttons_of(edited[0]).is_empty(), "no buttons left");
    assert!(ephemerals_to(&calls, ALICE)[0].contains("kept until 2026-12-04 09:00 UTC"));

    // The old deadline passes: nothing is deleted.
    at(&bot, 7 * DAY);
    assert!(bot.settle().await.is_empty());
    assert_eq!(hook_log(dir.path()), ["create login-v2"]);
    // Six days after the renewal it is announced again, in a new message.
    at(&bot, 12 * DAY + 60_000);
    let calls = bot.settle().await;
    assert_eq!(about(&calls, "has been idle for 6d").len(), 2);
    assert_ne!(ts_of(about(&calls, "has been idle")[0]), ts_of(&prompt));

    // `/swimlane renew NAME days` by an admin; the list shows the new time.
    bot.command(ADA, "/swimlane renew login-v2 10").await;
    bot.command(ALICE, "/swimlane list").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, ADA)[0].contains("kept until 2026-12-14 09:01 UTC"));
    assert!(ephemerals_to(&calls, ALICE)[0]
        .contains("*login-v2* — active · <@UALICE> · web · deleted 2026-12-14 09:01 UTC"));
    bot.finish().await;
}

#[tokio::test]
async fn a_failing_deletion_is_retried_and_reported_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("second-try");
    let config = format!(
        "{}\n[swimlanes]\nhook_backoff = \"30s\"\n[[swimlanes.hooks]]\nprovider = \"script\"\n\
         delete = \"if [ -f {m} ]; then echo gone; else touch {m}; echo cluster busy; exit 3; fi\"\n",
        team_config(),
        m = marker.display()
    );
    let bot = TestBot::with("en", &config).await;
    created(&bot).await;
    // Deleting asks first; only the confirmation deletes.
    bot.command(ALICE, "/swimlane delete login-v2").await;
    let calls = bot.settle().await;
    let asked = ephemerals_to(&calls, ALICE);
    insta::assert_snapshot!(asked[0], @r"
    *Delete swimlane login-v2?*
    Namespace `login-v2` and everything deployed in it are removed. Press *Delete*, or send `/swimlane delete login-v2 --confirm`.
    Delete
    ");
    assert!(updates(&calls).is_empty(), "nothing deleted yet");

    bot.command(ALICE, "/swimlane delete login-v2 --confirm").await;
    let calls = bot.settle().await;
    let alert = about(&calls, "failed (attempt 1)");
    assert!(!alert.is_empty(), "the failure is reported: {calls:#?}");
    let text = TestBot::text_of(alert.last().unwrap());
    assert!(
        text.contains("Deleting swimlane *login-v2* failed (attempt 1): script: exit code 3"),
        "{text}"
    );
    assert!(text.contains("Next try at 2026-11-21 09:00 UTC"), "{text}");
    assert_eq!(
        posts(&calls)
            .iter()
            .filter(|c| TestBot::text_of(c).contains("failed"))
            .count(),
        1,
        "the first failure is said in the channel"
    );

    at(&bot, 40_000);
    let calls = bot.settle().await;
    let last = TestBot::text_of(updates(&calls).last().unwrap());
    insta::assert_snapshot!(without_token(&last), @"
    *🗑 Swimlane *login-v2* was deleted at 2026-11-21 09:00 UTC (by <@UALICE>)*
    *Owner*
    <@UALICE>
    *Namespace*
    `login-v2`
    *Branch*
    `feature/login-v2`
    *Applications*
    web
    *Internal domains*
    `web.login-v2`
    *For*
    new login page
    ");
    bot.finish().await;
}

#[tokio::test]
async fn provisioning_that_keeps_failing_fails_the_lane_with_the_reason() {
    let config = format!(
        "{}\n[swimlanes]\nhook_retries = 1\nhook_backoff = \"10s\"\n[[swimlanes.hooks]]\nprovider = \"script\"\ncreate = \"echo no quota >&2; exit 1\"\n",
        team_config()
    );
    let bot = TestBot::with("en", &config).await;
    created(&bot).await;
    at(&bot, 20_000);
    let calls = bot.settle().await;
    let failed = about(&calls, "could not be created");
    assert_eq!(failed.len(), 1, "{calls:#?}");
    assert!(TestBot::text_of(failed[0]).contains("script: exit code 1"));
    bot.command(ALICE, "/swimlane list").await;
    let said = ephemerals_to(&bot.settle().await, ALICE);
    assert!(said[0].contains("*login-v2* — failed"), "{said:?}");
    bot.finish().await;
}

#[tokio::test]
async fn a_deploy_reported_by_ci_resets_the_idle_clock_and_keeps_a_lane_pending_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let bot = TestBot::with_settings("en", &lanes_config(dir.path(), ""), |s, _| {
        s.activity_token = Some(releasebot::config::Secret::new("ci-token"));
    })
    .await;
    created(&bot).await;
    let report = |token: &'static str, lane: &'static str| {
        let bot = &bot;
        async move {
            bot.raw(
                &format!("/swimlanes/{lane}/activity"),
                "application/json",
                br#"{"what": "deploy web 1.4.2"}"#.to_vec(),
                &[("authorization", format!("Bearer {token}"))],
            )
            .await
        }
    };
    assert_eq!(report("wrong", "login-v2").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(report("ci-token", "nope").await.status, StatusCode::NOT_FOUND);

    at(&bot, 5 * DAY);
    let r = report("ci-token", "login-v2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["next_reminder_at"], "2026-12-02 09:00 UTC");
    at(&bot, 6 * DAY);
    assert!(bot.settle().await.is_empty(), "not idle: no prompt on day 6");
    at(&bot, 11 * DAY + 60_000);
    let calls = bot.settle().await;
    let prompt = about(&calls, "has been idle for 6d")[0].clone();

    // Pending deletion, a deploy keeps it: the prompt says so and loses its buttons.
    let r = report("ci-token", "login-v2").await;
    assert_eq!(r.json()["was_pending_deletion"], true);
    let calls = bot.settle().await;
    let edited: Vec<_> = updates(&calls)
        .into_iter()
        .filter(|c| ts_of(c) == ts_of(&prompt))
        .collect();
    assert!(TestBot::text_of(edited[0]).contains("is in use (a deploy was reported"));
    at(&bot, 12 * DAY + 120_000);
    assert!(bot.settle().await.is_empty(), "not deleted");
    bot.finish().await;
}

#[tokio::test]
async fn a_restart_during_a_firing_neither_loses_nor_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = lanes_config(dir.path(), "");
    let mut bot = TestBot::with("en", &config).await;
    created(&bot).await;
    at(&bot, 6 * DAY);
    // A process claims the prompt's firing and dies before its transaction commits.
    let store = bot.app.state.bot.store.clone();
    let taken = firings::claim(&store, bot.clock.now_ms(), 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(bot.settle().await.is_empty(), "leased: nobody else fires it meanwhile");
    bot.restart_with(&config).await;
    let calls = bot.settle().await;
    assert_eq!(about(&calls, "has been idle").len(), 2, "fired once after the restart");
    bot.restart_with(&config).await;
    assert!(bot.settle().await.is_empty(), "and not again after another restart");
    bot.finish().await;
}

#[tokio::test]
async fn the_daily_list_names_lanes_deleted_within_a_day_and_missed_days_come_once() {
    let (bot, _dir) = lanes_bot("expiring_list = \"0 0 9 * * *\"").await;
    created(&bot).await;
    bot.command(ALICE, "/swimlane create checkout --days 3").await;
    bot.settle().await;
    // Day 3 at 09:00: checkout is deleted within a day (announced at 09:00, deleted day 4).
    at(&bot, 3 * DAY);
    let calls = bot.settle().await;
    let lists = about(&calls, "will be deleted within 24 hours");
    assert_eq!(lists.len(), 1, "{calls:#?}");
    let text = TestBot::text_of(lists[0]);
    assert!(text.contains("*checkout*") && !text.contains("login-v2"), "{text}");
    // Days the daemon missed (the clock jumps) are caught up once, not once per day.
    at(&bot, 6 * DAY + 3_600_000);
    let calls = bot.settle().await;
    assert_eq!(about(&calls, "will be deleted within 24 hours").len(), 1, "{calls:#?}");
    bot.finish().await;
}

/// Every swimlane message, in order, as Slack received it.
async fn transcript(locale: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("second-try");
    let config = format!(
        "{}\n[[applications]]\nname = \"web\"\n[[applications]]\nname = \"api\"\n\
         [swimlanes]\nmax_lifetime = \"30d\"\nexternal_domain = \"{{app}}-{{lane}}.example.com\"\nexpiring_list = \"0 0 9 * * *\"\n\
         [[swimlanes.hooks]]\nprovider = \"script\"\ncreate = \"true\"\n\
         delete = \"if [ -f {m} ]; then echo gone; else touch {m}; echo cluster busy; exit 3; fi\"\n",
        team_config(),
        m = marker.display()
    );
    let bot = TestBot::with(locale, &config).await;
    let mut out = Vec::new();
    let mut record = |calls: Vec<fake_slack::Call>| {
        for c in calls.iter().filter(|c| c.method.starts_with("chat.")) {
            out.push(serde_json::json!({
                "method": c.method, "channel": c.body["channel"], "text": TestBot::text_of(c),
                "buttons": TestBot::buttons_of(c),
            }));
        }
    };
    for line in [
        "/swimlane help",
        "/swimlane create",
        "/swimlane create 登录",
        "/swimlane create Login_V2 web",
        "/swimlane create login-v2 mobile",
        "/swimlane create login-v2 web --days 0",
        "/swimlane create login-v2 web --for \"new login page\"",
        "/swimlane create login-v2",
        "/swimlane apps login-v2 add api",
        "/swimlane list",
        "/swimlane show login-v2",
        "/swimlane apps login-v2 rename api",
    ] {
        bot.command(ALICE, line).await;
        record(bot.settle().await);
    }
    bot.command(NOBODY, "/swimlane renew login-v2").await;
    record(bot.settle().await);
    at(&bot, 6 * DAY);
    record(bot.settle().await);
    bot.click(ALICE, "lane:renew:1", "1").await;
    record(bot.settle().await);
    at(&bot, 12 * DAY);
    record(bot.settle().await);
    bot.command(ALICE, "/swimlane delete login-v2").await;
    record(bot.settle().await);
    bot.command(ALICE, "/swimlane delete login-v2 --confirm").await;
    record(bot.settle().await);
    at(&bot, 12 * DAY + 60_000);
    record(bot.settle().await);
    // A lane reaching its maximum lifetime, and the daily list.
    bot.command(ALICE, "/swimlane create checkout --days 20").await;
    record(bot.settle().await);
    at(&bot, 41 * DAY);
    record(bot.settle().await);
    bot.command(ALICE, "/swimlane renew checkout").await;
    record(bot.settle().await);
    out
}

#[tokio::test]
async fn swimlane_messages_in_english() {
    insta::assert_json_snapshot!("swimlanes_en", transcript("en").await);
}

#[tokio::test]
async fn swimlane_messages_in_chinese() {
    insta::assert_json_snapshot!("swimlanes_zh", transcript("zh-CN").await);
}

#[tokio::test]
async fn the_http_hook_posts_each_event_once_with_an_idempotency_key() {
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route(
            "/lanes",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Seen>,
                 h: axum::http::HeaderMap,
                 axum::Json(body): axum::Json<serde_json::Value>| async move {
                    let key = h["idempotency-key"].to_str().unwrap().to_string();
                    s.lock().unwrap().push((key, body));
                    StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(seen.clone());
    let addr = serve_fake(app).await;
    let config = format!(
        "{}\n[swimlanes]\nexternal_domain = \"{{app}}-{{lane}}.example.com\"\n[[swimlanes.hooks]]\nprovider = \"http\"\nurl = \"http://{addr}/lanes\"\n",
        team_config()
    );
    let bot = TestBot::with("en", &config).await;
    created(&bot).await;
    bot.command(ALICE, "/swimlane delete login-v2 --confirm").await;
    bot.settle().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].0, "lane-1-create");
    assert_eq!(seen[0].1["event"], "create");
    assert_eq!(seen[0].1["namespace"], "login-v2");
    assert_eq!(seen[0].1["branch"], "feature/login-v2");
    assert_eq!(
        seen[0].1["external_domains"],
        serde_json::json!([["web", "web-login-v2.example.com"]])
    );
    assert_eq!(seen[0].1["owner"], "slack:UALICE");
    assert_eq!(
        (seen[1].0.as_str(), &seen[1].1["event"]),
        ("lane-1-delete", &serde_json::json!("delete"))
    );
    bot.finish().await;
}
