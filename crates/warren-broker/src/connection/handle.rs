//! How queue tasks reach a connection: an unbounded inbox whose deliveries are bounded by
//! the connection's delivery window (a [`Credit`]).

use std::sync::Arc;

use tokio::sync::mpsc;
use warren_store::QueuedMessage;

use crate::credit::Credit;
use crate::queue::QueueRef;

/// What a queue task can send a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A message for one of the connection's consumers.
    Deliver(Delivery),
    /// Several messages for the same consumer, in order: one channel operation for the
    /// lot instead of one each, which at high rates is a visible share of the work.
    Deliveries(Vec<Delivery>),
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

impl Outbound {
    /// The deliveries this item carries, if any.
    pub(crate) fn deliveries(&self) -> &[Delivery] {
        match self {
            Outbound::Deliver(one) => std::slice::from_ref(one),
            Outbound::Deliveries(many) => many,
            _ => &[],
        }
    }

    /// The deliveries this item carries, if any, by value.
    pub(crate) fn into_deliveries(self) -> Vec<Delivery> {
        match self {
            Outbound::Deliver(one) => vec![one],
            Outbound::Deliveries(many) => many,
            _ => Vec::new(),
        }
    }
}

/// One message on its way to a consumer. The connection assigns the delivery tag.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub channel: u16,
    pub consumer_id: u64,
    pub consumer_tag: Arc<str>,
    pub queue: QueueRef,
    pub message: QueuedMessage,
    pub no_ack: bool,
}

/// A connection as queue tasks see it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// Deliveries sent but not yet encoded for the socket. Unbounded sends are safe
    /// because queues take this credit before each delivery.
    pub window: Arc<Credit>,
}
