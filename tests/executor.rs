//! Transcript tests of the release executor through the fake Slack: canaries on the
//! simulated fleet that succeed, fail and roll back, and the buttons that steer them.

mod common;

use common::fake_slack::Call;
use common::*;

/// Walks REL-1 up to the release stage and approves it; returns what Slack received after.
async fn release(bot: &TestBot) -> Vec<Call> {
    let test_msg = bot.submit_release(ALICE, MD5).await;
    bot.approve_to_release(&test_msg).await
}

fn progress_updates<'a>(calls: &'a [Call], progress: &Call) -> Vec<&'a Call> {
    calls
        .iter()
        .filter(|c| c.method == "chat.update" && ts_of(c) == ts_of(progress))
        .collect()
}

/// The latest state of the progress message: its last edit, or the post itself when
/// every change happened before it was delivered (edits coalesce into the post).
fn latest(calls: &[Call], progress: &Call) -> Call {
    progress_updates(calls, progress)
        .last()
        .copied()
        .unwrap_or(progress)
        .clone()
}

fn find<'a>(calls: &'a [Call], needle: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.method == "chat.postMessage" && TestBot::text_of(c).contains(needle))
        .unwrap_or_else(|| panic!("no message with {needle:?}"))
}

fn with_sim(sim: &str) -> String {
    format!("{}\n[sim]\n{sim}\n", team_config())
}

#[tokio::test]
async fn a_canary_on_the_simulated_fleet_succeeds_with_one_live_progress_message() {
    let bot = TestBot::start().await;
    let calls = release(&bot).await;
    let progress = find(&calls, "— Canary release (simulated)");
    let edits = progress_updates(&calls, progress);
    assert!(edits.len() > 10, "progress is shown as it happens: {}", edits.len());
    assert!(
        edits.len() < 120,
        "edits are bounded, not one per second: {}",
        edits.len()
    );
    assert_eq!(
        posts(&calls)
            .iter()
            .filter(|c| TestBot::text_of(c).contains("— Canary release"))
            .count(),
        1,
        "one progress message"
    );
    // The seed's 10% → 50% → 100%, each followed by monitoring.
    let texts: Vec<String> = edits.iter().map(|c| TestBot::text_of(c)).collect();
    let mid = texts
        .iter()
        .find(|t| t.contains("new 10% · old 90%") && t.contains("🔵 Monitor 5 minutes"))
        .expect("monitoring at 10%");
    insta::assert_snapshot!(without_token(mid), @r"
    *🚀 REL-1 · payments 2.1.0 — Canary release (simulated)*
    *Status*
    🔵 running
    *Traffic*
    new 10% · old 90%
    *Success rate*
    new 100.0% · old 99.9%
    *Latency*
    p95 new 120 ms · old 130 ms · p99 new 160 ms · old 173 ms
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    1m
    *Remaining*
    about 46m 1s
    ✅ Pre-release checks (09:00–09:00) — ok (simulated)
    ✅ Deploy new version (09:00–09:00) — deployed 2.1.0 to 2 simulated target(s) in 1 batch(es)
    ✅ Health check (09:00–09:00) — ok (simulated)
    ✅ Automated tests (09:00–09:00) — ok (simulated)
    ✅ Shift 10% of traffic (09:00–09:00) — traffic: new 10% · old 90%
    🔵 Monitor 5 minutes (09:00–)
    ⚪ Shift 50% of traffic
    ⚪ Monitor 10 minutes
    ⚪ Shift 100% of traffic
    ⚪ Monitor 30 minutes
    ⚪ Retire the old version
    ⚪ Release report
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    Pause
    Rollback
    Cancel
    Traffic returns to the old version and its baseline is restored.
    Roll back REL-1?
    Rollback
    ");
    assert!(texts.iter().any(|t| t.contains("new 50% · old 50%")));
    let last = edits.last().unwrap();
    insta::assert_json_snapshot!("en_progress_completed", snapshot_body(&last.body));
    assert!(TestBot::buttons_of(last).is_empty(), "no controls once finished");
    assert!(TestBot::buttons_of(edits[0]).contains(&"exec:pause:1".to_string()));
    // Notices for the traffic shifts, the report, then QC.
    find(&calls, "📣 REL-1 · Shift 50% of traffic: traffic: new 50% · old 50%");
    let report = find(&calls, "📋 REL-1 · payments 2.1.0 released (simulated)");
    insta::assert_json_snapshot!("en_report", snapshot_body(&report.body));
    let qc = posts(&calls).last().copied().unwrap().clone();
    assert!(TestBot::text_of(&qc).contains("QC evaluation"));
    bot.command(OSCAR, "/release status REL-1").await;
    let status = ephemerals_to(&bot.settle_through_time().await, OSCAR).pop().unwrap();
    insta::assert_snapshot!(without_token(&status), @"
    *🚀 REL-1 · payments 2.1.0 — Canary release (simulated)*
    *Status*
    ✅ completed
    *Traffic*
    new 100% · old 0%
    *Success rate*
    new 100.0% · old 99.9%
    *Latency*
    p95 new 120 ms · old 130 ms · p99 new 160 ms · old 173 ms
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    45m
    ✅ Pre-release checks (09:00–09:00) — ok (simulated)
    ✅ Deploy new version (09:00–09:00) — deployed 2.1.0 to 2 simulated target(s) in 1 batch(es)
    ✅ Health check (09:00–09:00) — ok (simulated)
    ✅ Automated tests (09:00–09:00) — ok (simulated)
    ✅ Shift 10% of traffic (09:00–09:00) — traffic: new 10% · old 90%
    ✅ Monitor 5 minutes (09:00–09:05) — healthy: new 100.0% / 120 ms · old 99.9% / 130 ms
    ✅ Shift 50% of traffic (09:05–09:05) — traffic: new 50% · old 50%
    ✅ Monitor 10 minutes (09:05–09:15) — healthy: new 100.0% / 120 ms · old 99.9% / 130 ms
    ✅ Shift 100% of traffic (09:15–09:15) — traffic: new 100% · old 0%
    ✅ Monitor 30 minutes (09:15–09:45) — healthy: new 100.0% / 120 ms · old 99.9% / 130 ms
    ✅ Retire the old version (09:45–09:45) — ok (simulated)
    ✅ Release report (09:45–09:45) — done
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert_eq!(bot.outbox_failures().await, Vec::<String>::new());
    bot.finish().await;
}

#[tokio::test]
async fn a_new_version_failing_at_10_percent_is_rolled_back_with_an_alert() {
    let bot = TestBot::with("en", &with_sim("new_error_rate = 8.0")).await;
    let calls = release(&bot).await;
    let alert = find(&calls, "🚨 REL-1 · Monitor 5 minutes failed");
    let text = TestBot::text_of(alert);
    assert!(
        text.contains("new version success 92.0% &lt; 99.5% (old 99.9%)"),
        "the evidence (escaped for Slack): {text}"
    );
    assert!(text.contains("Rolling back automatically"), "{text}");
    assert!(
        text.contains(&format!("On call: <@{OSCAR}> <@{OLGA}>")),
        "mentions the on-call role: {text}"
    );
    insta::assert_json_snapshot!("en_alert_rollback", snapshot_body(&alert.body));
    let progress = find(&calls, "— Canary release (simulated)");
    let text = TestBot::text_of(&latest(&calls, progress));
    insta::assert_snapshot!(without_token(&text), @"
    *🚀 REL-1 · payments 2.1.0 — Canary release (simulated)*
    *Status*
    ↩️ rolled back
    *Traffic*
    new 0% · old 100%
    *Success rate*
    new 92.0% · old 99.9%
    *Latency*
    p95 new 120 ms · old 130 ms · p99 new 160 ms · old 173 ms
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    0s
    ✅ Pre-release checks (09:00–09:00) — ok (simulated)
    ✅ Deploy new version (09:00–09:00) — deployed 2.1.0 to 2 simulated target(s) in 1 batch(es)
    ✅ Health check (09:00–09:00) — ok (simulated)
    ✅ Automated tests (09:00–09:00) — ok (simulated)
    ✅ Shift 10% of traffic (09:00–09:00) — traffic: new 10% · old 90%
    ❌ Monitor 5 minutes (09:00–09:00) — new version success 92.0% &lt; 99.5% (old 99.9%)
    ⚪ Shift 50% of traffic
    ⚪ Monitor 10 minutes
    ⚪ Shift 100% of traffic
    ⚪ Monitor 30 minutes
    ⚪ Retire the old version
    ⚪ Release report
    ↩️ Rollback — traffic back to the old version; old version restored
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("new 50%")),
        "traffic never reached 50%"
    );
    find(&calls, "📋 REL-1 · payments 2.1.0: release rolled back (simulated)");
    // QC still evaluates; the ticket ends as rolled back.
    let qc = posts(&calls).last().copied().unwrap().clone();
    let calls = approve(&bot, QUINN, &qc, &[("qc_evaluation", "poor")]).await;
    assert!(TestBot::text_of(posts(&calls)[0]).contains("the release was rolled back; every stage is signed off"));
    bot.command(QUINN, "/release show REL-1").await;
    let show = ephemerals_to(&bot.settle().await, QUINN).pop().unwrap();
    insta::assert_snapshot!(without_token(&show), @"
    *REL-1 · App release — rolled back*
    *Application*
    payments
    *Version*
    2.1.0
    *Package URL*
    https://repo.example.com/payments-2.1.0.tgz
    *Package MD5*
    0123456789abcdef0123456789abcdef
    *Release scope*
    web-1,web-2
    *Planned time*
    2030-01-15 22:00 UTC
    *Notes*
    Fixes &lt;!channel&gt; &amp; the refund bug
    *Evaluation result*
    pass
    *Test summary*
    ok
    *Release summary*
    go
    *Release evaluation*
    poor
    *Timeline*
    2026-11-21 09:00 UTC · <@UALICE> submitted the request (slack)
    2026-11-21 09:00 UTC · <@UTOM> approved Test confirmation (slack)
    2026-11-21 09:00 UTC · <@UOSCAR> approved Resource coordination (slack)
    2026-11-21 09:00 UTC · <@UOLGA> approved Release (slack)
    2026-11-21 09:00 UTC · the release was rolled back
    2026-11-21 09:00 UTC · <@UQUINN> approved QC evaluation (slack)
    Submitted by <@UALICE> at 2026-11-21 09:00 UTC
    <http://127.0.0.1:3000/tickets/1?t=[token]|Ticket page>
    ");
    bot.finish().await;
}

#[tokio::test]
async fn a_paused_failure_waits_for_the_role_and_a_skip_carries_on() {
    let bot = TestBot::with("en", &with_sim("fail_steps = [\"test\"]")).await;
    let calls = release(&bot).await;
    let alert = find(&calls, "🚨 REL-1 · Automated tests failed").clone();
    assert!(TestBot::text_of(&alert).contains("Paused: choose Retry, Skip, Rollback or Abort."));
    assert_eq!(
        TestBot::buttons_of(&alert),
        vec!["exec:retry:1", "exec:skip:1", "exec:rollback:1", "exec:abort:1"]
    );
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("QC evaluation")),
        "the release waits"
    );

    // Someone without the role is refused, and nothing changes.
    for user in [NOBODY, ALICE] {
        bot.click(user, "exec:skip:1", &ts_of(&alert)).await;
        let calls = bot.settle().await;
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(ephemerals_to(&calls, user)[0].contains("You need the *ops* role to press Skip on REL-1's release."));
    }
    // Resume does not apply to a failed step.
    bot.click(OSCAR, "exec:resume:1", &ts_of(&alert)).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("Resume does not apply to REL-1's release now (⏸ paused)."));

    bot.click(OSCAR, "exec:skip:1", &ts_of(&alert)).await;
    let calls = bot.settle().await;
    let progress = progress_updates(
        &calls,
        &calls.iter().find(|c| c.method == "chat.update").unwrap().clone(),
    )
    .last()
    .copied()
    .unwrap()
    .clone();
    assert!(
        TestBot::text_of(&progress).contains("⏭ Automated tests"),
        "{}",
        TestBot::text_of(&progress)
    );
    // The shift requires the tests to have passed: a skipped precondition stops it.
    let alert = find(&calls, "🚨 REL-1 · Shift 10% of traffic failed");
    assert!(TestBot::text_of(alert).contains("precondition not met: needs health, test"));
    assert!(TestBot::text_of(alert).contains("Rolling back automatically"));
    bot.command(OSCAR, "/release show REL-1").await;
    let show = ephemerals_to(&bot.settle().await, OSCAR).pop().unwrap();
    assert!(
        show.contains(&format!("<@{OSCAR}> skipped a failed step (slack)")),
        "{show}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn pause_resume_and_an_approval_gate_from_buttons() {
    let config = team_config().replace("plan = \"canary\"", "plan = \"blue-green\"");
    let bot = TestBot::with("en", &config).await;
    let calls = release(&bot).await;
    let gate = find(&calls, "✋ REL-1 · Confirm the switch: waiting for *ops* to continue").clone();
    assert_eq!(TestBot::buttons_of(&gate), vec!["exec:continue:1", "exec:rollback:1"]);
    let progress = find(&calls, "— Blue-green release (simulated)").clone();

    bot.click(OSCAR, "exec:pause:1", &ts_of(&progress)).await;
    let calls = bot.settle_through_time().await;
    let edit = progress_updates(&calls, &progress).last().copied().unwrap().clone();
    assert!(TestBot::text_of(&edit).contains("⏸ paused"));
    assert_eq!(TestBot::buttons_of(&edit), vec!["exec:resume:1", "exec:rollback:1"]);

    bot.click(QUINN, "exec:continue:1", &ts_of(&gate)).await;
    let calls = bot.settle_through_time().await;
    assert!(ephemerals_to(&calls, QUINN)[0].contains("You need the *ops* role to press Continue"));
    bot.click(OLGA, "exec:continue:1", &ts_of(&gate)).await;
    let calls = bot.settle_through_time().await;
    assert!(
        !calls
            .iter()
            .any(|c| TestBot::text_of(c).contains("Switch all traffic: traffic")),
        "still paused"
    );
    let edit = progress_updates(&calls, &progress).last().copied().unwrap().clone();
    assert!(TestBot::text_of(&edit).contains("✅ Confirm the switch"));

    bot.click(OSCAR, "exec:resume:1", &ts_of(&progress)).await;
    let calls = bot.settle_through_time().await;
    find(&calls, "📋 REL-1 · payments 2.1.0 released (simulated)");
    bot.click(OSCAR, "exec:rollback:1", &ts_of(&progress)).await;
    let calls = bot.settle_through_time().await;
    assert!(ephemerals_to(&calls, OSCAR)[0]
        .contains("REL-1's release has ended (✅ completed); Rollback no longer applies."));
    bot.finish().await;
}

#[tokio::test]
async fn a_rollback_button_returns_traffic_to_the_old_version() {
    let config = team_config().replace("plan = \"canary\"", "plan = \"blue-green\"");
    let bot = TestBot::with("en", &config).await;
    let calls = release(&bot).await;
    let progress = find(&calls, "— Blue-green release (simulated)").clone();
    let gate = find(&calls, "✋ REL-1 · Confirm the switch").clone();
    assert!(TestBot::text_of(&latest(&calls, &progress)).contains("new 0% · old 100%"));

    // Ops confirms: all traffic goes to the new version; the monitor's ten minutes begin.
    bot.click(OSCAR, "exec:continue:1", &ts_of(&gate)).await;
    let calls = bot.settle().await;
    let switched = TestBot::text_of(&latest(&calls, &progress));
    assert!(switched.contains("new 100% · old 0%"), "{switched}");
    assert!(switched.contains("🔵 Monitor 10 minutes"), "{switched}");

    // Rollback while it is watched: the traffic returns to the old version.
    bot.click(OSCAR, "exec:rollback:1", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    find(&calls, "📋 REL-1 · payments 2.1.0: release rolled back (simulated)");
    let back = TestBot::text_of(&latest(&calls, &progress));
    assert!(back.contains("new 0% · old 100%"), "{back}");
    assert!(TestBot::text_of(posts(&calls).last().unwrap()).contains("QC evaluation"));
    bot.finish().await;
}

#[tokio::test]
async fn a_finished_release_is_rolled_back_later_to_its_baseline() {
    let bot = TestBot::start().await;
    release(&bot).await; // REL-1: 2.1.0 released; then REL-2: 2.2.0
    let first = bot.submit_values(ALICE, &answers_with(&[("version", "2.2.0")])).await;
    let calls = bot.approve_to_release(&first).await;
    find(&calls, "📋 REL-2 · payments 2.2.0 released");

    bot.command(QUINN, "/release rollback REL-2").await;
    let calls = bot.settle_through_time().await;
    assert!(ephemerals_to(&calls, QUINN)[0].contains("You need the *ops* role to press Rollback on REL-2's release."));
    bot.command(OSCAR, "/release rollback REL-2 --to 99").await;
    let calls = bot.settle_through_time().await;
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("There is no baseline #99 recorded for payments in prod"));

    bot.command(OSCAR, "/release rollback REL-2").await;
    let calls = bot.settle_through_time().await;
    assert!(
        ephemerals_to(&calls, OSCAR)[0].contains("Rolling REL-2 back to baseline #3: redeploying version 2.1.0"),
        "{:?}",
        ephemerals_to(&calls, OSCAR)
    );
    let done = find(
        &calls,
        "↩️ REL-2 rolled back to baseline #3 (version 2.1.0): version 2.1.0 redeployed",
    );
    assert!(TestBot::text_of(done).contains("traffic back to the old version"));
    assert!(TestBot::text_of(done).contains(&format!("Asked for by <@{OSCAR}>")));
    let progress = calls
        .iter()
        .rev()
        .find(|c| c.method == "chat.update" && TestBot::text_of(c).contains("REL-2 · payments 2.2.0"))
        .unwrap();
    assert!(
        TestBot::text_of(progress).contains("new 0% · old 100%"),
        "{}",
        TestBot::text_of(progress)
    );
    // Any recorded baseline may be the target, and it can be run again.
    bot.command(OSCAR, "/release rollback REL-2 --to 2").await;
    let calls = bot.settle_through_time().await;
    find(&calls, "↩️ REL-2 rolled back to baseline #2 (version 2.1.0)");
    bot.command(OSCAR, "/release show REL-2").await;
    let show = ephemerals_to(&bot.settle_through_time().await, OSCAR).pop().unwrap();
    assert_eq!(
        show.matches(&format!("<@{OSCAR}> rolled the release back")).count(),
        2,
        "{show}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn releases_speak_chinese_too() {
    let bot = TestBot::with("zh-CN", &with_sim("new_error_rate = 8.0")).await;
    let calls = release(&bot).await;
    let alert = find(&calls, "🚨 REL-1 · 观察 5 分钟 失败");
    insta::assert_json_snapshot!("zh_alert_rollback", snapshot_body(&alert.body));
    assert!(TestBot::text_of(alert).contains("新版本成功率 92.0% &lt; 99.5%（旧版本 99.9%）"));
    let progress = find(&calls, "— 金丝雀发布（模拟）");
    let text = TestBot::text_of(&latest(&calls, progress));
    insta::assert_snapshot!(without_token(&text), @"
    *🚀 REL-1 · payments 2.1.0 — 金丝雀发布（模拟）*
    *状态*
    ↩️ 已回滚
    *流量*
    新版本 0% · 旧版本 100%
    *成功率*
    新版本 92.0% · 旧版本 99.9%
    *延迟*
    p95 新版本 120 ms · 旧版本 130 ms · p99 新版本 160 ms · 旧版本 173 ms
    *目标*
    ✅ web-1 · ✅ web-2
    *已耗时*
    0 秒
    ✅ 发布前检查（09:00–09:00） — 成功（模拟）
    ✅ 部署新版本（09:00–09:00） — 已将 2.1.0 部署到 2 个模拟目标，共 1 批
    ✅ 健康检查（09:00–09:00） — 成功（模拟）
    ✅ 自动化测试（09:00–09:00） — 成功（模拟）
    ✅ 切换 10% 流量（09:00–09:00） — 流量：新版本 10% · 旧版本 90%
    ❌ 观察 5 分钟（09:00–09:00） — 新版本成功率 92.0% &lt; 99.5%（旧版本 99.9%）
    ⚪ 切换 50% 流量
    ⚪ 观察 10 分钟
    ⚪ 切换 100% 流量
    ⚪ 观察 30 分钟
    ⚪ 下线旧版本
    ⚪ 发布报告
    ↩️ 回滚 — 流量已切回旧版本；旧版本已恢复
    ⚠️ 模拟：这些步骤运行在 releasebot 的模拟集群上，而不是你的服务器上。
    <http://127.0.0.1:3000/executions/1?t=[token]|发布页面>
    ");
    find(&calls, "发布已回滚（模拟）");
    bot.finish().await;
}

#[tokio::test]
async fn a_failing_host_stops_the_rollout_with_per_target_status() {
    let config = with_sim("failing_hosts = [\"web-3\"]").replace("plan = \"canary\"", "plan = \"rolling\"");
    let bot = TestBot::with("en", &config).await;
    let first = bot
        .submit_values(ALICE, &answers_with(&[("scope", "web-1,web-2,web-3")]))
        .await;
    let calls = bot.approve_to_release(&first).await;
    let alert = find(&calls, "🚨 REL-1 · Deploy in batches failed");
    let text = TestBot::text_of(alert);
    assert!(
        text.contains("deploy failed on web-3")
            && text.contains("[1/2] web-1 → ✓")
            && text.contains("[2/2] web-2,web-3 → ✗"),
        "{text}"
    );
    let progress = find(&calls, "— Rolling release (simulated)");
    let text = TestBot::text_of(&latest(&calls, progress));
    assert!(
        text.contains("✅ web-1 · ❌ web-2 · ❌ web-3"),
        "per-target status: {text}"
    );
    assert!(text.contains("⏸ paused"), "{text}");
    bot.finish().await;
}

#[tokio::test]
async fn releases_go_to_the_chosen_environment_and_its_baselines_are_listed() {
    let config = team_config()
        .replace(
            "  { id = \"notes\", label = { en = \"Notes\", zh-CN = \"备注\" }, kind = \"multiline\", required = false },",
            "  { id = \"notes\", label = \"Notes\", kind = \"multiline\", required = false },\n  { id = \"environment\", label = \"Environment\", kind = \"environment\" },",
        )
        + "\n[[applications]]\nname = \"payments\"\nenvironments = [\"staging\", \"prod\"]\n";
    let bot = TestBot::with("en", &config).await;
    bot.command(ALICE, "/release new").await;
    bot.settle_through_time().await;
    let modal = bot.last_modal();
    let mut values = valid_release(MD5);
    values.push(("environment", "qa"));
    let r = bot.submit(ALICE, &modal, &values).await;
    assert_eq!(
        r.json()["errors"]["environment"],
        "Unknown environment. Known: staging, prod."
    );
    values.pop();
    values.push(("environment", "Staging"));
    bot.submit(ALICE, &modal, &values).await;
    let calls = bot.settle_through_time().await;
    let calls = bot.approve_to_release(posts(&calls)[0]).await;
    find(&calls, "📋 REL-1 · payments 2.1.0 released");

    bot.command(OSCAR, "/release baselines payments staging").await;
    let list = ephemerals_to(&bot.settle_through_time().await, OSCAR).pop().unwrap();
    // The ticket's scope names two hosts: two replicas, on the simulated fleet.
    insta::assert_snapshot!(without_token(&list), @"
    *Baselines of payments in staging*
    #2 · after REL-1 · version 2.1.0 · 2 replicas · config - · 2026-11-21 09:45 UTC (simulated)
    #1 · before REL-1 · version unknown · 0 replicas · config - · 2026-11-21 09:00 UTC (simulated)
    ");
    bot.command(OSCAR, "/release baselines payments").await;
    let list = ephemerals_to(&bot.settle_through_time().await, OSCAR).pop().unwrap();
    assert!(
        list.contains("No baselines are recorded for payments in prod yet."),
        "{list}"
    );
    bot.command(OSCAR, "/release baselines").await;
    let usage = ephemerals_to(&bot.settle_through_time().await, OSCAR).pop().unwrap();
    insta::assert_snapshot!(without_token(&usage), @"
    *Which application? Give its name, like payments.*
    Usage: `/release baselines APPLICATION [ENVIRONMENT]`
    ");
    bot.finish().await;
}

/// The README's canary shape: weights set by a `script`, an ops gate, then a `sim`
/// monitor judging the new version.
fn scripted_canary(weight_file: &std::path::Path) -> String {
    let command = format!("echo $RELEASEBOT_WEIGHT > {}", weight_file.display());
    format!(
        r#"{team}
[plans.scripted]
name = "Scripted canary"
template = "CANARY"
steps = [
  {{ id = "deploy", name = "Deploy", type = "DEPLOY" }},
  {{ id = "shift-10", name = "Shift 10%", type = "TRAFFIC_SHIFT", weight = 10, provider = "script", command = "{command}", on_failure = "rollback" }},
  {{ id = "gate", name = "Watch it?", type = "APPROVAL_GATE", provider = "builtin", role = "ops" }},
  {{ id = "watch", name = "Watch 5 minutes", type = "MONITOR", duration_secs = 300, thresholds = {{ min_success_rate = 99.5 }}, on_failure = "rollback" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100, provider = "script", command = "{command}", on_failure = "rollback" }},
]

[sim]
new_error_rate = 5.0
"#,
        team = team_config().replace("plan = \"canary\"", "plan = \"scripted\"")
    )
}

#[tokio::test]
async fn a_canary_whose_traffic_a_script_shifts_is_judged_and_rolled_back_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let weight = dir.path().join("weight");
    let bot = TestBot::with("en", &scripted_canary(&weight)).await;
    let calls = release(&bot).await;
    let progress = find(&calls, "— Scripted canary").clone();
    let shown = TestBot::text_of(&latest(&calls, &progress));
    assert!(
        shown.contains("new 10% · old 90%"),
        "the script's shift is recorded: {shown}"
    );
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "10");

    bot.click(OSCAR, "exec:continue:1", &ts_of(&progress)).await;
    let calls = bot.settle().await;
    let alert = TestBot::text_of(find(&calls, "🚨 REL-1 · Watch 5 minutes failed"));
    assert!(alert.contains("new version success 95.0% &lt; 99.5%"), "{alert}");
    let last = TestBot::text_of(&latest(&calls, &progress));
    insta::assert_snapshot!(without_token(&last), @"
    *🚀 REL-1 · payments 2.1.0 — Scripted canary (simulated)*
    *Status*
    ↩️ rolled back
    *Traffic*
    new 0% · old 100%
    *Success rate*
    new 95.0% · old 99.9%
    *Latency*
    p95 new 120 ms · old 130 ms · p99 new 160 ms · old 173 ms
    *Targets*
    ✅ web-1 · ✅ web-2
    *Elapsed*
    3s
    ✅ Deploy (09:00–09:00) — deployed 2.1.0 to 2 simulated target(s) in 1 batch(es)
    ✅ Shift 10% (09:00–09:00) — exit code 0
    ✅ Watch it? (09:00–09:00)
    ❌ Watch 5 minutes (09:00–09:00) — new version success 95.0% &lt; 99.5% (old 99.9%)
    ⚪ Shift 100%
    ↩️ Rollback — traffic back to the old version
    ⚠️ Simulated: these steps ran on releasebot's simulated fleet, not on your servers.
    <http://127.0.0.1:3000/executions/1?t=[token]|Release page>
    ");
    assert!(
        !calls.iter().any(|c| TestBot::text_of(c).contains("new 100%")),
        "never promoted"
    );
    // Traffic went back through the script that shifted it.
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "0");
    bot.finish().await;
}

/// A split that lasted only until the monitor judged it is still shown: on the release
/// page's traffic chart, whose line names every split it passed through.
#[tokio::test]
async fn a_split_a_script_set_is_shown_on_the_page_even_when_it_lasted_a_moment() {
    let dir = tempfile::tempdir().unwrap();
    let weight = dir.path().join("weight");
    let config = scripted_canary(&weight).replace(
        "  {{ id = \"gate\", name = \"Watch it?\", type = \"APPROVAL_GATE\", provider = \"builtin\", role = \"ops\" }},\n",
        "",
    );
    let config = config.replace(
        "  { id = \"gate\", name = \"Watch it?\", type = \"APPROVAL_GATE\", provider = \"builtin\", role = \"ops\" },\n",
        "",
    );
    assert!(!config.contains("Watch it?"), "{config}");
    let bot = TestBot::with("en", &config).await;
    let calls = release(&bot).await;
    find(&calls, "🚨 REL-1 · Watch 5 minutes failed");
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "0");
    let path = bot
        .app
        .state
        .bot
        .links
        .path(releasebot::chat::links::Page::Execution(1));
    let page = bot.raw_get(&path).await;
    let traffic = page
        .split("<path class=\"new\"")
        .nth(1)
        .and_then(|p| p.split("<title>").nth(1))
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(traffic, "new version: 0% → 10% → 0%", "{page}");
    bot.finish().await;
}

#[tokio::test]
async fn time_passes_only_where_the_test_lets_it() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let start = bot.clock.now_ms();
    let calls = approve(&bot, OLGA, &posts(&calls)[0].clone(), &[("release_summary", "go")]).await;
    // The canary runs up to its first monitor window and waits there: settling moved the
    // clock no further than paced deliveries needed, nowhere near five minutes.
    let progress = find(&calls, "— Canary release (simulated)").clone();
    let waiting = TestBot::text_of(&latest(&calls, &progress));
    assert!(waiting.contains("🔵 Monitor 5 minutes"), "{waiting}");
    assert!(bot.clock.now_ms() - start < 60_000);
    assert!(!calls.iter().any(|c| TestBot::text_of(c).contains("📋 REL-1")));
    // One explicit step: the clock jumps to the monitor's next sample.
    let next = bot.advance_to_next_due().await.expect("the monitor waits for a time");
    assert!(next > start && bot.clock.now_ms() == next);
    // Letting all the time pass runs the release to its report.
    let calls = bot.settle_through_time().await;
    find(&calls, "📋 REL-1 · payments 2.1.0 released (simulated)");
    bot.finish().await;
}
