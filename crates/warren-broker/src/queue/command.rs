//! What other tasks ask of a queue task.

use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot};
use warren_store::{MessageId, MessageRef, QueuedMessage};

use super::Consumer;
use crate::connection::Outbound;
use crate::error::AmqpResult;

/// Where a queue sends its verdict on a publish the channel is waiting on (publisher
/// confirms for a queue that may refuse messages). A ticket dropped unanswered (its
/// queue was deleted with the message) counts as an ack, as RabbitMQ confirms messages
/// of deleted queues.
#[derive(Debug)]
pub(crate) struct ConfirmTicket {
    tx: mpsc::UnboundedSender<Outbound>,
    channel: u16,
    seq: u64,
    answered: bool,
}

impl ConfirmTicket {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Outbound>, channel: u16, seq: u64) -> Self {
        Self {
            tx,
            channel,
            seq,
            answered: false,
        }
    }

    /// Tell the channel whether the queue took the message.
    pub(crate) fn resolve(mut self, ack: bool) {
        self.send(ack);
    }

    fn send(&mut self, ack: bool) {
        self.answered = true;
        // A closed connection no longer needs the verdict.
        let _ = self.tx.send(Outbound::Confirm {
            channel: self.channel,
            seq: self.seq,
            ack,
        });
    }
}

impl Drop for ConfirmTicket {
    fn drop(&mut self) {
        if !self.answered {
            self.send(true);
        }
    }
}

/// Message ids, usually few per command.
pub(crate) type Ids = SmallVec<[MessageId; 8]>;

/// The answer to `basic.get`.
#[derive(Debug)]
pub(crate) struct GetReply {
    pub message: QueuedMessage,
    /// Messages still ready after this one.
    pub remaining: u32,
}

/// A request to a queue task. Commands from one sender are handled in the order sent.
#[derive(Debug)]
pub(crate) enum QueueCmd {
    /// Enqueue a routed message; `confirm` when the publisher waits for our verdict.
    Publish {
        message: MessageRef,
        confirm: Option<ConfirmTicket>,
    },
    /// Register a consumer.
    Consume {
        consumer: Consumer,
        reply: oneshot::Sender<AmqpResult>,
    },
    /// Remove a consumer.
    Cancel {
        consumer_id: u64,
        reply: Option<oneshot::Sender<()>>,
    },
    /// Take one message for `basic.get`.
    Get {
        track: bool,
        reply: oneshot::Sender<Option<GetReply>>,
    },
    /// Acknowledged: forget them.
    Ack { ids: Ids },
    /// Rejected with requeue, or their channel went away: back to the queue, redelivered.
    Requeue { ids: Ids },
    /// Rejected without requeue: drop them.
    Discard { ids: Ids },
    /// Handed out but never reached the client (consumer gone before the connection
    /// wrote them): back to the queue as they were.
    Undelivered {
        tracked: Ids,
        untracked: Vec<QueuedMessage>,
    },
    /// Report (ready messages, consumers), after every earlier command of the sender.
    Stat { reply: oneshot::Sender<(u32, u32)> },
    /// Drop all ready messages.
    Purge { reply: oneshot::Sender<u32> },
    /// Delete the queue (after checking the conditions).
    Delete {
        if_unused: bool,
        if_empty: bool,
        reply: Option<oneshot::Sender<AmqpResult<u32>>>,
    },
}
