//! What other tasks ask of a queue task.

use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot};
use warren_store::{MessageId, MessageRef, QueuedMessage};

use super::Consumer;
use crate::connection::Outbound;
use crate::error::AmqpResult;

/// Where a queue sends its verdict on a publish the channel is waiting on: publisher
/// confirms for a queue that may refuse messages or must sync them first, and
/// transaction commits that must wait for the sync. A ticket dropped unanswered (its
/// queue was deleted with the message) counts as an ack, as RabbitMQ confirms messages
/// of deleted queues.
#[derive(Debug)]
pub(crate) struct ConfirmTicket {
    to: TicketFor,
    answered: bool,
}

#[derive(Debug)]
enum TicketFor {
    /// A confirm-mode publish: the verdict goes to the connection as `basic.ack`/`nack`.
    Confirm {
        tx: mpsc::UnboundedSender<Outbound>,
        channel: u16,
        seq: u64,
    },
    /// A publish in a committing transaction: `false` only when storing it failed.
    Commit(mpsc::UnboundedSender<bool>),
}

impl ConfirmTicket {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Outbound>, channel: u16, seq: u64) -> Self {
        Self {
            to: TicketFor::Confirm { tx, channel, seq },
            answered: false,
        }
    }

    /// A ticket for a transaction's commit, which waits until every one is answered.
    pub(crate) fn for_commit(tx: mpsc::UnboundedSender<bool>) -> Self {
        Self {
            to: TicketFor::Commit(tx),
            answered: false,
        }
    }

    /// Tell the publisher whether the queue took the message (a length limit may
    /// refuse it; a transaction does not care).
    pub(crate) fn resolve(mut self, ack: bool) {
        self.send(ack, true);
    }

    /// The message could not be stored: a nack, and a failed commit.
    pub(crate) fn fail(mut self) {
        self.send(false, false);
    }

    fn send(&mut self, ack: bool, stored: bool) {
        self.answered = true;
        // A closed connection no longer needs the verdict.
        match &self.to {
            TicketFor::Confirm { tx, channel, seq } => {
                let _ = tx.send(Outbound::Confirm {
                    channel: *channel,
                    seq: *seq,
                    ack,
                });
            }
            TicketFor::Commit(tx) => {
                let _ = tx.send(stored);
            }
        }
    }
}

impl Drop for ConfirmTicket {
    fn drop(&mut self) {
        if !self.answered {
            self.send(true, true);
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
    /// Enqueue routed messages that wait for no verdict, in order: what one
    /// connection routed to this queue from one batch of input, sent as one command.
    PublishMany(Vec<MessageRef>),
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
    /// Write and sync the queue's message log now (graceful shutdown).
    Sync { reply: oneshot::Sender<()> },
    /// Delete the queue (after checking the conditions).
    Delete {
        if_unused: bool,
        if_empty: bool,
        reply: Option<oneshot::Sender<AmqpResult<u32>>>,
    },
}
