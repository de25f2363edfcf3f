//! The local chat's client: the outbox delivers to it like to any platform; it keeps the
//! messages in the database and tells the open pages what changed.

use crate::chat::local::dm_channel;
use crate::chat::{ChatClient, Delivery, MessageRef, Reconciled, SendError};
use crate::chat::{Location, Outbound, Texts};
use crate::clock::SharedClock;
use crate::store::local::{self as q, NewMessage};
use crate::store::Store;
use async_trait::async_trait;
use tokio::sync::broadcast;

/// Something changed for the open pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message of this channel was posted or edited.
    Channel(String),
    /// A form was opened for this person.
    Form(String),
}

/// The local chat's outbound client.
pub struct LocalChat {
    store: Store,
    clock: SharedClock,
    changes: broadcast::Sender<Change>,
}

impl LocalChat {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            changes: broadcast::channel(1024).0,
        }
    }

    /// Changes from now on (the live updates of open pages).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn changed(&self, c: Change) {
        // Nobody listening is fine: pages load what they missed when they open.
        let _ = self.changes.send(c);
    }

    async fn post(
        &self,
        delivery: Delivery,
        channel: &str,
        visible_to: Option<&str>,
        parent: Option<i64>,
        message: &crate::chat::Message,
    ) -> Result<i64, SendError> {
        let json = serde_json::to_string(message).map_err(|e| SendError::Permanent(e.to_string()))?;
        let id = q::post(
            &self.store,
            &NewMessage {
                channel,
                visible_to,
                parent,
                message: &json,
                delivery: &delivery.key(),
            },
            self.clock.now_ms(),
        )
        .await
        .map_err(|e| SendError::Transient(format!("{e:#}")))?;
        self.changed(Change::Channel(channel.to_string()));
        Ok(id)
    }
}

#[async_trait]
impl ChatClient for LocalChat {
    async fn send(
        &self,
        _texts: &Texts,
        delivery: Delivery,
        out: &Outbound,
        existing: Option<&MessageRef>,
    ) -> Result<Option<Location>, SendError> {
        let location = |channel: &str, id: i64| {
            Some(Location {
                channel: channel.to_string(),
                ts: id.to_string(),
            })
        };
        match out {
            Outbound::Post { channel, message } => {
                let id = self.post(delivery, channel, None, None, message).await?;
                Ok(location(channel, id))
            }
            Outbound::Direct { user, message } => {
                let channel = dm_channel(user);
                let id = self.post(delivery, &channel, Some(user), None, message).await?;
                Ok(location(&channel, id))
            }
            Outbound::Ephemeral {
                channel, user, message, ..
            } => {
                self.post(delivery, channel, Some(user), None, message).await?;
                Ok(None)
            }
            Outbound::Reply { channel, message } => {
                let (channel, parent) = match existing {
                    Some(p) => (p.channel.as_str(), p.ts.parse::<i64>().ok()),
                    None => (channel.as_str(), None),
                };
                self.post(delivery, channel, None, parent, message).await?;
                Ok(None)
            }
            Outbound::Update { message, .. } => {
                let r = existing.ok_or_else(|| SendError::Permanent("no message to edit".into()))?;
                let id: i64 =
                    r.ts.parse()
                        .map_err(|_| SendError::Permanent(format!("not a local message id: {}", r.ts)))?;
                let json = serde_json::to_string(message).map_err(|e| SendError::Permanent(e.to_string()))?;
                let found = q::update(&self.store, id, &json, self.clock.now_ms())
                    .await
                    .map_err(|e| SendError::Transient(format!("{e:#}")))?;
                if !found {
                    return Err(SendError::Permanent(format!("message {id} does not exist")));
                }
                self.changed(Change::Channel(r.channel.clone()));
                Ok(None)
            }
            Outbound::Progress { .. } => Err(SendError::Permanent(crate::chat::UNDRAWN.into())),
            Outbound::OpenForm {
                trigger, form, user, ..
            } => {
                let json = serde_json::to_string(form).map_err(|e| SendError::Permanent(e.to_string()))?;
                q::open_form(&self.store, trigger, user, &json, self.clock.now_ms())
                    .await
                    .map_err(|e| SendError::Transient(format!("{e:#}")))?;
                self.changed(Change::Form(user.clone()));
                Ok(None)
            }
        }
    }

    /// Posts carry their delivery's key, unique in the table: sending again finds the
    /// first attempt's message instead of making a second one.
    async fn reconcile(&self, _texts: &Texts, _delivery: Delivery, _out: &Outbound) -> Result<Reconciled, SendError> {
        Ok(Reconciled::SendAgain)
    }
}
