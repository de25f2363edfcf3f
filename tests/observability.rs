//! What an operator sees: `/metrics` in the Prometheus text format (parsed by a Prometheus
//! parser), the names the README promises, and the HTTP middleware (a panicking handler
//! answers 500 and the server goes on).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use tower::ServiceExt;

#[tokio::test]
async fn metrics_parse_every_family_has_help_and_the_readme_names_are_served() {
    let bot = TestBot::start().await;
    bot.command(ALICE, "/release help").await;
    bot.settle().await;
    let text = bot.raw_get("/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    assert!(!scrape.samples.is_empty());
    // Every family carries its help.
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for f in &families {
        assert!(text.contains(&format!("# HELP {f} ")), "no help for {f}");
    }
    // The README's names are what is served, from the start (at zero where nothing happened).
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("GET /metrics")
        .nth(1)
        .and_then(|s| s.split("- SIGINT").next())
        .unwrap();
    let named: Vec<&str> = section
        .split('`')
        .filter(|w| w.starts_with("releasebot_") || w.starts_with("process_"))
        .map(|w| w.split('{').next().unwrap())
        .collect();
    assert!(named.len() >= 20, "{named:?}");
    let served: std::collections::BTreeSet<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    for name in named {
        let base = name.trim_end_matches("_total");
        assert!(
            served.contains(name) || served.contains(base) || families.contains(name),
            "the README names {name}, which /metrics does not serve"
        );
    }
    // Requests are timed per route; the build is named.
    assert!(
        text.contains("releasebot_http_request_duration_seconds_bucket{route=\"/slack/commands\",le=\"0.005\"}"),
        "{text}"
    );
    assert!(text.contains("releasebot_build_info{version=\""), "{text}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    assert!(text.contains("releasebot_outbox_lag_seconds 0"), "{text}");
    bot.finish().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let bot = TestBot::start().await;
    let routes = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("a bug in a handler");
            }
            "never"
        }),
    );
    let app = releasebot::server::layered(routes, bot.app.state.clone());
    for _ in 0..2 {
        let res = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(
        bot.app.state.bot.metrics.counter(
            "releasebot_http_requests_total",
            &[("route", "/boom"), ("status", "500")]
        ),
        2,
        "counted as errors"
    );
    assert_eq!(bot.raw_get("/healthz").await, "ok");
    bot.finish().await;
}

#[tokio::test]
async fn a_failing_firing_is_counted_with_its_last_error_until_it_fires() {
    let bot = TestBot::start().await;
    let store = bot.app.state.bot.store.clone();
    let now = bot.clock.now_ms();
    // An SLA reminder whose stored round is unreadable: its handler fails every time.
    let mut conn = store.pool.acquire().await.unwrap();
    releasebot::store::firings::set(&mut conn, "sla:7", now, "not-a-round")
        .await
        .unwrap();
    drop(conn);
    let metrics = bot.raw_get("/metrics").await;
    assert!(
        metrics.contains("releasebot_scheduler_failing_firings{job=\"sla_reminder\"} 0.0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("releasebot_scheduler_last_error{"), "{metrics}");

    assert_eq!(bot.app.scheduler.drain().await.unwrap(), 1);
    let metrics = bot.raw_get("/metrics").await;
    assert!(
        metrics.contains("releasebot_scheduler_failing_firings{job=\"sla_reminder\"} 1.0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("releasebot_scheduler_failing_firings{job=\"lane_timer\"} 0.0\n"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("releasebot_scheduler_last_error{job=\"sla_reminder\",error=\"bad reminder not-a-round\"} 1.0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("releasebot_scheduler_firings_total{result=\"error\"} 1\n"),
        "{metrics}"
    );

    // Once its firing is gone (here: planned anew, as a handler does), nothing is failing.
    let mut conn = store.pool.acquire().await.unwrap();
    releasebot::store::firings::cancel(&mut conn, "sla:7").await.unwrap();
    drop(conn);
    let metrics = bot.raw_get("/metrics").await;
    assert!(
        metrics.contains("releasebot_scheduler_failing_firings{job=\"sla_reminder\"} 0.0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("releasebot_scheduler_last_error{"), "{metrics}");
    bot.finish().await;
}
