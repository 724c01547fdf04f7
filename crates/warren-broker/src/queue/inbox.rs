//! A queue's inbox: commands in the order each sender sent them, bounded in messages
//! rather than in commands.
//!
//! Why not a bounded channel: connections hand a queue the publishes of one batch of
//! input as one command, and a bound in commands would then let a fast publisher put
//! hundreds of times more messages ahead of a consumer's acks, starving a manual-ack
//! consumer (see `Config::queue_command_capacity`). Here a command takes as much room as
//! the messages it carries; the room comes back when the queue task takes it out.
//!
//! Some senders must not wait, and go in at once, without room: clean-up (a cancelled
//! consumer, messages a closing channel returns, a delivery that bounced), which must
//! also stay in order with what its sender sends next (the consumer a channel's close
//! cancels must be gone before the consume of the channel reopened); and queue tasks
//! dead-lettering, since two queues dead-lettering to each other would otherwise wait
//! on each other for ever.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::QueueCmd;

/// A new inbox with room for `capacity` messages (at least one).
pub(crate) fn inbox(capacity: usize) -> (InboxSender, InboxReceiver) {
    let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
    let (tx, rx) = mpsc::unbounded_channel::<(QueueCmd, u32)>();
    let room = Arc::new(Semaphore::new(capacity as usize));
    (
        InboxSender {
            tx,
            room: room.clone(),
            capacity,
        },
        InboxReceiver { rx, room },
    )
}

/// Why a command could not go in at once.
#[derive(Debug)]
pub(crate) enum TrySendError {
    /// No room now; the command comes back.
    Full(QueueCmd),
    /// The queue is gone.
    Closed,
}

#[derive(Debug, Clone)]
pub(crate) struct InboxSender {
    /// Each command with the room it took, given back when it is taken out.
    tx: mpsc::UnboundedSender<(QueueCmd, u32)>,
    room: Arc<Semaphore>,
    capacity: u32,
}

impl InboxSender {
    /// Put a command in, waiting for room. `false` if the queue is gone.
    pub(crate) async fn send(&self, cmd: QueueCmd) -> bool {
        let weight = weight(&cmd, self.capacity);
        match self.room.acquire_many(weight).await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        self.tx.send((cmd, weight)).is_ok()
    }

    /// Put a command in now, room or not (see the module doc for who may). `false` if
    /// the queue is gone.
    pub(crate) fn send_now(&self, cmd: QueueCmd) -> bool {
        self.tx.send((cmd, 0)).is_ok()
    }

    /// Put a command in if there is room for it now.
    pub(crate) fn try_send(&self, cmd: QueueCmd) -> Result<(), TrySendError> {
        let weight = weight(&cmd, self.capacity);
        match self.room.try_acquire_many(weight) {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(TrySendError::Full(cmd)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(TrySendError::Closed),
        }
        self.tx
            .send((cmd, weight))
            .map_err(|_| TrySendError::Closed)
    }
}

#[derive(Debug)]
pub(crate) struct InboxReceiver {
    rx: mpsc::UnboundedReceiver<(QueueCmd, u32)>,
    room: Arc<Semaphore>,
}

impl InboxReceiver {
    /// The next command, waiting for one; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<QueueCmd> {
        let taken = self.rx.recv().await?;
        Some(self.taken(taken))
    }

    /// The next command if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<QueueCmd> {
        let taken = self.rx.try_recv().ok()?;
        Some(self.taken(taken))
    }

    fn taken(&self, (cmd, weight): (QueueCmd, u32)) -> QueueCmd {
        if weight > 0 {
            self.room.add_permits(weight as usize);
        }
        cmd
    }
}

impl Drop for InboxReceiver {
    /// Senders waiting for room learn at once that the queue is gone.
    fn drop(&mut self) {
        self.room.close();
    }
}

/// The room a command takes: one per message it carries, never more than the whole
/// inbox (which would wait forever).
fn weight(cmd: &QueueCmd, capacity: u32) -> u32 {
    let messages = match cmd {
        QueueCmd::PublishMany(messages) => u32::try_from(messages.len()).unwrap_or(u32::MAX),
        _ => 1,
    };
    messages.clamp(1, capacity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use super::*;
    use warren_store::MessageRef;

    fn many(n: usize) -> QueueCmd {
        QueueCmd::PublishMany((0..n).map(|_| MessageRef::default()).collect())
    }

    fn ack() -> QueueCmd {
        QueueCmd::Ack {
            ids: Default::default(),
        }
    }

    #[tokio::test]
    async fn room_is_counted_in_messages_and_comes_back_when_taken() {
        let (tx, mut rx) = inbox(10);
        tx.try_send(many(6)).unwrap();
        tx.try_send(many(4)).unwrap();
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Full(_))));
        assert!(matches!(rx.try_recv(), Some(QueueCmd::PublishMany(m)) if m.len() == 6));
        tx.try_send(many(6)).unwrap();
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Full(_))));
    }

    #[tokio::test]
    async fn a_command_larger_than_the_inbox_takes_all_of_it_and_no_more() {
        let (tx, mut rx) = inbox(4);
        tx.try_send(many(9)).unwrap();
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Full(_))));
        rx.try_recv().unwrap();
        tx.try_send(ack()).unwrap();
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_in_when_room_comes_back_in_order() {
        let (tx, mut rx) = inbox(2);
        tx.try_send(many(2)).unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(ack()).await }
        });
        tokio::task::yield_now().await;
        assert!(matches!(rx.recv().await, Some(QueueCmd::PublishMany(_))));
        assert!(waiting.await.unwrap());
        assert!(matches!(rx.recv().await, Some(QueueCmd::Ack { .. })));
    }

    #[tokio::test]
    async fn who_must_not_wait_goes_in_at_once_in_order_and_takes_no_room() {
        let (tx, mut rx) = inbox(2);
        tx.try_send(many(2)).unwrap();
        assert!(tx.send_now(ack()));
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Full(_))));
        assert!(matches!(rx.try_recv(), Some(QueueCmd::PublishMany(_))));
        assert!(matches!(rx.try_recv(), Some(QueueCmd::Ack { .. })));
        // Taking it out gave back no room it had not taken.
        tx.try_send(many(2)).unwrap();
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Full(_))));
        drop(rx);
        assert!(!tx.send_now(ack()));
    }

    #[tokio::test]
    async fn senders_learn_the_queue_is_gone() {
        let (tx, rx) = inbox(1);
        tx.try_send(ack()).unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(ack()).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(!waiting.await.unwrap());
        assert!(matches!(tx.try_send(ack()), Err(TrySendError::Closed)));
    }
}
