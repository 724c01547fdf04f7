//! What a connection's channels share: identity, vhost, negotiated limits, the handle
//! queues deliver through, and the write buffer every reply is encoded into.

use std::sync::Arc;

use bytes::BytesMut;
use tracing::error;
use warren_codec::encode::{encode_content, encode_method};
use warren_codec::spec::AMQPClass;

use super::ConnectionHandle;
use crate::Broker;
use crate::queue::{ConnectionId, QueueCmd, QueueRef};
use crate::vhost::VHost;

/// Per-connection context handed to channel handlers.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: ConnectionId,
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    pub user: Arc<str>,
    /// Negotiated frame_max for the frames we send.
    pub frame_max: u32,
    /// The client asked to be told when the queue of one of its consumers goes away.
    pub consumer_cancel_notify: bool,
    pub handle: ConnectionHandle,
    /// Encoded frames waiting for the socket; flushed in batches by the connection loop.
    pub out: BytesMut,
    /// Exclusive queues this connection declared: deleted when it closes.
    pub exclusive_queues: Vec<QueueRef>,
    /// Channels with publisher confirms to send once the current batch of input is handled.
    pub confirms_due: Vec<u16>,
    /// The earliest consumer-timeout deadline of any outstanding delivery.
    pub ack_deadline: Option<tokio::time::Instant>,
    /// Publishes for queues whose inbox was full, in the order they were routed. The
    /// connection sends them (waiting: this is publisher back-pressure) before it
    /// handles another frame, so routing itself never waits and the order per queue
    /// holds.
    pub parked: Vec<(QueueRef, QueueCmd)>,
}

impl Session {
    /// Hand a command to a queue without waiting: at once if its inbox has room,
    /// otherwise parked for [`Session::send_parked`]. `false` if the queue is gone.
    pub fn send_to_queue(&mut self, queue: &QueueRef, cmd: QueueCmd) -> bool {
        if !self.parked.is_empty() {
            self.parked.push((queue.clone(), cmd));
            return true;
        }
        match queue.try_send(cmd) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(cmd)) => {
                self.parked.push((queue.clone(), cmd));
                true
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Send every parked command, waiting for room in each queue's inbox. A command
    /// for a queue deleted meanwhile is dropped, and with it any confirm ticket,
    /// which then answers for itself.
    pub async fn send_parked(&mut self) {
        for (queue, cmd) in std::mem::take(&mut self.parked) {
            queue.send(cmd).await;
        }
    }

    /// Encode a method for sending.
    pub fn send_method(&mut self, channel: u16, method: &AMQPClass) {
        if let Err(e) = encode_method(&mut self.out, channel, method) {
            // Only our own oversize strings can fail to encode; they are bugs, not input.
            error!(channel, error = %e, ?method, "could not encode a method");
        }
    }

    /// Encode a content header and body frames for sending.
    pub fn send_content(&mut self, channel: u16, properties: &[u8], body: &[u8]) {
        if let Err(e) = encode_content(&mut self.out, channel, properties, body, self.frame_max) {
            error!(channel, error = %e, "could not encode content");
        }
    }
}
