//! A queue's consumers and the choice of who gets the next message: the highest
//! consumer priority (`x-priority`) with credit first, round-robin among equals; or,
//! for a single-active-consumer queue, only the earliest registered.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::connection::ConnectionHandle;
use crate::credit::Credit;

/// A consumer as its queue sees it.
#[derive(Debug)]
pub(crate) struct Consumer {
    /// Unique across the broker (tags are only unique per channel).
    pub id: u64,
    pub tag: Arc<str>,
    pub channel: u16,
    pub conn: ConnectionHandle,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority` from `basic.consume` (0 when absent).
    pub priority: i64,
    /// Per-consumer prefetch (`basic.qos` with global=false), for acking consumers.
    pub prefetch: Option<Arc<Credit>>,
    /// Per-channel prefetch (`basic.qos` with global=true), for acking consumers.
    pub channel_prefetch: Option<Arc<Credit>>,
}

impl Consumer {
    fn credits(&self) -> [Option<&Credit>; 3] {
        [
            self.prefetch.as_deref(),
            self.channel_prefetch.as_deref(),
            Some(&*self.conn.window),
        ]
    }

    /// Take the credit one delivery needs, or register `kick` with whichever credit ran
    /// out so the queue is woken when it returns.
    fn try_take(&self, kick: &Arc<Notify>) -> bool {
        let credits = self.credits();
        for (i, credit) in credits.iter().enumerate() {
            let Some(credit) = credit else { continue };
            if credit.try_acquire() {
                continue;
            }
            credit.wait(kick);
            // Credit may have returned between the failed take and the registration.
            if credit.try_acquire() {
                continue;
            }
            credits[..i].iter().flatten().for_each(|c| c.release(1));
            return false;
        }
        true
    }

    /// Give back the credit of a delivery that did not happen.
    pub(crate) fn untake(&self) {
        self.credits().iter().flatten().for_each(|c| c.release(1));
    }
}

/// Consumers, kept sorted by priority (highest first) and, within a priority, by
/// registration.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    list: Vec<(u64, Consumer)>,
    registered: u64,
    /// Round-robin position within each priority: (priority, next index in its group).
    cursors: Vec<(i64, usize)>,
    single_active: bool,
}

impl Consumers {
    pub(crate) fn new(single_active: bool) -> Self {
        Self {
            single_active,
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, consumer: Consumer) {
        self.registered += 1;
        let order = self.registered;
        let at = if self.single_active {
            self.list.len()
        } else {
            self.list
                .partition_point(|(_, c)| c.priority >= consumer.priority)
        };
        self.list.insert(at, (order, consumer));
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Consumer> {
        let at = self.list.iter().position(|(_, c)| c.id == id)?;
        Some(self.remove_at(at))
    }

    pub(crate) fn remove_at(&mut self, at: usize) -> Consumer {
        self.list.remove(at).1
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn has_exclusive(&self) -> bool {
        self.list.iter().any(|(_, c)| c.exclusive)
    }

    pub(crate) fn get(&self, at: usize) -> &Consumer {
        &self.list[at].1
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Consumer> + '_ {
        self.cursors.clear();
        self.list.drain(..).map(|(_, c)| c)
    }

    /// The next consumer that may receive a message, with credit for one delivery (which
    /// is taken); `None` when none can.
    pub(crate) fn next_with_credit(&mut self, kick: &Arc<Notify>) -> Option<usize> {
        if self.single_active {
            // The earliest registered consumer is the active one (the list is kept in
            // registration order for such queues).
            return (!self.list.is_empty() && self.list[0].1.try_take(kick)).then_some(0);
        }
        let mut start = 0;
        while start < self.list.len() {
            let priority = self.list[start].1.priority;
            let len = self.list[start..]
                .iter()
                .take_while(|(_, c)| c.priority == priority)
                .count();
            let cursor = self.cursor(priority) % len;
            for k in 0..len {
                let at = start + (cursor + k) % len;
                if self.list[at].1.try_take(kick) {
                    self.set_cursor(priority, (cursor + k + 1) % len);
                    return Some(at);
                }
            }
            start += len;
        }
        None
    }

    fn cursor(&self, priority: i64) -> usize {
        self.cursors
            .iter()
            .find(|(p, _)| *p == priority)
            .map_or(0, |(_, c)| *c)
    }

    fn set_cursor(&mut self, priority: i64, next: usize) {
        match self.cursors.iter_mut().find(|(p, _)| *p == priority) {
            Some((_, c)) => *c = next,
            None => self.cursors.push((priority, next)),
        }
    }
}
