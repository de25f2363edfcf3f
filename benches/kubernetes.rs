//! Kubernetes releases at volume: 200 rolling releases in flight at once against the
//! tests' fake API server, each rollout taking `ROLLOUT_MS` of wall time, as a cluster's
//! would. Reports the API requests each release made per step and per minute of waiting
//! (the provider polls every 2 s, up to every 15 s as the wait grows: no polling storm),
//! the wall time against the rollout's own, and the executor's step overhead.
//!
//! `cargo bench --bench kubernetes [-- RELEASES [ROLLOUT_MS]]`

#[path = "../tests/common/fake_argo.rs"]
mod fake_argo;
#[path = "../tests/common/fake_kubernetes.rs"]
mod fake_kubernetes;

#[path = "common/releases.rs"]
mod releases;

use releasebot::app::App;
use releasebot::clock::SystemClock;
use releasebot::config::{Config, Settings, DEFAULT_CONFIG};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the fake needs from its crate: serving a router on a free port.
async fn serve_fake(app: axum::Router) -> std::net::SocketAddr {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("binding the fake API server: {e}"),
    };
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn plan(url: &str) -> String {
    let k8s = format!(
        "provider = \"kubernetes\", namespace = \"bench\", deployment = \"{{application}}\", container = \"app\", api_url = \"{url}\", token_env = \"RELEASEBOT_BENCH_KUBE_TOKEN\""
    );
    format!(
        r#"
[services.bench]
name = "Bench"
flow = "app-release"
plan = "bench"

[plans.bench]
name = "Rolling on Kubernetes"
template = "ROLLING"
steps = [
  {{ id = "deploy", name = "Deploy", type = "DEPLOY", {k8s}, timeout = "10m" }},
  {{ id = "health", name = "Health", type = "HEALTH_CHECK", {k8s}, timeout = "10m" }},
]
"#
    )
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<u64>().ok());
    let n = args.next().unwrap_or(200) as usize;
    let rollout_ms = args.next().unwrap_or(60_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::env::set_var("RELEASEBOT_BENCH_KUBE_TOKEN", "bench-token");
        let (url, cluster) = fake_kubernetes::start().await;
        {
            let mut c = cluster.lock().map_err(|_| anyhow::anyhow!("the fake's lock"))?;
            c.rollout = Duration::from_millis(rollout_ms);
            for i in 0..n {
                let name = format!("bench-{i:04}");
                c.deployments.insert(
                    ("bench".into(), name.clone()),
                    fake_kubernetes::deployment("bench", &name, "app", "registry.example.com/bench:2.0.0", 3),
                );
            }
        }
        let dir = tempfile::tempdir()?;
        let mut settings = Settings::defaults();
        settings.database_url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let config = Config::parse(&format!("{DEFAULT_CONFIG}\n{}", plan(&url))).map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = App::build(&settings, config, Arc::new(SystemClock)).await?;
        let bot = &app.state.bot;
        let plan = bot
            .config
            .plans
            .get("bench")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no bench plan"))?;
        releases::in_flight(bot, n, "2.1.0", &plan).await?;

        use sqlx::Row;
        let completed = || async {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM executions WHERE status = 'COMPLETED'")
                .fetch_one(&bot.store.read)
                .await?
                .try_get("n")?;
            anyhow::Ok(n as usize)
        };
        // The executor's worker, as `serve` runs it: each execution moves when it is due
        // (a rollout's next look), in the meantime nothing runs.
        let start = Instant::now();
        let limit = Duration::from_millis(rollout_ms) + Duration::from_secs(300);
        while completed().await? < n {
            anyhow::ensure!(start.elapsed() < limit, "not done after {limit:?}");
            app.executor.drain(releasebot::executor::Wait::All).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall = start.elapsed().as_secs_f64();
        let calls = cluster.lock().map_err(|_| anyhow::anyhow!("the fake's lock"))?.calls.clone();
        let count = |method: &str, part: &str| {
            calls
                .iter()
                .filter(|(m, p, _)| m == method && p.contains(part))
                .count()
        };
        let gets = count("GET", "/deployments/");
        let patches = count("PATCH", "/deployments/");
        let lists = count("GET", "/pods");
        let minutes = rollout_ms as f64 / 60_000.0;
        println!(
            "releases: {n} rolling releases on Kubernetes (fake API server), each rollout {:.0} s, all in flight at once; all {n} COMPLETED",
            rollout_ms as f64 / 1000.0
        );
        println!(
            "wall time: {wall:.1} s for a {:.1} s rollout ({:+.1} s: the last look's interval and the health check)",
            rollout_ms as f64 / 1000.0,
            wall - rollout_ms as f64 / 1000.0
        );
        println!(
            "API requests: {} in all, {:.1} per release ({:.2} patches, {:.1} deployment reads, {:.1} pod lists)",
            calls.len(),
            calls.len() as f64 / n as f64,
            patches as f64 / n as f64,
            gets as f64 / n as f64,
            lists as f64 / n as f64
        );
        println!(
            "while waiting: {:.1} deployment reads per release per minute of rollout; {:.1} requests/s against the API server from all {n}",
            gets as f64 / n as f64 / minutes,
            calls.len() as f64 / wall
        );
        if let Some((buckets, total)) = bot.metrics.buckets(releasebot::executor::STEP_OVERHEAD) {
            let q = |q: f64| {
                buckets
                    .iter()
                    .find(|(_, at_most)| *at_most as f64 >= q * total as f64)
                    .map(|(bound, _)| format!("≤ {:.2} ms", bound * 1000.0))
                    .unwrap_or_else(|| "above 1 s".into())
            };
            println!("step overhead ({total} step changes): p50 {}, p99 {}", q(0.5), q(0.99));
        }
        Ok(())
    })
}
