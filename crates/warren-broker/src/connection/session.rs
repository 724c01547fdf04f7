//! What a connection's channels share: identity, vhost, negotiated limits, the handle
//! queues deliver through, and the write buffer every reply is encoded into.

use std::sync::Arc;

use bytes::BytesMut;
use tracing::error;
use warren_codec::encode::{encode_content, encode_method};
use warren_codec::spec::AMQPClass;

use super::ConnectionHandle;
use crate::Broker;
use crate::queue::{ConnectionId, QueueRef};
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
}

impl Session {
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
