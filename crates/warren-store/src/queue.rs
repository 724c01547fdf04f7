//! One queue's messages: ready (by priority, each lane in publish order) and
//! delivered-but-unacknowledged (by id), with expiry deadlines.
//!
//! Each priority lane is a deque sorted by id. A message can leave the middle of a lane
//! (it expired, though not at the head): its slot becomes a tombstone that is skipped,
//! and lanes are compacted when tombstones outnumber live messages, so removal is
//! O(log n) and memory stays proportional to what is live.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::MessageRef;
use crate::segment::Location;

/// A message's position in its queue, increasing in publish order.
pub type MessageId = u64;

/// A point in time on the owning queue's clock, in milliseconds.
pub type Deadline = u64;

/// A message in a queue, with what the queue knows about its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Position in the queue.
    pub id: MessageId,
    /// The message.
    pub message: MessageRef,
    /// It was delivered before and came back.
    pub redelivered: bool,
    /// How many times it was delivered and returned to the queue.
    pub delivery_count: u32,
    /// Its priority lane (0 when the queue has no priorities).
    pub priority: u8,
    /// When it expires, if it has a TTL.
    pub expires_at: Option<Deadline>,
    /// Where it is on disk, for a persistent message in a durable queue.
    pub location: Option<Location>,
}

#[derive(Debug)]
struct Slot {
    id: MessageId,
    message: Option<QueuedMessage>,
}

/// One priority's messages, sorted by id, with tombstones.
#[derive(Debug, Default)]
struct Lane {
    slots: VecDeque<Slot>,
    live: usize,
}

impl Lane {
    fn pop_front(&mut self) -> Option<QueuedMessage> {
        while let Some(slot) = self.slots.pop_front() {
            if let Some(m) = slot.message {
                self.live -= 1;
                return Some(m);
            }
        }
        None
    }

    fn insert(&mut self, m: QueuedMessage) {
        let id = m.id;
        self.live += 1;
        if self.slots.back().is_none_or(|s| s.id < id) {
            self.slots.push_back(Slot {
                id,
                message: Some(m),
            });
        } else if self.slots.front().is_some_and(|s| s.id > id) {
            self.slots.push_front(Slot {
                id,
                message: Some(m),
            });
        } else {
            let at = self.slots.partition_point(|s| s.id < id);
            self.slots.insert(
                at,
                Slot {
                    id,
                    message: Some(m),
                },
            );
        }
    }

    /// Take the message with `id` out of the lane, leaving a tombstone.
    fn take(&mut self, id: MessageId) -> Option<QueuedMessage> {
        let at = self.slots.binary_search_by_key(&id, |s| s.id).ok()?;
        let m = self.slots[at].message.take()?;
        self.live -= 1;
        if self.slots.len() > 64 && self.slots.len() > 2 * self.live {
            self.slots.retain(|s| s.message.is_some());
        }
        Some(m)
    }

    fn clear(&mut self) -> usize {
        let n = self.live;
        self.slots.clear();
        self.live = 0;
        n
    }

    fn live(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.slots.iter().filter_map(|s| s.message.as_ref())
    }
}

/// A queue's contents.
#[derive(Debug)]
pub struct MessageQueue {
    /// Lane per priority; index = priority. One lane when the queue has no priorities.
    lanes: Vec<Lane>,
    unacked: HashMap<MessageId, QueuedMessage>,
    /// Expiry deadlines of ready messages (entries of messages that left are skipped).
    expiries: BinaryHeap<Reverse<(Deadline, MessageId, u8)>>,
    next_id: MessageId,
    ready_len: usize,
    ready_bytes: usize,
}

impl Default for MessageQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageQueue {
    /// An empty queue without priorities.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_priority(0)
    }

    /// An empty queue with priorities `0..=max_priority` (`x-max-priority`).
    #[must_use]
    pub fn with_max_priority(max_priority: u8) -> Self {
        Self {
            lanes: (0..=max_priority).map(|_| Lane::default()).collect(),
            unacked: HashMap::new(),
            expiries: BinaryHeap::new(),
            next_id: 0,
            ready_len: 0,
            ready_bytes: 0,
        }
    }

    fn lane_of(&self, priority: u8) -> u8 {
        let max = u8::try_from(self.lanes.len() - 1).unwrap_or(u8::MAX);
        priority.min(max)
    }

    /// Append a newly published message with `priority` (clamped to the queue's maximum)
    /// and an optional expiry; returns its id.
    pub fn push(
        &mut self,
        message: MessageRef,
        priority: u8,
        expires_at: Option<Deadline>,
    ) -> MessageId {
        self.push_stored(message, priority, expires_at, None)
    }

    /// [`push`](Self::push) for a message also written to disk at `location`.
    pub fn push_stored(
        &mut self,
        message: MessageRef,
        priority: u8,
        expires_at: Option<Deadline>,
        location: Option<Location>,
    ) -> MessageId {
        let id = self.next_id;
        self.next_id += 1;
        let priority = self.lane_of(priority);
        self.add_ready(QueuedMessage {
            id,
            message,
            redelivered: false,
            delivery_count: 0,
            priority,
            expires_at,
            location,
        });
        id
    }

    /// Never hand out ids below `n` (they are taken by messages on disk).
    pub fn reserve_ids_below(&mut self, n: MessageId) {
        self.next_id = self.next_id.max(n);
    }

    /// The id the next pushed message will get.
    #[must_use]
    pub fn next_id(&self) -> MessageId {
        self.next_id
    }

    /// Put back a message recovered from disk with its original id; later pushes get
    /// larger ids.
    pub fn restore(&mut self, mut m: QueuedMessage) {
        m.priority = self.lane_of(m.priority);
        self.next_id = self.next_id.max(m.id + 1);
        self.add_ready(m);
    }

    fn add_ready(&mut self, m: QueuedMessage) {
        self.ready_len += 1;
        self.ready_bytes += m.message.body_size();
        if let Some(deadline) = m.expires_at {
            self.expiries.push(Reverse((deadline, m.id, m.priority)));
        }
        let lane = usize::from(m.priority);
        self.lanes[lane].insert(m);
    }

    fn took_ready(&mut self, m: &QueuedMessage) {
        self.ready_len -= 1;
        self.ready_bytes -= m.message.body_size();
    }

    /// Take the next ready message: highest priority first, oldest first within a
    /// priority. With `track` it stays as unacknowledged until [`ack`](Self::ack) or a
    /// requeue; without, it leaves the queue.
    pub fn pop(&mut self, track: bool) -> Option<QueuedMessage> {
        let m = self.lanes.iter_mut().rev().find_map(Lane::pop_front)?;
        self.took_ready(&m);
        if track {
            self.unacked.insert(m.id, m.clone());
        }
        Some(m)
    }

    /// Forget an unacknowledged message for good; `None` if it was not unacknowledged.
    pub fn ack(&mut self, id: MessageId) -> Option<QueuedMessage> {
        self.unacked.remove(&id)
    }

    /// Return unacknowledged messages to the ready list at their original positions,
    /// marked redelivered and with their delivery count raised. Ids that are not
    /// unacknowledged are ignored; returns how many came back.
    pub fn requeue(&mut self, ids: impl IntoIterator<Item = MessageId>) -> usize {
        let mut n = 0;
        for id in ids {
            let Some(mut m) = self.unacked.remove(&id) else {
                continue;
            };
            m.redelivered = true;
            m.delivery_count = m.delivery_count.saturating_add(1);
            self.add_ready(m);
            n += 1;
        }
        n
    }

    /// Requeue a message already taken out with [`take_unacked`](Self::take_unacked).
    pub fn requeue_taken(&mut self, mut m: QueuedMessage) {
        m.redelivered = true;
        m.delivery_count = m.delivery_count.saturating_add(1);
        self.add_ready(m);
    }

    /// Like [`requeue`](Self::requeue), but for messages handed out that never reached
    /// a client: flags and counts unchanged.
    pub fn return_undelivered(&mut self, ids: impl IntoIterator<Item = MessageId>) -> usize {
        let mut n = 0;
        for id in ids {
            let Some(m) = self.unacked.remove(&id) else {
                continue;
            };
            self.add_ready(m);
            n += 1;
        }
        n
    }

    /// Put back a message that left the queue untracked (a no-ack delivery that never
    /// reached its consumer), at its original position and unchanged.
    pub fn put_back(&mut self, message: QueuedMessage) {
        self.add_ready(message);
    }

    /// Take an unacknowledged message out (to dead-letter it, say).
    pub fn take_unacked(&mut self, id: MessageId) -> Option<QueuedMessage> {
        self.unacked.remove(&id)
    }

    /// Remove and return every ready message whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Deadline) -> Vec<QueuedMessage> {
        let mut expired = Vec::new();
        while let Some(Reverse((deadline, id, priority))) = self.expiries.peek().copied() {
            if deadline > now {
                break;
            }
            self.expiries.pop();
            if let Some(m) = self.lanes[usize::from(priority)].take(id) {
                self.took_ready(&m);
                expired.push(m);
            }
        }
        self.compact_expiries();
        expired
    }

    /// Might any message expire? (Cheap: lets a queue without TTLs skip the clock.)
    #[must_use]
    pub fn has_expiries(&self) -> bool {
        !self.expiries.is_empty()
    }

    /// The earliest deadline of a ready message, if any.
    pub fn next_expiry(&mut self) -> Option<Deadline> {
        // Entries of messages that were delivered meanwhile are dropped lazily.
        while let Some(Reverse((deadline, id, priority))) = self.expiries.peek().copied() {
            let lane = &self.lanes[usize::from(priority)];
            let live = lane
                .slots
                .binary_search_by_key(&id, |s| s.id)
                .is_ok_and(|at| lane.slots[at].message.is_some());
            if live {
                return Some(deadline);
            }
            self.expiries.pop();
        }
        None
    }

    /// Keep the deadline heap proportional to the ready messages it describes.
    fn compact_expiries(&mut self) {
        if self.expiries.len() > 1024 && self.expiries.len() > 2 * self.ready_len {
            self.expiries = self
                .lanes
                .iter()
                .flat_map(Lane::live)
                .filter_map(|m| m.expires_at.map(|d| Reverse((d, m.id, m.priority))))
                .collect();
        }
    }

    /// Take the message at the head, the one a consumer would get next: the oldest of
    /// the highest priority (for `x-overflow=drop-head`). RabbitMQ 3.10's priority
    /// queues drop from that end too, even the message just published.
    pub fn drop_head(&mut self) -> Option<QueuedMessage> {
        self.pop(false)
    }

    /// Drop every ready message; returns the ones that were on disk (where, which, and
    /// whether persistent, so their records can be removed) and how many there were.
    /// Unacknowledged messages stay, as in RabbitMQ.
    pub fn purge(&mut self) -> (Vec<(Location, MessageId, bool)>, usize) {
        let stored: Vec<(Location, MessageId, bool)> = self
            .lanes
            .iter()
            .flat_map(Lane::live)
            .filter_map(|m| m.location.map(|l| (l, m.id, m.message.persistent)))
            .collect();
        let n: usize = self.lanes.iter_mut().map(Lane::clear).sum();
        self.expiries.clear();
        self.ready_len = 0;
        self.ready_bytes = 0;
        (stored, n)
    }

    /// Ready messages.
    #[must_use]
    pub fn ready_len(&self) -> usize {
        self.ready_len
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
        self.ready_len == 0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::Message;

    fn msg(n: u8) -> MessageRef {
        MessageRef::new(Message {
            exchange: Bytes::new(),
            routing_key: Bytes::new(),
            properties: Bytes::new(),
            body: Bytes::from(vec![n]).into(),
            persistent: false,
            priority: 0,
            expiration: None,
        })
    }

    #[test]
    fn requeue_restores_original_order_with_redelivered() {
        let mut q = MessageQueue::new();
        for n in 0..5 {
            q.push(msg(n), 0, None);
        }
        let a = q.pop(true).unwrap();
        let b = q.pop(true).unwrap();
        let c = q.pop(true).unwrap();
        assert_eq!(q.requeue([c.id, a.id]), 2);
        let order: Vec<_> = std::iter::from_fn(|| q.pop(false))
            .map(|m| (m.id, m.redelivered, m.delivery_count))
            .collect();
        assert_eq!(
            order,
            vec![(0, true, 1), (2, true, 1), (3, false, 0), (4, false, 0)]
        );
        assert_eq!(q.unacked_len(), 1);
        assert!(q.ack(b.id).is_some());
        assert!(q.ack(b.id).is_none());
    }

    #[test]
    fn purge_keeps_unacked() {
        let mut q = MessageQueue::new();
        q.push(msg(1), 0, None);
        q.push(msg(2), 0, None);
        let m = q.pop(true).unwrap();
        assert_eq!(q.purge().1, 1);
        assert_eq!(q.requeue([m.id]), 1);
        assert_eq!(q.ready_len(), 1);
        assert_eq!(q.ready_bytes(), 1);
    }

    #[test]
    fn priorities_higher_first_fifo_within_and_kept_on_requeue() {
        let mut q = MessageQueue::with_max_priority(5);
        q.push(msg(0), 0, None);
        q.push(msg(1), 9, None); // above the maximum: treated as 5
        q.push(msg(2), 3, None);
        q.push(msg(3), 5, None);
        let first = q.pop(true).unwrap();
        assert_eq!((first.message.body.to_bytes()[0], first.priority), (1, 5));
        q.requeue([first.id]);
        let order: Vec<u8> = std::iter::from_fn(|| q.pop(false))
            .map(|m| m.message.body.to_bytes()[0])
            .collect();
        assert_eq!(order, vec![1, 3, 2, 0]);
    }

    #[test]
    fn messages_expire_on_time_even_behind_the_head() {
        let mut q = MessageQueue::new();
        q.push(msg(0), 0, Some(1_000));
        q.push(msg(1), 0, Some(10));
        q.push(msg(2), 0, None);
        assert_eq!(q.next_expiry(), Some(10));
        let expired = q.expire(10);
        assert_eq!(
            expired
                .iter()
                .map(|m| m.message.body.to_bytes()[0])
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(q.ready_len(), 2);
        assert_eq!(q.next_expiry(), Some(1_000));
        // A delivered message does not expire; its heap entry is skipped.
        let head = q.pop(true).unwrap();
        assert_eq!(head.message.body.to_bytes()[0], 0);
        assert_eq!(q.next_expiry(), None);
        assert!(q.expire(5_000).is_empty());
        // Requeued, it keeps its deadline and expires.
        q.requeue([head.id]);
        assert_eq!(q.expire(5_000).len(), 1);
    }

    #[test]
    fn drop_head_takes_the_next_delivery() {
        let mut q = MessageQueue::with_max_priority(2);
        q.push(msg(0), 0, None);
        q.push(msg(1), 2, None);
        q.push(msg(2), 2, None);
        assert_eq!(q.drop_head().unwrap().message.body.to_bytes()[0], 1);
        assert_eq!(q.drop_head().unwrap().message.body.to_bytes()[0], 2);
        assert_eq!(q.ready_len(), 1);
        assert!(q.unacked.is_empty());
    }

    #[test]
    fn tombstones_are_compacted() {
        let mut q = MessageQueue::new();
        for n in 0..1000u32 {
            q.push(msg(0), 0, Some(if n % 2 == 0 { 5 } else { 1_000_000 }));
        }
        assert_eq!(q.expire(5).len(), 500);
        assert!(q.lanes[0].slots.len() <= 1000);
        assert_eq!(q.ready_len(), 500);
        assert_eq!(std::iter::from_fn(|| q.pop(false)).count(), 500);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, Option<u8>),
        Pop(bool),
        Ack(usize),
        Requeue(Vec<usize>),
        Expire(u8),
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, proptest::option::of(0u8..50)).prop_map(|(p, t)| Op::Push(p, t)),
            3 => any::<bool>().prop_map(Op::Pop),
            2 => any::<usize>().prop_map(Op::Ack),
            2 => proptest::collection::vec(any::<usize>(), 0..4).prop_map(Op::Requeue),
            1 => (0u8..60).prop_map(Op::Expire),
            1 => Just(Op::Purge),
        ]
    }

    /// A model message: (id, priority, deadline, redelivered).
    type Model = (u64, u8, Option<u64>, bool);

    proptest! {
        /// The queue against a naive model: a list sorted by (priority desc, id).
        #[test]
        fn behaves_like_a_sorted_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = MessageQueue::with_max_priority(3);
            let mut ready: Vec<Model> = Vec::new();
            let mut unacked: Vec<Model> = Vec::new();
            let mut next = 0u64;
            let sort = |r: &mut Vec<Model>| r.sort_by_key(|m| (Reverse(m.1), m.0));
            for op in ops {
                match op {
                    Op::Push(p, ttl) => {
                        let deadline = ttl.map(u64::from);
                        prop_assert_eq!(q.push(msg(0), p, deadline), next);
                        ready.push((next, p, deadline, false));
                        sort(&mut ready);
                        next += 1;
                    }
                    Op::Pop(track) => {
                        let got = q.pop(track).map(|m| (m.id, m.priority, m.expires_at, m.redelivered));
                        let want = (!ready.is_empty()).then(|| ready.remove(0));
                        prop_assert_eq!(got, want);
                        if let (Some(m), true) = (want, track) {
                            unacked.push(m);
                        }
                    }
                    Op::Ack(i) => {
                        if !unacked.is_empty() {
                            let (id, ..) = unacked.remove(i % unacked.len());
                            prop_assert!(q.ack(id).is_some());
                        }
                    }
                    Op::Requeue(picks) => {
                        let mut ids = Vec::new();
                        for p in picks {
                            if !unacked.is_empty() {
                                let (id, pr, d, _) = unacked.remove(p % unacked.len());
                                ids.push(id);
                                ready.push((id, pr, d, true));
                            }
                        }
                        sort(&mut ready);
                        prop_assert_eq!(q.requeue(ids.clone()), ids.len());
                    }
                    Op::Expire(now) => {
                        let now = u64::from(now);
                        let mut got: Vec<u64> = q.expire(now).into_iter().map(|m| m.id).collect();
                        got.sort_unstable();
                        let mut want: Vec<u64> = ready.iter().filter(|m| m.2.is_some_and(|d| d <= now)).map(|m| m.0).collect();
                        want.sort_unstable();
                        ready.retain(|m| m.2.is_none_or(|d| d > now));
                        prop_assert_eq!(got, want);
                    }
                    Op::Purge => {
                        prop_assert_eq!(q.purge().1, ready.len());
                        ready.clear();
                    }
                }
                prop_assert_eq!(q.ready_len(), ready.len());
                prop_assert_eq!(q.unacked_len(), unacked.len());
            }
        }
    }
}
