//! Load benchmarks of the runtime, each measured against references built and run here,
//! on the same machine, in the same run: a minimal handler (axum, the Slack HMAC check and
//! one INSERT of the body through sqlx's `Any` driver, as releasebot's store uses it) and
//! the strongest reasonable one, a typed-pool handler (sqlx's own SQLite or PostgreSQL
//! driver, the click parsed, one prepared INSERT of its fields). Servers run as their own processes (the release binaries); this process
//! generates the load and plays Slack.
//!
//! `cargo bench --bench load -- [ack|e2e|drain|rollback|all] [--postgres URL]`
//!
//! - `ack`: signed clicks acknowledged per second and their p99, releasebot (workers
//!   running) against the minimal handler.
//! - `e2e`: clicks on real stage decisions, each committed and its messages delivered to
//!   the fake Slack, against the minimal handler's rate.
//! - `drain`: the rate at which a backlog of 1,000 and of 20,000 acknowledged decisions
//!   is worked off.
//! - `rollback`: with 100 executions inside a 10-minute script step, the time from a
//!   Rollback click on another execution to its traffic reversed (20 tries).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use releasebot::chat::slack::verify;
use releasebot::config::Config;
use releasebot::domain::ticket::TicketStatus;
use releasebot::domain::Actor;
use releasebot::store::{self, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-signing-secret";
const OPS: &str = "UOSCAR";
const CONNECTIONS: usize = 64;

/// Where a server runs: `serve-baseline`, `serve-baseline-pg`.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-baseline") {
        return serve_baseline(&args[1], &args[2]);
    }
    if args.first().map(String::as_str) == Some("serve-typed") {
        return serve_typed(&args[1], &args[2]);
    }
    if args.first().map(String::as_str) == Some("serve-empty") {
        return serve_empty(&args[1]);
    }
    let what = args
        .iter()
        .find(|a| ["ack", "e2e", "drain", "rollback", "surplus", "all"].contains(&a.as_str()))
        .cloned()
        .unwrap_or_else(|| "all".into());
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1).cloned());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        println!(
            "machine: {} cores",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        if what == "ack" || what == "all" {
            ack(None).await?;
            if let Some(pg) = &postgres {
                ack(Some(pg)).await?;
            }
        }
        if what == "e2e" || what == "all" {
            e2e(None).await?;
            if let Some(pg) = &postgres {
                e2e(Some(pg)).await?;
            }
        }
        if what == "drain" || what == "all" {
            drain(None).await?;
            if let Some(pg) = &postgres {
                drain(Some(pg)).await?;
            }
        }
        if what == "rollback" || what == "all" {
            rollback().await?;
        }
        if what == "surplus" {
            surplus().await?;
        }
        anyhow::Ok(())
    })
}

// ------------------------------------------------------------------ the minimal handler

/// axum + the Slack HMAC check + one INSERT per request: the reference every figure is
/// compared with.
fn serve_baseline(listen: &str, database: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        sqlx::any::install_default_drivers();
        let pg = database.starts_with("postgres");
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(if pg { 24 } else { 1 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !pg {
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(database)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS clicks (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
            .execute(&pool)
            .await
            .or_else(|_| {
                futures::executor::block_on(
                    sqlx::query(
                        "CREATE TABLE IF NOT EXISTS clicks (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
                    )
                    .execute(&pool),
                )
            })?;
        async fn click(State(pool): State<sqlx::AnyPool>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
            let now = chrono::Utc::now().timestamp();
            if verify::verify(
                SECRET,
                h("x-slack-request-timestamp"),
                h("x-slack-signature"),
                &body,
                now,
            )
            .is_err()
            {
                return StatusCode::UNAUTHORIZED;
            }
            match sqlx::query("INSERT INTO clicks (body) VALUES ($1)")
                .bind(String::from_utf8_lossy(&body).to_string())
                .execute(&pool)
                .await
            {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        let app = Router::new().route("/slack/interactions", post(click)).with_state(pool);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// The strongest reasonable reference: the same work as the minimal handler done the way
/// a careful hand-written service would — sqlx's own driver for the database (a typed
/// pool, no `Any` layer), the click parsed and one prepared `INSERT` of its fields (not
/// the whole body).
fn serve_typed(listen: &str, database: &str) -> anyhow::Result<()> {
    #[derive(Clone)]
    enum Pool {
        Sqlite(sqlx::SqlitePool),
        Postgres(sqlx::PgPool),
    }
    const SQL: &str = "INSERT INTO clicks (action, user_id, channel, ts) VALUES ($1, $2, $3, $4)";
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let pool = if database.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(24).connect(database).await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS clicks (id BIGSERIAL PRIMARY KEY, action TEXT NOT NULL, user_id TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            Pool::Postgres(pool)
        } else {
            let options: sqlx::sqlite::SqliteConnectOptions = database.parse()?;
            let options = options
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS clicks (id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, user_id TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            Pool::Sqlite(pool)
        };
        async fn click(State(pool): State<Pool>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
            let now = chrono::Utc::now().timestamp();
            if verify::verify(SECRET, h("x-slack-request-timestamp"), h("x-slack-signature"), &body, now).is_err() {
                return StatusCode::UNAUTHORIZED;
            }
            #[derive(serde::Deserialize)]
            struct Form {
                payload: String,
            }
            let Ok(form) = serde_urlencoded::from_bytes::<Form>(&body) else {
                return StatusCode::BAD_REQUEST;
            };
            let Ok(p) = serde_json::from_str::<serde_json::Value>(&form.payload) else {
                return StatusCode::BAD_REQUEST;
            };
            let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let (action, user, channel, ts) = (
                field(&p["actions"][0]["action_id"]),
                field(&p["user"]["id"]),
                field(&p["container"]["channel_id"]),
                field(&p["container"]["message_ts"]),
            );
            let done = match &pool {
                Pool::Sqlite(pool) => sqlx::query(SQL)
                    .bind(action)
                    .bind(user)
                    .bind(channel)
                    .bind(ts)
                    .execute(pool)
                    .await
                    .map(|_| ()),
                Pool::Postgres(pool) => sqlx::query(SQL)
                    .bind(action)
                    .bind(user)
                    .bind(channel)
                    .bind(ts)
                    .execute(pool)
                    .await
                    .map(|_| ()),
            };
            match done {
                Ok(()) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        let app = Router::new().route("/slack/interactions", post(click)).with_state(pool);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// The ceiling of this machine's load generator: a server that answers every request at
/// once and does nothing. A reference that reaches it measures the generator, not itself.
fn serve_empty(listen: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let app = Router::new().route("/slack/interactions", post(|| async { StatusCode::OK }));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// A server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(38_080)
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the server did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs `command` as a server on `port`; returns once it answers.
async fn start_server(mut command: Command, port: u16) -> anyhow::Result<(Server, u16)> {
    let server = Server(command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?);
    wait_listening(port).await?;
    Ok((server, port))
}

/// A reference server of this bench (`serve-baseline`, `serve-typed`) on `database`.
async fn start_reference(which: &str, database: &str) -> anyhow::Result<(Server, u16)> {
    let port = free_port();
    let mut command = Command::new(std::env::current_exe()?);
    command.args([which, &format!("127.0.0.1:{port}"), database]);
    start_server(command, port).await
}

/// The release binary serving `database` with this configuration, Slack at `slack`.
async fn start_releasebot(database: &str, config: &std::path::Path, slack: &str) -> anyhow::Result<(Server, u16)> {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_releasebot"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database)
        .env("RELEASEBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("RELEASEBOT_CONFIG", config)
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_API_URL", slack)
        .env("RUST_LOG", "warn");
    start_server(command, port).await
}

// ------------------------------------------------------------------ Slack, as a sink

/// A stand-in for the Slack Web API that answers each call as Slack does and only counts
/// them (the tests' fake records every call; at 10,000 calls a second that recording would
/// be the bottleneck). Its capacity is measured by [`sink_capacity`].
#[derive(Clone, Default)]
struct Sink {
    posts: Arc<std::sync::atomic::AtomicUsize>,
    edits: Arc<std::sync::atomic::AtomicUsize>,
    other: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink {
    async fn start(&self) -> String {
        async fn call(
            State(sink): State<Sink>,
            axum::extract::Path(method): axum::extract::Path<String>,
            body: Bytes,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            use std::sync::atomic::Ordering::Relaxed;
            #[derive(serde::Deserialize)]
            struct Req {
                #[serde(default)]
                channel: String,
                #[serde(default)]
                ts: String,
            }
            let req: Req = serde_json::from_slice(&body).unwrap_or(Req {
                channel: String::new(),
                ts: String::new(),
            });
            let answer = match method.as_str() {
                "chat.postMessage" => {
                    let n = sink.posts.fetch_add(1, Relaxed);
                    let ts = format!("{}.{:06}", chrono::Utc::now().timestamp(), n % 1_000_000);
                    json!({ "ok": true, "channel": req.channel, "ts": ts, "message": { "ts": ts } })
                }
                "chat.update" => {
                    sink.edits.fetch_add(1, Relaxed);
                    json!({ "ok": true, "channel": req.channel, "ts": req.ts, "message": { "text": "" } })
                }
                "chat.postEphemeral" => {
                    sink.other.fetch_add(1, Relaxed);
                    json!({ "ok": true, "message_ts": "1.1" })
                }
                _ => {
                    sink.other.fetch_add(1, Relaxed);
                    json!({ "ok": true })
                }
            };
            axum::Json(answer).into_response()
        }
        let app = Router::new()
            .route("/api/{method}", axum::routing::any(call))
            .with_state(self.clone());
        format!("http://{}/api", serve_fake(app).await)
    }

    fn delivered(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        self.posts.load(Relaxed) + self.edits.load(Relaxed)
    }
}

/// How many calls a second the Slack sink answers when nothing else runs.
async fn sink_capacity() -> anyhow::Result<f64> {
    let sink = Sink::default();
    let url = sink.start().await;
    let port: u16 = url::Url::parse(&url)?.port().unwrap_or(80);
    let body = json!({ "channel": "C1", "text": "x", "blocks": [] })
        .to_string()
        .into_bytes();
    let reqs: Vec<_> = (0..20_000)
        .map(|_| (body.clone(), String::new(), String::new()))
        .collect();
    let m = load_path(port, "/api/chat.postMessage", "application/json", Arc::new(reqs)).await;
    Ok(m.rate)
}

// ------------------------------------------------------------------ load

/// A signed Slack button press on the message `ts` of channel `channel`.
fn click_body(action: &str, channel: &str, ts: &str, n: usize) -> (Vec<u8>, String, String) {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": OPS, "username": "oscar" },
        "trigger_id": format!("trigger.{n}"),
        "channel": { "id": channel },
        "container": { "type": "message", "message_ts": ts, "channel_id": channel },
        "message": { "ts": ts },
        "actions": [{ "type": "button", "action_id": action, "value": action, "block_id": "b", "action_ts": format!("{n}") }],
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap_or_default()
        .into_bytes();
    let ts_now = chrono::Utc::now().timestamp().to_string();
    let sig = verify::sign(SECRET, &ts_now, &body);
    (body, ts_now, sig)
}

/// What a load run measured.
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    secs: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Sends signed clicks over `CONNECTIONS` keep-alive connections as fast as answered.
async fn load(port: u16, requests: Arc<Vec<(Vec<u8>, String, String)>>) -> Measured {
    load_path(
        port,
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        requests,
    )
    .await
}

/// Sends `requests` to `path` over `CONNECTIONS` keep-alive connections as fast as answered.
async fn load_path(
    port: u16,
    path: &'static str,
    content_type: &'static str,
    requests: Arc<Vec<(Vec<u8>, String, String)>>,
) -> Measured {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS)
        .build_http();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next, requests) = (client.clone(), next.clone(), requests.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((body, ts, sig)) = requests.get(i) else { break };
                let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
                    .header("content-type", content_type)
                    .header("x-slack-request-timestamp", ts.as_str())
                    .header("x-slack-signature", sig.as_str())
                    .body(Full::new(Bytes::from(body.clone())))
                    .unwrap_or_default();
                let t = Instant::now();
                match client.request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            lat.extend(l);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    Measured {
        rate: lat.len() as f64 / secs,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        errors,
        secs,
    }
}

fn report(name: &str, m: &Measured) {
    println!(
        "  {name:<40} {:>8.0} req/s · p50 {:>6.2} ms · p99 {:>6.2} ms · {:.1} s{}",
        m.rate,
        m.p50_ms,
        m.p99_ms,
        m.secs,
        if m.errors > 0 {
            format!(" · {} errors", m.errors)
        } else {
            String::new()
        }
    );
}

// ------------------------------------------------------------------ databases and seeds

/// A fresh database: a SQLite file in `dir`, or a new PostgreSQL database.
async fn database(dir: &std::path::Path, name: &str, postgres: Option<&str>) -> anyhow::Result<String> {
    match postgres {
        None => Ok(format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("{name}.db")).display()
        )),
        Some(admin) => {
            sqlx::any::install_default_drivers();
            use sqlx::Connection;
            let mut conn = sqlx::AnyConnection::connect(admin).await?;
            let db = format!("rb_bench_{name}_{:08x}", rand::random::<u32>());
            sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await?;
            let mut url = url::Url::parse(admin)?;
            url.set_path(&format!("/{db}"));
            Ok(url.to_string())
        }
    }
}

/// The built-in configuration with these edits, each of which must find its text (a
/// change of the built-in configuration must not silently change what is measured).
fn edited(edits: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut text = releasebot::config::DEFAULT_CONFIG.to_string();
    for (from, to) in edits {
        anyhow::ensure!(text.contains(from), "the built-in configuration has no {from:?}");
        text = text.replace(from, to);
    }
    Ok(text)
}

/// The default flow with Oscar in ops (and an admin).
fn with_people() -> [(&'static str, String); 2] {
    [
        ("[roles.ops]\n", format!("[roles.ops]\nmembers = [\"slack:{OPS}\"]\n")),
        (
            "[roles.admin]\n",
            "[roles.admin]\nmembers = [\"slack:UADA\"]\n".to_string(),
        ),
    ]
}

/// The configuration every releasebot run uses: the default flow, Oscar in ops.
fn write_config(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let people = with_people();
    let text = edited(&people.each_ref().map(|(f, t)| (*f, t.as_str())))?;
    Config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = dir.join("releasebot.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `n` tickets waiting at the coordination stage (ops, no form), each in its own channel
/// with its stage message posted: one click each is a real decision.
async fn seed_decisions(database: &str, n: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let apps = vec!["payments".to_string(); n];
    Ok(seed_tickets(database, &apps)
        .await?
        .into_iter()
        .map(|(_, click)| click)
        .collect())
}

/// One ticket per application in `apps`, like [`seed_decisions`]; with each ticket's id.
async fn seed_tickets(database: &str, apps: &[String]) -> anyhow::Result<Vec<(i64, (String, String, String))>> {
    seed_tickets_in(database, apps, None).await
}

/// [`seed_tickets`], all in `channel` when one is given.
async fn seed_tickets_in(
    database: &str,
    apps: &[String],
    one_channel: Option<&str>,
) -> anyhow::Result<Vec<(i64, (String, String, String))>> {
    let store = Store::open(database).await?;
    let submitter = Actor::new("slack", "UALICE");
    let mut clicks = Vec::with_capacity(apps.len());
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = store.begin().await?;
    for (i, application) in apps.iter().enumerate() {
        let mut fields = BTreeMap::new();
        fields.insert("version".to_string(), "2.0.0".to_string());
        fields.insert("application".to_string(), application.clone());
        let channel = one_channel.map_or_else(|| format!("C{i:06}"), str::to_string);
        let t = store::tickets::insert(
            &mut tx,
            store::tickets::NewTicket {
                flow_id: "app-release",
                service: "app-release",
                application,
                status: TicketStatus::InApproval(2),
                submitter: &submitter,
                fields: &fields,
                channel: &channel,
                now,
            },
        )
        .await?;
        let ts = format!("{}.{i:06}", now / 1000);
        store::outbox::put_ref(
            &mut tx,
            &format!("t{}:r0:s2", t.id.0),
            &releasebot::chat::MessageRef {
                platform: "slack".into(),
                channel: channel.clone(),
                ts: ts.clone(),
            },
            now,
        )
        .await?;
        clicks.push((t.id.0, (format!("approve:{}:2:0", t.id.0), channel, ts)));
        if i % 1000 == 999 {
            tx.commit().await?;
            tx = store.begin().await?;
        }
    }
    tx.commit().await?;
    store.close().await;
    Ok(clicks)
}

/// Counts of the work releasebot has left: (inbox events waiting, outbox items waiting,
/// events handled).
async fn progress(store: &Store) -> anyhow::Result<(i64, i64, i64)> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM inbox WHERE status = 'pending') AS a,
                (SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')) AS b,
                (SELECT COUNT(*) FROM inbox WHERE status = 'done') AS c",
    )
    .fetch_one(&store.read)
    .await?;
    Ok((row.try_get("a")?, row.try_get("b")?, row.try_get("c")?))
}

/// Waits until `done` events are handled and nothing waits in the outbox; returns when
/// the events were handled and when the last message was delivered (from `start`).
async fn settled(store: &Store, done: i64, start: Instant) -> anyhow::Result<(f64, f64)> {
    let mut handled_at = None;
    loop {
        let (_, outbox, handled) = progress(store).await?;
        if handled >= done && handled_at.is_none() {
            handled_at = Some(start.elapsed().as_secs_f64());
        }
        if let (Some(h), 0) = (handled_at, outbox) {
            return Ok((h, start.elapsed().as_secs_f64()));
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(900),
            "not settled after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The average of a histogram on releasebot's `/metrics`.
async fn metric_average(port: u16, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |suffix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(value("sum")? / value("count")?.max(1.0))
}

// ------------------------------------------------------------------ scenarios

async fn baseline_rate(dir: &std::path::Path, postgres: Option<&str>, n: usize) -> anyhow::Result<Measured> {
    reference_rate("serve-baseline", dir, postgres, n).await
}

/// Clicks a second a reference server (`serve-baseline`, `serve-typed`) acknowledges.
async fn reference_rate(
    which: &str,
    dir: &std::path::Path,
    postgres: Option<&str>,
    n: usize,
) -> anyhow::Result<Measured> {
    let db = database(dir, which.trim_start_matches("serve-"), postgres).await?;
    let (_server, port) = start_reference(which, &db).await?;
    let reqs: Vec<_> = (0..n)
        .map(|i| click_body(&format!("approve:{i}:2:0"), "C1", "1.1", i))
        .collect();
    Ok(load(port, Arc::new(reqs)).await)
}

async fn ack(postgres: Option<&str>) -> anyhow::Result<()> {
    let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("\n## Acknowledgements of signed clicks ({backend}, {CONNECTIONS} connections)");
    let n = 20_000;
    let dir = tempfile::tempdir()?;
    let slack = Sink::default().start().await;
    let ceiling = reference_rate("serve-empty", dir.path(), None, n).await?;
    report("empty server (the generator's ceiling)", &ceiling);
    let base = baseline_rate(dir.path(), postgres, n).await?;
    report("minimal handler", &base);
    let typed = reference_rate("serve-typed", dir.path(), postgres, n).await?;
    report("typed-pool handler", &typed);
    let db = database(dir.path(), "releasebot", postgres).await?;
    let clicks = seed_decisions(&db, n).await?;
    let config = write_config(dir.path())?;
    let (_server, port) = start_releasebot(&db, &config, &slack).await?;
    let reqs: Vec<_> = clicks
        .iter()
        .enumerate()
        .map(|(i, (a, c, t))| click_body(a, c, t, i))
        .collect();
    let rb = load(port, Arc::new(reqs)).await;
    report("releasebot (workers running)", &rb);
    println!(
        "  ratio: rate {:.2}× the minimal handler's · p99 {:.2}× its p99",
        rb.rate / base.rate,
        rb.p99_ms / base.p99_ms
    );
    println!(
        "  ratio: rate {:.2}× the typed-pool handler's · p99 {:.2}× its p99",
        rb.rate / typed.rate,
        rb.p99_ms / typed.p99_ms
    );
    if let (Some(waited), Some(wrote)) = (
        metric_average(port, "releasebot_intake_writer_wait_seconds").await,
        metric_average(port, "releasebot_intake_write_seconds").await,
    ) {
        println!(
            "  a group commit of acknowledged events waited {:.2} ms for the writer and wrote in {:.2} ms, on average",
            waited * 1e3,
            wrote * 1e3
        );
    }
    Ok(())
}

async fn e2e(postgres: Option<&str>) -> anyhow::Result<()> {
    let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("\n## Clicks → committed decisions → delivered messages ({backend})");
    let n = 20_000;
    let dir = tempfile::tempdir()?;
    let sink = Sink::default();
    let slack = sink.start().await;
    println!(
        "  the Slack sink alone answers {:.0} calls/s on this machine",
        sink_capacity().await?
    );
    let base = baseline_rate(dir.path(), postgres, n).await?;
    report("minimal handler", &base);
    let typed = reference_rate("serve-typed", dir.path(), postgres, n).await?;
    report("typed-pool handler", &typed);
    let db = database(dir.path(), "releasebot", postgres).await?;
    let clicks = seed_decisions(&db, n).await?;
    let config = write_config(dir.path())?;
    let (_server, port) = start_releasebot(&db, &config, &slack).await?;
    let store = Store::connect(&db).await?;
    let reqs: Vec<_> = clicks
        .iter()
        .enumerate()
        .map(|(i, (a, c, t))| click_body(a, c, t, i))
        .collect();
    let start = Instant::now();
    let acked = load(port, Arc::new(reqs)).await;
    let (handled, delivered) = settled(&store, n as i64, start).await?;
    println!(
        "  releasebot: {n} clicks acknowledged in {:.1} s; all decided in {handled:.1} s ({:.0}/s); all {} messages delivered in {delivered:.1} s ({:.0} decisions/s end to end)",
        acked.secs,
        n as f64 / handled,
        sink.delivered(),
        n as f64 / delivered
    );
    println!(
        "  ratio: decisions delivered {:.2}× the minimal handler's rate · {:.2}× the typed-pool handler's",
        n as f64 / delivered / base.rate,
        n as f64 / delivered / typed.rate
    );
    for (name, what) in [
        (
            "releasebot_inbox_events_per_transaction",
            "events per handling transaction",
        ),
        (
            "releasebot_outbox_claimed_per_transaction",
            "messages per delivery claim",
        ),
        (
            "releasebot_outbox_recorded_per_transaction",
            "outcomes per recording transaction",
        ),
    ] {
        if let Some(avg) = metric_average(port, name).await {
            println!("  {what}: {avg:.1} on average");
        }
    }
    store.close().await;
    Ok(())
}

async fn drain(postgres: Option<&str>) -> anyhow::Result<()> {
    let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("\n## Draining a backlog of acknowledged decisions ({backend})");
    let mut rates = Vec::new();
    for n in [1_000usize, 20_000] {
        let dir = tempfile::tempdir()?;
        let slack = Sink::default().start().await;
        let db = database(dir.path(), &format!("drain{n}"), postgres).await?;
        let clicks = seed_decisions(&db, n).await?;
        let config = write_config(dir.path())?;
        // The backlog: acknowledged while no worker ran (recorded as the routes record them).
        {
            let store = Store::open(&db).await?;
            let events: Vec<store::inbox::NewEvent> = clicks
                .iter()
                .enumerate()
                .map(|(i, (a, c, t))| {
                    let ev = releasebot::chat::Inbound {
                        actor: Actor::new("slack", OPS),
                        actor_name: "oscar".into(),
                        channel: c.clone(),
                        trigger: Some(format!("trigger.{i}")),
                        reply: None,
                        kind: releasebot::chat::InboundKind::Action {
                            action: a.clone(),
                            message: Some(releasebot::chat::Location {
                                channel: c.clone(),
                                ts: t.clone(),
                            }),
                        },
                    };
                    store::inbox::NewEvent {
                        platform: "slack".into(),
                        dedupe_key: format!("slack:bench:{i}"),
                        order_key: releasebot::bot::order_key(&ev),
                        payload: serde_json::to_string(&ev).unwrap_or_default(),
                    }
                })
                .collect();
            for chunk in events.chunks(500) {
                store::inbox::insert_batch(&store, chunk, chrono::Utc::now().timestamp_millis()).await?;
            }
            store.close().await;
        }
        let (_server, _port) = start_releasebot(&db, &config, &slack).await?;
        // Timed from when the server answers (its start, migrations included, is not the
        // drain); what its workers handled meanwhile is left out of the rate.
        let start = Instant::now();
        let store = Store::connect(&db).await?;
        let (_, _, early) = progress(&store).await?;
        let (handled, delivered) = settled(&store, n as i64, start).await?;
        let rate = (n as i64 - early) as f64 / handled;
        println!(
            "  {n:>6} waiting: decided in {handled:.2} s ({rate:.0}/s), delivered in {delivered:.2} s ({early} handled while the process started)"
        );
        rates.push(rate);
        store.close().await;
    }
    println!(
        "  drain rate with 20,000 waiting is {:.0}% of the rate with 1,000",
        rates[1] / rates[0] * 100.0
    );
    Ok(())
}

/// The configuration of the rollback scenario: releases start when ops approve the
/// coordination stage and run a plan of scripts: a deploy that takes 10 minutes for the
/// `long-*` applications (and none for the others), a traffic shift to 10 % that writes
/// the weight to a file per application, and a gate that holds the release there.
fn write_rollback_config(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let d = dir.display();
    let plan = format!(
        r#"
[plans.bench]
name = "Bench plan"
template = "CUSTOM"
steps = [
  {{ id = "deploy", name = "Deploy", type = "DEPLOY", provider = "script", timeout_secs = 3600, command = 'case "$RELEASEBOT_APPLICATION" in long-*) echo $$ >> "{d}/pids"; exec sleep 600;; esac' }},
  {{ id = "shift-10", name = "Shift 10%", type = "TRAFFIC_SHIFT", weight = 10, provider = "script", command = 'echo "$RELEASEBOT_WEIGHT" > "{d}/traffic-$RELEASEBOT_APPLICATION.tmp" && mv "{d}/traffic-$RELEASEBOT_APPLICATION.tmp" "{d}/traffic-$RELEASEBOT_APPLICATION"' }},
  {{ id = "go", name = "Go on?", type = "APPROVAL_GATE", provider = "builtin", role = "ops" }},
  {{ id = "shift-100", name = "Shift 100%", type = "TRAFFIC_SHIFT", weight = 100 }},
]
"#
    );
    let people = with_people();
    let mut edits: Vec<(&str, &str)> = people.iter().map(|(f, t)| (*f, t.as_str())).collect();
    edits.extend([
        ("plan = \"canary\"", "plan = \"bench\""),
        ("starts_execution = true\n", ""),
        (
            "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\n",
            "id = \"coordinate\"\nname = { en = \"Resource coordination\", zh-CN = \"资源协调\" }\nrole = \"ops\"\nstarts_execution = true\n",
        ),
    ]);
    // Releases start when approved, whatever the tickets' planned time.
    let text = edited(&edits)? + "\n[calendar]\nhold_until_planned = false\n" + &plan;
    Config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = dir.join("releasebot.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The weight a release's traffic script last wrote.
fn weight_of(dir: &std::path::Path, application: &str) -> Option<u32> {
    std::fs::read_to_string(dir.join(format!("traffic-{application}")))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Polls `check` every millisecond until it holds; how long that took.
async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !check() {
        anyhow::ensure!(start.elapsed() < limit, "not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

/// Stops the deploy scripts' process groups (they would outlive the server otherwise).
struct Scripts(std::path::PathBuf);

impl Drop for Scripts {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.0).unwrap_or_default().lines() {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) on a process group this benchmark's server started.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        }
    }
}

async fn rollback() -> anyhow::Result<()> {
    const LONG: usize = 100;
    const TRIES: usize = 20;
    println!("\n## Rollback while {LONG} executions run a 10-minute script step (SQLite)");
    let dir = tempfile::tempdir()?;
    let slack = Sink::default().start().await;
    let db = database(dir.path(), "rollback", None).await?;
    let mut apps: Vec<String> = (0..LONG).map(|i| format!("long-{i:03}")).collect();
    apps.extend((0..TRIES).map(|i| format!("quick-{i:02}")));
    let tickets = seed_tickets(&db, &apps).await?;
    let config = write_rollback_config(dir.path())?;
    let _scripts = Scripts(dir.path().join("pids"));
    let (_server, port) = start_releasebot(&db, &config, &slack).await?;
    let click = |i: usize| {
        let (_, (a, c, t)) = &tickets[i];
        click_body(a, c, t, i)
    };
    // The long releases start and stay in their deploy.
    let reqs: Vec<_> = (0..LONG).map(click).collect();
    load(port, Arc::new(reqs)).await;
    let pids = dir.path().join("pids");
    let started = until(Duration::from_secs(60), || {
        std::fs::read_to_string(&pids).map(|t| t.lines().count()).unwrap_or(0) >= LONG
    })
    .await?;
    println!(
        "  {LONG} deploy scripts running ({:.1} s after their approvals)",
        started.as_secs_f64()
    );
    // The quick releases reach 10 % and wait at their gate.
    let reqs: Vec<_> = (LONG..LONG + TRIES).map(click).collect();
    load(port, Arc::new(reqs)).await;
    until(Duration::from_secs(60), || {
        apps[LONG..].iter().all(|a| weight_of(dir.path(), a) == Some(10))
    })
    .await?;
    // Each Rollback, one after the other: the time from the click to the traffic script
    // run with weight 0.
    let mut lat = Vec::new();
    for (k, i) in (LONG..LONG + TRIES).enumerate() {
        let ticket = tickets[i].0;
        let (_, (_, c, t)) = &tickets[i];
        let req = click_body(&format!("exec:rollback:{ticket}"), c, t, 100_000 + k);
        let start = Instant::now();
        let m = load(port, Arc::new(vec![req])).await;
        anyhow::ensure!(m.errors == 0, "the Rollback click was refused");
        let app = &apps[i];
        until(Duration::from_secs(60), || weight_of(dir.path(), app) == Some(0)).await?;
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let still = std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .lines()
        .filter_map(|p| p.trim().parse::<i32>().ok())
        // SAFETY: signal 0 only checks that the process exists.
        .filter(|&p| unsafe { libc::kill(p, 0) } == 0)
        .count();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  click → traffic back at 0 %: p50 {:.0} ms · p99 {:.0} ms · max {:.0} ms over {TRIES} tries ({still} deploys still running)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

/// Serves the fake Slack on a free loopback port (the tests' helper of the same name).
async fn serve_fake(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Issue 26's report: 200 decisions in one channel, each clicked on a copy of its stage
/// message releasebot does not know. Every row must reach a final state; this watches the
/// outbox drain (one channel is paced at one message a second) and says what waits.
async fn surplus() -> anyhow::Result<()> {
    use sqlx::Row;
    println!("\n## Clicks on unknown copies of 200 stage messages in one channel (SQLite)");
    let n = 200;
    let dir = tempfile::tempdir()?;
    let sink = Sink::default();
    let slack = sink.start().await;
    let db = database(dir.path(), "releasebot", None).await?;
    let apps = vec!["payments".to_string(); n];
    let tickets = seed_tickets_in(&db, &apps, Some("C1")).await?;
    let config = write_config(dir.path())?;
    let (_server, port) = start_releasebot(&db, &config, &slack).await?;
    let store = Store::connect(&db).await?;
    let reqs: Vec<_> = tickets
        .iter()
        .enumerate()
        .map(|(i, (_, (a, c, _)))| click_body(a, c, &format!("9999.{i:06}"), i))
        .collect();
    let start = Instant::now();
    load(port, Arc::new(reqs)).await;
    loop {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n, MIN(attempts) AS a FROM outbox WHERE status IN ('pending', 'sending') GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&store.read)
        .await?;
        let queue =
            sqlx::query("SELECT pending, due_at, lease_owner FROM outbox_channels WHERE channel_key = 'slack:C1'")
                .fetch_optional(&store.read)
                .await?
                .map(|r| {
                    format!(
                        "queue pending {} due in {} ms leased {}",
                        r.get::<i64, _>(0),
                        r.get::<i64, _>(1) - chrono::Utc::now().timestamp_millis(),
                        r.get::<Option<String>, _>(2).is_some()
                    )
                })
                .unwrap_or_default();
        let waiting: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} (min attempts {})",
                    r.get::<i64, _>(1),
                    r.get::<String, _>(0),
                    r.get::<i64, _>(2)
                )
            })
            .collect();
        println!(
            "  {:>5.1} s: {} delivered; waiting: {waiting:?}; {queue}",
            start.elapsed().as_secs_f64(),
            sink.delivered()
        );
        if waiting.is_empty() || start.elapsed() > Duration::from_secs(90) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    store.close().await;
    Ok(())
}
