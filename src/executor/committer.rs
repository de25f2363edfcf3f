//! Group commit of the executor's ordinary moves (a step's result, the next step's start,
//! and the edit of the progress message that shows them). Hundreds of executions move at
//! once; on SQLite every transaction goes through one writer, where a transaction per move
//! would make each move wait for all the others' round trips. Tasks hand their prepared
//! move to one writer task, which saves every move that has queued up meanwhile, with
//! their messages, in one transaction. A move whose execution someone changed meanwhile
//! (its version is stale) writes nothing and is answered `false`, as a lone save would be.

use crate::outbox::Batch;
use crate::store::executions::{self as q, Lease};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

/// Most moves one transaction writes.
const GROUP: usize = 256;

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
}

type Pending = (Move, oneshot::Sender<Result<bool, String>>);

/// Hands moves to the writer task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Committer {
    /// Starts the writer task (on the current runtime); `notify` wakes the outbox.
    pub fn start(store: Store, notify: Arc<Notify>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            let mut group: Vec<Pending> = Vec::with_capacity(GROUP);
            while rx.recv_many(&mut group, GROUP).await > 0 {
                let answers = match write(&store, &group).await {
                    Ok(saved) => saved.into_iter().map(Ok).collect(),
                    // One bad move must not fail the others: each alone, in its own transaction.
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), moves = group.len(), "executor: a group of moves failed; writing them one by one");
                        let mut answers = Vec::with_capacity(group.len());
                        for i in 0..group.len() {
                            let answer = write(&store, &group[i..=i]).await;
                            answers.push(answer.map(|s| s[0]).map_err(|e| format!("{e:#}")));
                        }
                        answers
                    }
                };
                for ((_, reply), answer) in group.drain(..).zip(answers) {
                    let _ = reply.send(answer);
                }
                notify.notify_one();
            }
        });
        Self { tx }
    }

    /// Writes `m` with the moves of other executions; whether it was saved (`false`: the
    /// execution changed meanwhile, nothing was written).
    pub async fn commit(&self, m: Move) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((m, reply))
            .map_err(|_| anyhow::anyhow!("the executor's writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the executor's writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("saving the move: {e}"))
    }
}

/// Saves `group` in one transaction: each move whose version still holds, and the
/// messages of those.
async fn write(store: &Store, group: &[Pending]) -> anyhow::Result<Vec<bool>> {
    let mut tx = store.begin().await?;
    let saves: Vec<q::Save<'_>> = group
        .iter()
        .map(|(m, _)| q::Save {
            id: m.id,
            version: m.version,
            status: m.status,
            state: &m.state,
            next_wake: m.next_wake,
            finished_at: m.finished_at,
            lease: m.lease,
            now: m.now,
        })
        .collect();
    let saved = q::save_many(&mut tx, &store.owner, &saves).await?;
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
