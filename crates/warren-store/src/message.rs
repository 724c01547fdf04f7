use std::sync::{Arc, LazyLock};

use crossbeam_queue::ArrayQueue;

use bytes::Bytes;

use crate::Body;

/// A published message, as it travels from publisher to consumers.
///
/// The byte fields are slices of the publisher's read buffer where the codec allowed it:
/// a message routed to many queues is never copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: Bytes,
    /// The routing key it was published with.
    pub routing_key: Bytes,
    /// The raw property section, forwarded untouched.
    pub properties: Bytes,
    /// The body, in the parts it arrived in.
    pub body: Body,
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

/// A shared message: a reference-counted [`Message`] whose box is recycled.
///
/// A box allocated on the publisher's thread and freed on the consumer's is the costly
/// case for glibc's allocator (the free takes the other thread's arena lock): it was a
/// fifth of the broker's CPU per message (docs/benchmarks.md, "Recycled message
/// boxes"). So the last holder of a message empties its box and parks it in a bounded
/// pool, where the next publish on any thread takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef(Option<Arc<Message>>);

/// Boxes waiting for reuse; more than this many are freed. It bounds what an idle
/// broker holds after a burst to ~200 KiB.
const POOL_CAPACITY: usize = 1024;

static POOL: LazyLock<ArrayQueue<Arc<Message>>> = LazyLock::new(|| ArrayQueue::new(POOL_CAPACITY));

/// What a `MessageRef` shows once it has been taken or dropped.
static EMPTY: Message = Message {
    exchange: Bytes::new(),
    routing_key: Bytes::new(),
    properties: Bytes::new(),
    body: Body::new(),
    persistent: false,
    priority: 0,
    expiration: None,
};

impl MessageRef {
    /// Share `message`, in a recycled box when one is waiting.
    #[must_use]
    pub fn new(message: Message) -> Self {
        if let Some(mut shared) = POOL.pop()
            && let Some(slot) = Arc::get_mut(&mut shared)
        {
            *slot = message;
            return MessageRef(Some(shared));
        }
        MessageRef(Some(Arc::new(message)))
    }
}

/// No message: what `std::mem::take` leaves behind; it reads as an empty message.
impl Default for MessageRef {
    fn default() -> Self {
        MessageRef(None)
    }
}

impl std::ops::Deref for MessageRef {
    type Target = Message;

    fn deref(&self) -> &Message {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl Drop for MessageRef {
    fn drop(&mut self) {
        // The count is read first because `get_mut` locks the weak count, which every
        // holder of a fanned-out message would otherwise contend on. A race here only
        // lets a box be freed instead of parked.
        if let Some(mut shared) = self.0.take()
            && Arc::strong_count(&shared) == 1
            && let Some(message) = Arc::get_mut(&mut shared)
        {
            // Let go of the buffers now: a parked box must not keep a read buffer alive.
            *message = EMPTY.clone();
            // A full pool drops (frees) the box instead.
            let _ = POOL.push(shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A body buffer that records when it is freed.
    struct Watched(Arc<AtomicBool>);

    impl AsRef<[u8]> for Watched {
        fn as_ref(&self) -> &[u8] {
            b"body"
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn watched_message() -> (Message, Arc<AtomicBool>) {
        let freed = Arc::new(AtomicBool::new(false));
        let message = Message {
            routing_key: Bytes::from_static(b"rk"),
            body: Body::from(Bytes::from_owner(Watched(Arc::clone(&freed)))),
            ..Message::default()
        };
        (message, freed)
    }

    #[test]
    fn the_last_holder_releases_the_buffers_even_when_the_box_is_parked() {
        let (message, freed) = watched_message();
        let first = MessageRef::new(message);
        let second = first.clone();
        drop(first);
        assert!(!freed.load(Ordering::SeqCst), "a holder is left");
        assert_eq!(&second.body.to_bytes()[..], b"body");
        drop(second);
        assert!(freed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_recycled_box_shows_only_its_new_message() {
        for n in 0..(POOL_CAPACITY * 2) {
            let key = Bytes::from(n.to_string());
            let message = MessageRef::new(Message {
                routing_key: key.clone(),
                ..Message::default()
            });
            assert_eq!(message.routing_key, key);
            assert!(message.body.is_empty());
        }
    }

    #[test]
    fn a_taken_message_reads_as_empty() {
        let (message, freed) = watched_message();
        let mut held = MessageRef::new(message);
        let taken = std::mem::take(&mut held);
        assert!(held.body.is_empty() && held.routing_key.is_empty());
        assert_eq!(&taken.routing_key[..], b"rk");
        drop(held);
        assert!(!freed.load(Ordering::SeqCst));
        drop(taken);
        assert!(freed.load(Ordering::SeqCst));
    }
}
