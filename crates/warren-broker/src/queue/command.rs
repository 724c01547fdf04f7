//! What other tasks ask of a queue task.

use smallvec::SmallVec;
use tokio::sync::oneshot;
use warren_store::{MessageId, MessageRef, QueuedMessage};

use super::Consumer;
use crate::error::AmqpResult;

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
    /// Enqueue a routed message.
    Publish { message: MessageRef },
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
