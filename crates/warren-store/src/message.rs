use std::sync::Arc;

use bytes::Bytes;

/// A published message, as it travels from publisher to consumers.
///
/// The byte fields are slices of the publisher's read buffer where the codec allowed it:
/// a message routed to many queues is never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: Bytes,
    /// The routing key it was published with.
    pub routing_key: Bytes,
    /// The raw property section, forwarded untouched.
    pub properties: Bytes,
    /// The body.
    pub body: Bytes,
    /// `delivery-mode` was 2.
    pub persistent: bool,
    /// The `priority` property (0 when absent).
    pub priority: u8,
    /// The `expiration` property, parsed: a per-message TTL in milliseconds.
    pub expiration: Option<u64>,
}

impl Message {
    /// Octets this message accounts for in a queue's `x-max-length-bytes` sense: the body.
    #[must_use]
    pub fn body_size(&self) -> usize {
        self.body.len()
    }
}

/// A shared message.
pub type MessageRef = Arc<Message>;
