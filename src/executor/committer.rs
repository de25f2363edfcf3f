//! Group commit of the executor's ordinary moves (a step's result, the next step's start,
//! and the edit of the progress message that shows them). Hundreds of executions move at
//! once; on SQLite every transaction goes through one writer, where a transaction per move
//! would make each move wait for all the others' round trips. A task that commits while
//! no write is under way writes at once, itself — no hand-over to another task and back;
//! the moves that queue up meanwhile are written after it, all in one transaction, by a
//! task that keeps writing until none wait. A move whose execution someone changed
//! meanwhile (its version is stale) writes nothing and is answered `false`, as a lone save
//! would be.

use crate::outbox::Batch;
use crate::store::executions::{self as q, Lease};
use crate::store::outbox as outbox_q;
use crate::store::{Backend, Marks, Store};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

/// Most moves one transaction writes.
const GROUP: usize = 256;
/// Most messages written in one request on SQLite (twelve values each, well within
/// SQLite's limit of 32,766).
const MAX_TOGETHER: usize = 1_000;

/// One execution's move, ready to be written.
pub(crate) struct Move {
    pub id: i64,
    pub version: i64,
    pub status: &'static str,
    pub state: String,
    pub next_wake: i64,
    pub finished_at: Option<i64>,
    pub lease: Lease,
    pub now: i64,
    /// Its messages, written only if the move is.
    pub outbox: Batch,
    /// Statements written before the move's save, each guarded by the same version check
    /// (an ending's: `store::executions::ending_statements`).
    pub extra: Vec<crate::store::Statement>,
}

impl Move {
    /// The move as the executions table takes it.
    fn save(&self) -> q::Save<'_> {
        q::Save {
            id: self.id,
            version: self.version,
            status: self.status,
            state: &self.state,
            next_wake: self.next_wake,
            finished_at: self.finished_at,
            lease: self.lease,
            now: self.now,
        }
    }
}

type Pending = (Move, oneshot::Sender<Result<bool, String>>);

/// Writes moves, grouping those that wait; cheap to clone.
#[derive(Clone)]
pub(crate) struct Committer {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    /// Wakes the outbox once messages are written.
    notify: Arc<Notify>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    /// A write is under way (its writer takes what waits when it is done).
    writing: bool,
}

impl Committer {
    /// `notify` wakes the outbox.
    pub fn start(store: Store, notify: Arc<Notify>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                notify,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Writes `m` with the moves of other executions; whether it was saved (`false`: the
    /// execution changed meanwhile, nothing was written).
    pub async fn commit(&self, m: Move) -> anyhow::Result<bool> {
        let (answer, lead) = self.queue(m);
        if lead {
            // This task writes its move (and any that joined it) and goes on with its
            // step; whatever queued up meanwhile is written by a task of its own.
            let mut writer = Writer(Some(self.shared.clone()));
            let mut held = None;
            let group = self.shared.take();
            self.shared.write(group, &mut held).await;
            if !self.shared.done() {
                if let Some(shared) = writer.0.take() {
                    // The connection goes with the work: no round trip to give it back.
                    tokio::spawn(shared.drain(held));
                }
            }
            writer.0 = None;
        }
        settled(answer.await)
    }

    /// Queues `m` to be written by a task of the committer's own, and returns at once: the
    /// caller goes on and reads the answer when it must know ([`settled`]).
    pub fn submit(&self, m: Move) -> Answer {
        let (answer, lead) = self.queue(m);
        if lead {
            tokio::spawn(self.shared.clone().drain(None));
        }
        answer
    }

    /// Queues `m`; whether no write was under way (the caller then sees that it is written).
    fn queue(&self, m: Move) -> (Answer, bool) {
        let (reply, answer) = oneshot::channel();
        let mut q = self.shared.lock();
        q.waiting.push((m, reply));
        (answer, !std::mem::replace(&mut q.writing, true))
    }
}

/// Whether a submitted move was saved (`false`: the execution changed meanwhile).
pub(crate) type Answer = oneshot::Receiver<Result<bool, String>>;

/// A submitted move's answer, as [`Committer::commit`] gives it.
pub(crate) fn settled(answer: Result<Result<bool, String>, oneshot::error::RecvError>) -> anyhow::Result<bool> {
    answer
        .map_err(|_| anyhow::anyhow!("the executor's writer has stopped"))?
        .map_err(|e| anyhow::anyhow!("saving the move: {e}"))
}

/// The writer's duty: if its task is dropped mid-write, the moves still waiting are
/// written by a task of their own.
struct Writer(Option<Arc<Shared>>);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            if !shared.done() {
                tokio::spawn(shared.drain(None));
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next group (the oldest waiting moves).
    fn take(&self) -> Vec<Pending> {
        let mut q = self.lock();
        let n = q.waiting.len().min(GROUP);
        q.waiting.drain(..n).collect()
    }

    /// Ends the write if no move waits (true); otherwise the writer goes on.
    fn done(&self) -> bool {
        let mut q = self.lock();
        if q.waiting.is_empty() {
            q.writing = false;
        }
        !q.writing
    }

    /// Writes groups until no move waits, on the connection it is given or takes.
    async fn drain(self: Arc<Self>, mut held: Held) {
        loop {
            let group = self.take();
            self.write(group, &mut held).await;
            if self.done() {
                return;
            }
        }
    }

    /// Writes a group and answers each of its moves.
    async fn write(&self, mut group: Vec<Pending>, held: &mut Held) {
        if group.is_empty() {
            return;
        }
        let answers = match write(&self.store, held, &group).await {
            Ok(saved) => saved.into_iter().map(Ok).collect(),
            // One bad move must not fail the others: each alone, in its own transaction.
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), moves = group.len(), "executor: a group of moves failed; writing them one by one");
                let mut answers = Vec::with_capacity(group.len());
                for i in 0..group.len() {
                    let answer = write(&self.store, held, &group[i..=i]).await;
                    answers.push(answer.map(|s| s[0]).map_err(|e| format!("{e:#}")));
                }
                answers
            }
        };
        for ((_, reply), answer) in group.drain(..).zip(answers) {
            let _ = reply.send(answer);
        }
        self.notify.notify_one();
    }
}

/// SQLite's writer connection, kept while groups follow each other: giving it back to
/// its pool costs a round trip to its thread (sqlx pings every connection it takes back).
type Held = Option<sqlx::pool::PoolConnection<sqlx::Any>>;

/// Saves `group` in one transaction: each move whose version still holds, and the
/// messages of those.
async fn write(store: &Store, held: &mut Held, group: &[Pending]) -> anyhow::Result<Vec<bool>> {
    let saves: Vec<q::Save<'_>> = group.iter().map(|(m, _)| m.save()).collect();
    let items: usize = group.iter().map(|(m, _)| m.outbox.len()).sum();
    if store.backend == Backend::Sqlite && saves.len() <= q::SAVES_PER_STATEMENT && items <= MAX_TOGETHER {
        let conn = match held {
            Some(conn) => conn,
            None => held.insert(store.pool.acquire().await?),
        };
        let written = write_together(store, conn, group, &saves).await;
        if written.is_err() {
            // Rolled back (or to be closed): not kept.
            *held = None;
        }
        return written;
    }
    // The statement-by-statement write takes the connection from the pool.
    *held = None;
    write_apart(store, group, &saves).await
}

/// [`write`] statement by statement (PostgreSQL; SQLite beyond [`MAX_TOGETHER`]).
async fn write_apart(store: &Store, group: &[Pending], saves: &[q::Save<'_>]) -> anyhow::Result<Vec<bool>> {
    let mut tx = store.begin().await?;
    for (m, _) in group {
        for s in &m.extra {
            s.query().execute(&mut *tx).await?;
        }
    }
    let saved = q::save_many(&mut tx, &store.owner, saves).await?;
    let mut outbox = Batch::default();
    for ((m, _), ok) in group.iter().zip(&saved) {
        if *ok {
            outbox.append(&m.outbox);
        }
    }
    outbox.flush(&mut tx).await?;
    tx.commit().await?;
    Ok(saved)
}

/// [`write`] on SQLite in one request to the writer's thread instead of one per statement
/// (seven): every hand-over between threads costs more than the statements themselves.
/// The moves' other statements and their messages are written first, each only if its
/// move will be saved (the same check as the save's); then the moves.
async fn write_together(
    store: &Store,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    group: &[Pending],
    saves: &[q::Save<'_>],
) -> anyhow::Result<Vec<bool>> {
    let rows = group
        .iter()
        .map(|(m, _)| Ok(((m.id, m.version), m.outbox.rows()?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let items: Vec<outbox_q::Guarded<'_>> = rows
        .iter()
        .flat_map(|((execution, version), rows)| {
            rows.iter().map(|r| outbox_q::Guarded {
                execution: *execution,
                version: *version,
                item: r.item(),
                edit: r.edit.as_deref(),
                once: r.once,
            })
        })
        .collect();
    let now = rows
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.now))
        .max()
        .unwrap_or(0);
    let mut statements: Vec<_> = group.iter().flat_map(|(m, _)| m.extra.iter().cloned()).collect();
    statements.extend(outbox_q::guarded_statements(&items, &store.owner, now));
    statements.push(q::save_many_statement(
        Marks::for_backend(Backend::Sqlite),
        &store.owner,
        saves,
    )?);
    let rows = crate::store::commit_together(conn, statements).await?;
    match rows.last() {
        Some(returned) => q::saved(saves, returned),
        None => anyhow::bail!("the moves' statement did not run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Outbound};
    use sqlx::Row;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        // Executions without their tickets: only the moves are under test.
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .unwrap();
        for id in [1, 2] {
            sqlx::query(
                "INSERT INTO executions (id, ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, started_at, updated_at, lease_owner)
                 VALUES ($1, $1, 'p', 'a', 'prod', 'RUNNING', '{}', 'slack', 'C1', 1, 0, 0, 0, $2)",
            )
            .bind(id)
            .bind(store.owner.to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        (dir, store)
    }

    fn message(title: &str) -> Message {
        Message {
            title: title.into(),
            ..Default::default()
        }
    }

    /// A move of execution `id` from `version`, with its messages.
    fn pending(id: i64, version: i64, messages: &[(Outbound, Option<&str>)]) -> Pending {
        let mut outbox = Batch::default();
        for (out, key) in messages {
            outbox.push("slack", out, *key, 1_000);
        }
        let (reply, _) = oneshot::channel();
        let m = Move {
            id,
            version,
            status: "RUNNING",
            state: format!("{{\"v\":{version}}}"),
            next_wake: 0,
            finished_at: None,
            lease: Lease::Hold(60_000),
            now: 1_000,
            outbox,
            extra: vec![],
        };
        (m, reply)
    }

    fn saves(group: &[Pending]) -> Vec<q::Save<'_>> {
        group.iter().map(|(m, _)| m.save()).collect()
    }

    /// Writes `group` one way or the other; which moves were saved.
    async fn write_one(store: &Store, together: bool, group: Vec<Pending>) -> Vec<bool> {
        if together {
            let mut conn = store.pool.acquire().await.unwrap();
            write_together(store, &mut conn, &group, &saves(&group)).await.unwrap()
        } else {
            write_apart(store, &group, &saves(&group)).await.unwrap()
        }
    }

    /// The one text column of each row `sql` reads.
    async fn lines(store: &Store, sql: &str) -> Vec<String> {
        sqlx::query(sql)
            .fetch_all(&store.read)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }

    /// Everything the writes left: the outbox (payloads parsed), the queues, the executions.
    async fn contents(store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        for r in sqlx::query("SELECT platform, channel_key, kind, msg_key, payload, status, next_attempt_at, created_at FROM outbox ORDER BY id")
            .fetch_all(&store.read)
            .await
            .unwrap()
        {
            let payload: serde_json::Value = serde_json::from_str(&r.get::<String, _>("payload")).unwrap();
            out.push(format!(
                "outbox {} {} {} {:?} {payload} {} {} {}",
                r.get::<String, _>("platform"),
                r.get::<String, _>("channel_key"),
                r.get::<String, _>("kind"),
                r.get::<Option<String>, _>("msg_key"),
                r.get::<String, _>("status"),
                r.get::<i64, _>("next_attempt_at"),
                r.get::<i64, _>("created_at"),
            ));
        }
        out.extend(
            lines(
                store,
                "SELECT 'queue ' || channel_key || ' ' || platform || ' ' || pending || ' ' || due_at FROM outbox_channels ORDER BY channel_key",
            )
            .await,
        );
        out.extend(
            lines(
                store,
                "SELECT 'execution ' || id || ' ' || version || ' ' || state FROM executions ORDER BY id",
            )
            .await,
        );
        out
    }

    /// The one-request write on SQLite leaves exactly what the statement-by-statement
    /// write leaves: a post, an edit folded into the undelivered post, an announcement,
    /// an edit of an undelivered edit, and a stale move that writes nothing.
    #[tokio::test]
    async fn writing_together_equals_writing_apart() {
        let post = |t: &str| Outbound::Post {
            channel: "C1".into(),
            message: message(t),
        };
        let update = |t: &str| Outbound::Update {
            channel: "C1".into(),
            message: message(t),
        };
        let rounds = || {
            vec![
                vec![pending(1, 1, &[(post("started"), Some("p1"))])],
                vec![
                    pending(1, 2, &[(update("step 2"), Some("p1")), (post("gate!"), None)]),
                    // Stale: execution 2 is at version 1.
                    pending(2, 7, &[(update("lost"), Some("p2")), (post("lost too"), None)]),
                ],
                vec![pending(2, 1, &[(update("edit before any post"), Some("p2"))])],
                vec![pending(2, 2, &[(update("edit again"), Some("p2"))])],
            ]
        };
        let (_a, together) = store().await;
        let (_b, apart) = store().await;
        let mut answers = (Vec::new(), Vec::new());
        // One connection for every round, as a writer keeps it while groups follow.
        let mut conn = together.pool.acquire().await.unwrap();
        for group in rounds() {
            answers.0.push(
                write_together(&together, &mut conn, &group, &saves(&group))
                    .await
                    .unwrap(),
            );
        }
        drop(conn);
        for group in rounds() {
            answers
                .1
                .push(write_apart(&apart, &group, &saves(&group)).await.unwrap());
        }
        assert_eq!(answers.0, vec![vec![true], vec![true, false], vec![true], vec![true]]);
        assert_eq!(answers.0, answers.1);
        let left = contents(&together).await;
        assert_eq!(left, contents(&apart).await);
        let text = left.join("\n");
        assert!(
            text.contains("step 2") && !text.contains("\"started\"") && !text.contains("lost"),
            "{text}"
        );
        assert!(
            text.contains("edit again") && !text.contains("edit before any post"),
            "{text}"
        );
        assert!(text.contains("queue slack:C1 slack 3"), "{text}");
    }

    /// A progress message is drawn when it is delivered: while one waits for the same
    /// message, a move writes none; once it is under way or sent, the next move adds one
    /// (which will show what that move and the ones after it did). The same on both ways
    /// of writing.
    #[tokio::test]
    async fn a_progress_message_waits_once_whatever_moves_follow() {
        let progress = |id: i64| {
            (
                Outbound::Progress {
                    channel: "C1".into(),
                    execution: id,
                },
                Some(if id == 1 { "x1:progress" } else { "x2:progress" }),
            )
        };
        let notice = (
            Outbound::Post {
                channel: "C1".into(),
                message: message("notice"),
            },
            None,
        );
        for together in [true, false] {
            let (_dir, store) = store().await;
            let write_one = async |group: Vec<Pending>| write_one(&store, together, group).await;
            let waiting = async || {
                lines(
                    &store,
                    "SELECT msg_key || ' ' || status FROM outbox WHERE kind = 'progress' ORDER BY id",
                )
                .await
            };
            // A stale move writes nothing, not even where none waits.
            assert_eq!(
                write_one(vec![pending(1, 9, &[progress(1), notice.clone()])]).await,
                vec![false]
            );
            assert_eq!(
                write_one(vec![pending(1, 1, &[progress(1)]), pending(2, 1, &[progress(2)])]).await,
                vec![true, true]
            );
            assert_eq!(
                write_one(vec![
                    pending(1, 2, &[progress(1), notice.clone()]),
                    pending(2, 2, &[progress(2)]),
                ])
                .await,
                vec![true, true]
            );
            assert_eq!(
                waiting().await,
                vec!["x1:progress pending", "x2:progress pending"],
                "together: {together}"
            );
            // Execution 1's is being delivered; execution 2's still waits.
            let mut conn = store.pool.acquire().await.unwrap();
            sqlx::query("UPDATE outbox SET status = 'sending' WHERE msg_key = 'x1:progress'")
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            assert_eq!(
                write_one(vec![pending(1, 3, &[progress(1)]), pending(2, 3, &[progress(2)])]).await,
                vec![true, true]
            );
            assert_eq!(
                waiting().await,
                vec!["x1:progress sending", "x2:progress pending", "x1:progress pending"],
                "together: {together}"
            );
            // Every item written is counted in its queue: 2 + the notice + 1.
            assert_eq!(
                lines(&store, "SELECT 'queue ' || pending FROM outbox_channels").await,
                vec!["queue 4"],
                "together: {together}"
            );
        }
    }

    /// An ending written with other moves writes its baseline (what it started from where
    /// it leaves that), its event and its lock given up only with its move; and when a
    /// release of its target waits, the fence holds the whole move back (its version
    /// changes, for the ending to be committed alone with the lock passed on). The same
    /// on both ways of writing.
    #[tokio::test]
    async fn an_ending_is_written_with_its_move_or_not_at_all() {
        use crate::domain::execution::Left;
        use crate::store::inbox::NewEvent;
        let ending = |id: i64, version: i64, owner: &str, left: &Left| {
            let event = NewEvent {
                platform: "slack".into(),
                dedupe_key: format!("x{id}:ended"),
                order_key: format!("ticket:{id}"),
                payload: "{}".into(),
            };
            let mut p = pending(
                id,
                version,
                &[(
                    Outbound::Post {
                        channel: "C1".into(),
                        message: message("report"),
                    },
                    None,
                )],
            );
            p.0.extra = q::ending_statements(
                Backend::Sqlite,
                (id, version, owner),
                ("a", "prod"),
                left,
                &event,
                5_000,
            );
            p
        };
        let rolled_back = Left {
            kind: "after",
            version: None,
            replicas: None,
            simulated: false,
        };
        let released = Left {
            kind: "after",
            version: Some("3.0".into()),
            replicas: None,
            simulated: true,
        };
        for together in [true, false] {
            let (_dir, store) = store().await;
            let owner = store.owner.to_string();
            let exec = async |sql: &str| {
                let mut conn = store.pool.acquire().await.unwrap();
                sqlx::query(sql).execute(&mut *conn).await.unwrap();
            };
            exec("INSERT INTO baselines (application, environment, execution_id, kind, version, replicas, config_version, recorded_at, simulated)
                  VALUES ('a', 'prod', 1, 'before', '1.0', 3, 'c7', 0, 0)").await;
            exec(
                "INSERT INTO release_locks (application, environment, execution_id, since) VALUES ('a', 'prod', 1, 0)",
            )
            .await;
            let write_one = async |group: Vec<Pending>| write_one(&store, together, group).await;
            // A stale ending (execution 2 is at version 1) beside a good one.
            let saved = write_one(vec![
                ending(1, 1, &owner, &rolled_back),
                ending(2, 9, &owner, &released),
            ])
            .await;
            assert_eq!(saved, vec![true, false]);
            // Execution 3 waits for the target: execution 2's ending is held back whole.
            exec("INSERT INTO executions (id, ticket_id, plan_id, application, environment, status, state, platform, channel, version, next_wake, started_at, updated_at)
                  VALUES (3, 3, 'p', 'a', 'prod', 'QUEUED', '{}', 'slack', 'C1', 1, 0, 0, 0)").await;
            let saved = write_one(vec![ending(2, 1, &owner, &released)]).await;
            assert_eq!(saved, vec![false]);
            let mut left = contents(&store).await;
            left.extend(
                lines(
                    &store,
                    "SELECT 'baseline ' || execution_id || ' ' || kind || ' ' || version || ' ' || replicas || ' ' || config_version
                            || ' ' || recorded_at || ' ' || simulated FROM baselines ORDER BY id",
                )
                .await,
            );
            left.extend(
                lines(
                    &store,
                    "SELECT 'inbox ' || dedupe_key || ' ' || status FROM inbox ORDER BY id",
                )
                .await,
            );
            left.extend(lines(&store, "SELECT 'locks ' || COUNT(*) FROM release_locks").await);
            let text = left.join("\n");
            assert_eq!(
                left.iter().filter(|l| l.starts_with("outbox")).count(),
                1,
                "one report, execution 1's: {text}"
            );
            for expected in [
                "baseline 1 before 1.0 3 c7 0 0",
                // Rolled back: what it started from.
                "baseline 1 after 1.0 3 c7 5000 0",
                "inbox x1:ended pending",
                "locks 0",
                // The fence moved execution 2 on; nothing else of its ending was written.
                "execution 2 2 {}",
            ] {
                assert!(
                    left.iter().any(|l| l == expected),
                    "{expected} missing (together: {together}):\n{text}"
                );
            }
            assert!(!text.contains("x2:ended") && !text.contains("3.0"), "{text}");
        }
    }
}
