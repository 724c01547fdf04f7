//! Delivery credit: how many more messages a consumer, a channel, or a connection's
//! writer may be handed before the queues delivering to it must wait.
//!
//! A queue task takes credit before each delivery; the connection task gives it back
//! (on ack for prefetch credit, once the delivery is encoded for the writer's credit).
//! A queue that finds no credit registers itself and is woken when credit returns, so
//! neither side ever waits on the other while holding anything.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// A counting limit shared between queue tasks (which take) and one connection (which
/// gives back). A limit of 0 means unlimited.
#[derive(Debug, Default)]
pub(crate) struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
    has_waiters: AtomicBool,
    /// Queues waiting for credit. A mutex because registrations come from many queue
    /// tasks and wake-ups from the connection; it is held only to push or drain.
    waiters: Mutex<Vec<Weak<Notify>>>,
}

impl Credit {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU32::new(limit),
            ..Self::default()
        })
    }

    /// Take one unit, unless the limit is reached.
    pub(crate) fn try_acquire(&self) -> bool {
        let limit = self.limit.load(Ordering::SeqCst);
        if limit == 0 {
            self.used.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used < limit).then_some(used + 1)
            })
            .is_ok()
    }

    /// Give `n` units back, waking waiting queues.
    pub(crate) fn release(&self, n: u32) {
        if n == 0 {
            return;
        }
        // Saturating: a limit change can leave fewer units out than are returned.
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(n))
            });
        self.wake();
    }

    /// Change the limit (basic.qos with global=true), waking waiters if it grew.
    pub(crate) fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::SeqCst);
        self.wake();
    }

    /// Register `queue` to be woken when credit returns. The caller must try to acquire
    /// again after registering: credit may have come back in between.
    pub(crate) fn wait(&self, queue: &Arc<Notify>) {
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
            waiters.push(Arc::downgrade(queue));
        }
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    fn wake(&self) {
        if !self.has_waiters.swap(false, Ordering::SeqCst) {
            return;
        }
        let waiters = std::mem::take(&mut *self.waiters.lock());
        for waiter in waiters.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> u32 {
        self.used.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let c = Credit::new(2);
        assert!(c.try_acquire());
        assert!(c.try_acquire());
        assert!(!c.try_acquire());
        c.release(1);
        assert!(c.try_acquire());
        assert_eq!(c.used(), 2);
        let unlimited = Credit::new(0);
        for _ in 0..1000 {
            assert!(unlimited.try_acquire());
        }
    }

    #[tokio::test]
    async fn release_wakes_a_registered_queue() {
        let c = Credit::new(1);
        let q = Arc::new(Notify::new());
        assert!(c.try_acquire());
        assert!(!c.try_acquire());
        c.wait(&q);
        c.wait(&q);
        c.release(1);
        tokio::time::timeout(std::time::Duration::from_secs(1), q.notified())
            .await
            .unwrap();
        assert!(c.waiters.lock().is_empty());
    }
}
