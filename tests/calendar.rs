//! The release calendar on Slack: freezes (configured and by hand) and deploy locks stop a
//! release from starting — the release stage's Approve says why and until when — but
//! never a rollback; an emergency override lets one release through, announced and audited.

mod common;

use common::fake_slack::Call;
use common::*;

fn find<'a>(calls: &'a [Call], needle: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.method == "chat.postMessage" && TestBot::text_of(c).contains(needle))
        .unwrap_or_else(|| panic!("no message with {needle:?} in {calls:#?}"))
}

/// Through test and coordination: the release stage's message.
async fn to_release_stage(bot: &TestBot, version: &str) -> Call {
    let first = bot.submit_values(ALICE, &answers_with(&[("version", version)])).await;
    let calls = approve(bot, TOM, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    posts(&calls)[0].clone()
}

#[tokio::test]
async fn a_freeze_stops_a_release_from_starting_but_never_a_rollback_and_an_override_lets_one_through() {
    let config = team_config().replace("plan = \"canary\"", "plan = \"blue-green\"");
    let bot = TestBot::with("en", &config).await;
    // REL-1 is released up to its switch gate before anything is frozen.
    let stage = to_release_stage(&bot, "2.1.0").await;
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let gate = find(&calls, "✋ REL-1 · Confirm the switch").clone();

    // Only an admin freezes.
    bot.command(OSCAR, "/freeze start all --for 4h end-of-quarter audit")
        .await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("You need the *admin* role"));
    bot.command(ADA, "/freeze start all --for 4h end-of-quarter audit")
        .await;
    let calls = bot.settle().await;
    let announced = TestBot::text_of(find(&calls, "started freeze FRZ-1"));
    assert!(announced.contains("until 2026-11-21 13:0"), "{announced}");

    // A rollback during the freeze goes through.
    bot.click(OSCAR, "exec:rollback:1", &ts_of(&gate)).await;
    let calls = bot.settle().await;
    find(&calls, "📋 REL-1 · payments 2.1.0: release rolled back (simulated)");

    // A new release does not start: the approver is told why and until when.
    let stage = to_release_stage(&bot, "2.2.0").await;
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let refusal = ephemerals_to(&calls, OLGA).join("\n");
    assert!(refusal.contains("REL-2 cannot start its release now"), "{refusal}");
    assert!(
        // The scope `*` is shown as a plain asterisk (Slack's date-token fallback).
        refusal.contains("Freeze *FRZ-1* (<!date^00000000^{_}|*>) until 2026-11-21 13:0"),
        "{refusal}"
    );
    insta::assert_snapshot!(without_token(&refusal), @"
    *REL-2 cannot start its release now. Nothing was changed.*
    🧊 Freeze *FRZ-1* (<!date^00000000^{_}|*>) until 2026-11-21 13:00 UTC: end-of-quarter audit
    A release that cannot wait: `/release override REL-2 reason` (role admin). Rollbacks are never blocked.
    <http://127.0.0.1:3000/tickets/2?t=[token]|Ticket page>
    ");
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("Blue-green release")),
        "no execution started"
    );
    bot.command(OLGA, "/release plan REL-2").await;
    let plan = ephemerals_to(&bot.settle().await, OLGA).join("\n");
    assert!(plan.contains("Blocked now by") && plan.contains("FRZ-1"), "{plan}");

    // The override needs its role and a reason; it is announced and audited.
    bot.command(OLGA, "/release override REL-2 customers are down").await;
    assert!(ephemerals_to(&bot.settle().await, OLGA)[0].contains("You need the *admin* role"));
    bot.command(ADA, "/release override REL-2").await;
    assert!(ephemerals_to(&bot.settle().await, ADA)[0].contains("Give a reason"));
    bot.command(ADA, "/release override REL-2 customers are down").await;
    let calls = bot.settle().await;
    let note = TestBot::text_of(find(&calls, "Emergency override for REL-2"));
    assert!(note.contains("customers are down") && note.contains("FRZ-1"), "{note}");
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    find(&calls, "REL-2 · payments 2.2.0 — Blue-green release");
    bot.command(ADA, "/release show REL-2").await;
    let shown = ephemerals_to(&bot.settle().await, ADA).join("\n");
    assert!(
        shown.contains("override"),
        "the override is in the ticket's audit trail: {shown}"
    );

    // Ending the freeze: the next release starts without an override.
    bot.command(ADA, "/freeze end FRZ-1").await;
    find(&bot.settle().await, "ended freeze FRZ-1");
    bot.finish().await;
}

#[tokio::test]
async fn configured_freezes_and_locks_name_themselves_and_unlocking_lets_releases_start() {
    let config = format!(
        "{}\n[[freezes]]\nname = \"Payments year-end\"\nreason = \"ledger closing\"\nfrom = \"2026-11-21 00:00\"\nuntil = \"2026-11-21 12:00\"\napplications = [\"payments\"]\n",
        team_config()
    );
    let bot = TestBot::with("en", &config).await;
    let stage = to_release_stage(&bot, "2.1.0").await;
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let refusal = ephemerals_to(&calls, OLGA).join("\n");
    assert!(
        refusal.contains("Freeze *Payments year-end* (payments) until 2026-11-21 12:00 UTC: ledger closing"),
        "{refusal}"
    );
    bot.command(NOBODY, "/freeze list").await;
    let list = ephemerals_to(&bot.settle().await, NOBODY).join("\n");
    assert!(
        list.contains("*Payments year-end* (payments): holds now, until 2026-11-21 12:00 UTC"),
        "{list}"
    );

    // After the window, a lock (ops) blocks it instead; unlocking lets it start.
    bot.clock.set_ms(START_MS + 4 * 3_600_000);
    bot.command(TOM, "/lock payments prod incident 42").await;
    assert!(ephemerals_to(&bot.settle().await, TOM)[0].contains("You need the *ops* role"));
    bot.command(OSCAR, "/lock payments prod incident 42").await;
    find(&bot.settle().await, "locked payments/prod: incident 42");
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let refusal = ephemerals_to(&calls, OLGA).join("\n");
    assert!(refusal.contains("🔒 payments/prod locked by <@UOSCAR>"), "{refusal}");
    bot.command(OSCAR, "/unlock payments prod").await;
    find(&bot.settle().await, "unlocked payments/prod");
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    find(&calls, "REL-1 · payments 2.1.0 — Canary release");
    bot.finish().await;
}

#[tokio::test]
async fn a_late_stage_reminds_its_role_each_sla_period_then_escalates_and_stops_once_decided() {
    let config = team_config()
        .replace(
            "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\n",
            "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\nsla = \"4h\"\nescalate_to = \"tl\"\n",
        )
        .replace("[roles.tl]\n", &format!("[roles.tl]\nmembers = [\"slack:{QUINN}\"]\n"));
    let bot = TestBot::with("en", &config).await;
    let first = bot.submit_values(ALICE, &valid_release(MD5)).await;
    let at = |h: i64| bot.clock.set_ms(START_MS + h * 3_600_000);

    // Quinn has no test role: refused before the escalation.
    bot.click(QUINN, &TestBot::buttons_of(&first)[0], &ts_of(&first)).await;
    assert!(ephemerals_to(&bot.settle().await, QUINN)[0].contains("You need the *test* role"));

    bot.clock.set_ms(START_MS + 4 * 3_600_000 - 1);
    assert!(posts(&bot.settle().await).is_empty(), "not late yet");
    at(4);
    let calls = bot.settle().await;
    let reminder_call = find(&calls, "has waited 4h for *test*");
    assert_eq!(
        reminder_call.body["thread_ts"].as_str(),
        Some(ts_of(&first).as_str()),
        "in the stage message's thread"
    );
    let reminder = TestBot::text_of(reminder_call);
    assert!(
        reminder.contains("REL-1 · App release — Test confirmation"),
        "{reminder}"
    );
    assert!(
        reminder.contains("<@UTOM> <@UTINA>"),
        "the role's members are named: {reminder}"
    );
    assert_eq!(posts(&calls).len(), 1, "one reminder");

    at(8);
    let calls = bot.settle().await;
    let escalated = TestBot::text_of(find(&calls, "escalated to *tl*"));
    insta::assert_snapshot!(without_token(&escalated), @"
    *⤴️ REL-1 — Test confirmation escalated to *tl* after 8h without a decision from *test**
    <@UQUINN> you may now decide it (Approve / Reject on the stage's message).
    <http://127.0.0.1:3000/tickets/1?t=[token]|Ticket page>
    ");

    // The backup role decides the stage now; the reminders stop.
    let calls = approve(&bot, QUINN, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    find(&calls, "Resource coordination");
    at(24);
    assert!(posts(&bot.settle().await).is_empty(), "no reminder after the decision");
    bot.command(ADA, "/release show REL-1").await;
    let shown = ephemerals_to(&bot.settle().await, ADA).join("\n");
    assert!(
        shown.contains("Test confirmation escalated to its backup role"),
        "{shown}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn the_daily_digest_lists_what_waits_and_says_nothing_when_nothing_does() {
    let config = team_config().replace(
        "[calendar]\n",
        "[calendar]\ndigest = \"0 0 10 * * *\"\ntimezone = \"+01:00\"\n",
    );
    let bot = TestBot::with("en", &config).await;
    // 10:00 at +01:00 is 09:00 UTC, the tests' start: nothing waits, nothing is posted.
    bot.clock.set_ms(START_MS + 1);
    assert!(
        posts(&bot.settle().await).is_empty(),
        "silence when there is nothing to say"
    );
    let first = bot.submit_values(ALICE, &valid_release(MD5)).await;
    let _ = first;
    bot.clock.set_ms(START_MS + 24 * 3_600_000);
    let calls = bot.settle().await;
    let digest = TestBot::text_of(find(&calls, "Daily digest"));
    insta::assert_snapshot!(digest, @r"
    *📰 Daily digest*
    *Waiting for a decision (1)*
    • REL-1 · payments — Test confirmation: waiting for *test* for 23h 59m
    ");
    assert_eq!(posts(&calls).len(), 1, "one digest per channel");
    bot.finish().await;
}

/// Through test and coordination with releases held until the planned time; the release
/// stage's approval; returns what Slack received then.
async fn approved_before_its_time(bot: &TestBot) -> Vec<Call> {
    let stage = to_release_stage(bot, "2.1.0").await;
    approve(bot, OLGA, &stage, &[("release_summary", "go")]).await
}

fn scheduled_config() -> String {
    team_config().replace(
        "hold_until_planned = false",
        "hold_until_planned = true\nrelease_reminder = \"30m\"\npostpone = \"1h\"",
    )
}

#[tokio::test]
async fn a_release_approved_before_its_planned_time_starts_at_that_time_and_survives_a_restart() {
    let config = scheduled_config();
    let mut bot = TestBot::with("en", &config).await;
    let first = bot
        .submit_values(ALICE, &answers_with(&[("planned_at", "2026-11-21 22:00")]))
        .await;
    let calls = approve(&bot, TOM, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
    let scheduled = find(&calls, "the release starts at 2026-11-21 22:00 UTC, its planned time").clone();
    assert_eq!(
        TestBot::buttons_of(&scheduled),
        ["sched:start:1", "sched:postpone:1", "sched:cancel:1"]
    );
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("Canary release")),
        "not started"
    );

    // The reminder, half an hour before; then a restart; then the start at the time.
    bot.clock.set_ms(START_MS + 13 * 3_600_000 - 30 * 60_000);
    let calls = bot.settle().await;
    let reminder = TestBot::text_of(find(&calls, "release starts at 2026-11-21 22:00 UTC:"));
    insta::assert_snapshot!(without_token(&reminder), @"
    *⏰ REL-1's release starts at 2026-11-21 22:00 UTC: <@UOSCAR> <@UOLGA>*
    It starts then unless someone acts: *Start now*, *Postpone* (1h later) or *Cancel* (the ticket is closed).
    <http://127.0.0.1:3000/tickets/1?t=[token]|Ticket page>
    Start now
    Postpone
    Cancel
    ");
    bot.clock.set_ms(START_MS + 13 * 3_600_000 - 1);
    assert!(bot
        .settle()
        .await
        .iter()
        .all(|c| !TestBot::text_of(c).contains("Canary release")));
    bot.restart_with(&config).await;
    bot.clock.set_ms(START_MS + 13 * 3_600_000);
    let calls = bot.settle().await;
    find(&calls, "REL-1 · payments 2.1.0 — Canary release");
    assert!(
        updates(&calls)
            .iter()
            .any(|c| ts_of(c) == ts_of(&scheduled) && TestBot::text_of(c).contains("started at 2026-11-21 22:00 UTC")),
        "the scheduled message says it started"
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_scheduled_release_can_be_postponed_started_early_or_cancelled() {
    let bot = TestBot::with("en", &scheduled_config()).await;
    let calls = approved_before_its_time(&bot).await;
    let scheduled = find(&calls, "its planned time").clone();
    // 2030-01-15 22:00 planned: Postpone moves it an hour; Nobody may not touch it.
    bot.click(NOBODY, "sched:start:1", &ts_of(&scheduled)).await;
    assert!(ephemerals_to(&bot.settle().await, NOBODY)[0].contains("You need the *ops* role"));
    bot.click(OSCAR, "sched:postpone:1", &ts_of(&scheduled)).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("now starts at 2030-01-15 23:00 UTC"));
    assert!(updates(&calls)
        .iter()
        .any(|c| TestBot::text_of(c).contains("starts at 2030-01-15 23:00 UTC")));
    bot.click(OSCAR, "sched:start:1", &ts_of(&scheduled)).await;
    let calls = bot.settle().await;
    find(&calls, "REL-1 · payments 2.1.0 — Canary release");
    assert!(updates(&calls)
        .iter()
        .any(|c| TestBot::text_of(c).contains("started it early")));

    // A second ticket is cancelled instead: closed, and nothing starts at its time.
    let stage = to_release_stage(&bot, "2.2.0").await;
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let scheduled = find(&calls, "REL-2 · payments: the release starts").clone();
    bot.click(OLGA, "sched:cancel:2", &ts_of(&scheduled)).await;
    let calls = bot.settle().await;
    assert!(updates(&calls)
        .iter()
        .any(|c| TestBot::text_of(c).contains("REL-2's scheduled release was cancelled")));
    bot.clock.set_ms(1_894_744_800_000 + 86_400_000); // a day after 2030-01-15 22:00
    let calls = bot.settle().await;
    assert!(
        !calls
            .iter()
            .any(|c| TestBot::text_of(c).contains("REL-2 · payments 2.2.0 —")),
        "{calls:#?}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_release_outside_its_applications_windows_is_refused_until_one_opens() {
    let config = team_config().replace("[calendar]\n", "[calendar]\ntimezone = \"UTC\"\n")
        + "\n[[applications]]\nname = \"payments\"\nrelease_windows = [{ start = \"0 0 10 * * Mon-Fri\", duration = \"6h\" }]\n";
    let bot = TestBot::with("en", &config).await;
    // Saturday 09:00: outside the weekday window.
    let stage = to_release_stage(&bot, "2.1.0").await;
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    let refusal = ephemerals_to(&calls, OLGA).join("\n");
    assert!(
        refusal.contains("payments is released only in its release windows; the next opens at 2026-11-23 10:00 UTC"),
        "{refusal}"
    );
    // Monday 11:00: inside.
    bot.clock.set_ms(START_MS + 2 * 86_400_000 + 2 * 3_600_000);
    let calls = approve(&bot, OLGA, &stage, &[("release_summary", "go")]).await;
    find(&calls, "REL-1 · payments 2.1.0 — Canary release");
    bot.finish().await;
}

/// Every calendar message, in order, as Slack received it.
async fn transcript(locale: &str) -> Vec<serde_json::Value> {
    let config = team_config()
        .replace(
            "[calendar]\n",
            "[calendar]\ndigest = \"0 0 10 * * *\"\ntimezone = \"UTC\"\n",
        )
        .replace("hold_until_planned = false", "hold_until_planned = true")
        .replace(
            "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\n",
            "id = \"test\"\nname = { en = \"Test confirmation\", zh-CN = \"测试确认\" }\nrole = \"test\"\nsla = \"4h\"\nescalate_to = \"admin\"\n",
        );
    let bot = TestBot::with(locale, &config).await;
    let mut out = Vec::new();
    let mut record = |calls: Vec<Call>| {
        for c in calls.iter().filter(|c| c.method.starts_with("chat.")) {
            out.push(serde_json::json!({
                "method": c.method, "channel": c.body["channel"], "text": TestBot::text_of(c),
                "buttons": TestBot::buttons_of(c),
            }));
        }
    };
    for (who, line) in [
        (ADA, "/freeze start payments --env prod --for 2h incident review"),
        (OSCAR, "/lock payments prod db migration"),
        (NOBODY, "/freeze list"),
        (ADA, "/freeze start"),
        (ADA, "/freeze end FRZ-9"),
    ] {
        bot.command(who, line).await;
        record(bot.settle().await);
    }
    let first = bot
        .submit_values(ALICE, &answers_with(&[("planned_at", "2026-11-22 22:00")]))
        .await;
    for h in [4, 8] {
        bot.clock.set_ms(START_MS + h * 3_600_000);
        record(bot.settle().await);
    }
    let calls = approve(&bot, ADA, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let coordinate = posts(&calls)[0].clone();
    record(calls);
    let calls = approve(&bot, OSCAR, &coordinate, &[]).await;
    let release = posts(&calls)[0].clone();
    record(calls);
    record(approve(&bot, OLGA, &release, &[("release_summary", "go")]).await);
    bot.command(ADA, "/release override REL-1 the fix must ship").await;
    record(bot.settle().await);
    record(approve(&bot, OLGA, &release, &[("release_summary", "go")]).await);
    bot.clock.set_ms(START_MS + 25 * 3_600_000);
    record(bot.settle().await);
    bot.command(OSCAR, "/unlock payments prod").await;
    record(bot.settle().await);
    out
}

#[tokio::test]
async fn calendar_messages_in_english() {
    insta::assert_json_snapshot!("calendar_en", transcript("en").await);
}

#[tokio::test]
async fn calendar_messages_in_chinese() {
    insta::assert_json_snapshot!("calendar_zh", transcript("zh-CN").await);
}
