//! The store suite: every test runs on SQLite, and on PostgreSQL when
//! `RELEASEBOT_TEST_POSTGRES` names a server (admin URL). In CI (`CI` set) a missing
//! or unreachable PostgreSQL fails the suite instead of skipping it.

use async_trait::async_trait;
use releasebot::chat::{ChatClient, Delivery, MessageRef, SendError};
use releasebot::chat::{Location, Message, Outbound, Texts};
use releasebot::clock::{Clock, ManualClock};
use releasebot::domain::ticket::{Decision, DecisionKind, TicketId, TicketStatus};
use releasebot::domain::Actor;
use releasebot::metrics::Metrics;
use releasebot::outbox::enqueue;
use releasebot::store::{self, audit, inbox, roles, tickets, Store};
use releasebot::workers::outbox::OutboxWorker;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

thread_local! {
    /// The URL of the database the running test uses (for tests that start whole apps).
    static DB_URL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

struct Db {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    DB_URL.with(|u| *u.borrow_mut() = url.clone());
    Db {
        store: Store::open(&url).await.unwrap(),
        _dir: Some(dir),
        drop_pg: None,
    }
}

async fn postgres() -> Option<Db> {
    let admin = match std::env::var("RELEASEBOT_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL store suite: set RELEASEBOT_TEST_POSTGRES"
            );
            eprintln!("RELEASEBOT_TEST_POSTGRES is not set: skipping the PostgreSQL half of the store suite");
            return None;
        }
    };
    sqlx::any::install_default_drivers();
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
    let name = format!("rb_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let store = Store::open(url.as_str()).await.unwrap();
    DB_URL.with(|u| *u.borrow_mut() = url.to_string());
    assert_eq!(store.backend, store::Backend::Postgres);
    Some(Db {
        store,
        _dir: None,
        drop_pg: Some((admin, name)),
    })
}

impl Db {
    async fn finish(self) {
        self.store.pool.close().await;
        if let Some((admin, name)) = self.drop_pg {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let db = super::sqlite().await;
                super::$name(&db.store).await;
                db.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = super::postgres().await else { return };
                super::$name(&db.store).await;
                db.finish().await;
            })*
        }
    };
}

store_suite!(
    migrations_are_idempotent,
    tickets_round_trip_with_optimistic_concurrency,
    a_person_decides_a_stage_once,
    the_audit_log_is_append_only,
    inbox_dedupes_deliveries_and_leases_each_event_once,
    outbox_keeps_channel_order_and_paces_channels,
    outbox_coalesces_edits_of_one_message,
    every_outbox_row_reaches_a_final_state_under_random_interleavings,
    a_progress_message_waits_once_and_is_drawn_when_delivered,
    outbox_leases_each_item_once_across_workers,
    role_members_are_unique,
    identities_link_into_one_person,
    form_drafts_keep_answers_between_steps,
    an_interactions_reply_is_claimed_once,
    an_event_is_processed_now_by_one_taker,
    lease_queries_read_their_index_with_20000_rows_waiting,
    two_replicas_claim_each_event_once,
    moves_saved_together_only_where_their_version_and_lease_hold,
    a_buffered_edit_replaces_the_undelivered_post,
    a_signature_is_accepted_once_until_it_is_forgotten,
    a_job_has_one_pending_firing_and_each_firing_fires_once,
    two_replicas_fire_each_firing_once,
    api_tokens_are_unique_among_live_ones,
    a_baseline_keeps_what_ran_on_kubernetes,
);

const T0: i64 = 1_795_251_600_000;

async fn migrations_are_idempotent(s: &Store) {
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
}

fn alice() -> Actor {
    Actor::new("slack", "UALICE")
}

async fn new_ticket(s: &Store) -> releasebot::domain::ticket::Ticket {
    let mut fields = BTreeMap::new();
    fields.insert("version".to_string(), "1.0 — 版本".to_string());
    let mut conn = s.pool.acquire().await.unwrap();
    tickets::insert(
        &mut conn,
        tickets::NewTicket {
            flow_id: "app-release",
            service: "app-release",
            application: "payments",
            status: TicketStatus::InApproval(1),
            submitter: &alice(),
            fields: &fields,
            channel: "C1",
            now: T0,
        },
    )
    .await
    .unwrap()
}

async fn tickets_round_trip_with_optimistic_concurrency(s: &Store) {
    let t = new_ticket(s).await;
    let t2 = new_ticket(s).await;
    assert_eq!((t.id, t2.id), (TicketId(1), TicketId(2)));
    let mut conn = s.pool.acquire().await.unwrap();
    let loaded = tickets::get(&mut conn, t.id).await.unwrap().unwrap();
    assert_eq!(loaded, t);
    assert_eq!(loaded.fields["version"], "1.0 — 版本");
    // Two writers read version 0; only the first write wins.
    let mut a = loaded.clone();
    a.apply(TicketStatus::InApproval(2));
    let mut b = loaded.clone();
    b.apply(TicketStatus::Closed);
    assert!(tickets::update(&mut conn, &a, T0 + 1).await.unwrap());
    assert!(
        !tickets::update(&mut conn, &b, T0 + 2).await.unwrap(),
        "a stale version is refused"
    );
    let now = tickets::get(&mut conn, t.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.version, now.updated_at),
        (TicketStatus::InApproval(2), 1, T0 + 1)
    );
    assert!(tickets::get(&mut conn, TicketId(99)).await.unwrap().is_none());
    let pending = tickets::list(&mut conn, tickets::ListFilter::Pending, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    let mine = tickets::list(&mut conn, tickets::ListFilter::Mine(&Actor::new("slack", "UOTHER")), 10)
        .await
        .unwrap();
    assert!(mine.is_empty());
}

async fn a_person_decides_a_stage_once(s: &Store) {
    let t = new_ticket(s).await;
    let other = new_ticket(s).await;
    let mut conn = s.pool.acquire().await.unwrap();
    let d = Decision {
        round: 0,
        stage: 1,
        actor: Actor::new("slack", "UTOM"),
        actor_name: "tom".into(),
        kind: DecisionKind::Approve,
        comment: Some("ok".into()),
        at: T0,
    };
    assert!(tickets::insert_decision(&mut conn, t.id, &d).await.unwrap());
    let again = Decision {
        kind: DecisionKind::Reject,
        ..d.clone()
    };
    assert!(
        !tickets::insert_decision(&mut conn, t.id, &again).await.unwrap(),
        "a second decision by the same person is refused"
    );
    let next_round = Decision {
        round: 1,
        comment: None,
        ..d.clone()
    };
    assert!(tickets::insert_decision(&mut conn, t.id, &next_round).await.unwrap());
    assert_eq!(
        tickets::decisions(&mut conn, t.id).await.unwrap(),
        vec![d.clone(), next_round.clone()]
    );
    // The same, read with the ticket and where its stage message is, in one statement.
    let r = MessageRef {
        platform: "slack".into(),
        channel: "C1".into(),
        ts: "1.5".into(),
    };
    store::outbox::put_ref(&mut conn, "t1:r1:s1", &r, T0).await.unwrap();
    let (ticket, decisions, posted) = tickets::get_for_decision(&mut conn, t.id, "t1:r1:s1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ticket.id, decisions, posted.as_deref()),
        (t.id, vec![d, next_round], Some("1.5"))
    );
    let (_, none, unposted) = tickets::get_for_decision(&mut conn, other.id, "nope")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((none, unposted), (vec![], None));
}

async fn the_audit_log_is_append_only(s: &Store) {
    let t = new_ticket(s).await;
    let mut conn = s.pool.acquire().await.unwrap();
    let e = audit::AuditEntry {
        ticket: Some(t.id),
        at: T0,
        platform: "slack".into(),
        actor: "slack:UALICE".into(),
        action: "submitted".into(),
        detail: serde_json::json!({ "stage": 0 }),
    };
    audit::append(&mut conn, &e).await.unwrap();
    assert!(sqlx::query("UPDATE audit_log SET action = 'approved'")
        .execute(&mut *conn)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_log").execute(&mut *conn).await.is_err());
    assert_eq!(audit::for_ticket(&mut conn, t.id).await.unwrap(), vec![e]);
}

async fn inbox_dedupes_deliveries_and_leases_each_event_once(s: &Store) {
    assert!(inbox::insert(s, "slack", "k1", "{}", T0).await.unwrap().is_some());
    assert!(
        inbox::insert(s, "slack", "k1", "{}", T0).await.unwrap().is_none(),
        "a retried delivery is not recorded twice"
    );
    let first = inbox::lease_next(s, T0, 1000).await.unwrap().unwrap();
    assert!(
        inbox::lease_next(s, T0 + 10, 1000).await.unwrap().is_none(),
        "leased to one worker"
    );
    let again = inbox::lease_next(s, T0 + 2000, 1000).await.unwrap().unwrap();
    assert_eq!(again.id, first.id, "an abandoned lease is taken over");
    {
        let mut conn = s.pool.acquire().await.unwrap();
        inbox::mark_done(&mut conn, first.id, T0).await.unwrap();
    }
    assert!(inbox::lease_next(s, T0 + 10_000, 1000).await.unwrap().is_none());
    assert_eq!(inbox::pending(s).await.unwrap(), 0);
}

/// A chat client that records what it was asked to send.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl ChatClient for Recorder {
    async fn send(
        &self,
        _: &Texts,
        _: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        let (what, channel) = match out {
            Outbound::Post { channel, message } => (format!("post {}", message.title), channel.clone()),
            Outbound::Update { message, .. } => (
                format!(
                    "update {} @{}",
                    message.title,
                    existing.map(|r| r.ts.clone()).unwrap_or_default()
                ),
                String::new(),
            ),
            other => (other.kind().to_string(), String::new()),
        };
        let mut sent = self.sent.lock().unwrap();
        sent.push((what, channel.clone()));
        Ok(Some(Location {
            channel,
            ts: format!("ts{}", sent.len()),
        }))
    }
}

fn worker(s: &Store, clock: Arc<ManualClock>) -> (OutboxWorker, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let mut clients: HashMap<String, Arc<dyn ChatClient>> = HashMap::new();
    clients.insert("slack".into(), rec.clone());
    let w = OutboxWorker::new(&core(s, clock), clients, None);
    (w, rec)
}

/// What the bot and the workers share, over `s`.
fn core(s: &Store, clock: Arc<ManualClock>) -> releasebot::shared::Core {
    releasebot::shared::Core {
        store: s.clone(),
        config: Arc::new(releasebot::config::Config::parse(releasebot::config::DEFAULT_CONFIG).unwrap()),
        texts: Texts::new("en").unwrap(),
        clock,
        metrics: Arc::new(Metrics::default()),
        outbox_notify: Arc::new(tokio::sync::Notify::new()),
        inbox_notify: Arc::new(tokio::sync::Notify::new()),
        scheduler_notify: Arc::new(tokio::sync::Notify::new()),
        executions: Arc::default(),
    }
}

fn msg(title: &str) -> Message {
    Message {
        title: title.into(),
        ..Default::default()
    }
}

async fn put(s: &Store, out: Outbound, key: Option<&str>) {
    let mut tx = s.begin().await.unwrap();
    enqueue(&mut tx, "slack", &out, key, T0).await.unwrap();
    tx.commit().await.unwrap();
}

fn post(channel: &str, title: &str) -> Outbound {
    Outbound::Post {
        channel: channel.into(),
        message: msg(title),
    }
}

fn sent(rec: &Recorder) -> Vec<String> {
    rec.sent.lock().unwrap().iter().map(|(w, _)| w.clone()).collect()
}

async fn outbox_keeps_channel_order_and_paces_channels(s: &Store) {
    let clock = ManualClock::new(T0);
    let (w, rec) = worker(s, clock.clone());
    for m in ["a1", "a2", "a3", "a4", "a5"] {
        put(s, post("A", m), None).await;
    }
    put(s, post("B", "b1"), None).await;
    // A short burst, then one message a second.
    let r = w.round().await.unwrap();
    assert_eq!(r.delivered, 4, "a1, a2, a3 in a burst; b1 at once: {r:?}");
    assert_eq!(w.round().await.unwrap().attempted(), 0, "channel A is paced now");
    assert_eq!(store::outbox::next_wake(s).await.unwrap(), Some(T0 + 1000));
    clock.advance_ms(1000);
    assert_eq!(w.round().await.unwrap().delivered, 1);
    assert_eq!(w.round().await.unwrap().attempted(), 0);
    assert_eq!(store::outbox::next_wake(s).await.unwrap(), Some(T0 + 2000));
    clock.advance_ms(1000);
    assert_eq!(w.round().await.unwrap().delivered, 1);
    let sent = sent(&rec);
    let a: Vec<&String> = sent.iter().filter(|m| m.contains(" a")).collect();
    assert_eq!(a, ["post a1", "post a2", "post a3", "post a4", "post a5"], "in order");
    let pos = |m: &str| sent.iter().position(|x| x == m).unwrap();
    assert!(
        pos("post b1") < pos("post a4"),
        "B is not held up by A's pacing: {sent:?}"
    );
    assert_eq!(store::outbox::depth(s).await.unwrap(), 0);
}

async fn outbox_coalesces_edits_of_one_message(s: &Store) {
    let clock = ManualClock::new(T0);
    let (w, rec) = worker(s, clock.clone());
    // Edits before the post is delivered become the post.
    put(s, post("A", "v1"), Some("m")).await;
    put(
        s,
        Outbound::Update {
            channel: "A".into(),
            message: msg("v2"),
        },
        Some("m"),
    )
    .await;
    assert_eq!(w.round().await.unwrap().delivered, 1);
    assert_eq!(w.round().await.unwrap().attempted(), 0);
    // Later edits coalesce into the latest one, sent to the posted message.
    for v in ["v3", "v4", "v5"] {
        put(
            s,
            Outbound::Update {
                channel: "A".into(),
                message: msg(v),
            },
            Some("m"),
        )
        .await;
    }
    clock.advance_ms(1000);
    assert_eq!(w.round().await.unwrap().delivered, 1);
    clock.advance_ms(1000);
    assert_eq!(w.round().await.unwrap().attempted(), 0);
    assert_eq!(sent(&rec), ["post v2", "update v5 @ts1"]);
    assert_eq!(store::outbox::depth(s).await.unwrap(), 0);
}

async fn a_progress_message_waits_once_and_is_drawn_when_delivered(s: &Store) {
    let clock = ManualClock::new(T0);
    let (w, rec) = worker(s, clock.clone());
    let progress = || Outbound::Progress {
        channel: "A".into(),
        execution: 42,
    };
    // Every move's edit after the first finds it waiting: one item, drawn when sent.
    for _ in 0..3 {
        put(s, progress(), Some("x42:progress")).await;
    }
    put(s, post("A", "notice"), None).await;
    assert_eq!(store::outbox::depth(s).await.unwrap(), 2);
    // It is drawn from the execution as it is then; there is no execution 42: nothing
    // reaches the platform, and the item fails with the reason.
    let r = w.round().await.unwrap();
    assert_eq!((r.delivered, r.failed), (1, 1), "{r:?}");
    assert_eq!(sent(&rec), ["post notice"]);
    let errors: Vec<String> = sqlx::query_scalar("SELECT last_error FROM outbox WHERE status = 'failed'")
        .fetch_all(&s.read)
        .await
        .unwrap();
    assert_eq!(errors, ["execution 42 does not exist"]);
    // Once it left the queue, the next move's edit waits again.
    put(s, progress(), Some("x42:progress")).await;
    put(s, progress(), Some("x42:progress")).await;
    assert_eq!(store::outbox::depth(s).await.unwrap(), 1);

    // An execution whose stored plan cannot be read: its progress item fails at once,
    // and the channel's next message does not wait behind it.
    let t = new_ticket(s).await;
    let mut conn = s.pool.acquire().await.unwrap();
    for sql in [
        "INSERT INTO executions (id, ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, started_at, updated_at)
         VALUES (7, $1, 'p', 'payments', 'prod', 'RUNNING', '{}', 'slack', 'B', 1, 0, 0, 0)",
        "INSERT INTO execution_plans (execution_id, plan) VALUES (7, 'not a plan')",
    ] {
        sqlx::query(sql).bind(t.id.0).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    put(
        s,
        Outbound::Progress {
            channel: "B".into(),
            execution: 7,
        },
        Some("x7:progress"),
    )
    .await;
    put(s, post("B", "after it"), None).await;
    clock.advance_ms(10_000);
    let r = w.round().await.unwrap();
    // (Execution 42's second item fails too.)
    assert_eq!((r.delivered, r.failed), (1, 2), "{r:?}");
    assert_eq!(sent(&rec), ["post notice", "post after it"]);
    let error: String = sqlx::query_scalar("SELECT last_error FROM outbox WHERE msg_key = 'x7:progress'")
        .fetch_one(&s.read)
        .await
        .unwrap();
    assert!(error.starts_with("drawing the progress message"), "{error}");
}

async fn outbox_leases_each_item_once_across_workers(s: &Store) {
    for i in 0..30 {
        put(s, post(&format!("C{i}"), &format!("m{i}")), None).await;
    }
    let mut handles = Vec::new();
    for _ in 0..3 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let items = store::outbox::claim(&s, &[("slack", 4)], T0, 60_000).await.unwrap();
                if items.is_empty() {
                    break;
                }
                got.extend(items.into_iter().map(|i| i.id));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (30, 30), "every item leased exactly once");
    let clock = ManualClock::new(T0);
    assert_eq!(clock.now_ms(), T0);
}

async fn role_members_are_unique(s: &Store) {
    let mut conn = s.pool.acquire().await.unwrap();
    let m = roles::Member {
        role: "qc".into(),
        actor: Actor::new("slack", "U1"),
        application: "".into(),
    };
    assert!(roles::add(&mut conn, &m, &alice(), T0).await.unwrap());
    assert!(!roles::add(&mut conn, &m, &alice(), T0).await.unwrap());
    let scoped = roles::Member {
        application: "payments".into(),
        ..m.clone()
    };
    assert!(roles::add(&mut conn, &scoped, &alice(), T0).await.unwrap());
    assert_eq!(roles::all(&mut conn).await.unwrap().len(), 2);
    assert!(roles::remove(&mut conn, &m).await.unwrap());
    assert!(!roles::remove(&mut conn, &m).await.unwrap());
}

async fn identities_link_into_one_person(s: &Store) {
    let mut conn = s.pool.acquire().await.unwrap();
    let (a, b, c, d) = (
        Actor::new("slack", "U1"),
        Actor::new("dingtalk", "u1"),
        Actor::new("discord", "11"),
        Actor::new("discord", "22"),
    );
    assert_eq!(roles::identities(&mut conn, &a).await.unwrap(), vec![a.clone()]);
    assert!(roles::link(&mut conn, &a, &b, &alice(), T0).await.unwrap());
    assert!(
        !roles::link(&mut conn, &b, &a, &alice(), T0).await.unwrap(),
        "already one person"
    );
    assert!(roles::link(&mut conn, &c, &d, &alice(), T0).await.unwrap());
    // Linking across two groups merges them.
    assert!(roles::link(&mut conn, &b, &d, &alice(), T0).await.unwrap());
    let mut all = roles::identities(&mut conn, &c).await.unwrap();
    all.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone(), d.clone()];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(roles::link_groups(&mut conn).await.unwrap().len(), 1);
}

async fn form_drafts_keep_answers_between_steps(s: &Store) {
    let d = store::forms::Draft {
        id: "d1".into(),
        platform: "discord".into(),
        user_id: "11".into(),
        form: "{}".into(),
        answers: "{}".into(),
    };
    store::forms::create(s, &d, T0).await.unwrap();
    store::forms::save_answers(s, "d1", r#"{"md5":"x"}"#).await.unwrap();
    let got = store::forms::get(s, "d1").await.unwrap().unwrap();
    assert_eq!((got.user_id.as_str(), got.answers.as_str()), ("11", r#"{"md5":"x"}"#));
    assert_eq!(store::forms::prune(s, T0).await.unwrap(), 0, "young drafts stay");
    assert_eq!(store::forms::prune(s, T0 + 1).await.unwrap(), 1);
    assert!(store::forms::get(s, "d1").await.unwrap().is_none());
}

async fn an_interactions_reply_is_claimed_once(s: &Store) {
    let private = |text: &str, reply: &str| Outbound::Ephemeral {
        channel: "900".into(),
        user: "11".into(),
        message: msg(text),
        reply: Some(reply.into()),
    };
    {
        let mut tx = s.begin().await.unwrap();
        enqueue(&mut tx, "discord", &private("other", "tok_2"), None, T0)
            .await
            .unwrap();
        enqueue(&mut tx, "discord", &private("mine", "tok_1"), None, T0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let payload = store::outbox::take_reply(s, "discord", "tok_1", T0)
        .await
        .unwrap()
        .unwrap();
    assert!(payload.contains("mine"), "{payload}");
    assert!(
        store::outbox::take_reply(s, "discord", "tok_1", T0)
            .await
            .unwrap()
            .is_none(),
        "taken once"
    );
    assert!(
        store::outbox::take_reply(s, "slack", "tok_2", T0)
            .await
            .unwrap()
            .is_none(),
        "only the platform's own"
    );
    assert!(store::outbox::take_reply(s, "discord", "tok_2", T0)
        .await
        .unwrap()
        .is_some());
}

async fn an_event_is_processed_now_by_one_taker(s: &Store) {
    let id = inbox::insert(s, "discord", "k1", "{}", T0).await.unwrap().unwrap();
    assert!(inbox::lease_id(s, id, T0, 1000).await.unwrap().is_some());
    assert!(inbox::lease_id(s, id, T0, 1000).await.unwrap().is_none(), "not twice");
    assert!(
        inbox::lease_next(s, T0 + 10, 1000).await.unwrap().is_none(),
        "the worker leaves it to the route"
    );
}

/// Fills a table with `n` rows from a recursive counter `g(x)`.
async fn fill(s: &Store, n: i64, insert: &str) {
    let sql = format!("WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) {insert}");
    sqlx::query(&sql).execute(&s.pool).await.unwrap();
}

/// The plan of a statement, one line per node (a generic plan on PostgreSQL, as a cached
/// prepared statement gets after five runs).
async fn plan_of(s: &Store, sql: &str, types: &str) -> String {
    use sqlx::Row;
    let mut conn = s.pool.acquire().await.unwrap();
    match s.backend {
        store::Backend::Postgres => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let name = format!("plan_{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("PREPARE {name} ({types}) AS {sql}"))
                .execute(&mut *conn)
                .await
                .unwrap();
            let n = types.split(',').count();
            let args: Vec<String> = (0..n).map(|_| "NULL".to_string()).collect();
            let rows = sqlx::raw_sql(&format!("EXPLAIN EXECUTE {name}({})", args.join(", ")))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("DEALLOCATE {name}"))
                .execute(&mut *conn)
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
        store::Backend::Sqlite => {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Every claim reads the first rows of its partial index, whatever waits behind them —
/// including PostgreSQL's generic plan of a cached statement, with no statistics
/// (autovacuum off, never analysed).
async fn lease_queries_read_their_index_with_20000_rows_waiting(s: &Store) {
    use releasebot::store::lease::{claim_sql, EXECUTIONS, FIRINGS, INBOX, OUTBOX_CHANNELS};
    if s.backend == store::Backend::Postgres {
        for t in ["inbox", "outbox", "outbox_channels", "executions", "tickets", "firings"] {
            sqlx::query(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
                .execute(&s.pool)
                .await
                .unwrap();
        }
    }
    fill(
        s,
        20_000,
        "INSERT INTO inbox (platform, dedupe_key, order_key, payload, status, received_at, due_at)
         SELECT 'slack', 'k' || x, 'ticket:' || (x % 500), '{}', 'pending', x, x FROM g",
    )
    .await;
    fill(
        s,
        20_000,
        "INSERT INTO outbox (platform, channel_key, kind, payload, status, next_attempt_at, created_at)
         SELECT 'slack', 'slack:C' || x, 'post', '{}', 'pending', x, x FROM g",
    )
    .await;
    fill(
        s,
        20_000,
        "INSERT INTO outbox_channels (channel_key, platform, pending, next_at, due_at)
         SELECT 'slack:C' || x, 'slack', 1, 0, x FROM g",
    )
    .await;
    fill(
        s,
        20_000,
        "INSERT INTO tickets (flow_id, service, application, status, stage, round, submitter_platform, submitter_id, fields, channel, version, created_at, updated_at)
         SELECT 'f', 's', 'app' || (x % 50), 'releasing', 3, 0, 'slack', 'U1', '{}', 'C', 0, x, x FROM g",
    )
    .await;
    fill(
        s,
        20_000,
        "INSERT INTO executions (ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, due_at, started_at, updated_at)
         SELECT x, 'p', 'app' || (x % 50), 'prod', 'RUNNING', '{}', 'slack', 'C', 0, x, x, x, x FROM g",
    )
    .await;
    fill(
        s,
        20_000,
        "INSERT INTO firings (job, due, payload, status, due_at) SELECT 'lane:' || x, x, 'active', 'pending', x FROM g",
    )
    .await;
    let cases = [
        (
            "inbox claim",
            claim_sql(&INBOX, s.backend, false, "id"),
            "bigint, text, bigint, bigint",
            "inbox_due",
        ),
        (
            "outbox claim",
            claim_sql(&OUTBOX_CHANNELS, s.backend, true, "channel_key"),
            "bigint, text, bigint, bigint, text",
            "outbox_channels_due",
        ),
        (
            "execution claim",
            claim_sql(&EXECUTIONS, s.backend, false, "id"),
            "bigint, text, bigint, bigint",
            "executions_due",
        ),
        (
            "outbox heads",
            store::outbox::heads_sql(s.backend, 2),
            "text, text",
            "outbox_queue",
        ),
        (
            "firing claim",
            claim_sql(&FIRINGS, s.backend, false, "id"),
            "bigint, text, bigint, bigint",
            "firings_due",
        ),
        (
            "earlier event of a ticket",
            store::inbox::EARLIER_PENDING_SQL.to_string(),
            "text, bigint",
            "inbox_order",
        ),
    ];
    for (what, sql, types, index) in cases {
        let plan = plan_of(s, &sql, types).await;
        assert!(plan.contains(index), "{what} reads {index}:\n{plan}");
        let full_scan = match s.backend {
            store::Backend::Postgres => plan.contains("Seq Scan"),
            store::Backend::Sqlite => plan.lines().any(|l| l.starts_with("SCAN ") && !l.contains("USING")),
        };
        assert!(!full_scan, "{what} does not read the whole table:\n{plan}");
        // A sort of what the LIMIT let through (a claim's few ids) is no sort of the backlog.
        let below_limit = plan.split_once("Limit").map(|(_, rest)| rest).unwrap_or(&plan);
        assert!(
            !below_limit.contains("Sort"),
            "{what} does not sort the waiting rows:\n{plan}"
        );
    }
    // And the claims work on that backlog.
    let got = store::inbox::claim(s, 30_000, 60_000, 64).await.unwrap();
    assert_eq!(got.len(), 64);
    assert_eq!(got[0].id, 1, "oldest first");
}

/// Two processes (replicas) on one database: each event is claimed by one of them.
async fn two_replicas_claim_each_event_once(s: &Store) {
    for i in 0..40 {
        inbox::insert(s, "slack", &format!("e{i}"), "{}", T0).await.unwrap();
    }
    // The same database under another owner: what a second replica is.
    let a = s;
    let mut b = s.clone();
    b.owner = "another-replica".into();
    let (x, y) = tokio::join!(
        async {
            let mut got = vec![];
            loop {
                let rows = inbox::claim(a, T0, 60_000, 3).await.unwrap();
                if rows.is_empty() {
                    break got;
                }
                got.extend(rows.into_iter().map(|r| r.id));
            }
        },
        async {
            let mut got = vec![];
            loop {
                let rows = inbox::claim(&b, T0, 60_000, 3).await.unwrap();
                if rows.is_empty() {
                    break got;
                }
                got.extend(rows.into_iter().map(|r| r.id));
            }
        }
    );
    let mut all: Vec<i64> = x.iter().chain(y.iter()).copied().collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "each event once: {x:?} {y:?}");
    use sqlx::Row;
    let owners: Vec<String> = sqlx::query("SELECT DISTINCT lease_owner FROM inbox")
        .fetch_all(&a.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert!(owners.contains(&"another-replica".to_string()) || y.is_empty());
    assert!(
        inbox::lease_id(a, *x.first().or(y.first()).unwrap(), T0 + 1, 60_000)
            .await
            .unwrap()
            .is_none(),
        "a claimed event is not taken again while its lease runs"
    );
}

async fn moves_saved_together_only_where_their_version_and_lease_hold(s: &Store) {
    use store::executions::{self as q, Lease, NewExec, Save};
    let mut ids = vec![];
    for _ in 0..4 {
        let t = new_ticket(s).await;
        let mut tx = s.begin().await.unwrap();
        let id = q::insert(
            &mut tx,
            NewExec {
                ticket: t.id,
                plan_id: "p",
                plan_json: "{}",
                application: "payments",
                environment: "prod",
                status: "RUNNING",
                state: &serde_json::json!({ "n": 0 }),
                platform: "slack",
                channel: "C1",
                due_at: T0,
                now: T0,
            },
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(id);
    }
    assert_eq!(q::claim(s, T0, 60_000, 10).await.unwrap().len(), 4);
    let save = |id: i64, version: i64, n: i64, lease: Lease| Save {
        id,
        version,
        status: if lease == Lease::Release {
            "COMPLETED"
        } else {
            "RUNNING"
        },
        state: ["{\"n\":1}", "{\"n\":2}"][(n - 1) as usize],
        next_wake: T0 + 5_000,
        finished_at: (lease == Lease::Release).then_some(T0 + 1),
        lease,
        now: T0 + 1,
    };
    let saves = [
        save(ids[0], 0, 1, Lease::Hold(T0 + 60_000)),
        // Someone changed it meanwhile: nothing of this move is written.
        save(ids[1], 7, 1, Lease::Hold(T0 + 60_000)),
        save(ids[2], 0, 2, Lease::Release),
    ];
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        q::save_many(&mut tx, &s.owner, &saves).await.unwrap(),
        [true, false, true]
    );
    // Another process's runner does not hold the lease: refused.
    let theirs = [save(ids[3], 0, 1, Lease::Hold(T0 + 60_000))];
    assert_eq!(q::save_many(&mut tx, "someone-else", &theirs).await.unwrap(), [false]);
    tx.commit().await.unwrap();

    let mut conn = s.read.acquire().await.unwrap();
    let mut rows = vec![];
    for id in &ids {
        rows.push(q::get::<serde_json::Value>(&mut conn, *id).await.unwrap().unwrap());
    }
    let [held, stale, done, other] = <[_; 4]>::try_from(rows).unwrap();
    assert_eq!((held.version, held.state["n"].as_i64()), (1, Some(1)));
    assert_eq!(held.lease_owner.as_deref(), Some(&*s.owner));
    assert_eq!((stale.version, stale.state["n"].as_i64()), (0, Some(0)));
    assert_eq!((done.version, done.status.as_str()), (1, "COMPLETED"));
    assert_eq!((done.finished_at, done.lease_owner), (Some(T0 + 1), None));
    assert_eq!(other.version, 0);
}

async fn a_buffered_edit_replaces_the_undelivered_post(s: &Store) {
    let clock = ManualClock::new(T0);
    let (w, rec) = worker(s, clock.clone());
    put(s, post("A", "v1"), Some("m")).await;
    put(s, post("B", "other"), Some("n")).await;
    // Edits queued in one unit of work (as handlers and the executor write them).
    let mut work = releasebot::work::Work::begin(&core(s, clock.clone())).await.unwrap();
    for v in ["v2", "v3"] {
        let edit = Outbound::Update {
            channel: "A".into(),
            message: msg(v),
        };
        work.send("slack", &edit, Some("m"), T0);
    }
    work.commit().await.unwrap();
    while w.round().await.unwrap().attempted() > 0 {}
    let mut sent = sent(&rec);
    sent.sort();
    assert_eq!(sent, ["post other", "post v3"]);
    assert_eq!(store::outbox::depth(s).await.unwrap(), 0);
}

async fn a_signature_is_accepted_once_until_it_is_forgotten(s: &Store) {
    use store::signatures::{first_use, prune};
    assert!(first_use(s, "dingtalk", "1700000000000:abc=", T0).await.unwrap());
    assert!(!first_use(s, "dingtalk", "1700000000000:abc=", T0 + 1).await.unwrap());
    assert!(
        first_use(s, "other", "1700000000000:abc=", T0).await.unwrap(),
        "per platform"
    );
    assert!(first_use(s, "dingtalk", "1700000000001:abd=", T0 + 10).await.unwrap());
    assert_eq!(prune(s, T0 + 5, 100).await.unwrap(), 2, "those seen before T0+5");
    assert!(!first_use(s, "dingtalk", "1700000000001:abd=", T0 + 20).await.unwrap());
    // A request that was not recorded after all may come again.
    store::signatures::forget(s, "dingtalk", "1700000000001:abd=")
        .await
        .unwrap();
    assert!(first_use(s, "dingtalk", "1700000000001:abd=", T0 + 30).await.unwrap());
}

/// A job's timer moves rather than multiplies; a firing fired at a time is not planned
/// again for the same thing; a cron job's next firing is planned once however many
/// replicas plan it.
async fn a_job_has_one_pending_firing_and_each_firing_fires_once(s: &Store) {
    use store::firings::{add, claim, complete, pending, set};
    let conn = || s.pool.acquire();
    set(&mut conn().await.unwrap(), "lane:1", T0 + 100, "active")
        .await
        .unwrap();
    set(&mut conn().await.unwrap(), "lane:1", T0 + 50, "active")
        .await
        .unwrap();
    let (_, due) = pending(&mut conn().await.unwrap(), "lane:1").await.unwrap().unwrap();
    assert_eq!(due, T0 + 50, "moved, not added");
    assert!(claim(s, T0 + 49, 1000, 10).await.unwrap().is_empty(), "not due yet");
    let got = claim(s, T0 + 50, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(claim(s, T0 + 51, 1000, 10).await.unwrap().is_empty(), "leased");
    assert!(complete(&mut conn().await.unwrap(), &s.owner, got[0].id, T0 + 51)
        .await
        .unwrap());
    assert!(
        !complete(&mut conn().await.unwrap(), &s.owner, got[0].id, T0 + 52)
            .await
            .unwrap(),
        "once"
    );
    // The same time for the same thing is not fired again; for another thing it is.
    set(&mut conn().await.unwrap(), "lane:1", T0 + 50, "active")
        .await
        .unwrap();
    assert!(pending(&mut conn().await.unwrap(), "lane:1").await.unwrap().is_none());
    set(&mut conn().await.unwrap(), "lane:1", T0 + 50, "deleting")
        .await
        .unwrap();
    assert_eq!(claim(s, T0 + 60, 1000, 10).await.unwrap()[0].payload, "deleting");
    // Two replicas planning a cron job's next firing plan one.
    assert!(add(&mut conn().await.unwrap(), "cron:x", T0 + 1000, "").await.unwrap());
    assert!(!add(&mut conn().await.unwrap(), "cron:x", T0 + 1000, "").await.unwrap());
}

/// Two daemons (replicas) on one database, each with its own scheduler, fire a due cron
/// job once: one daily list is posted, not two.
async fn two_replicas_fire_each_firing_once(s: &Store) {
    use releasebot::domain::swimlane::{Lane, LaneStatus, Policy};
    let url = DB_URL.with(|u| u.borrow().clone());
    let config = format!(
        "{}\n[swimlanes]\nexpiring_list = \"0 0 9 * * *\"\n",
        releasebot::config::DEFAULT_CONFIG
    );
    let clock = ManualClock::new(T0 - 3_600_000);
    let mut settings = releasebot::config::Settings::defaults();
    settings.database_url = url;
    let build = || async {
        let c = releasebot::config::Config::parse(&config).unwrap();
        releasebot::app::App::build(&settings, c, clock.clone()).await.unwrap()
    };
    let (a, b) = (build().await, build().await);
    assert_ne!(a.state.bot.store.owner, b.state.bot.store.owner);
    // A lane deleted within the day (idle since six days ago).
    let policy = Policy {
        idle_ms: 6 * 86_400_000,
        grace_ms: 86_400_000,
        max_lifetime_ms: None,
    };
    let new = releasebot::domain::swimlane::NewLane {
        name: "login".into(),
        owner: Actor::new("slack", "U1"),
        owner_name: "alice".into(),
        platform: "slack".into(),
        channel: "CLANES".into(),
        apps: vec![],
        purpose: None,
    };
    let mut lane = Lane::new(new, policy.idle_ms, &policy, T0 - 6 * 86_400_000);
    lane.status = LaneStatus::Active;
    store::swimlanes::insert(&mut s.pool.acquire().await.unwrap(), &lane, T0)
        .await
        .unwrap()
        .unwrap();
    clock.set_ms(T0);
    let (x, y) = tokio::join!(a.scheduler.drain(), b.scheduler.drain());
    assert_eq!(x.unwrap() + y.unwrap(), 1, "one of them fired it");
    use sqlx::Row;
    let lists: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE payload LIKE '%within 24 hours%'")
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(lists, 1);
    // The next one is planned once, for tomorrow.
    let next: Vec<i64> =
        sqlx::query("SELECT due FROM firings WHERE job = 'cron:swimlanes.expiring' AND status = 'pending'")
            .fetch_all(&s.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
    assert_eq!(next, [T0 + 86_400_000]);
    a.state.bot.store.close().await;
    b.state.bot.store.close().await;
}

/// An upgrade keeps the plans of the executions it finds: they move to a table of their
/// own, and a resumed execution reads the plan it started with.
#[tokio::test]
async fn an_upgrade_keeps_the_plans_of_executions_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let s = Store::connect(&url).await.unwrap();
    // The schema before plans had a table of their own (migrations 1 to 10).
    let all = sqlx::migrate!("migrations/sqlite");
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(all.migrations.iter().filter(|m| m.version <= 10).cloned().collect()),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    before.run(&s.pool).await.unwrap();
    let mut conn = s.pool.acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO tickets (flow_id, service, application, status, stage, round, submitter_platform, submitter_id, fields, channel, version, created_at, updated_at)
         VALUES ('f', 's', 'app', 'releasing', 3, 0, 'slack', 'U1', '{}', 'C', 0, 1, 1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO executions (ticket_id, plan_id, plan, application, environment, status, state, platform, channel, version, next_wake, due_at, started_at, updated_at)
         VALUES (1, 'p', '{\"name\":\"Blue-green as it was\"}', 'app', 'prod', 'RUNNING', '{}', 'slack', 'C', 0, 1, 1, 1, 1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    s.migrate().await.unwrap();
    let mut conn = s.pool.acquire().await.unwrap();
    assert_eq!(
        store::executions::plan_json(&mut conn, 1).await.unwrap(),
        "{\"name\":\"Blue-green as it was\"}"
    );
}

/// A platform that answers at random: sent, a 429, a 5xx (the message may have gone), a
/// refusal — until told to answer every call.
struct Flaky {
    rng: Mutex<rand::rngs::StdRng>,
    healthy: std::sync::atomic::AtomicBool,
    n: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl ChatClient for Flaky {
    async fn send(
        &self,
        _: &Texts,
        _: Delivery,
        out: &Outbound,
        _: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        use rand::Rng;
        let roll: u32 = if self.healthy.load(std::sync::atomic::Ordering::SeqCst) {
            0
        } else {
            self.rng.lock().unwrap().gen_range(0..10)
        };
        match roll {
            0..=5 => {
                let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let channel = match out {
                    Outbound::Post { channel, .. } | Outbound::Update { channel, .. } => channel.clone(),
                    _ => String::new(),
                };
                Ok(Some(Location {
                    channel,
                    ts: format!("ts{n}"),
                }))
            }
            6 => Err(SendError::RateLimited(Some(std::time::Duration::from_secs(2)))),
            7 | 8 => Err(SendError::Transient("502".into())),
            _ => Err(SendError::Permanent("channel_not_found".into())),
        }
    }
}

/// The lesson of the surplus-copy rows: every queued row reaches a final state, and each
/// queue's count of waiting items is what its rows say — under random interleavings of
/// posts, edits, progress items, edits of copies nobody else knows, supersessions,
/// platform failures, deliveries lost mid-way, and restarts.
async fn every_outbox_row_reaches_a_final_state_under_random_interleavings(s: &Store) {
    use rand::{Rng, SeedableRng};
    use sqlx::Row;
    let url = DB_URL.with(|u| u.borrow().clone());
    for seed in 0..6u64 {
        let clock = ManualClock::new(T0);
        let flaky = Arc::new(Flaky {
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            healthy: false.into(),
            n: 0.into(),
        });
        let start = |store: &Store| {
            let mut clients: HashMap<String, Arc<dyn ChatClient>> = HashMap::new();
            clients.insert("slack".into(), flaky.clone());
            OutboxWorker::new(&core(store, clock.clone()), clients, None)
        };
        let mut store = s.clone();
        let mut w = start(&store);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + seed);
        let channels = ["A", "B", "C"];
        for step in 0..120 {
            let channel = channels[rng.gen_range(0..channels.len())];
            let key = format!("m{}", rng.gen_range(0..6));
            let mut tx = store.begin().await.unwrap();
            let now = clock.now_ms();
            match rng.gen_range(0..9) {
                0 | 1 => enqueue(&mut tx, "slack", &post(channel, &format!("p{step}")), Some(&key), now)
                    .await
                    .unwrap(),
                2 | 3 => {
                    let edit = Outbound::Update {
                        channel: channel.into(),
                        message: msg(&format!("e{step}")),
                    };
                    enqueue(&mut tx, "slack", &edit, Some(&key), now).await.unwrap()
                }
                4 => {
                    // A copy nobody knows: its own reference, then an edit of it.
                    let surplus = format!("surplus:slack:{step}");
                    let r = MessageRef {
                        platform: "slack".into(),
                        channel: channel.into(),
                        ts: format!("9{step}"),
                    };
                    store::outbox::put_ref(&mut tx, &surplus, &r, now).await.unwrap();
                    let edit = Outbound::Update {
                        channel: channel.into(),
                        message: msg("retired"),
                    };
                    enqueue(&mut tx, "slack", &edit, Some(&surplus), now).await.unwrap()
                }
                5 => {
                    // No such execution: drawn at delivery, it fails for good.
                    let progress = Outbound::Progress {
                        channel: channel.into(),
                        execution: 999,
                    };
                    enqueue(
                        &mut tx,
                        "slack",
                        &progress,
                        Some(&format!("x{}", rng.gen_range(0..3))),
                        now,
                    )
                    .await
                    .unwrap()
                }
                6 => {
                    store::outbox::supersede_pending(&mut tx, &key, "update", now)
                        .await
                        .unwrap();
                }
                7 => {
                    // A delivery lost mid-way: claimed, never recorded (its lease runs out).
                    drop(tx);
                    store::outbox::claim(&store, &[("slack", 2)], now, 45_000)
                        .await
                        .unwrap();
                    continue;
                }
                _ => {
                    // A restart: a new process (another lease owner) on the same database.
                    drop(tx);
                    store = Store::connect(&url).await.unwrap();
                    w = start(&store);
                    continue;
                }
            }
            tx.commit().await.unwrap();
            clock.advance_ms(rng.gen_range(0..1_500));
            if rng.gen_bool(0.5) {
                w.round().await.unwrap();
            }
            // Between steps, each queue counts exactly the rows waiting in it.
            let drift: Vec<String> = sqlx::query(
                "SELECT c.channel_key, CAST(c.pending AS BIGINT) AS pending,
                        (SELECT COUNT(*) FROM outbox o WHERE o.channel_key = c.channel_key AND o.status IN ('pending', 'sending')) AS live
                 FROM outbox_channels c",
            )
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.get::<i64, _>(1) != r.get::<i64, _>(2))
            .map(|r| format!("{} counts {} for {} rows", r.get::<String, _>(0), r.get::<i64, _>(1), r.get::<i64, _>(2)))
            .collect();
            assert!(drift.is_empty(), "seed {seed}, step {step}: {drift:?}");
        }
        // The platform recovers and time passes: everything ends.
        flaky.healthy.store(true, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..200 {
            clock.advance_ms(60_000);
            w.round().await.unwrap();
        }
        let left: Vec<String> = sqlx::query(
            "SELECT id, channel_key, kind, status FROM outbox WHERE status NOT IN ('sent', 'failed', 'superseded')",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.get::<i64, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<String, _>(3)
            )
        })
        .collect();
        assert!(left.is_empty(), "seed {seed}: rows never finished: {left:#?}");
        let counts: Vec<(String, i64)> = sqlx::query(
            "SELECT channel_key, CAST(pending AS BIGINT) AS pending FROM outbox_channels WHERE pending <> 0",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
        assert!(
            counts.is_empty(),
            "seed {seed}: queues count items their rows do not have: {counts:?}"
        );
        sqlx::query("DELETE FROM outbox").execute(&store.pool).await.unwrap();
        sqlx::query("DELETE FROM outbox_channels")
            .execute(&store.pool)
            .await
            .unwrap();
    }
}

async fn api_tokens_are_unique_among_live_ones(s: &Store) {
    use releasebot::store::tokens;
    let mut conn = s.pool.acquire().await.unwrap();
    let apps = vec!["payments".to_string()];
    let first = tokens::create(&mut conn, "ci", &apps, "h1", "cli:ops", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tokens::create(&mut conn, "ci", &apps, "h2", "cli:ops", T0)
            .await
            .unwrap(),
        None
    );
    tokens::used(&mut conn, first, T0 + 5).await.unwrap();
    let t = tokens::get(&mut conn, first).await.unwrap().unwrap();
    assert_eq!(
        (t.applications.clone(), t.secret_hash.as_str(), t.last_used_at),
        (apps.clone(), "h1", Some(T0 + 5))
    );
    assert!(tokens::revoke(&mut conn, "ci", "cli:ops", T0 + 9).await.unwrap());
    assert!(!tokens::revoke(&mut conn, "ci", "cli:ops", T0 + 9).await.unwrap());
    assert_eq!(
        tokens::get(&mut conn, first).await.unwrap().unwrap().revoked_at,
        Some(T0 + 9)
    );
    let second = tokens::create(&mut conn, "ci", &apps, "h3", "cli:ops", T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(
        tokens::live(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [second]
    );
}

async fn a_baseline_keeps_what_ran_on_kubernetes(s: &Store) {
    use releasebot::store::executions::{self as q, Baseline, Workload};
    let mut conn = s.pool.acquire().await.unwrap();
    let mut b = Baseline {
        id: 0,
        application: "payments".into(),
        environment: "prod".into(),
        execution: None,
        kind: "before".into(),
        version: "2.0.0".into(),
        replicas: 0,
        config_version: "-".into(),
        recorded_at: T0,
        simulated: false,
        workload: Workload::default(),
    };
    b.id = q::record_baseline(&mut conn, &b).await.unwrap();
    let w = Workload {
        image: Some("reg/pay:2.0.0".into()),
        digest: Some("reg/pay@sha256:ab".into()),
        config_refs: vec!["configmap/pay".into(), "secret/pay-db".into()],
    };
    q::fill_workload(&mut conn, b.id, &w, 3).await.unwrap();
    // Filled once: what was found first stays.
    q::fill_workload(
        &mut conn,
        b.id,
        &Workload {
            image: Some("other".into()),
            ..Workload::default()
        },
        9,
    )
    .await
    .unwrap();
    let read = q::baseline(&mut conn, b.id).await.unwrap().unwrap();
    assert_eq!((read.workload, read.replicas), (w.clone(), 3));
    assert_eq!(w.deployable(), Some("reg/pay@sha256:ab"));
}
