//! How queue tasks reach a connection: an unbounded inbox whose deliveries are bounded by
//! the connection's delivery window (a [`Credit`]).

use std::sync::Arc;

use smallvec::SmallVec;
use tokio::sync::mpsc;
use warren_store::QueuedMessage;

use crate::credit::Credit;
use crate::queue::QueueRef;

/// What a queue task can send a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Messages for one of the connection's consumers.
    Deliver(Delivery),
    /// A queue's verdict on a publish waiting for a confirm.
    Confirm { channel: u16, seq: u64, ack: bool },
    /// A reply for a direct reply-to consumer (`amq.rabbitmq.reply-to`): no queue.
    Reply {
        channel: u16,
        consumer_tag: Arc<str>,
        message: warren_store::MessageRef,
    },
    /// The queue of one of the connection's consumers was deleted.
    ConsumerCancelled {
        channel: u16,
        consumer_id: u64,
        consumer_tag: Arc<str>,
    },
}

/// Messages on their way to one consumer, in order; the connection assigns their
/// delivery tags. Usually one; a queue that has several ready for the same consumer
/// sends them together, so the channel operation, the consumer's look-up and the clones
/// of its tag and of the queue's handle (cache lines passed between the queue's thread
/// and the connection's) are paid for once per run instead of once per message. An
/// acking consumer's channel still keeps the queue's handle with each outstanding
/// delivery.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub channel: u16,
    pub consumer_id: u64,
    pub consumer_tag: Arc<str>,
    pub queue: QueueRef,
    pub messages: DeliveredMessages,
    pub no_ack: bool,
    /// The channel's shared prefetch (global qos) these messages took. A delivery that
    /// bounces gives it back: the channel may outlive the consumer it was meant for,
    /// and its other and later consumers share this credit. (Per-consumer prefetch
    /// goes with its consumer; a reopened channel of the same number has its own.)
    pub channel_credit: Option<Arc<Credit>>,
}

/// The messages of one [`Delivery`]: one without allocating.
pub(crate) type DeliveredMessages = SmallVec<[QueuedMessage; 1]>;

/// A connection as queue tasks see it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// Deliveries sent but not yet encoded for the socket. Unbounded sends are safe
    /// because queues take this credit before each delivery.
    pub window: Arc<Credit>,
}
