//! The conformance suite: one set of transcript tests, written once against the neutral
//! harness (`common::platforms`), run for Slack, Discord and DingTalk through each
//! platform's fake API and signed inbound requests. A platform passes only when the
//! whole suite passes.

mod common;

use axum::http::StatusCode;
use common::platforms::{
    approve_every_stage, approved, everywhere_config, finish, of_kind, post_about, settle, settle_through_time,
    submitted, Decision, TEST_ANSWERS,
};
use common::platforms::{DingTalk, Discord, Kind, Platform, Seen, Slack, Who};
use common::*;

async fn team() -> TestBot {
    TestBot::with("en", &everywhere_config()).await
}

fn private_to_contains(seen: &[Seen], what: &str) -> bool {
    seen.iter().any(|s| s.kind == Kind::Private && s.text.contains(what))
}

/// Through the test stage; returns the coordination stage's message.
async fn to_coordination(bot: &TestBot, p: &dyn Platform) -> Seen {
    let test = submitted(bot, p).await;
    approved(bot, p, Who::Tom, &test, &TEST_ANSWERS, "Resource coordination").await
}

async fn full_default_flow(p: &dyn Platform) {
    let bot = team().await;
    let test = submitted(&bot, p).await;
    assert!(test.text.contains("REL-1"), "{}: {}", p.name(), test.text);
    assert!(
        test.text.contains(&p.id(Who::Tom)),
        "{}: testers are mentioned: {}",
        p.name(),
        test.text
    );
    assert!(test.actions.iter().any(|a| a.starts_with("approve:")), "{}", p.name());

    let before = p.log(&bot).len();
    p.decide(&bot, Who::Tom, &test, Decision::Approve, &TEST_ANSWERS).await;
    let seen = settle(&bot, p, before).await;
    let edited = of_kind(&seen, Kind::Update)
        .into_iter()
        .find(|u| u.id == test.id)
        .unwrap_or_else(|| panic!("{}: the stage message is edited in place: {seen:#?}", p.name()));
    assert!(edited.text.contains("Approved by"), "{}: {}", p.name(), edited.text);
    assert!(edited.actions.is_empty(), "{}: buttons are gone", p.name());
    let coordinate = post_about(&seen, "Resource coordination").clone();
    assert!(
        coordinate.text.contains("All green"),
        "{}: earlier inputs are shown: {}",
        p.name(),
        coordinate.text
    );

    let before = p.log(&bot).len();
    p.decide(&bot, Who::Oscar, &coordinate, Decision::Approve, &[]).await;
    let seen = settle(&bot, p, before).await;
    let release = post_about(&seen, "REL-1 · App release — Release").clone();

    let before = p.log(&bot).len();
    p.decide(
        &bot,
        Who::Olga,
        &release,
        Decision::Approve,
        &[("release_summary", "go")],
    )
    .await;
    // The release runs on: its monitors' windows pass on the test clock.
    let seen = settle_through_time(&bot, p, before).await;
    assert!(
        seen.iter().any(|s| s.text.contains("simulated")),
        "{}: the release runs on the simulated fleet, labelled so",
        p.name()
    );
    let qc = post_about(&seen, "QC evaluation").clone();

    let before = p.log(&bot).len();
    p.decide(&bot, Who::Quinn, &qc, Decision::Approve, &[("qc_evaluation", "good")])
        .await;
    settle(&bot, p, before).await;
    let before = p.log(&bot).len();
    p.command(&bot, Who::Alice, "/release show REL-1").await;
    let seen = settle(&bot, p, before).await;
    assert!(
        private_to_contains(&seen, "REL-1 · App release — released"),
        "{}: the ticket is released and signed off: {seen:#?}",
        p.name()
    );
    finish(bot, p).await;
}

async fn role_refusal(p: &dyn Platform) {
    let bot = team().await;
    let test = submitted(&bot, p).await;
    let before = p.log(&bot).len();
    assert_eq!(
        p.click(&bot, Who::Nobody, &test, &test.action("approve:"), false).await,
        StatusCode::OK
    );
    let seen = settle(&bot, p, before).await;
    assert!(
        private_to_contains(&seen, "You need the **test** role")
            || private_to_contains(&seen, "You need the *test* role"),
        "{}: the refusal names the role: {seen:#?}",
        p.name()
    );
    assert!(of_kind(&seen, Kind::Update).is_empty(), "{}: nothing changes", p.name());
    assert!(of_kind(&seen, Kind::Post).is_empty(), "{}: nothing changes", p.name());
    finish(bot, p).await;
}

async fn double_click(p: &dyn Platform) {
    let bot = team().await;
    let coordinate = to_coordination(&bot, p).await;
    let before = p.log(&bot).len();
    let approve = coordinate.action("approve:");
    p.click(&bot, Who::Oscar, &coordinate, &approve, false).await;
    p.click(&bot, Who::Olga, &coordinate, &approve, false).await;
    let seen = settle(&bot, p, before).await;
    let releases = seen
        .iter()
        .filter(|s| s.kind == Kind::Post && s.text.contains("App release — Release"))
        .count();
    assert_eq!(releases, 1, "{}: one transition: {seen:#?}", p.name());
    assert!(
        private_to_contains(&seen, "Too late"),
        "{}: the second clicker is told who decided: {seen:#?}",
        p.name()
    );
    finish(bot, p).await;
}

async fn retried_delivery(p: &dyn Platform) {
    let bot = team().await;
    let coordinate = to_coordination(&bot, p).await;
    let before = p.log(&bot).len();
    let status = p
        .click(&bot, Who::Oscar, &coordinate, &coordinate.action("approve:"), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = settle(&bot, p, before).await;
    let releases = seen
        .iter()
        .filter(|s| s.kind == Kind::Post && s.text.contains("App release — Release"))
        .count();
    assert_eq!(releases, 1, "{}: the retry is a no-op: {seen:#?}", p.name());
    assert!(
        !private_to_contains(&seen, "Too late"),
        "{}: nobody is told off",
        p.name()
    );
    finish(bot, p).await;
}

async fn bad_signature(p: &dyn Platform) {
    let bot = team().await;
    assert_eq!(p.forged(&bot).await, StatusCode::UNAUTHORIZED, "{}", p.name());
    assert_eq!(bot.inbox_rows().await, 0, "{}: nothing is recorded", p.name());
    let seen = settle(&bot, p, 0).await;
    assert!(seen.is_empty(), "{}: nothing is sent", p.name());
    finish(bot, p).await;
}

async fn rate_limited_delivery(p: &dyn Platform) {
    let bot = team().await;
    p.rate_limit_next_post(&bot);
    let test = submitted(&bot, p).await;
    assert!(test.text.contains("Test confirmation"));
    assert_eq!(
        p.deliveries(&bot),
        2,
        "{}: tried, held back, then delivered once",
        p.name()
    );
    let delivered = p
        .log(&bot)
        .iter()
        .filter(|s| s.kind == Kind::Post && s.text.contains("Test confirmation") && !s.id.is_empty())
        .count();
    assert_eq!(delivered, 1, "{}", p.name());
    finish(bot, p).await;
}

/// The process dies while the platform is creating the test stage's message (the platform
/// has it; releasebot never hears back). The next process finds it again by its delivery
/// key instead of posting a second live copy, and the stage is decided on that one message.
async fn crash_during_a_post(p: &dyn Platform) {
    let mut bot = team().await;
    p.submit_release(&bot, Who::Alice, &valid_release(MD5)).await;
    bot.app.inbox.drain().await.unwrap();
    p.hang_next_post(&bot);
    let posted = p.deliveries(&bot);
    let outbox = bot.app.outbox.clone();
    let round = tokio::spawn(async move { outbox.round().await });
    p.deliveries_reach(&bot, posted + 1).await;
    round.abort();
    let _ = round.await;
    // A new process on the same database (SQLite: it takes over the dead one's leases).
    bot.restart_with(&everywhere_config()).await;
    let seen = settle(&bot, p, 0).await;
    let copies: std::collections::BTreeSet<String> = seen
        .iter()
        .filter(|s| s.kind == Kind::Post && s.text.contains("Test confirmation") && !s.id.is_empty())
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "{}: one copy of the stage message: {seen:#?}",
        p.name()
    );
    let test = post_about(&seen, "Test confirmation").clone();
    let before = p.log(&bot).len();
    p.decide(&bot, Who::Tom, &test, Decision::Approve, &TEST_ANSWERS).await;
    let seen = settle(&bot, p, before).await;
    assert!(
        of_kind(&seen, Kind::Update)
            .iter()
            .any(|u| u.id == test.id && u.actions.is_empty()),
        "{}: the one copy is edited when decided: {seen:#?}",
        p.name()
    );
    post_about(&seen, "Resource coordination");
    finish(bot, p).await;
}

/// A lane created in chat is announced after six idle days with Renew / Delete now, which
/// only its owner (or an app role, or an admin) may press; unanswered, it is deleted on day
/// seven, its hooks run once, and the announcement is edited to say so. A second lane is
/// renewed from the button and kept.
async fn swimlane_lifecycle(p: &dyn Platform) {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let config = format!(
        "{}\n[swimlanes]\n[[swimlanes.hooks]]\nprovider = \"script\"\ncreate = \"echo create $RELEASEBOT_LANE >> {l}\"\ndelete = \"echo delete $RELEASEBOT_LANE >> {l}\"\n",
        everywhere_config(),
        l = log.display()
    );
    let bot = TestBot::with("en", &config).await;
    // Two lanes' hooks run at once: their lines are compared in order of the text.
    let hooks = || {
        let mut lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let at = |ms: i64| bot.clock.set_ms(START_MS + ms);
    p.command(&bot, Who::Alice, "/swimlane create login-v2 web").await;
    p.command(&bot, Who::Alice, "/swimlane create checkout").await;
    let seen = settle(&bot, p, 0).await;
    assert!(
        seen.iter()
            .any(|s| s.text.contains("Swimlane") && s.text.contains("login-v2") && s.text.contains("feature/login-v2")),
        "{}: the lane is announced with its facts: {seen:#?}",
        p.name()
    );
    assert_eq!(hooks(), "create checkout\ncreate login-v2", "{}", p.name());

    at(6 * DAY + 60_000);
    let before = p.log(&bot).len();
    let seen = settle(&bot, p, before).await;
    let prompts: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.kind == Kind::Post && s.text.contains("has been idle for 6d") && !s.actions.is_empty())
        .collect();
    assert!(prompts.len() >= 2, "{}: each lane is announced: {seen:#?}", p.name());
    let login = (*prompts.iter().find(|s| s.text.contains("login-v2")).unwrap()).clone();
    let checkout = (*prompts.iter().find(|s| s.text.contains("checkout")).unwrap()).clone();
    assert!(
        login.text.contains("will be deleted at 2026-11-28 09:01 UTC"),
        "{}: {}",
        p.name(),
        login.text
    );

    let before = p.log(&bot).len();
    p.click(&bot, Who::Nobody, &login, &login.action("lane:delete:"), false)
        .await;
    let seen = settle(&bot, p, before).await;
    assert!(
        seen.iter()
            .any(|s| s.kind == Kind::Private && s.text.contains("Only the owner of") && s.text.contains("login-v2")),
        "{}: {seen:#?}",
        p.name()
    );
    assert!(of_kind(&seen, Kind::Update).is_empty(), "{}: nothing changes", p.name());

    let before = p.log(&bot).len();
    p.click(&bot, Who::Alice, &checkout, &checkout.action("lane:renew:"), false)
        .await;
    let seen = settle(&bot, p, before).await;
    assert!(
        of_kind(&seen, Kind::Update)
            .iter()
            .any(|u| u.id == checkout.id && u.text.contains("renewed by") && u.actions.is_empty()),
        "{}: the announcement is edited in place: {seen:#?}",
        p.name()
    );

    at(7 * DAY + 120_000);
    let before = p.log(&bot).len();
    let seen = settle(&bot, p, before).await;
    assert!(
        of_kind(&seen, Kind::Update)
            .iter()
            .any(|u| u.id == login.id && u.text.contains("was deleted at") && u.text.contains("nobody renewed it")),
        "{}: the deletion edits the announcement: {seen:#?}",
        p.name()
    );
    assert_eq!(
        hooks(),
        "create checkout\ncreate login-v2\ndelete login-v2",
        "{}: the renewed lane is kept, the other deleted once",
        p.name()
    );
    finish(bot, p).await;
}

/// A freeze started in chat stops the next release from starting — the approver is told
/// why — but a rollback of the release under way goes through.
async fn freeze_blocks_a_release_but_not_a_rollback(p: &dyn Platform) {
    let bot = TestBot::with(
        "en",
        &everywhere_config().replace("plan = \"canary\"", "plan = \"blue-green\""),
    )
    .await;
    let release = post_about(
        &{
            let coordinate = to_coordination(&bot, p).await;
            let before = p.log(&bot).len();
            p.decide(&bot, Who::Oscar, &coordinate, Decision::Approve, &[]).await;
            settle(&bot, p, before).await
        },
        "REL-1 · App release — Release",
    )
    .clone();
    let before = p.log(&bot).len();
    p.decide(
        &bot,
        Who::Olga,
        &release,
        Decision::Approve,
        &[("release_summary", "go")],
    )
    .await;
    let seen = settle(&bot, p, before).await;
    let gate = seen
        .iter()
        .find(|s| s.actions.iter().any(|a| a.starts_with("exec:rollback:")) && s.text.contains("Confirm the switch"))
        .unwrap_or_else(|| panic!("{}: the switch gate: {seen:#?}", p.name()))
        .clone();

    let before = p.log(&bot).len();
    p.command(&bot, Who::Ada, "/freeze start all --for 4h quarter-end audit")
        .await;
    let seen = settle(&bot, p, before).await;
    assert!(
        seen.iter().any(|s| s.text.contains("started freeze FRZ-1")),
        "{}: {seen:#?}",
        p.name()
    );

    let before = p.log(&bot).len();
    p.click(&bot, Who::Oscar, &gate, &gate.action("exec:rollback:"), false)
        .await;
    let seen = settle(&bot, p, before).await;
    assert!(
        seen.iter().any(|s| s.text.contains("release rolled back")),
        "{}: the rollback is not blocked: {seen:#?}",
        p.name()
    );

    let coordinate = {
        let before = p.log(&bot).len();
        p.submit_release(&bot, Who::Alice, &valid_release(MD5)).await;
        let test = post_about(
            &settle(&bot, p, before).await,
            "REL-2 · App release — Test confirmation",
        )
        .clone();
        approved(
            &bot,
            p,
            Who::Tom,
            &test,
            &TEST_ANSWERS,
            "REL-2 · App release — Resource coordination",
        )
        .await
    };
    let release = approved(&bot, p, Who::Oscar, &coordinate, &[], "REL-2 · App release — Release").await;
    let before = p.log(&bot).len();
    p.decide(
        &bot,
        Who::Olga,
        &release,
        Decision::Approve,
        &[("release_summary", "go")],
    )
    .await;
    let seen = settle(&bot, p, before).await;
    assert!(
        private_to_contains(&seen, "REL-2 cannot start its release now")
            && private_to_contains(&seen, "quarter-end audit"),
        "{}: the approver is told why: {seen:#?}",
        p.name()
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.kind == Kind::Post && s.text.contains("REL-2") && s.text.contains("Blue-green release")),
        "{}: nothing started",
        p.name()
    );
    finish(bot, p).await;
}

/// A stage late past its SLA reminds its role, then escalates to the backup role, who
/// may then decide it.
async fn sla_reminder_and_escalation(p: &dyn Platform) {
    let config = everywhere_config().replace(
        "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\n",
        "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\nsla = \"4h\"\nescalate_to = \"admin\"\n",
    );
    let bot = TestBot::with("en", &config).await;
    let test = submitted(&bot, p).await;
    bot.clock.set_ms(START_MS + 4 * 3_600_000);
    let before = p.log(&bot).len();
    let seen = settle(&bot, p, before).await;
    // DingTalk posts button-less messages as plain robot messages: any kind of message.
    let said = |what: &str| {
        seen.iter()
            .find(|s| s.text.contains(what))
            .unwrap_or_else(|| panic!("{}: {what:?} in {seen:#?}", p.name()))
            .clone()
    };
    let reminder = said("has waited 4h");
    assert!(
        reminder.text.contains(&p.id(Who::Tom)),
        "{}: testers are named: {}",
        p.name(),
        reminder.text
    );
    bot.clock.set_ms(START_MS + 8 * 3_600_000);
    let before = p.log(&bot).len();
    let seen = settle(&bot, p, before).await;
    let escalated = seen
        .iter()
        .find(|s| s.text.contains("escalated to"))
        .unwrap_or_else(|| panic!("{}: the escalation in {seen:#?}", p.name()));
    assert!(
        escalated.text.contains(&p.id(Who::Ada)),
        "{}: {}",
        p.name(),
        escalated.text
    );
    approved(&bot, p, Who::Ada, &test, &TEST_ANSWERS, "Resource coordination").await;
    finish(bot, p).await;
}

/// The longest answers the form accepts — a note of 2,000 characters that look like
/// markup, a 1,500-character address, 120 hosts — are taken, and the stage message that
/// shows them stays within the platform's limits: where it is cut, the body is cut, in
/// its source (no broken escape), and the link to the ticket's page survives.
async fn long_inputs_are_cut_in_the_body_and_keep_the_link(p: &dyn Platform) {
    let bot = team().await;
    let notes: String = "*bold* _it_ ~x~ `c` <!channel> [a](b) & "
        .chars()
        .cycle()
        .take(2_000)
        .collect();
    let package = format!("https://repo.example.com/{}.tgz", "p".repeat(1_500 - 29));
    let scope = (1..=120).map(|i| format!("web-{i:03}")).collect::<Vec<_>>().join(",");
    let values: Vec<(&str, &str)> = valid_release(MD5)
        .into_iter()
        .map(|(k, v)| match k {
            "notes" => (k, notes.as_str()),
            "package_url" => (k, package.as_str()),
            "scope" => (k, scope.as_str()),
            _ => (k, v),
        })
        .collect();
    let before = p.log(&bot).len();
    p.submit_release(&bot, Who::Alice, &values).await;
    let seen = settle(&bot, p, before).await;
    let text = &post_about(&seen, "Test confirmation").text;
    let ticket = bot.app.state.bot.links.path(releasebot::chat::links::Page::Ticket(1));
    assert!(
        text.contains(&ticket),
        "{}: the page link is gone from {text}",
        p.name()
    );
    // A cut never leaves half an escape (Slack writes a literal `*` as an invalid date).
    assert_eq!(
        text.matches("<!date^").count(),
        text.matches("^{_}|").count(),
        "{}: {text}",
        p.name()
    );
    if p.name() == "slack" {
        assert!(!text.contains("<!channel>"), "a live ping in {text}");
    }
    finish(bot, p).await;
}

/// A plan of 40 steps with long names: its progress message and report stay within the
/// platform's limits, cut where they must be, and keep the link to the release's page.
async fn a_forty_step_plan_keeps_its_page_link(p: &dyn Platform) {
    let steps: Vec<String> = (1..=40)
        .map(|i| {
            format!(
                "  {{ id = \"check-{i}\", name = \"Health check number {i} of the payments fleet in every zone, region and availability set we run\", type = \"HEALTH_CHECK\" }},"
            )
        })
        .collect();
    let config = everywhere_config().replacen("plan = \"canary\"", "plan = \"long\"", 1)
        + &format!(
            "\n[plans.long]\nname = \"Forty checks\"\ntemplate = \"CUSTOM\"\nsteps = [\n{}\n]\n",
            steps.join("\n")
        );
    let bot = TestBot::with("en", &config).await;
    submitted(&bot, p).await;
    let seen = approve_every_stage(&bot, p).await;
    let execution = bot
        .app
        .state
        .bot
        .links
        .path(releasebot::chat::links::Page::Execution(1));
    let about: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.text.contains("Forty checks") || s.text.contains("📋 REL-1"))
        .collect();
    assert!(!about.is_empty(), "{}: {seen:#?}", p.name());
    for s in about {
        assert!(
            s.text.contains(&execution),
            "{}: no release page link in {s:#?}",
            p.name()
        );
    }
    finish(bot, p).await;
}

/// Every message about the ticket or its release, posted or edited, links to its page
/// (with the page's own signed token).
async fn messages_link_to_their_pages(p: &dyn Platform) {
    let config = format!("{}\n[sim]\nnew_error_rate = 8.0\n", everywhere_config());
    let bot = TestBot::with("en", &config).await;
    submitted(&bot, p).await;
    approve_every_stage(&bot, p).await;
    let links = bot.app.state.bot.links.clone();
    let ticket = links.path(releasebot::chat::links::Page::Ticket(1));
    let execution = links.path(releasebot::chat::links::Page::Execution(1));
    let about: Vec<Seen> = p
        .log(&bot)
        .into_iter()
        // Posts and edits, and what DingTalk's robot sends to the group (the progress).
        .filter(|s| s.text.contains("REL-1 ·") && (s.kind != Kind::Private || s.text.contains("🚀")))
        .collect();
    assert!(about.len() >= 8, "{}: {about:#?}", p.name());
    for s in &about {
        assert!(
            s.text.contains(&ticket) || s.text.contains(&execution),
            "{}: no link to the ticket's or the release's page in {s:#?}",
            p.name()
        );
    }
    assert!(
        about.iter().any(|s| s.text.contains(&execution)),
        "{}: {about:#?}",
        p.name()
    );
    // The links open the pages; a token of another page does not.
    let page = bot.raw_get(&execution).await;
    assert!(page.contains("Canary release"), "{page}");
    // Its charts: traffic over time, and the measurements of old and new.
    assert!(page.matches("<svg").count() == 3, "{page}");
    assert!(
        page.contains("p95 latency: new vs old") && page.contains("class=\"badge ROLLED_BACK\""),
        "{page}"
    );
    let wrong = format!(
        "/executions/1?t={}",
        links.token(releasebot::chat::links::Page::Ticket(1))
    );
    assert!(!bot.raw_get(&wrong).await.contains("Canary release"));
    finish(bot, p).await;
}

/// What people type is shown as they typed it: markup in a field value neither styles the
/// stage message, nor makes a link, nor breaks the web address next to it.
async fn user_text_is_shown_not_interpreted(p: &dyn Platform) {
    let bot = team().await;
    let notes = "**Urgent** see [click here](https://evil.example) <font color=red>now</font> #1";
    let package = "https://repo.example.com/pay_ments_2.1.0.tgz";
    let values: Vec<(&str, &str)> = valid_release(MD5)
        .into_iter()
        .map(|(k, v)| match k {
            "notes" => (k, notes),
            "package_url" => (k, package),
            _ => (k, v),
        })
        .collect();
    let before = p.log(&bot).len();
    p.submit_release(&bot, Who::Alice, &values).await;
    let seen = settle(&bot, p, before).await;
    let text = &post_about(&seen, "Test confirmation").text;
    assert!(
        text.contains("Urgent") && text.contains("click here"),
        "{}: {text}",
        p.name()
    );
    // What each platform would read as markup (Slack links are `<url|label>`, and only
    // DingTalk's markdown reads HTML).
    let active: &[&str] = match p.name() {
        "slack" => &["*Urgent*", "<https://evil.example"],
        "discord" => &["*Urgent*", "[click here]("],
        _ => &["*Urgent*", "[click here](", "<font"],
    };
    for active in active {
        assert!(!text.contains(active), "{}: {active:?} is markup in {text}", p.name());
    }
    assert!(text.contains(package), "{}: the address is whole in {text}", p.name());
    finish(bot, p).await;
}

macro_rules! conformance {
    ($($platform:ident => $make:expr),* $(,)?) => {
        $(
            mod $platform {
                use super::*;
                #[tokio::test]
                async fn the_default_flow_end_to_end() {
                    full_default_flow(&$make).await
                }
                #[tokio::test]
                async fn a_user_without_the_role_is_refused() {
                    role_refusal(&$make).await
                }
                #[tokio::test]
                async fn a_double_click_makes_one_transition() {
                    double_click(&$make).await
                }
                #[tokio::test]
                async fn a_retried_delivery_is_processed_once() {
                    retried_delivery(&$make).await
                }
                #[tokio::test]
                async fn a_bad_signature_gets_401_and_changes_nothing() {
                    bad_signature(&$make).await
                }
                #[tokio::test]
                async fn a_rate_limited_message_is_delivered_later() {
                    rate_limited_delivery(&$make).await
                }
                #[tokio::test]
                async fn a_crash_during_a_post_leaves_one_live_copy() {
                    crash_during_a_post(&$make).await
                }
                #[tokio::test]
                async fn a_swimlane_nobody_renews_is_deleted_hooks_and_all() {
                    swimlane_lifecycle(&$make).await
                }
                #[tokio::test]
                async fn a_freeze_blocks_a_release_but_not_a_rollback() {
                    freeze_blocks_a_release_but_not_a_rollback(&$make).await
                }
                #[tokio::test]
                async fn every_message_about_a_ticket_links_to_its_page() {
                    messages_link_to_their_pages(&$make).await
                }
                #[tokio::test]
                async fn a_forty_step_plan_keeps_its_page_link() {
                    super::a_forty_step_plan_keeps_its_page_link(&$make).await
                }
                #[tokio::test]
                async fn long_inputs_are_cut_in_the_body_and_keep_the_link() {
                    super::long_inputs_are_cut_in_the_body_and_keep_the_link(&$make).await
                }
                #[tokio::test]
                async fn what_people_type_is_shown_not_interpreted() {
                    user_text_is_shown_not_interpreted(&$make).await
                }
                #[tokio::test]
                async fn a_late_stage_is_reminded_then_escalated() {
                    sla_reminder_and_escalation(&$make).await
                }
            }
        )*
    };
}

conformance! {
    slack => Slack,
    discord => Discord::default(),
    dingtalk => DingTalk::default(),
}

/// Discord shows "thinking…" for a deferred answer (type 5) until it is followed up: once
/// an interaction is handled, a form or button without a private answer is acknowledged
/// without a loading state (type 6), and a command says it is done.
#[tokio::test]
async fn discord_leaves_no_interaction_thinking() {
    let p = Discord::default();
    let bot = team().await;
    submitted(&bot, &p).await;
    approve_every_stage(&bot, &p).await;
    let before = p.responses.lock().unwrap().len();
    p.command(&bot, Who::Oscar, "/lock payments prod db migration").await;
    let responses = p.responses.lock().unwrap().clone();
    let thinking: Vec<&serde_json::Value> = responses.iter().filter(|r| r["type"] == 5).collect();
    assert!(thinking.is_empty(), "deferred and never followed up: {thinking:#?}");
    // The approvals' forms were acknowledged without a loading state.
    assert!(
        responses.iter().filter(|r| r["type"] == 6).count() >= 4,
        "{responses:#?}"
    );
    let lock = &responses[before];
    assert_eq!(lock["type"], 4, "{lock}");
    assert_eq!(lock["data"]["flags"], 64, "{lock}");
    bot.finish().await;
}

/// A form longer than one Discord modal is checked page by page: a wrong answer on the
/// first page comes back before the second page is shown, with a button to fix it.
#[tokio::test]
async fn discord_checks_each_page_of_a_form_as_it_is_submitted() {
    let p = Discord::default();
    let bot = team().await;
    let mut values = valid_release(MD5);
    values.retain(|(k, _)| !matches!(*k, "md5" | "planned_at"));
    values.push(("md5", "not-an-md5"));
    let done = p.try_release(&bot, Who::Alice, &values).await;
    assert!(done.body.contains("not accepted"), "{}", done.body);
    assert!(done.body.contains("32 hexadecimal"), "{}", done.body);
    let modals: Vec<String> = p
        .responses
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == 9)
        .map(|r| r["data"]["title"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(modals.len(), 1, "only the first page was shown: {modals:?}");
    // Its Fix button reopens the first page.
    let fix = done.json()["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(fix.ends_with(":1"), "{fix}");
    assert_eq!(
        bot.inbox_rows().await,
        1,
        "only the command was recorded, no submission"
    );
    bot.finish().await;
}
