//! The runtime: releases that do not wait for one another, one release per application and
//! environment, true baselines, handlers that keep a ticket's order, a worker that panics,
//! a shutdown with work left, leases taken over at start, and retention. Transcripts
//! through the fake Slack; workers and the clock are driven by the test.

mod common;

use common::fake_slack::Call;
use common::*;
use std::path::Path;

/// The default flow with a plan of this many steps (TOML array items).
fn with_plan(steps: &str, extra: &str) -> String {
    format!(
        "{}\n[plans.runtime]\nname = \"Runtime plan\"\ntemplate = \"CUSTOM\"\nsteps = [\n{steps}\n]\n{extra}\n",
        team_config().replace("plan = \"canary\"", "plan = \"runtime\"")
    )
}

/// A FIFO the test opens to let a blocked script step carry on.
fn fifo(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    let status = std::process::Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(status.success(), "mkfifo");
    p.display().to_string()
}

/// Lets the script reading `fifo` finish (it reads to the end).
async fn release_fifo(fifo: &str) {
    let f = fifo.to_string();
    tokio::task::spawn_blocking(move || drop(std::fs::OpenOptions::new().write(true).open(f).unwrap()))
        .await
        .unwrap();
}

/// Submits a release of `application` `version` and approves it up to its release;
/// returns what Slack received, leaving executions whose step runs a process running.
async fn release_of(bot: &TestBot, application: &str, version: &str) -> Vec<Call> {
    let first = bot
        .submit_values(
            ALICE,
            &answers_with(&[("application", application), ("version", version)]),
        )
        .await;
    let calls = approve(bot, TOM, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let release = posts(&calls)[0].clone();
    let approve_btn = TestBot::buttons_of(&release)
        .into_iter()
        .find(|b| b.starts_with("approve:"))
        .unwrap();
    bot.click(OLGA, &approve_btn, &ts_of(&release)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.submit(OLGA, &modal, &[("release_summary", "go")]).await;
    bot.settle().await
}

/// A bot with `config`, and its first release (payments 2.1.0) approved and left running
/// in its first step; the release's progress message.
async fn held_first_release(config: &str) -> (TestBot, Call) {
    let bot = TestBot::with("en", config).await;
    bot.leave_running(&[1]);
    let calls = release_of(&bot, "payments", "2.1.0").await;
    let progress = find(&calls, "REL-1 · payments 2.1.0 — Runtime plan").clone();
    (bot, progress)
}

fn find<'a>(calls: &'a [Call], needle: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.method == "chat.postMessage" && TestBot::text_of(c).contains(needle))
        .unwrap_or_else(|| panic!("no message with {needle:?}"))
}

/// The latest text of the progress message posted as `progress`.
fn latest_text(bot: &TestBot, progress: &Call) -> String {
    let all = bot.slack.calls();
    let last = all
        .iter()
        .rev()
        .find(|c| c.method == "chat.update" && ts_of(c) == ts_of(progress))
        .unwrap_or(progress);
    TestBot::text_of(last)
}

#[tokio::test]
async fn a_rollback_acts_while_another_release_runs_a_long_step() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "payments-deploy");
    let config = with_plan(
        &format!(
            r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "if [ \"$RELEASEBOT_APPLICATION\" = payments ]; then cat '{gate}' > /dev/null; fi" }},
  {{ id = "shift-10", name = "Shift 10%", type = "TRAFFIC_SHIFT", weight = 10 }},
  {{ id = "go", name = "Go on?", type = "APPROVAL_GATE", provider = "builtin", role = "ops" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
        ),
        "",
    );
    // REL-1 deploys payments with a script that does not end until the test says so.
    let (bot, slow) = held_first_release(&config).await;
    assert!(
        latest_text(&bot, &slow).contains("🔵 Deploy"),
        "{}",
        latest_text(&bot, &slow)
    );

    // REL-2 (billing) runs meanwhile, up to its gate at 10%.
    let calls = release_of(&bot, "billing", "7.0.0").await;
    let other = find(&calls, "REL-2 · billing 7.0.0 — Runtime plan").clone();
    let text = latest_text(&bot, &other);
    insta::assert_snapshot!(without_token_or_elapsed(&text), @"
    *🚀 REL-2 · billing 7.0.0 — Runtime plan (simulated)*
    *Status*
    🔵 running
    *Traffic*
    new 10% · old 90%
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    [elapsed]
    *Remaining*
    about 30s
    ✅ Deploy (09:00–09:00) — exit code 0
    ✅ Shift 10% (09:00–09:00) — traffic: new 10% · old 90%
    🔵 Go on? (09:00–)
    ⚪ Shift 100%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    Pause
    Rollback
    Cancel
    Traffic returns to the old version and its baseline is restored.
    Roll back REL-2?
    Rollback
    ");

    // Rollback on REL-2 takes effect without waiting for REL-1's deploy.
    bot.click(OSCAR, "exec:rollback:2", &ts_of(&other)).await;
    let calls = bot.settle().await;
    let reply = ephemerals_to(&calls, OSCAR).pop().unwrap();
    assert!(
        reply.contains("REL-2 is rolling back: traffic is returning to the old version now"),
        "what happened, not \"done\": {reply}"
    );
    insta::assert_snapshot!(without_token(&reply), @"
    *↩️ REL-2 is rolling back: traffic is returning to the old version now. The progress message shows when it is done. Go on? was stopped at once (it is safe to run again).*
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    ");
    let text = latest_text(&bot, &other);
    insta::assert_snapshot!(without_token_or_elapsed(&text), @"
    *🚀 REL-2 · billing 7.0.0 — Runtime plan (simulated)*
    *Status*
    ↩️ rolled back
    *Traffic*
    new 0% · old 100%
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    [elapsed]
    ✅ Deploy (09:00–09:00) — exit code 0
    ✅ Shift 10% (09:00–09:00) — traffic: new 10% · old 90%
    ❌ Go on? (09:00–09:00) — stopped by Rollback (safe to run again)
    ⚪ Shift 100%
    ↩️ Rollback — traffic back to the old version; old version restored
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    ");
    find(&calls, "📋 REL-2 · billing 7.0.0: release rolled back");
    assert!(
        latest_text(&bot, &slow).contains("🔵 Deploy"),
        "REL-1's deploy is still running"
    );

    // REL-1's deploy ends; it carries on to its gate.
    bot.leave_running(&[]);
    release_fifo(&gate).await;
    bot.settle().await;
    let text = latest_text(&bot, &slow);
    insta::assert_snapshot!(without_token_or_elapsed(&text), @"
    *🚀 REL-1 · payments 2.1.0 — Runtime plan (simulated)*
    *Status*
    🔵 running
    *Traffic*
    new 10% · old 90%
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    [elapsed]
    *Remaining*
    about 30s
    ✅ Deploy (09:00–09:00) — exit code 0
    ✅ Shift 10% (09:00–09:00) — traffic: new 10% · old 90%
    🔵 Go on? (09:00–)
    ⚪ Shift 100%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    Pause
    Rollback
    Cancel
    Traffic returns to the old version and its baseline is restored.
    Roll back REL-1?
    Rollback
    ");
    bot.finish().await;
}

#[tokio::test]
async fn a_command_waits_for_a_deploy_or_stops_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("child.pid").display().to_string();
    let gate = fifo(dir.path(), "deploy");
    let shifts = dir.path().join("shifts").display().to_string();
    let config = with_plan(
        &format!(
            r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "sleep 600 & echo $! > '{pid}'; if [ \"$RELEASEBOT_FIELD_VERSION\" = 2.1.0 ]; then cat '{gate}' > /dev/null; else wait; fi" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100, provider = "script", command = "echo \"$RELEASEBOT_WEIGHT\" >> '{shifts}'" }},"#
        ),
        "",
    );
    let (bot, progress) = held_first_release(&config).await;

    // Pause while the deploy runs: it is not interrupted; the pause waits for it.
    bot.click(OSCAR, "exec:pause:1", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    let reply = ephemerals_to(&calls, OSCAR).pop().unwrap();
    assert!(
        reply.contains("Pause is queued for REL-1: *Deploy* is running"),
        "{reply}"
    );
    assert!(latest_text(&bot, &progress).contains("⏳ Pause asked by"));
    paused_once_deployed(&bot, &gate, &progress).await;
    assert!(
        !Path::new(&shifts).exists(),
        "the traffic was never shifted: the pause came first"
    );
    bot.click(OSCAR, "exec:abort:1", &ts_of(&progress)).await;
    bot.settle().await;

    // REL-2: the deploy never ends by itself. Rollback waits for it, and offers to stop it.
    bot.leave_running(&[2]);
    let calls = release_of(&bot, "payments", "2.2.0").await;
    let progress = find(&calls, "REL-2 · payments 2.2.0").clone();
    bot.click(OSCAR, "exec:rollback:2", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    let reply = calls
        .iter()
        .rev()
        .find(|c| c.method == "chat.postEphemeral" && c.body["user"] == OSCAR)
        .unwrap();
    assert!(TestBot::text_of(reply).contains("Rollback is queued for REL-2: *Deploy* is running"));
    assert_eq!(TestBot::buttons_of(reply), vec!["exec:stop-rollback:2"]);
    let child: i32 = std::fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
    assert!(alive(child), "the deploy's process runs");

    bot.leave_running(&[]);
    bot.click(OSCAR, "exec:stop-rollback:2", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    let reply = ephemerals_to(&calls, OSCAR).pop().unwrap();
    assert!(reply.contains("Stopping *Deploy* of REL-2"), "{reply}");
    assert!(!alive(child), "the whole process group was terminated");
    let text = latest_text(&bot, &progress);
    insta::assert_snapshot!(without_token_or_elapsed(&text), @"
    *🚀 REL-2 · payments 2.2.0 — Runtime plan*
    *Status*
    ↩️ rolled back
    *Traffic*
    new 0% · old 100%
    *Elapsed*
    [elapsed]
    ❌ Deploy (09:00–09:00) — terminated as asked (SIGTERM, then SIGKILL after 10s)
    ⚪ Shift 100%
    ↩️ Rollback — traffic back to the old version
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    ");
    bot.command(OSCAR, "/release show REL-2").await;
    let show = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(
        show.contains("stopped the running step and rolled the release back"),
        "{show}"
    );
    bot.finish().await;
}

/// A command saved where this process's task does not hear of it while a step runs (by
/// another replica, before the version watch notices): when the step ends, the move that
/// records it and starts the next step finds the execution changed. The next step is let
/// go, the result applied to the execution as the command left it, and nothing is lost.
#[tokio::test]
async fn a_result_is_applied_to_a_command_saved_unheard_while_its_step_ran() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "deploy");
    let config = with_plan(
        &format!(
            r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "cat '{gate}' > /dev/null" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
        ),
        "",
    );
    let (bot, progress) = held_first_release(&config).await;
    // Pause, saved as a handler of another replica saves it, and this process not told.
    let deps = bot.app.state.bot.exec_deps();
    let mut tx = releasebot::work::Work::begin(&deps.core).await.unwrap();
    let (row, plan) = releasebot::executor::load(&mut tx, releasebot::domain::ticket::TicketId(1))
        .await
        .unwrap()
        .unwrap();
    let applied =
        releasebot::executor::commands::apply(&deps, &mut tx, &row, &plan, releasebot::executor::Command::Pause, OSCAR)
            .await
            .unwrap();
    assert!(matches!(applied, Some(Ok(_))), "{applied:?}");
    tx.commit().await.unwrap();
    paused_once_deployed(&bot, &gate, &progress).await;
    bot.click(OSCAR, "exec:resume:1", &ts_of(&progress)).await;
    bot.settle().await;
    let text = latest_text(&bot, &progress);
    insta::assert_snapshot!(without_token_or_elapsed(&text), @"
    *🚀 REL-1 · payments 2.1.0 — Runtime plan (simulated)*
    *Status*
    ✅ completed
    *Traffic*
    new 100% · old 0%
    *Elapsed*
    [elapsed]
    ✅ Deploy (09:00–09:00) — exit code 0
    ✅ Shift 100% (09:00–09:00) — traffic: new 100% · old 0%
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    bot.finish().await;
}

/// Lets the held deploy end: the progress message shows it done and the execution paused
/// before its next step.
async fn paused_once_deployed(bot: &TestBot, gate: &str, progress: &Call) {
    bot.leave_running(&[]);
    release_fifo(gate).await;
    bot.settle().await;
    let text = latest_text(bot, progress);
    assert!(
        text.contains("✅ Deploy") && text.contains("⏸ paused") && text.contains("⚪ Shift 100%"),
        "the deploy's result recorded, the pause applied after it: {text}"
    );
}

/// Whether a process runs (a zombie waiting to be reaped does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A deploy script that waits for `gate` for version 2.1.0 only, then a shift to 100 %.
fn deploy_held_for_2_1_0(gate: &str) -> String {
    with_plan(
        &format!(
            r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "if [ \"$RELEASEBOT_FIELD_VERSION\" = 2.1.0 ]; then cat '{gate}' > /dev/null; fi" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
        ),
        "",
    )
}

/// Replaces the plan an execution stored (as an upgrade that changed its shape would).
async fn store_plan(bot: &TestBot, execution: i64, json: &str) {
    sqlx::query("UPDATE execution_plans SET plan = $1 WHERE execution_id = $2")
        .bind(json)
        .bind(execution)
        .execute(&bot.app.state.bot.store.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_release_whose_stored_plan_cannot_be_read_ends_as_failed_and_frees_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "deploy");
    let config = deploy_held_for_2_1_0(&gate);
    let (mut bot, _) = held_first_release(&config).await;
    // An upgrade whose plans no longer read the one REL-1 stored, then a restart.
    store_plan(&bot, 1, r#"{"steps": "not a list"}"#).await;
    bot.restart_with(&config).await;
    bot.leave_running(&[]);
    let calls = bot.settle().await;
    let said = find(&calls, "cannot be read by this version of releasebot");
    let text = TestBot::text_of(said);
    assert!(
        text.contains("REL-1")
            && text.contains("stopped and marked failed")
            && text.contains("nothing was rolled back"),
        "{text}"
    );
    // The ticket went on as after a failed release, once (not every few seconds).
    assert_eq!(
        calls
            .iter()
            .filter(|c| TestBot::text_of(c).contains("cannot be read"))
            .count(),
        1
    );
    let again = bot.settle().await;
    assert!(again.is_empty(), "nothing more: {again:?}");
    // The target is free: the next release of payments starts and completes.
    let calls = release_of(&bot, "payments", "2.2.0").await;
    let next = find(&calls, "REL-2 · payments 2.2.0 — Runtime plan");
    assert!(
        latest_text(&bot, next).contains("✅ Shift 100%"),
        "{}",
        latest_text(&bot, next)
    );
    release_fifo(&gate).await;
}

#[tokio::test]
async fn a_queued_release_whose_plan_cannot_be_read_does_not_hold_up_the_one_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "deploy");
    let config = deploy_held_for_2_1_0(&gate);
    let (bot, first) = held_first_release(&config).await;
    let calls = release_of(&bot, "payments", "2.2.0").await;
    let second = find(&calls, "REL-2 · payments 2.2.0").clone();
    assert!(latest_text(&bot, &second).contains("queued behind REL-1"));
    store_plan(&bot, 2, "[]").await;

    // REL-1 ends as usual and passes the target on; REL-2 then ends as failed, saying why.
    bot.leave_running(&[]);
    release_fifo(&gate).await;
    let calls = bot.settle().await;
    assert!(
        latest_text(&bot, &first).contains("✅ completed"),
        "{}",
        latest_text(&bot, &first)
    );
    let said = TestBot::text_of(find(&calls, "cannot be read by this version of releasebot"));
    assert!(said.contains("REL-2"), "{said}");
    // Its progress message no longer says "queued": it shows the failure, without steps.
    insta::assert_snapshot!(without_token_or_elapsed(&latest_text(&bot, &second)), @"
    *🚀 REL-2 · payments 2.2.0 — Runtime plan*
    *Status*
    ❌ failed
    *Traffic*
    new 0% · old 100%
    *Elapsed*
    [elapsed]
    <http://127.0.0.1:3000/executions/2?t=[token]|Release page>
    ");
    // And the target is free for the next release.
    let calls = release_of(&bot, "payments", "2.3.0").await;
    let third = find(&calls, "REL-3 · payments 2.3.0");
    assert!(
        latest_text(&bot, third).contains("✅ completed"),
        "{}",
        latest_text(&bot, third)
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_second_release_of_a_target_waits_for_the_first_and_starts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "deploy");
    let log = dir.path().join("deploys.log").display().to_string();
    let steps = format!(
        r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "echo \"$RELEASEBOT_FIELD_VERSION\" >> '{log}'; if [ \"$RELEASEBOT_FIELD_VERSION\" = 2.1.0 ]; then cat '{gate}' > /dev/null; fi" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
    );
    let bot = TestBot::with("en", &with_plan(&steps, "")).await;
    bot.leave_running(&[1]);
    let calls = release_of(&bot, "payments", "2.1.0").await;
    let first = find(&calls, "REL-1 · payments 2.1.0").clone();
    let calls = release_of(&bot, "payments", "2.2.0").await;
    let second = find(&calls, "REL-2 · payments 2.2.0").clone();
    let text = latest_text(&bot, &second);
    assert!(
        text.contains("⏳ queued behind REL-1 (payments · prod); starts when it ends"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2.1.0\n", "REL-2 did not start");

    bot.leave_running(&[]);
    release_fifo(&gate).await;
    let calls = bot.settle().await;
    assert!(latest_text(&bot, &first).contains("✅ completed"));
    let text = latest_text(&bot, &second);
    assert!(text.contains("✅ completed"), "REL-2 started when REL-1 ended: {text}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2.1.0\n2.2.0\n");
    let reports: Vec<String> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && TestBot::text_of(c).starts_with("*📋"))
        .map(TestBot::text_of)
        .collect();
    assert!(
        reports[0].contains("REL-1") && reports[1].contains("REL-2"),
        "{reports:?}"
    );
    // REL-2 started from what REL-1 left.
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    insta::assert_snapshot!(without_token(&list), @"
    *Baselines of payments in prod*
    #4 · after REL-2 · version 2.2.0 · 2 replicas · config - · 2026-11-21 09:00 UTC
    #3 · before REL-2 · version 2.1.0 · 2 replicas · config - · 2026-11-21 09:00 UTC
    #2 · after REL-1 · version 2.1.0 · 2 replicas · config - · 2026-11-21 09:00 UTC
    #1 · before REL-1 · version unknown · 0 replicas · config - · 2026-11-21 09:00 UTC
    ");
    assert!(!list.contains("simulated"), "a script deploys for real: {list}");
    bot.finish().await;
}

#[tokio::test]
async fn with_refuse_a_second_release_of_a_target_is_refused_until_the_first_ends() {
    let dir = tempfile::tempdir().unwrap();
    let gate = fifo(dir.path(), "deploy");
    let steps = format!(
        r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = "if [ \"$RELEASEBOT_FIELD_VERSION\" = 2.1.0 ]; then cat '{gate}' > /dev/null; fi" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
    );
    let bot = TestBot::with("en", &with_plan(&steps, "[executor]\nwhen_busy = \"refuse\"\n")).await;
    bot.leave_running(&[1]);
    release_of(&bot, "payments", "2.1.0").await;
    let first = bot.submit_values(ALICE, &answers_with(&[("version", "2.2.0")])).await;
    let calls = approve(&bot, TOM, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let release = posts(&calls)[0].clone();
    bot.click(OLGA, "approve:2:3:0", &ts_of(&release)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.submit(OLGA, &modal, &[("release_summary", "go")]).await;
    let calls = bot.settle().await;
    let refusal = ephemerals_to(&calls, OLGA).pop().unwrap();
    assert!(
        refusal.contains("payments in prod is being released by REL-1")
            && refusal.contains("approve REL-2 again when REL-1 ends"),
        "{refusal}"
    );
    assert!(posts(&calls).is_empty(), "nothing changed");

    bot.leave_running(&[]);
    release_fifo(&gate).await;
    bot.settle().await;
    bot.click(OLGA, "approve:2:3:0", &ts_of(&release)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.submit(OLGA, &modal, &[("release_summary", "go")]).await;
    let calls = bot.settle().await;
    find(&calls, "📋 REL-2 · payments 2.2.0 released");
    bot.finish().await;
}

#[tokio::test]
async fn a_later_rollback_redeploys_the_baseline_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deploys.log").display().to_string();
    let steps = format!(
        r#"  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", command = "echo \"$RELEASEBOT_FIELD_VERSION\" >> '{log}'" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},"#
    );
    let config = with_plan(&steps, "")
        + "\n[services.no-deploy]\nname = \"Config change\"\nflow = \"app-release\"\nplan = \"switch-only\"\n\
           [plans.switch-only]\nname = \"Switch only\"\ntemplate = \"CUSTOM\"\n\
           steps = [{ id = \"shift\", name = \"Shift\", type = \"TRAFFIC_SHIFT\", weight = 100 }]\n";
    let bot = TestBot::with("en", &config).await;
    let calls = release_of(&bot, "payments", "2.1.0").await;
    find(&calls, "📋 REL-1 · payments 2.1.0 released");
    let calls = release_of(&bot, "payments", "2.2.0").await;
    find(&calls, "📋 REL-2 · payments 2.2.0 released");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2.1.0\n2.2.0\n");
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    for line in [
        "#1 · before REL-1 · version unknown",
        "#2 · after REL-1 · version 2.1.0",
        "#3 · before REL-2 · version 2.1.0",
        "#4 · after REL-2 · version 2.2.0",
    ] {
        assert!(list.contains(line), "{line} in {list}");
    }

    // Back to REL-1's result: 2.1.0 is deployed again through the plan's DEPLOY step.
    bot.command(OSCAR, "/release rollback REL-2 --to 2").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("redeploying version 2.1.0"));
    find(
        &calls,
        "↩️ REL-2 rolled back to baseline #2 (version 2.1.0): version 2.1.0 redeployed",
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2.1.0\n2.2.0\n2.1.0\n");
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(list.contains("#5 · rollback of REL-2 · version 2.1.0"), "{list}");
    // The next release starts from the rolled-back state.
    let calls = release_of(&bot, "payments", "2.3.0").await;
    find(&calls, "📋 REL-3 · payments 2.3.0 released");
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(list.contains("#6 · before REL-3 · version 2.1.0"), "{list}");

    // A plan without a DEPLOY step cannot redeploy: refused, with the reason.
    bot.command(ALICE, "/release new Config change").await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.submit(ALICE, &modal, &answers_with(&[("version", "cfg-9")])).await;
    let calls = bot.settle().await;
    let calls = bot.approve_to_release(posts(&calls)[0]).await;
    find(&calls, "📋 REL-4 · payments cfg-9 released");
    bot.command(OSCAR, "/release rollback REL-4").await;
    let reply = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    insta::assert_snapshot!(without_token(&reply), @"*REL-4's plan (Switch only) has no DEPLOY step, so releasebot cannot redeploy version 2.3.0 of payments. Nothing was changed; roll it back by hand.*");
    bot.finish().await;
}

#[tokio::test]
async fn events_of_one_ticket_are_handled_in_order_while_tickets_go_at_once() {
    let bot = TestBot::start().await;
    for _ in 0..6 {
        bot.submit_values(ALICE, &valid_release(MD5)).await;
    }
    // For each ticket, Tom's approval arrives before Tina's rejection; all are handled in
    // one go by concurrent handlers.
    for t in 1..=6 {
        bot.command(
            TOM,
            &format!("/release approve REL-{t} evaluation=pass test_summary=ok"),
        )
        .await;
        bot.command(TINA, &format!("/release reject REL-{t} not ready")).await;
    }
    let calls = bot.settle().await;
    for t in 1..=6 {
        assert!(
            calls.iter().any(|c| c.method == "chat.postMessage"
                && TestBot::text_of(c).contains(&format!("REL-{t} · App release — Resource coordination"))),
            "REL-{t}: the first event (the approval) won"
        );
    }
    // Tina's rejection came second: it met the next stage, which is not hers to decide.
    let tina = ephemerals_to(&calls, TINA);
    assert_eq!(tina.len(), 6);
    assert!(
        tina.iter().all(|t| t.contains("to decide *Resource coordination*")),
        "{tina:?}"
    );
    bot.finish().await;
}

/// The count and sum of a histogram in `/metrics`.
async fn histogram(bot: &TestBot, name: &str) -> (u64, f64) {
    let text = bot.raw_get("/metrics").await;
    let value = |suffix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (value("count") as u64, value("sum"))
}

#[tokio::test]
async fn handling_lets_acknowledgements_waiting_for_the_writer_through_after_each_event() {
    let bot = TestBot::start().await;
    for _ in 0..3 {
        bot.submit_values(ALICE, &valid_release(MD5)).await;
    }
    let before = histogram(&bot, "releasebot_inbox_events_per_transaction").await;
    // While a group commit of acknowledgements waits for SQLite's only writer, the
    // handlers commit after the event under way and let it through.
    for t in 1..=3 {
        bot.command(TOM, &format!("/release reject REL-{t} not ready")).await;
    }
    let pressure = bot.app.state.bot.intake.pressure.clone();
    pressure.want_writer(true);
    let calls = bot.settle().await;
    let sent_back = posts(&calls)
        .iter()
        .filter(|c| TestBot::text_of(c).contains("was sent back to"))
        .count();
    assert_eq!(sent_back, 3, "every rejection handled");
    let during = histogram(&bot, "releasebot_inbox_events_per_transaction").await;
    assert_eq!((during.0 - before.0, during.1 - before.1), (3, 3.0));
    // Otherwise what is waiting is handled in one transaction.
    pressure.want_writer(false);
    for t in 1..=3 {
        bot.command(TOM, &format!("/release show REL-{t}")).await;
    }
    bot.settle().await;
    let after = histogram(&bot, "releasebot_inbox_events_per_transaction").await;
    assert_eq!((after.0 - during.0, after.1 - during.1), (1, 3.0));
    bot.finish().await;
}

#[tokio::test]
async fn a_handler_that_panics_fails_its_event_and_the_others_go_on() {
    let bot = TestBot::start().await;
    *bot.app.state.bot.hooks.before_handle.write().unwrap() = Some(Box::new(|ev| {
        if let releasebot::chat::InboundKind::Command { text, .. } = &ev.kind {
            if text.contains("list all") {
                panic!("a bug in the handler");
            }
        }
    }));
    bot.command(ALICE, "/release list all").await;
    bot.command(ALICE, "/release help").await;
    let calls = bot.settle().await;
    let replies = ephemerals_to(&calls, ALICE);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies
            .iter()
            .any(|r| r.contains("Something went wrong") && r.contains("ref")),
        "the author is told, with a reference: {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.contains("/release new")),
        "the next event was handled"
    );
    use sqlx::Row;
    let failed: Vec<String> = sqlx::query("SELECT error FROM inbox WHERE status = 'failed'")
        .fetch_all(&bot.app.state.bot.store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("the handler panicked: a bug in the handler"),
        "{failed:?}"
    );
    // Its event failed on purpose: the trail says so above; finish() would refuse it.
}

#[tokio::test]
async fn shutdown_with_a_backlog_stops_taking_work_and_leaves_the_rest_whole() {
    let bot = TestBot::start().await;
    for _ in 0..200 {
        bot.command(NOBODY, "/release help").await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    shutdown.cancel();
    let worker = bot.app.inbox.clone();
    // The stop is bounded: it returns though 200 events wait.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        worker.run(shutdown, std::time::Duration::from_secs(5)),
    )
    .await
    .expect("the inbox worker stops within its grace");
    use sqlx::Row;
    let store = &bot.app.state.bot.store;
    let rows = sqlx::query("SELECT status, lease_owner FROM inbox")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let done = rows.iter().filter(|r| r.get::<String, _>(0) == "done").count();
    let waiting: Vec<_> = rows.iter().filter(|r| r.get::<String, _>(0) == "pending").collect();
    assert!(done < 200 && !waiting.is_empty(), "work was left: {done} done");
    assert!(
        waiting.iter().all(|r| r.get::<Option<String>, _>(1).is_none()),
        "what was left is given back, not held"
    );
    let replies: i64 = sqlx::query("SELECT COUNT(*) FROM outbox WHERE kind = 'ephemeral'")
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        replies as usize, done,
        "every handled event has its answer, nothing half-written"
    );
    // The next start handles the rest.
    let calls = bot.settle().await;
    assert_eq!(ephemerals_to(&calls, NOBODY).len(), 200);
    bot.finish().await;
}

#[tokio::test]
async fn a_new_process_takes_over_the_leases_of_a_dead_one_at_once() {
    let mut bot = TestBot::start().await;
    bot.command(NOBODY, "/release help").await;
    bot.command(ALICE, "/release list").await;
    let store = bot.app.state.bot.store.clone();
    let claimed = releasebot::store::inbox::claim(&store, bot.clock.now_ms(), 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "the dead process had claimed both");
    // The process dies; the next one starts on the same SQLite file, at the same moment.
    bot.restart_with(&team_config()).await;
    let now = bot.clock.now_ms();
    let calls = bot.settle().await;
    assert_eq!(bot.clock.now_ms() - now, 0, "nothing waited for a lease to expire");
    assert_eq!(ephemerals_to(&calls, NOBODY).len(), 1);
    assert_eq!(ephemerals_to(&calls, ALICE).len(), 1);
    bot.finish().await;
}

#[tokio::test]
async fn handled_events_and_sent_messages_are_pruned_after_the_retention() {
    let bot = TestBot::with("en", &format!("{}\n[runtime]\nretention = \"7d\"\n", team_config())).await;
    let first = bot.submit_release(ALICE, MD5).await;
    let pool = bot.app.state.bot.store.pool.clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            use sqlx::Row;
            sqlx::query(sql).fetch_one(&pool).await.unwrap().get::<i64, _>(0)
        }
    };
    let events = count("SELECT COUNT(*) FROM inbox").await;
    let sent = count("SELECT COUNT(*) FROM outbox").await;
    assert!(events > 0 && sent > 0);
    assert_eq!(bot.app.pruner.prune().await.unwrap(), (0, 0), "nothing is old yet");
    bot.clock.advance_ms(8 * 86_400_000);
    assert_eq!(bot.app.pruner.prune().await.unwrap(), (events as u64, sent as u64));
    assert_eq!(count("SELECT COUNT(*) FROM inbox").await, 0);
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 0);
    assert!(
        count("SELECT COUNT(*) FROM audit_log").await > 0,
        "the audit trail is kept"
    );
    // Where the stage message lives is kept: deciding it still edits it in place.
    let calls = approve(&bot, TOM, &first, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    assert!(updates(&calls).iter().any(|u| ts_of(u) == ts_of(&first)));
    bot.finish().await;
}

#[tokio::test]
async fn readyz_fails_while_a_worker_is_not_running() {
    let bot = TestBot::start().await;
    let ready = bot
        .router
        .clone()
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ready.status(), axum::http::StatusCode::OK);
    // A fresh process whose workers have not started (or died) is not ready.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = bot.settings.clone();
    settings.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("other.db").display());
    let config = releasebot::config::Config::parse(&team_config()).unwrap();
    let app = releasebot::app::App::build(&settings, config, bot.clock.clone())
        .await
        .unwrap();
    let res = app
        .router()
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("inbox worker is not running"), "{body}");
    bot.finish().await;
}

use tower::ServiceExt;
