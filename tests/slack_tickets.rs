//! Transcript tests: release tickets walked through their flow in (fake) Slack.

mod common;

use axum::http::StatusCode;
use common::*;

#[tokio::test]
async fn the_default_flow_from_submission_to_qc_sign_off() {
    let bot = TestBot::start().await;

    // Product opens the form.
    let r = bot.command(ALICE, "/release new").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body, "",
        "the command is acknowledged at once; the work happens after"
    );
    let calls = bot.settle_through_time().await;
    assert_eq!(calls.len(), 1);
    let modal = bot.last_modal();
    assert_eq!(modal["callback_id"], "new:app-release");
    insta::assert_json_snapshot!("en_submission_form", modal);
    assert_eq!(calls[0].auth.as_deref(), Some("Bearer xoxb-test-token"));

    // Product submits; the test stage is posted to the channel and mentions the testers.
    let r = bot.submit(ALICE, &modal, &valid_release(MD5)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ""));
    let calls = bot.settle_through_time().await;
    let test_msg = posts(&calls)[0].clone();
    assert_eq!(test_msg.body["channel"], CHANNEL);
    let text = TestBot::text_of(&test_msg);
    assert!(text.contains("REL-1 · App release — Test confirmation"), "{text}");
    assert!(
        text.contains(&format!("<@{TOM}> <@{TINA}>")),
        "testers are mentioned: {text}"
    );
    assert!(
        text.contains("Fixes &lt;!channel&gt; &amp; the refund bug"),
        "user text is escaped: {text}"
    );
    assert_eq!(TestBot::buttons_of(&test_msg), vec!["approve:1:1:0", "reject:1:1:0"]);
    insta::assert_json_snapshot!("en_stage_test", snapshot_body(&test_msg.body));
    assert!(ephemerals_to(&calls, ALICE)[0].contains("REL-1 is submitted: waiting for *Test confirmation*"));

    // Test confirms with the evaluation result and a summary.
    let calls = approve(
        &bot,
        TOM,
        &test_msg,
        &[
            ("evaluation", "pass"),
            ("test_summary", "All 412 cases green"),
            ("comment", "ship it"),
        ],
    )
    .await;
    let edited = updates(&calls)[0];
    assert_eq!(ts_of(edited), ts_of(&test_msg), "the same message is edited in place");
    let text = TestBot::text_of(edited);
    assert!(
        text.contains(&format!("Approved by <@{TOM}> at 2026-11-21 09:00 UTC: ship it")),
        "{text}"
    );
    assert!(
        TestBot::buttons_of(edited).is_empty(),
        "buttons are gone after the decision"
    );
    let coordinate = posts(&calls)[0].clone();
    let text = TestBot::text_of(&coordinate);
    assert!(text.contains("Resource coordination"), "{text}");
    assert!(
        text.contains("All 412 cases green"),
        "earlier stage inputs are shown: {text}"
    );

    // Ops coordinates (no form), then releases with a summary.
    let calls = approve(&bot, OSCAR, &coordinate, &[]).await;
    assert_eq!(updates(&calls).len(), 1);
    let release = posts(&calls)[0].clone();
    assert!(TestBot::text_of(&release).contains("— Release"));
    let mut calls = approve(
        &bot,
        OLGA,
        &release,
        &[("release_summary", "Rolled to 2 hosts, no errors")],
    )
    .await;
    // The approved release stage runs the canary plan (on the simulated fleet) to the end,
    // its monitors' windows passing on the test clock.
    calls.extend(bot.settle_through_time().await);
    let progress = posts(&calls)[0].clone();
    assert!(TestBot::text_of(&progress).contains("🚀 REL-1 · payments 2.1.0 — Canary release (simulated)"));
    let report = posts(&calls)
        .into_iter()
        .find(|c| TestBot::text_of(c).contains("release report") || TestBot::text_of(c).contains("📋"))
        .expect("a report");
    assert!(
        TestBot::text_of(report).contains("📋 REL-1 · payments 2.1.0 released (simulated)"),
        "{}",
        TestBot::text_of(report)
    );
    let qc = posts(&calls).last().copied().unwrap().clone();
    assert!(
        TestBot::text_of(&qc).contains("QC evaluation"),
        "{}",
        TestBot::text_of(&qc)
    );

    // QC signs off: the ticket is complete.
    let calls = approve(&bot, QUINN, &qc, &[("qc_evaluation", "good")]).await;
    let done = posts(&calls)[0].clone();
    assert!(
        TestBot::text_of(&done).contains("REL-1 · App release: released, and every stage is approved"),
        "{}",
        TestBot::text_of(&done)
    );
    insta::assert_json_snapshot!("en_outcome_released", snapshot_body(&done.body));

    // The audit trail shows every step.
    bot.command(ALICE, "/release show REL-1").await;
    let calls = bot.settle_through_time().await;
    let show = ephemerals_to(&calls, ALICE).pop().unwrap();
    insta::assert_snapshot!(without_token(&show), @r"
    *REL-1 · App release — released*
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
    All 412 cases green
    *Release summary*
    Rolled to 2 hosts, no errors
    *Release evaluation*
    good
    *Timeline*
    2026-11-21 09:00 UTC · <@UALICE> submitted the request (slack)
    2026-11-21 09:00 UTC · <@UTOM> approved Test confirmation: ship it (slack)
    2026-11-21 09:00 UTC · <@UOSCAR> approved Resource coordination (slack)
    2026-11-21 09:00 UTC · <@UOLGA> approved Release (slack)
    2026-11-21 09:45 UTC · the release completed
    2026-11-21 09:45 UTC · <@UQUINN> approved QC evaluation (slack)
    Submitted by <@UALICE> at 2026-11-21 09:00 UTC
    <http://127.0.0.1:3000/tickets/1?t=[token]|Ticket page>
    ");
    assert_eq!(bot.outbox_failures().await, Vec::<String>::new());
    bot.finish().await;
}

#[tokio::test]
async fn the_default_flow_speaks_chinese() {
    let bot = TestBot::with("zh-CN", &team_config()).await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    insta::assert_json_snapshot!("zh_submission_form", modal);
    bot.submit(ALICE, &modal, &valid_release(MD5)).await;
    let calls = bot.settle().await;
    let test_msg = posts(&calls)[0].clone();
    insta::assert_json_snapshot!("zh_stage_test", snapshot_body(&test_msg.body));
    let calls = approve(
        &bot,
        TOM,
        &test_msg,
        &[("evaluation", "pass"), ("test_summary", "全部通过")],
    )
    .await;
    insta::assert_json_snapshot!("zh_stage_test_approved", snapshot_body(&updates(&calls)[0].body));
    bot.click(NOBODY, "approve:1:2:0", &ts_of(posts(&calls)[0])).await;
    let calls = bot.settle().await;
    assert!(
        ephemerals_to(&calls, NOBODY)[0].contains("你需要 *ops* 角色"),
        "{:?}",
        ephemerals_to(&calls, NOBODY)
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_user_without_the_role_is_refused_and_nothing_changes() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    for user in [NOBODY, OSCAR] {
        bot.click(user, "approve:1:1:0", &ts_of(&test_msg)).await;
        let calls = bot.settle().await;
        assert_eq!(calls.len(), 1, "only the refusal: {calls:?}");
        let refusal = &ephemerals_to(&calls, user)[0];
        assert!(
            refusal.contains(
                "You need the *test* role for payments to decide *Test confirmation* of REL-1. Nothing was changed."
            ),
            "{refusal}"
        );
    }
    // Reject is refused the same way, before any form opens.
    bot.click(NOBODY, "reject:1:1:0", &ts_of(&test_msg)).await;
    let calls = bot.settle().await;
    assert!(calls.iter().all(|c| c.method == "chat.postEphemeral"));
    bot.command(ALICE, "/release show REL-1").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, ALICE)[0].contains("waiting for Test confirmation"));
    bot.finish().await;
}

#[tokio::test]
async fn separation_of_duties_stops_the_submitter_approving() {
    let bot = TestBot::start().await;
    // Alice also becomes a tester.
    bot.command(ADA, &format!("/role add test <@{ALICE}|alice>")).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, ADA)[0].contains(&format!("<@{ALICE}> now holds *test*")));
    let test_msg = bot.submit_release(ALICE, MD5).await;
    bot.click(ALICE, "approve:1:1:0", &ts_of(&test_msg)).await;
    let calls = bot.settle().await;
    assert_eq!(calls.len(), 1);
    assert!(
        ephemerals_to(&calls, ALICE)[0].contains("You submitted REL-1; this flow needs someone else to approve it.")
    );
    bot.finish().await;
}

#[tokio::test]
async fn a_rejection_goes_back_to_the_submitter_who_resubmits() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;

    bot.click(TOM, "reject:1:1:0", &ts_of(&test_msg)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    assert_eq!(modal["callback_id"], "reject:1:1:0");
    // An empty reason is refused inline.
    let r = bot.submit(TOM, &modal, &[("comment", "  ")]).await;
    assert_eq!(r.json()["response_action"], "errors");
    assert_eq!(r.json()["errors"]["comment"], "A reason is required to reject.");
    assert!(bot.settle().await.is_empty());
    let r = bot
        .submit(TOM, &modal, &[("comment", "MD5 does not match the package")])
        .await;
    assert_eq!(r.body, "");
    let calls = bot.settle().await;
    let edited = updates(&calls)[0];
    assert!(TestBot::text_of(edited).contains(&format!(
        "Rejected by <@{TOM}> at 2026-11-21 09:00 UTC: MD5 does not match the package"
    )));
    let back = posts(&calls)[0].clone();
    let text = TestBot::text_of(&back);
    assert!(
        text.contains(&format!("REL-1 · App release was sent back to <@{ALICE}>")),
        "{text}"
    );
    assert_eq!(TestBot::buttons_of(&back), vec!["resubmit:1:1", "withdraw:1"]);
    insta::assert_json_snapshot!("en_sent_back", snapshot_body(&back.body));

    // Only the submitter may resubmit.
    bot.click(TOM, "resubmit:1:1", &ts_of(&back)).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, TOM)[0].contains("Only the submitter of REL-1"));

    bot.click(ALICE, "resubmit:1:1", &ts_of(&back)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    assert_eq!(modal["callback_id"], "resubmit:1:1");
    let md5_block = modal["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "md5")
        .unwrap();
    assert_eq!(md5_block["element"]["initial_value"], MD5, "the form is pre-filled");
    let fixed = "fedcba9876543210fedcba9876543210";
    bot.submit(ALICE, &modal, &valid_release(fixed)).await;
    let calls = bot.settle().await;
    let edited = updates(&calls)[0];
    assert_eq!(ts_of(edited), ts_of(&back));
    assert!(TestBot::text_of(edited).contains(&format!("Resubmitted by <@{ALICE}>")));
    let again = posts(&calls)[0].clone();
    assert!(TestBot::text_of(&again).contains(fixed));
    assert_eq!(
        TestBot::buttons_of(&again),
        vec!["approve:1:1:1", "reject:1:1:1"],
        "a new round"
    );

    // The old message's buttons are stale now.
    bot.click(TOM, "approve:1:1:0", &ts_of(&test_msg)).await;
    let calls = bot.settle().await;
    assert!(
        ephemerals_to(&calls, TOM)[0].contains("Too late: *Test confirmation* of REL-1 was already rejected"),
        "{:?}",
        ephemerals_to(&calls, TOM)
    );
    let calls = approve(&bot, TINA, &again, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    assert!(TestBot::text_of(posts(&calls)[0]).contains("Resource coordination"));
    bot.finish().await;
}

#[tokio::test]
async fn a_double_click_makes_one_transition_and_tells_the_loser() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let coordinate = posts(&calls)[0].clone();
    let action = "approve:1:2:0";

    // Two ops people (and one of them twice) press Approve before anything is processed.
    for user in [OSCAR, OLGA, OSCAR] {
        assert_eq!(
            bot.click(user, action, &ts_of(&coordinate)).await.status,
            StatusCode::OK
        );
    }
    let calls = bot.settle().await;
    assert_eq!(updates(&calls).len(), 1, "one edit");
    assert_eq!(posts(&calls).len(), 1, "one next stage");
    let loser = ephemerals_to(&calls, OLGA);
    assert!(
        loser[0].contains(&format!(
            "Too late: *Resource coordination* of REL-1 was already approved by <@{OSCAR}>"
        )),
        "{loser:?}"
    );
    assert_eq!(ephemerals_to(&calls, OSCAR).len(), 1, "the second click is told too");

    // Two testers submitting their forms at once on the next ticket.
    let test_msg = bot.submit_release(ALICE, MD5).await;
    for user in [TOM, TINA] {
        bot.click(user, "approve:2:1:0", &ts_of(&test_msg)).await;
    }
    bot.settle().await;
    let modal = bot.last_modal();
    for user in [TOM, TINA] {
        bot.submit(user, &modal, &[("evaluation", "pass"), ("test_summary", "ok")])
            .await;
    }
    let calls = bot.settle().await;
    assert_eq!(updates(&calls).len(), 1);
    assert_eq!(posts(&calls).len(), 1);
    assert!(ephemerals_to(&calls, TINA)[0].contains(&format!("already approved by <@{TOM}>")));
    bot.finish().await;
}

#[tokio::test]
async fn retried_deliveries_are_processed_once() {
    let bot = TestBot::start().await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    let body = bot.interaction_body(bot.submission_payload(ALICE, &modal, &valid_release(MD5)));
    for retry in ["", "1", "2"] {
        let extra = if retry.is_empty() {
            vec![]
        } else {
            vec![
                ("x-slack-retry-num", retry.to_string()),
                ("x-slack-retry-reason", "http_timeout".to_string()),
            ]
        };
        let r = bot
            .signed(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body.clone(),
                &extra,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let calls = bot.settle().await;
    assert_eq!(posts(&calls).len(), 1, "one ticket, one stage message");
    bot.command(ALICE, "/release list all").await;
    let calls = bot.settle().await;
    let list = &ephemerals_to(&calls, ALICE)[0];
    assert!(list.contains("REL-1") && !list.contains("REL-2"), "{list}");

    // Events API retries carry the same event_id.
    let event = serde_json::json!({
        "type": "event_callback", "event_id": "Ev42",
        "event": { "type": "app_mention", "user": ALICE, "channel": CHANNEL, "text": "<@UBOT> release show REL-1" }
    });
    for retry in ["0", "1"] {
        bot.signed(
            "/slack/events",
            "application/json",
            event.to_string().into_bytes(),
            &[("x-slack-retry-num", retry.to_string())],
        )
        .await;
    }
    let calls = bot.settle().await;
    assert_eq!(ephemerals_to(&calls, ALICE).len(), 1);
    bot.finish().await;
}

#[tokio::test]
async fn bad_missing_and_stale_signatures_get_401_and_change_nothing() {
    let bot = TestBot::start().await;
    let body = bot.command_body(ALICE, "/release", "new");
    let (ts, sig) = bot.sign(&body);
    let old_ts = (bot.clock.now_ms() / 1000 - 301).to_string();
    let old_sig = releasebot::chat::slack::verify::sign(SECRET, &old_ts, &body);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("x-slack-request-timestamp", ts.clone())],
        vec![
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-signature", "v0=deadbeef".into()),
        ],
        vec![
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-signature", sig.replace('a', "b")),
        ],
        vec![("x-slack-request-timestamp", old_ts), ("x-slack-signature", old_sig)],
    ];
    for headers in cases {
        let r = bot
            .raw(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                body.clone(),
                &headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
    }
    // A valid signature over a different body is refused too.
    let r = bot
        .raw(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            b"payload=%7B%7D".to_vec(),
            &[("x-slack-request-timestamp", ts), ("x-slack-signature", sig)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bot.inbox_rows().await, 0, "nothing recorded");
    assert!(bot.settle().await.is_empty(), "nothing sent");
    let metrics = bot.raw_get("/metrics").await;
    assert!(
        metrics.contains("releasebot_http_requests_total{route=\"/slack/commands\",status=\"401\"} 5"),
        "{metrics}"
    );
    bot.finish().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let bot = TestBot::start().await;
    let mut body = bot.command_body(ALICE, "/release", "new");
    body.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let r = bot
        .signed("/slack/commands", "application/x-www-form-urlencoded", body, &[])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(bot.inbox_rows().await, 0);
    bot.finish().await;
}

#[tokio::test]
async fn invalid_fields_come_back_inline_and_nothing_is_created() {
    let bot = TestBot::start().await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    let r = bot
        .submit(
            ALICE,
            &modal,
            &[
                ("application", "payments"),
                ("version", " "),
                ("package_url", "ftp://repo/x.tgz"),
                ("md5", "abc"),
                ("planned_at", "2020-01-01 10:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    insta::assert_json_snapshot!("en_inline_errors", r.json());
    assert_eq!(bot.inbox_rows().await, 1, "only the /release new command was recorded");
    assert!(bot.settle().await.is_empty());
    bot.finish().await;
}

/// The form declares the product's own limit on every text input, and a decision's comment
/// over it is refused in the form, not after.
#[tokio::test]
async fn every_input_declares_the_limit_the_product_validates() {
    let bot = TestBot::start().await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let limits: Vec<(String, serde_json::Value)> = bot.last_modal()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["element"]["type"] == "plain_text_input")
        .map(|b| {
            (
                b["block_id"].as_str().unwrap().to_string(),
                b["element"]["max_length"].clone(),
            )
        })
        .collect();
    assert!(!limits.is_empty());
    for (id, max) in &limits {
        assert_eq!(
            max,
            &serde_json::json!(releasebot::domain::fields::MAX_FIELD_LEN),
            "{id}"
        );
    }
    bot.settle().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    bot.click(TOM, "reject:1:1:0", &ts_of(&test_msg)).await;
    bot.settle().await;
    let modal = bot.last_modal();
    let long = "x".repeat(releasebot::domain::fields::MAX_FIELD_LEN + 1);
    let r = bot.submit(TOM, &modal, &[("comment", &long)]).await;
    insta::assert_json_snapshot!(r.json(), @r#"
    {
      "errors": {
        "comment": "Reason is too long (at most 2000 characters)."
      },
      "response_action": "errors"
    }
    "#);
    assert!(bot.settle().await.is_empty(), "nothing was decided");
    bot.finish().await;
}

#[tokio::test]
async fn a_slack_429_delays_the_message_then_it_is_delivered() {
    let bot = TestBot::start().await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.slack.fail_next(
        "chat.postMessage",
        common::fake_slack::Failure::RateLimited { retry_after_secs: 7 },
    );
    bot.submit(ALICE, &modal, &valid_release(MD5)).await;
    bot.app.inbox.drain().await.unwrap();
    // First attempt: 429. Nothing more is tried in that channel before Retry-After.
    let mut rounds = vec![];
    for _ in 0..3 {
        rounds.push(bot.app.outbox.round().await.unwrap());
    }
    assert_eq!(rounds.iter().map(|r| r.retrying).sum::<usize>(), 1);
    assert_eq!(bot.slack.calls_of("chat.postMessage").len(), 1);
    assert_eq!(
        bot.slack.calls_of("chat.postEphemeral").len(),
        1,
        "other conversations are not held up by the limited channel"
    );
    bot.clock.advance_ms(6_900);
    assert_eq!(
        bot.app.outbox.round().await.unwrap().attempted(),
        0,
        "still waiting for Retry-After"
    );
    bot.clock.advance_ms(100);
    assert_eq!(bot.app.outbox.round().await.unwrap().delivered, 1);
    let posts = bot.slack.calls_of("chat.postMessage");
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].body, posts[1].body,
        "the same message, delivered late, not lost"
    );
    let metrics = bot.raw_get("/metrics").await;
    assert!(
        metrics.contains("releasebot_outbox_retries_total{platform=\"slack\",reason=\"rate_limited\"} 1"),
        "{metrics}"
    );
    bot.finish().await;
}

/// (That edits of one message coalesce while it waits is `store::outbox_coalesces_edits_of_one_message`.)
#[tokio::test]
async fn slack_outages_are_retried_with_a_doubling_backoff() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    // Slack goes down while Tom approves and the next stages move on.
    bot.slack
        .fail_next("chat.update", common::fake_slack::Failure::ServerError);
    bot.slack
        .fail_next("chat.update", common::fake_slack::Failure::ServerError);
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let updates: Vec<_> = calls.iter().filter(|c| c.method == "chat.update").collect();
    assert_eq!(
        updates.len(),
        3,
        "two failures, then success: {:#?}",
        calls.iter().map(|c| (&c.method, &c.response)).collect::<Vec<_>>()
    );
    // Each retry waits twice as long as the one before: 1 s, then 2 s.
    let waits: Vec<i64> = updates.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert_eq!(waits, vec![1_000, 2_000]);
    assert!(TestBot::text_of(updates[2]).contains("Approved by"));
    assert_eq!(posts(&calls).len(), 1, "the next stage still arrives");
    bot.finish().await;
}

#[tokio::test]
async fn withdraw_and_cancel() {
    let bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    bot.command(TOM, "/release cancel REL-1").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, TOM)[0].contains("Only the submitter of REL-1"));
    bot.command(ALICE, "/release cancel REL-1 wrong build").await;
    let calls = bot.settle().await;
    let edited = updates(&calls)[0];
    assert_eq!(ts_of(edited), ts_of(&test_msg));
    assert!(TestBot::text_of(edited).contains(&format!("Withdrawn by <@{ALICE}>")));
    assert!(TestBot::buttons_of(edited).is_empty());
    assert!(TestBot::text_of(posts(&calls)[0]).contains("was withdrawn by"));
    bot.click(TOM, "approve:1:1:0", &ts_of(&test_msg)).await;
    let calls = bot.settle().await;
    assert!(
        ephemerals_to(&calls, TOM)[0].contains("REL-1 is withdrawn and can no longer change."),
        "{:?}",
        ephemerals_to(&calls, TOM)
    );
    // Admins may cancel anyone's ticket.
    bot.submit_release(ALICE, MD5).await;
    bot.command(ADA, "/release cancel REL-2").await;
    let calls = bot.settle().await;
    assert_eq!(updates(&calls).len(), 1);
    bot.finish().await;
}

#[tokio::test]
async fn commands_answer_bad_arguments_with_usage() {
    let bot = TestBot::start().await;
    let cases = [
        (
            "/release show abc",
            "`abc` is not a ticket id; ticket ids look like REL-42.",
            "Usage: `/release show REL-ID`",
        ),
        ("/release show", "Which ticket?", "Usage: `/release show REL-ID`"),
        (
            "/release ship it",
            "`ship` is not a `/release` command.",
            "See `/release help`.",
        ),
        (
            "/release list soon",
            "`soon` is not a list",
            "Usage: `/release list [mine|pending|all]`",
        ),
        (
            "/role add qc @bob",
            "`@bob` is not a mention",
            "Usage: `/role add ROLE @user [application]`",
        ),
        ("/release show REL-99", "There is no ticket REL-99.", ""),
        (
            "/release new Hotfix",
            "Unknown service \"Hotfix\". Available: App release.",
            "",
        ),
    ];
    for (line, want, usage) in cases {
        bot.command(ADA, line).await;
        let calls = bot.settle().await;
        let text = &ephemerals_to(&calls, ADA)[0];
        assert!(text.contains(want) && text.contains(usage), "{line}: {text}");
    }
    bot.command(ADA, "/release help").await;
    let calls = bot.settle().await;
    let help = &ephemerals_to(&calls, ADA)[0];
    insta::assert_snapshot!("en_help", help);
    bot.command(NOBODY, "/release new").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, NOBODY)[0].contains("You need the *product* role to submit App release requests."));
    bot.finish().await;
}

#[tokio::test]
async fn roles_are_managed_by_admins() {
    let bot = TestBot::start().await;
    bot.command(NOBODY, &format!("/role add qc <@{NOBODY}>")).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, NOBODY)[0].contains("Only members of the *admin* role can manage roles."));
    bot.command(ADA, "/role add opz <@UX>").await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, ADA)[0].contains("Unknown role \"opz\". Roles: admin, ops, product, qc, test, tl."));
    bot.command(ADA, "/role add qc <@UNEWQC|nq> payments").await;
    bot.command(ADA, "/role add qc <@UNEWQC|nq> payments").await;
    let calls = bot.settle().await;
    let replies = ephemerals_to(&calls, ADA);
    assert!(replies[0].contains("<@UNEWQC> now holds *qc* for payments."));
    assert!(replies[1].contains("already holds"));
    bot.command(ADA, "/role list").await;
    let calls = bot.settle().await;
    let list = &ephemerals_to(&calls, ADA)[0];
    insta::assert_snapshot!(without_token(list), @"
    *Roles and their members*
    *admin — Manage roles*
    <@UADA>
    *ops — Operations: coordinate resources and release*
    <@UOSCAR>, <@UOLGA>
    *product — Product owners: submit release requests*
    <@UALICE>
    *qc — Quality control: evaluate the release*
    <@UQUINN>, <@UNEWQC> (only payments)
    *test — Testers: confirm the version's quality*
    <@UTOM>, <@UTINA>
    *tl — Tech leads*
    nobody yet
    ");
    bot.command(ADA, &format!("/role remove qc <@{QUINN}>")).await;
    bot.command(ADA, "/role remove qc <@UNEWQC> payments").await;
    let calls = bot.settle().await;
    let replies = ephemerals_to(&calls, ADA);
    assert!(replies[0].contains("through the configuration file"));
    assert!(replies[1].contains("no longer holds *qc* for payments"));
    bot.finish().await;
}

#[tokio::test]
async fn anyone_may_bootstrap_roles_while_there_is_no_admin() {
    let bot = TestBot::with("en", releasebot::config::DEFAULT_CONFIG).await;
    bot.command(NOBODY, &format!("/role add admin <@{NOBODY}>")).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, NOBODY)[0].contains(&format!("<@{NOBODY}> now holds *admin*")));
    bot.command(ALICE, &format!("/role add product <@{ALICE}>")).await;
    let calls = bot.settle().await;
    assert!(ephemerals_to(&calls, ALICE)[0].contains("Only members of the *admin* role"));
    bot.finish().await;
}

#[tokio::test]
async fn url_verification_and_ops_endpoints() {
    let bot = TestBot::start().await;
    let r = bot
        .signed(
            "/slack/events",
            "application/json",
            br#"{"type":"url_verification","challenge":"c-123"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.json()["challenge"], "c-123");
    assert_eq!(bot.raw_get("/healthz").await, "ok");
    assert_eq!(bot.raw_get("/readyz").await, "ready");
    bot.submit_release(ALICE, MD5).await;
    let metrics = bot.raw_get("/metrics").await;
    for needle in [
        "releasebot_transitions_total{action=\"submitted\"} 1",
        "releasebot_outbox_depth 0",
        "releasebot_outbox_delivery_latency_seconds_count",
        "releasebot_http_requests_total{route=\"/slack/interactions\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    bot.finish().await;
}

#[tokio::test]
async fn private_answers_fall_back_to_a_direct_message_outside_the_bots_channels() {
    let bot = TestBot::start().await;
    bot.slack
        .fail_next("chat.postEphemeral", common::fake_slack::Failure::Api("not_in_channel"));
    bot.command(ALICE, "/release list").await;
    let calls = bot.settle().await;
    let dm = posts(&calls);
    assert_eq!(dm.len(), 1, "{calls:?}");
    assert_eq!(dm[0].body["channel"], ALICE);
    assert!(TestBot::text_of(dm[0]).contains("Tickets waiting for a decision"));
    assert_eq!(bot.outbox_failures().await, Vec::<String>::new());
    bot.finish().await;
}

#[tokio::test]
async fn countersign_stages_need_two_different_approvers() {
    let config = team_config().replace(
        "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\n",
        "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\napprovals_required = 2\n",
    );
    assert_ne!(config, team_config());
    let bot = TestBot::with("en", &config).await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let coordinate = posts(&calls)[0].clone();
    assert!(TestBot::text_of(&coordinate).contains("0 of 2 approvals"));

    let calls = approve(&bot, OSCAR, &coordinate, &[]).await;
    assert!(posts(&calls).is_empty(), "the stage still waits");
    let edited = updates(&calls)[0];
    assert!(TestBot::text_of(edited).contains(&format!("1 of 2 approvals: <@{OSCAR}>")));
    assert_eq!(
        TestBot::buttons_of(edited),
        vec!["approve:1:2:0", "reject:1:2:0"],
        "buttons stay for the second approver"
    );
    assert!(ephemerals_to(&calls, OSCAR)[0].contains("Your approval of REL-1 is recorded (1 of 2)."));

    let calls = approve(&bot, OSCAR, &coordinate, &[]).await;
    assert!(ephemerals_to(&calls, OSCAR)[0]
        .contains("You already approved this stage of REL-1; it needs 2 different approvers."));

    let calls = approve(&bot, OLGA, &coordinate, &[]).await;
    assert!(TestBot::buttons_of(updates(&calls)[0]).is_empty());
    assert!(TestBot::text_of(posts(&calls)[0]).contains("— Release"));
    bot.finish().await;
}

#[tokio::test]
async fn internal_errors_give_the_user_a_reference_and_change_nothing() {
    let mut bot = TestBot::start().await;
    let test_msg = bot.submit_release(ALICE, MD5).await;
    // The flow of REL-1 disappears from the configuration.
    bot.restart_with(
        &team_config()
            .replace("flow = \"app-release\"", "flow = \"renamed\"")
            .replace("[flows.app-release]", "[flows.renamed]")
            .replace("[[flows.app-release.stages]]", "[[flows.renamed.stages]]"),
    )
    .await;
    bot.click(TOM, "approve:1:1:0", &ts_of(&test_msg)).await;
    let calls = bot.settle().await;
    let answer = &ephemerals_to(&calls, TOM)[0];
    assert!(answer.contains("Something went wrong on our side (ref `"), "{answer}");
    assert_eq!(updates(&calls).len(), 0);
}

#[tokio::test]
async fn the_dry_run_shows_steps_gates_thresholds_targets_and_duration() {
    for (locale, name) in [("en", "en_dry_run"), ("zh-CN", "zh_dry_run")] {
        let bot = TestBot::with(locale, &team_config()).await;
        bot.submit_release(ALICE, MD5).await;
        bot.command(TOM, "/release plan REL-1").await;
        let calls = bot.settle().await;
        let text = TestBot::text_of(&calls[0]);
        insta::assert_snapshot!(name, text);
    }
    let bot = TestBot::start().await;
    bot.submit_release(ALICE, MD5).await;
    bot.command(TOM, "/release plan REL-1").await;
    let text = TestBot::text_of(&bot.settle().await[0]);
    for want in [
        "dry run of Canary release (CANARY)",
        "5. *Shift 10% of traffic* — TRAFFIC_SHIFT via sim (simulated) · new version at 10%",
        "observe 5m · success ≥ 99.5%, p95 ≤ 800 ms, at most 0.5 points below the old version",
        "retry 2× (30s apart, doubling), then pause and alert",
        "web-1,web-2",
        "about 57m 1s, plus the time people take at approval gates",
        "not on your servers",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    bot.command(TOM, "/release plan REL-7").await;
    assert!(TestBot::text_of(&bot.settle().await[0]).contains("There is no ticket REL-7."));
    bot.finish().await;
}

/// When Slack's history cannot be read (no history scope), a post whose answer was lost is
/// sent again and the channel holds two copies; a click on the copy releasebot does not
/// know takes that copy's buttons away, and counts as on the real message.
#[tokio::test]
async fn a_surplus_copy_loses_its_buttons_when_clicked() {
    let mut bot = TestBot::start().await;
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    let modal = bot.last_modal();
    bot.submit(ALICE, &modal, &valid_release(MD5)).await;
    bot.app.inbox.drain().await.unwrap();
    bot.slack
        .fail_next("chat.postMessage", common::fake_slack::Failure::AcceptThenHang);
    let outbox = bot.app.outbox.clone();
    let round = tokio::spawn(async move { outbox.round().await });
    bot.slack.wait_for("chat.postMessage", 1).await;
    round.abort();
    let _ = round.await;
    bot.restart_with(&team_config()).await;
    bot.slack.fail_next(
        "conversations.history",
        common::fake_slack::Failure::Api("missing_scope"),
    );
    bot.settle().await;
    let copies = bot.slack.calls_of("chat.postMessage");
    assert_eq!(
        copies.len(),
        2,
        "the answer was lost and the history unreadable: sent again"
    );
    let (stale, live) = (&copies[0], &copies[1]);
    assert_ne!(ts_of(stale), ts_of(live));

    bot.click(TOM, "approve:1:1:0", &ts_of(stale)).await;
    let calls = bot.settle().await;
    let retired = updates(&calls)
        .into_iter()
        .find(|u| ts_of(u) == ts_of(stale))
        .expect("the stale copy is edited");
    assert!(TestBot::buttons_of(retired).is_empty(), "no live buttons on the copy");
    assert!(TestBot::text_of(retired).contains("posted twice by mistake"));
    // The click opened the test stage's form as on the real message; the decision goes there.
    let modal = bot.last_modal();
    bot.submit(TOM, &modal, &[("evaluation", "pass"), ("test_summary", "ok")])
        .await;
    let calls = bot.settle().await;
    let decided = updates(&calls)
        .into_iter()
        .find(|u| ts_of(u) == ts_of(live))
        .expect("the real message is edited");
    assert!(TestBot::text_of(decided).contains("Approved by"));
    bot.finish().await;
}

#[tokio::test]
async fn a_form_that_can_no_longer_open_asks_the_person_to_press_again() {
    let bot = TestBot::start().await;
    // Slack's trigger lives 3 seconds; this one was gone when the form went out.
    bot.slack
        .fail_next("views.open", common::fake_slack::Failure::Api("expired_trigger_id"));
    bot.command(ALICE, "/release new").await;
    let calls = bot.settle().await;
    let told = ephemerals_to(&calls, ALICE);
    assert_eq!(told.len(), 1, "{calls:?}");
    assert!(
        told[0].contains("The form could not be opened in time. Please run the command or press the button again."),
        "{told:?}"
    );
    assert_eq!(bot.outbox_failures().await, Vec::<String>::new());
    // Pressed again, the form opens.
    bot.command(ALICE, "/release new").await;
    bot.settle().await;
    assert_eq!(bot.slack.calls_of("views.open").len(), 2);
    assert_eq!(bot.last_modal()["type"], "modal");
    bot.finish().await;
}

#[tokio::test]
async fn a_typed_member_id_cannot_ping_a_channel() {
    let bot = TestBot::start().await;
    bot.command(ADA, "/role add qc slack:U9X><!channel>").await;
    let calls = bot.settle_through_time().await;
    let reply = &ephemerals_to(&calls, ADA)[0];
    assert!(reply.contains("is not a user id of its platform"), "{reply}");
    assert!(!reply.contains("<!channel>"), "the reply itself is escaped: {reply}");
    bot.command(ADA, "/role list").await;
    let list = ephemerals_to(&bot.settle_through_time().await, ADA)[0].clone();
    assert!(!list.contains("U9X"), "nothing was added: {list}");

    // An id stored before ids were checked is named as text, never spliced into a mention.
    {
        let mut conn = bot.app.state.bot.store.pool.acquire().await.unwrap();
        let member = releasebot::store::roles::Member {
            role: "qc".into(),
            actor: releasebot::domain::Actor::new("slack", "U9X><!channel>"),
            application: String::new(),
        };
        let by = releasebot::domain::Actor::new("slack", ADA);
        releasebot::store::roles::add(&mut conn, &member, &by, bot.clock.now_ms())
            .await
            .unwrap();
    }
    let test_msg = bot.submit_release(ALICE, MD5).await;
    let calls = approve(&bot, TOM, &test_msg, &[("evaluation", "pass"), ("test_summary", "ok")]).await;
    let calls = approve(&bot, OSCAR, &posts(&calls)[0].clone(), &[]).await;
    let release = posts(&calls)[0].clone();
    let mut all = calls.clone();
    all.extend(approve(&bot, OLGA, &release, &[("release_summary", "go")]).await);
    all.extend(bot.settle_through_time().await);
    let qc = posts(&all)
        .into_iter()
        .find(|c| TestBot::text_of(c).contains("QC evaluation"))
        .expect("the QC stage is posted")
        .clone();
    let text = serde_json::to_string(&qc.body).unwrap();
    assert!(!text.contains("<!channel>"), "no live ping: {text}");
    assert!(text.contains("&lt;!channel&gt;"), "named as text: {text}");
    bot.finish().await;
}

#[tokio::test]
#[should_panic(expected = "the test ended with deliveries nobody looked at")]
async fn the_harness_fails_a_test_that_leaves_a_delivery_unread() {
    let bot = TestBot::start().await;
    // Help is answered through the outbox; the test never settles to read it.
    bot.command(ALICE, "/release help").await;
    bot.finish().await;
}
