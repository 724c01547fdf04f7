//! Deliveries a channel has handed out and not yet seen settled, by delivery tag.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use warren_store::MessageId;

use crate::credit::Credit;
use crate::queue::QueueRef;

/// One outstanding delivery.
#[derive(Debug)]
pub(crate) struct Pending {
    pub tag: u64,
    pub queue: QueueRef,
    pub id: MessageId,
    /// The consumer's prefetch credit (with the channel's, returned on settlement);
    /// `None` for `basic.get` deliveries, which take no credit.
    pub credit: Option<Arc<Credit>>,
    /// When it must be acknowledged by (the consumer timeout), and that timeout.
    pub deadline: Option<(Instant, Duration)>,
}

/// Outstanding deliveries in tag order (tags only grow, so pushes keep it sorted).
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    list: VecDeque<Pending>,
}

impl Unacked {
    pub(crate) fn push(&mut self, pending: Pending) {
        self.list.push_back(pending);
    }

    /// The deliveries an ack/nack/reject of `tag` settles, removed; `None` if the tag is
    /// not outstanding. As in RabbitMQ, `multiple` with tag 0 means all of them, and
    /// otherwise the tag itself must be outstanding.
    pub(crate) fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Pending>> {
        if multiple && tag == 0 {
            return Some(self.take_all());
        }
        let at = self.list.binary_search_by_key(&tag, |p| p.tag).ok()?;
        if multiple {
            Some(self.list.drain(..=at).collect())
        } else {
            self.list.remove(at).map(|p| vec![p])
        }
    }

    pub(crate) fn take_all(&mut self) -> Vec<Pending> {
        self.list.drain(..).collect()
    }
}

impl Unacked {
    /// Put deliveries back as outstanding (a rolled-back transaction's acks).
    pub(crate) fn restore(&mut self, pending: Vec<Pending>) {
        for p in pending {
            let at = self.list.partition_point(|q| q.tag < p.tag);
            self.list.insert(at, p);
        }
    }
}

impl Unacked {
    /// The earliest acknowledgement deadline among outstanding deliveries.
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .filter_map(|p| p.deadline.map(|(at, _)| at))
            .min()
    }

    /// The timeout of a delivery whose deadline has passed, if one has.
    pub(crate) fn timed_out(&self, now: Instant) -> Option<Duration> {
        self.list
            .iter()
            .filter_map(|p| p.deadline)
            .find(|(at, _)| *at <= now)
            .map(|(_, timeout)| timeout)
    }
}
