//! A queue's consumers and the round-robin choice of who gets the next message.

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

/// Consumers in registration order, served round-robin.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    list: Vec<Consumer>,
    next: usize,
}

impl Consumers {
    pub(crate) fn add(&mut self, consumer: Consumer) {
        self.list.push(consumer);
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Consumer> {
        let at = self.list.iter().position(|c| c.id == id)?;
        Some(self.remove_at(at))
    }

    pub(crate) fn remove_at(&mut self, at: usize) -> Consumer {
        if at < self.next {
            self.next -= 1;
        }
        let consumer = self.list.remove(at);
        if self.next >= self.list.len() {
            self.next = 0;
        }
        consumer
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn has_exclusive(&self) -> bool {
        self.list.iter().any(|c| c.exclusive)
    }

    pub(crate) fn get(&self, at: usize) -> &Consumer {
        &self.list[at]
    }

    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Consumer> {
        self.next = 0;
        self.list.drain(..)
    }

    /// The next consumer, in round-robin order, with credit for one more delivery (which
    /// is taken); `None` when every consumer is out of credit.
    pub(crate) fn next_with_credit(&mut self, kick: &Arc<Notify>) -> Option<usize> {
        let n = self.list.len();
        for k in 0..n {
            let at = (self.next + k) % n;
            if self.list[at].try_take(kick) {
                self.next = (at + 1) % n;
                return Some(at);
            }
        }
        None
    }
}
