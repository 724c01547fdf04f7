//! One queue's messages: ready in order, and delivered-but-unacknowledged by id.

use std::collections::{HashMap, VecDeque};

use crate::MessageRef;

/// A message's position in its queue, increasing in publish order.
pub type MessageId = u64;

/// A message in a queue, with what the queue knows about its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Position in the queue.
    pub id: MessageId,
    /// The message.
    pub message: MessageRef,
    /// It was delivered before and came back.
    pub redelivered: bool,
}

/// A queue's contents.
///
/// The ready list is kept sorted by id, so requeued messages go back to where they were.
#[derive(Debug, Default)]
pub struct MessageQueue {
    ready: VecDeque<QueuedMessage>,
    unacked: HashMap<MessageId, QueuedMessage>,
    next_id: MessageId,
    ready_bytes: usize,
}

impl MessageQueue {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a newly published message; returns its id.
    pub fn push(&mut self, message: MessageRef) -> MessageId {
        let id = self.next_id;
        self.next_id += 1;
        self.ready_bytes += message.body_size();
        self.ready.push_back(QueuedMessage {
            id,
            message,
            redelivered: false,
        });
        id
    }

    /// Take the oldest ready message. With `track`, it is kept as unacknowledged until
    /// [`ack`](Self::ack) or [`requeue`](Self::requeue); without, it leaves the queue.
    pub fn pop(&mut self, track: bool) -> Option<QueuedMessage> {
        let next = self.ready.pop_front()?;
        self.ready_bytes -= next.message.body_size();
        if track {
            self.unacked.insert(next.id, next.clone());
        }
        Some(next)
    }

    /// Forget an unacknowledged message for good; `None` if it was not unacknowledged.
    pub fn ack(&mut self, id: MessageId) -> Option<QueuedMessage> {
        self.unacked.remove(&id)
    }

    /// Return unacknowledged messages to the ready list at their original positions,
    /// marked redelivered. Ids that are not unacknowledged are ignored; returns how many
    /// came back.
    pub fn requeue(&mut self, ids: impl IntoIterator<Item = MessageId>) -> usize {
        self.restore(ids, true)
    }

    /// Like [`requeue`](Self::requeue), but keep each message's redelivered flag: for
    /// messages that were handed out but never reached a client.
    pub fn return_undelivered(&mut self, ids: impl IntoIterator<Item = MessageId>) -> usize {
        self.restore(ids, false)
    }

    /// Put back a message that left the queue untracked (a no-ack delivery that never
    /// reached its consumer), at its original position and with its flags unchanged.
    pub fn put_back(&mut self, message: QueuedMessage) {
        self.ready_bytes += message.message.body_size();
        let at = self.ready.partition_point(|r| r.id < message.id);
        self.ready.insert(at, message);
    }

    fn restore(&mut self, ids: impl IntoIterator<Item = MessageId>, redelivered: bool) -> usize {
        let mut back: Vec<QueuedMessage> = ids
            .into_iter()
            .filter_map(|id| self.unacked.remove(&id))
            .collect();
        back.sort_unstable_by_key(|m| m.id);
        let count = back.len();
        // Requeued messages are usually older than everything ready: put them in front in
        // one pass; otherwise insert each where it belongs.
        let all_older = match (back.last(), self.ready.front()) {
            (Some(last), Some(front)) => last.id < front.id,
            _ => true,
        };
        for mut m in back.into_iter().rev() {
            m.redelivered |= redelivered;
            self.ready_bytes += m.message.body_size();
            if all_older {
                self.ready.push_front(m);
            } else {
                let at = self.ready.partition_point(|r| r.id < m.id);
                self.ready.insert(at, m);
            }
        }
        count
    }

    /// Drop every ready message; returns how many there were. Unacknowledged messages
    /// stay, as in RabbitMQ.
    pub fn purge(&mut self) -> usize {
        let n = self.ready.len();
        self.ready.clear();
        self.ready_bytes = 0;
        n
    }

    /// Ready messages.
    #[must_use]
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Body octets of the ready messages.
    #[must_use]
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Delivered, not yet acknowledged.
    #[must_use]
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// True when nothing is ready.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::Message;

    fn msg(n: u8) -> MessageRef {
        Arc::new(Message {
            exchange: Bytes::new(),
            routing_key: Bytes::new(),
            properties: Bytes::new(),
            body: Bytes::from(vec![n]),
            persistent: false,
        })
    }

    #[test]
    fn requeue_restores_original_order_with_redelivered() {
        let mut q = MessageQueue::new();
        for n in 0..5 {
            q.push(msg(n));
        }
        let a = q.pop(true).unwrap();
        let b = q.pop(true).unwrap();
        let c = q.pop(true).unwrap();
        assert_eq!(q.requeue([c.id, a.id]), 2);
        let order: Vec<_> = std::iter::from_fn(|| q.pop(false))
            .map(|m| (m.id, m.redelivered))
            .collect();
        assert_eq!(order, vec![(0, true), (2, true), (3, false), (4, false)]);
        assert_eq!(q.unacked_len(), 1);
        assert!(q.ack(b.id).is_some());
        assert!(q.ack(b.id).is_none());
    }

    #[test]
    fn purge_keeps_unacked() {
        let mut q = MessageQueue::new();
        q.push(msg(1));
        q.push(msg(2));
        let m = q.pop(true).unwrap();
        assert_eq!(q.purge(), 1);
        assert_eq!(q.requeue([m.id]), 1);
        assert_eq!(q.ready_len(), 1);
        assert_eq!(q.ready_bytes(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Pop(bool),
        Ack(usize),
        Requeue(Vec<usize>),
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Push),
            3 => any::<bool>().prop_map(Op::Pop),
            2 => any::<usize>().prop_map(Op::Ack),
            2 => proptest::collection::vec(any::<usize>(), 0..4).prop_map(Op::Requeue),
            1 => Just(Op::Purge),
        ]
    }

    proptest! {
        /// The queue against a model: a sorted list of (id, redelivered) and a set of
        /// unacked ids.
        #[test]
        fn behaves_like_a_sorted_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = MessageQueue::new();
            let mut ready: Vec<(u64, bool)> = Vec::new();
            let mut unacked: Vec<(u64, bool)> = Vec::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Push => {
                        prop_assert_eq!(q.push(msg(0)), next);
                        ready.push((next, false));
                        next += 1;
                    }
                    Op::Pop(track) => {
                        let got = q.pop(track).map(|m| (m.id, m.redelivered));
                        let want = (!ready.is_empty()).then(|| ready.remove(0));
                        prop_assert_eq!(got, want);
                        if let (Some(m), true) = (want, track) {
                            unacked.push(m);
                        }
                    }
                    Op::Ack(i) => {
                        if !unacked.is_empty() {
                            let (id, _) = unacked.remove(i % unacked.len());
                            prop_assert!(q.ack(id).is_some());
                        }
                    }
                    Op::Requeue(picks) => {
                        let mut ids = Vec::new();
                        for p in picks {
                            if !unacked.is_empty() {
                                let (id, _) = unacked.remove(p % unacked.len());
                                ids.push(id);
                                ready.push((id, true));
                            }
                        }
                        ready.sort_unstable();
                        prop_assert_eq!(q.requeue(ids.clone()), ids.len());
                    }
                    Op::Purge => {
                        prop_assert_eq!(q.purge(), ready.len());
                        ready.clear();
                    }
                }
                prop_assert_eq!(q.ready_len(), ready.len());
                prop_assert_eq!(q.unacked_len(), unacked.len());
            }
        }
    }
}
