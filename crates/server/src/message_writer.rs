//! The node's message writer: chat messages stored by group commit.
//!
//! Sessions hand their messages to one task per node. While a commit is in flight the messages
//! that arrive queue up; as soon as it is done, the task stores everything queued in one
//! transaction ([`Database::post_messages`]: one multi-row INSERT, one commit), then publishes
//! the stored frames to their rooms in id order and answers each session. A message therefore
//! waits for at most the commit in flight and its own, however many arrive at once, and the
//! database flushes its log once per batch rather than once per message.
//!
//! Ordering: the queue is first-in, first-out, a batch's ids increase in queue order, and one
//! task publishes every batch before it starts the next, so frames leave this node in id order
//! (and with Redis, [`crate::fanout`] keeps the order it is handed). A session sends its next
//! message only once the previous one is answered, so one sender's messages are stored and
//! published in the order sent.
//!
//! Failures: nothing is published for a message that was not stored, and its sender is answered
//! with the error. A batch the database refuses for a reason other than its being unreachable
//! (a room that does not exist, a row it will not take) is stored again one message at a time,
//! so that one bad message does not fail the others.

use std::sync::Arc;

use roomgate_api::ServerFrame;
use roomgate_persistence::{Database, MessageRecord, NewMessage, PersistenceError};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Frame, Hub};
use crate::views;

/// Messages stored in one transaction at most; more wait for the next commit.
const MAX_BATCH: usize = 512;

/// What a session hears back about its message: the stored record, or why it was not stored.
pub type Stored = Result<MessageRecord, Arc<PersistenceError>>;

type Pending = (NewMessage, oneshot::Sender<Stored>);

/// The handle sessions post through. Cheap to clone; the task ends when every handle is gone.
#[derive(Clone, Debug)]
pub struct MessageWriter {
    // Unbounded because it is bounded already: each session has at most one message waiting
    // here (it waits for the answer before reading its next frame), so the queue never holds
    // more than one message per live session.
    queue: mpsc::UnboundedSender<Pending>,
}

impl MessageWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Database, hub: Hub) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(db, hub, pending));
        Self { queue }
    }

    /// Stores `message` with whatever else is waiting and, once it is stored, publishes it to
    /// its room. Resolves when both are done, or with the reason it was not stored (then
    /// nothing was published).
    pub async fn post(&self, message: NewMessage) -> Stored {
        let (answer, answered) = oneshot::channel();
        if self.queue.send((message, answer)).is_err() {
            return Err(stopped());
        }
        // The writer answers every message it takes; a dropped answer means it is gone.
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> Arc<PersistenceError> {
    Arc::new(PersistenceError::Unavailable(
        "the message writer has stopped".to_owned(),
    ))
}

async fn write_loop(db: Database, hub: Hub, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (messages, answers): (Vec<NewMessage>, Vec<_>) = batch.drain(..).unzip();
        match db.post_messages(&messages).await {
            Ok(records) => {
                for (record, answer) in records.into_iter().zip(answers) {
                    publish(&hub, record, answer);
                }
            }
            Err(error) if messages.len() > 1 && !error.is_retryable() => {
                tracing::warn!(%error, messages = messages.len(), "a batch of messages was refused; storing them one by one");
                for (message, answer) in messages.into_iter().zip(answers) {
                    match db.post_messages(std::slice::from_ref(&message)).await {
                        Ok(records) => {
                            if let Some(record) = records.into_iter().next() {
                                publish(&hub, record, answer);
                            }
                        }
                        Err(error) => {
                            let _ = answer.send(Err(Arc::new(error)));
                        }
                    }
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for answer in answers {
                    // A session that stopped waiting (it ended) needs no answer.
                    let _ = answer.send(Err(Arc::clone(&error)));
                }
            }
        }
    }
}

/// Publishes a stored message to its room, then tells its sender.
fn publish(hub: &Hub, record: MessageRecord, answer: oneshot::Sender<Stored>) {
    let frame = ServerFrame::Message(views::message(&record)).to_text();
    hub.publish(&record.room_id, Frame::from(frame));
    let _ = answer.send(Ok(record));
}
